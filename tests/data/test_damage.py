"""Random byte flips in copies of a vault and a ledger file: every run ends in a verdict (never a
traceback), and a verdict of ✓ only for a file whose logical content is the original's and that
SQLite's own integrity check passes (a flip in a free page or an unused header byte changes nothing)."""

import os
import random
import shutil
import sqlite3

import pytest

from qdsn.ledger import Ledger
from qdsn.ledger.audit import verify_ledger
from qdsn.ledger.integrity import Outcome
from qdsn.node.completeness import verify_vault

from ..cli.test_cli import qdsn
from .world import home_of, world

TRIALS = 1000


def content(path) -> tuple[bool, object]:
    """(SQLite's integrity check passes, every table's rows with their types) — the judge."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            db.text_factory = bytes
            ok = db.execute("PRAGMA integrity_check").fetchall() == [(b"ok",)]
            schema = db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name").fetchall()
            typed = lambda table: [tuple((type(v).__name__, v) for v in r)  # noqa: E731
                                   for r in db.execute(f'SELECT * FROM "{table.decode()}"')]  # fmt: skip
            rows = {t[1]: sorted(typed(t[1]), key=repr) for t in schema if t[0] == b"table"}
            return ok, (schema, rows)
        finally:
            db.close()
    except (sqlite3.Error, UnicodeError, ValueError):
        return False, None


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("damage")
    acme = world(tmp, {"line-1": [40, 30], "line-2": [20]}, pending={"line-2": 5})
    # a signed checkpoint, a member's cosignature merged into it, recorded on the ledger and witnessed,
    # so that flips land in every table the ledger keeps
    from qdsn.node import NodeHome
    from qdsn.node.follow import cosign_record

    regulator, member = NodeHome.open(tmp / "reg", "pw"), home_of(acme)
    ledger = member.ledger()
    note = ledger.sign_checkpoint(regulator.log_signer())
    log_key = regulator.log_signer().verifier()
    cosigned = ledger.witness(note, log_key, member.cosigner(), 1_780_000_000)
    ledger.add_cosignature(cosigned, member.cosigner().verifier())
    ledger.close()
    member.submit("checkpoint.cosign", cosign_record(member, cosigned, log_key, 1_780_000_000).payload)
    for f in ("vault.db", "../reg/ledger.db"):  # dense files: most flips then land where content is
        db = sqlite3.connect(acme.path / f)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("VACUUM")
        db.close()
    return tmp, acme


def flip_trials(original: bytes, path, verify, seed: int) -> dict:
    rng = random.Random(seed)
    _, reference = content_of(original, path)
    seen = {o: 0 for o in Outcome}
    for _ in range(TRIALS):
        data = bytearray(original)
        for _ in range(rng.choice((1, 1, 2, 3))):
            data[rng.randrange(len(data))] ^= rng.randrange(1, 256)
        ok, logical = content_of(bytes(data), path)
        verdict = verify(str(path))  # raises nothing, whatever the bytes
        seen[verdict.outcome] += 1
        if verdict.ok:
            assert ok and logical == reference, f"✓ for a damaged or altered file: {verdict}"
        else:
            assert verdict.message
    return seen


def content_of(data: bytes, path):
    for suffix in ("-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            os.unlink(f"{path}{suffix}")
    path.write_bytes(data)
    return content(path)


def test_flipped_vault_files_are_never_verified_and_never_a_traceback(stores, tmp_path):
    _, acme = stores
    home = home_of(acme)
    ledger = Ledger.open(home.ledger_location())
    original = (acme.path / "vault.db").read_bytes()
    assert verify_vault(str(acme.path / "vault.db"), home.kek, ledger.store, home.did).verdict.ok
    seen = flip_trials(original, tmp_path / "vault.db",
                       lambda p: verify_vault(p, home.kek, ledger.store, home.did).verdict, seed=1)  # fmt: skip
    ledger.close()
    assert seen[Outcome.DAMAGED] > TRIALS // 10, seen


def test_flipped_ledger_files_are_never_verified_and_never_a_traceback(stores, tmp_path):
    tmp, acme = stores
    original = (tmp / "reg" / "ledger.db").read_bytes()
    assert verify_ledger(str(tmp / "reg" / "ledger.db"), origin=acme.origin).ok
    seen = flip_trials(original, tmp_path / "ledger.db", lambda p: verify_ledger(p, origin=acme.origin), seed=2)
    assert seen[Outcome.DAMAGED] > TRIALS // 10, seen


def test_flipped_files_through_the_command(stores, tmp_path):
    tmp, acme = stores
    original = (tmp / "reg" / "ledger.db").read_bytes()
    rng = random.Random(3)
    for _ in range(2):
        data = bytearray(original)
        data[rng.randrange(len(data) // 2, len(data))] ^= 0xFF
        (tmp_path / "ledger.db").write_bytes(bytes(data))
        out = qdsn("ledger", "verify", "--db", str(tmp_path / "ledger.db"), home=tmp_path / "none", ok=False)
        assert out.returncode in (0, 1, 2) and "Traceback" not in out.stderr, out.stderr
        ok, logical = content(tmp_path / "ledger.db")
        if out.returncode == 0:
            assert ok and logical == content_of(original, tmp_path / "orig.db")[1]
    # the vault through `qdsn vault verify`, in a copy of the node's home (its ledger is the shared file)
    home = tmp_path / "acme"
    shutil.copytree(acme.path, home)
    vault = (acme.path / "vault.db").read_bytes()
    for _ in range(2):
        data = bytearray(vault)
        data[rng.randrange(len(data) // 2, len(data))] ^= 0xFF
        (home / "vault.db").write_bytes(bytes(data))
        out = qdsn("vault", "verify", home=home, ok=False, passphrase="pw")
        assert out.returncode in (0, 1, 2) and "Traceback" not in out.stderr, out.stderr
        if out.returncode == 0:
            ok, logical = content(home / "vault.db")
            assert ok and logical == content_of(vault, tmp_path / "orig-vault.db")[1]
