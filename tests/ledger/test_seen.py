"""The newest checkpoint a node saw, kept outside its replica: a rolled-back or forked replica is
reported against it and against a peer's checkpoint, never believed."""

import json
import shutil

import pytest

from qdsn.crypto import SigningKey
from qdsn.identity import did_key_from_public_key, multikey_from_public_key
from qdsn.ledger import Ledger
from qdsn.ledger.audit import verify_ledger
from qdsn.ledger.integrity import Damaged, Incomplete, Outcome
from qdsn.node import NodeHome, seen

from ..data.world import FAST


@pytest.fixture
def reg(tmp_path):
    return NodeHome.init(tmp_path / "reg", "regulator", "Bureau", "pw", scrypt_n=FAST)


def grow(reg, n):
    for i in range(n):
        key = SigningKey.generate().verify_key.raw
        did = did_key_from_public_key(key)
        reg.submit("identity.register", {"did": did, "role": "enterprise", "name": f"M{i}",
                                         "key": multikey_from_public_key(key)})  # fmt: skip


def test_a_rolled_back_replica_is_behind_the_checkpoint_it_saw(reg, tmp_path):
    ledger = reg.ledger()
    assert seen.remember(reg.path, ledger.sign_checkpoint(reg.log_signer()), reg.log_signer().verifier(), ledger.store)
    ledger.close()
    shutil.copy(reg.path / "ledger.db", tmp_path / "old.db")
    grow(reg, 2)
    ledger = reg.ledger()
    note = ledger.sign_checkpoint(reg.log_signer())
    assert seen.remember(reg.path, note, reg.log_signer().verifier(), ledger.store)
    assert not seen.remember(reg.path, note, reg.log_signer().verifier(), ledger.store)  # not newer
    ledger.close()
    assert (reg.path / seen.FILE).stat().st_mode & 0o777 == 0o600
    assert verify_ledger(reg.ledger_location(), seen=lambda s: seen.guard(reg.path, s)).ok
    old = Ledger.open(str(tmp_path / "old.db"))
    with pytest.raises(Incomplete, match="the replica is at size 1, behind the checkpoint of size 3 this node saw"):
        seen.guard(reg.path, old.store)
    # the same through the whole verification, and a peer's newer checkpoint says the same without the file
    v = verify_ledger(str(tmp_path / "old.db"), seen=lambda s: seen.guard(reg.path, s))
    assert v.outcome is Outcome.INCOMPLETE and "behind the checkpoint of size 3" in v.message
    with pytest.raises(Incomplete, match="behind the peer's checkpoint of size 3"):
        seen.guard(None, old.store, reg.log_signer().verifier(), [note])
    old.close()


def test_a_different_root_at_the_size_seen_is_damage(reg, tmp_path):
    other = NodeHome.init(tmp_path / "other", "regulator", "Bureau", "pw", origin=reg.origin, scrypt_n=FAST)
    ledger = reg.ledger()
    seen.remember(reg.path, ledger.sign_checkpoint(reg.log_signer()), reg.log_signer().verifier(), ledger.store)
    ledger.close()
    # the other log is signed by another key: a replica of it fails against the checkpoint this node saw
    forked = Ledger.open(other.ledger_location())
    with pytest.raises(Damaged, match="root at size 1 is not the one in the checkpoint seen"):
        seen.check(seen.load(reg.path), forked.store.size, forked.store.root_at)
    forked.close()


def test_a_tampered_remembered_checkpoint_is_reported(reg):
    ledger = reg.ledger()
    seen.remember(reg.path, ledger.sign_checkpoint(reg.log_signer()), reg.log_signer().verifier(), ledger.store)
    ledger.close()
    doc = json.loads((reg.path / seen.FILE).read_text())
    doc["note"] = doc["note"].replace("\n1\n", "\n0\n")
    (reg.path / seen.FILE).write_text(json.dumps(doc))
    with pytest.raises(Damaged, match="does not verify"):
        seen.load(reg.path)
