"""`verify_ledger` checks what the fold of the log does not rebuild: cosignature records, the
witnessed checkpoint, cosignature lines of stored checkpoints, stray tree nodes and metadata."""

import sqlite3

import pytest

from qdsn.ledger.audit import verify_ledger
from qdsn.ledger.integrity import Outcome
from qdsn.node import NodeHome
from qdsn.node.follow import cosign_record

from ..data.world import home_of, world


@pytest.fixture
def ledger_db(tmp_path):
    acme = world(tmp_path, {"line-1": [10]})
    regulator, member = NodeHome.open(tmp_path / "reg", "pw"), home_of(acme)
    ledger = member.ledger()
    note = ledger.sign_checkpoint(regulator.log_signer())
    key = regulator.log_signer().verifier()
    cosigned = ledger.witness(note, key, member.cosigner(), 1_780_000_000)
    ledger.add_cosignature(cosigned, member.cosigner().verifier())
    ledger.close()
    member.submit("checkpoint.cosign", cosign_record(member, cosigned, key, 1_780_000_000).payload)
    db = tmp_path / "reg" / "ledger.db"
    assert verify_ledger(str(db), origin=acme.origin).ok
    return db, acme.origin


@pytest.mark.parametrize(
    "change, named",
    [
        ("UPDATE cosignatures SET timestamp = timestamp + 1", "cosignature records"),
        ("UPDATE witnessed SET root = zeroblob(32)", "witnessed checkpoint"),
        ("UPDATE checkpoints SET note = replace(note, '— did:key:', '— did:key:x')", "signature"),
        ("INSERT INTO meta VALUES ('origin2', 'x')", "unknown keys"),
        ("INSERT INTO meta VALUES ('ordering.position', 'x7')", "ordering position"),
        ("INSERT INTO nodes VALUES (999999, zeroblob(32))", "tree nodes"),
        ("UPDATE meta SET value = 'qdsn.local/other' WHERE key = 'origin'", "qdsn.local/other"),
        ("UPDATE entries SET type = 1 WHERE seq = 2", "entry 2"),
        ("UPDATE datasets SET kind = 'measurementz'", "dataset line-1"),
        ("UPDATE members SET region = '110101' WHERE seq = 1", "member registry's record of entry 1"),
        ("DELETE FROM members WHERE seq = 1", "member registry's record of entry 1"),
    ],
)
def test_altered_content_the_fold_does_not_rebuild_is_named(ledger_db, change, named):
    db, origin = ledger_db
    with sqlite3.connect(db) as c:
        c.execute(change)
    v = verify_ledger(str(db), origin=origin)
    assert v.outcome is Outcome.DAMAGED and named in v.message, v
