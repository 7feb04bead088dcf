"""`qdsn vault verify` and `qdsn ledger verify` on stores that lost, gained or went back: each is
reported as damaged (exit 1) or incomplete (exit 2) with what is missing named, never ✓."""

import shutil
import sqlite3

import pytest

from ..data.world import world
from .test_cli import qdsn as run


def qdsn(*args, home=None, ok=True):
    return run(*args, home=home, ok=ok, passphrase="pw")


@pytest.fixture
def acme(tmp_path, monkeypatch):
    monkeypatch.setenv("QDSN_PASSPHRASE", "pw")
    return world(tmp_path, {"line-1": [500] * 10, "line-2": [600]})


def sql(path, *statements):
    db = sqlite3.connect(path)
    for s in statements:
        db.execute(s)
    db.commit()
    db.close()


def verify_vault(acme, code):
    out = qdsn("vault", "verify", home=acme.path, ok=False)
    assert out.returncode == code, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    return out.stdout + out.stderr


def test_a_whole_vault_verifies(acme):
    out = verify_vault(acme, 0)
    assert "5000" in out and "600" in out and "verified 5600 records" in out


def test_the_last_batch_deleted_with_its_rows_and_next_seq(acme):
    v = acme.path / "vault.db"
    sql(
        v,
        "DELETE FROM vault_chunks WHERE dataset = 'line-1' AND first >= 4500",
        "DELETE FROM vault_batches WHERE dataset = 'line-1' AND first = 4500",
        "UPDATE vault_datasets SET next_seq = 4500 WHERE id = 'line-1'",
    )
    out = verify_vault(acme, 2)
    assert "line-1" in out and "500 records anchored on the ledger are missing" in out and "4500–4999" in out


def test_only_the_batch_record_deleted(acme):
    sql(acme.path / "vault.db", "DELETE FROM vault_batches WHERE dataset = 'line-1' AND first = 4500")
    assert "4500–4999" in verify_vault(acme, 2)


def test_a_whole_dataset_removed(acme):
    sql(
        acme.path / "vault.db",
        "DELETE FROM vault_chunks WHERE dataset = 'line-2'",
        "DELETE FROM vault_batches WHERE dataset = 'line-2'",
        "DELETE FROM vault_datasets WHERE id = 'line-2'",
    )
    out = verify_vault(acme, 2)
    assert "'line-2' is declared on the ledger (600 anchored records" in out


def test_the_vault_replaced_by_an_earlier_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("QDSN_PASSPHRASE", "pw")
    acme = world(tmp_path, {"line-1": [500] * 5})
    shutil.copy(acme.path / "vault.db", tmp_path / "old.db")
    vault = acme.vault()
    for _ in range(2500, 5000, 500):
        batch = vault.add_batch("line-1", [{"value": i} for i in range(500)])
        vault.mark_anchored(batch, acme.anchor(batch))
    vault.close()
    assert "verified 5000 records" in verify_vault(acme, 0)
    shutil.copy(tmp_path / "old.db", acme.path / "vault.db")
    out = verify_vault(acme, 2)
    assert "2500 records anchored on the ledger are missing" in out


@pytest.mark.parametrize("how", ["truncated", "deleted"])
def test_the_vault_file_truncated_or_deleted(acme, how):
    v = acme.path / "vault.db"
    if how == "truncated":
        v.write_bytes(b"")
    else:
        v.unlink()
    out = " ".join(verify_vault(acme, 2).split())  # as read, whatever width the message was wrapped to
    assert "5600 anchored records" in out and "line-1: 5000" in out and "line-2: 600" in out
    assert v.exists() == (how == "truncated") and (not v.exists() or v.stat().st_size == 0)  # never created


def test_next_seq_raised_or_kind_altered(acme):
    v = acme.path / "vault.db"
    sql(v, "UPDATE vault_datasets SET next_seq = 5100 WHERE id = 'line-1'")
    assert "next record is 5100, but its batches end at 5000" in verify_vault(acme, 1)
    sql(
        v,
        "UPDATE vault_datasets SET next_seq = 5000 WHERE id = 'line-1'",
        "UPDATE vault_datasets SET kind = 'measurementz' WHERE id = 'line-2'",
    )
    assert "kind 'measurementz' is not the kind 'measurements' declared" in verify_vault(acme, 1)


def test_a_sealed_batch_not_yet_anchored_is_pending(tmp_path, monkeypatch):
    monkeypatch.setenv("QDSN_PASSPHRASE", "pw")
    acme = world(tmp_path, {"line-1": [300]}, pending={"line-1": 40})
    out = verify_vault(acme, 0)
    assert "records 300–339 pending anchor" in out and "verified 340 records" in out


@pytest.mark.parametrize("how", ["truncated", "missing"])
def test_an_empty_or_missing_ledger_is_not_verified(tmp_path, how):
    db = tmp_path / "ledger.db"
    if how == "truncated":
        db.write_bytes(b"")
    out = qdsn("ledger", "verify", "--db", str(db), home=tmp_path / "none", ok=False)
    assert out.returncode == 2 and "verified" not in out.stdout, out.stdout + out.stderr
    assert ("does not exist" if how == "missing" else "is empty") in out.stderr
    assert db.exists() == (how == "truncated")
    allowed = qdsn("ledger", "verify", "--db", str(db), "--allow-empty", home=tmp_path / "none")
    assert "verified 0 entries" in allowed.stdout and db.exists() == (how == "truncated")


def test_a_rolled_back_ledger_and_vault_are_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("QDSN_PASSPHRASE", "pw")
    acme = world(tmp_path, {"line-1": [200] * 2})
    reg = tmp_path / "reg"
    qdsn("ledger", "checkpoint", home=reg)
    assert "✓" in qdsn("ledger", "verify", home=acme.path).stdout  # remembers the checkpoint it saw
    shutil.copy(reg / "ledger.db", tmp_path / "old-ledger.db")
    shutil.copy(acme.path / "vault.db", tmp_path / "old-vault.db")
    vault = acme.vault()
    batch = vault.add_batch("line-1", [{"value": i} for i in range(100)])
    vault.mark_anchored(batch, acme.anchor(batch))
    vault.close()
    qdsn("ledger", "checkpoint", home=reg)
    size = int(qdsn("ledger", "checkpoint", home=reg).stdout.splitlines()[1])
    assert "✓" in qdsn("ledger", "verify", home=acme.path).stdout
    assert (acme.path / "checkpoint.latest").exists()
    for f in ("ledger.db-wal", "ledger.db-shm"):
        (reg / f).unlink(missing_ok=True)
    shutil.copy(tmp_path / "old-ledger.db", reg / "ledger.db")
    shutil.copy(tmp_path / "old-vault.db", acme.path / "vault.db")
    out = qdsn("ledger", "verify", home=acme.path, ok=False)
    assert out.returncode == 2 and f"behind the checkpoint of size {size}" in out.stderr, out.stderr
    out = qdsn("vault", "verify", home=acme.path, ok=False)
    assert out.returncode == 2 and f"behind the checkpoint of size {size}" in out.stderr, out.stderr


def test_a_replica_behind_a_peers_checkpoint_is_reported(tmp_path, monkeypatch):
    import os
    import subprocess
    import sys
    import time

    import httpx

    from ..services import free_port

    monkeypatch.setenv("QDSN_PASSPHRASE", "pw")
    acme = world(tmp_path, {"line-1": [50]})
    reg = tmp_path / "reg"
    shutil.copy(reg / "ledger.db", tmp_path / "old.db")  # a copy of this replica, made earlier
    vault = acme.vault()
    batch = vault.add_batch("line-1", [{"value": i} for i in range(10)])
    vault.mark_anchored(batch, acme.anchor(batch))
    vault.close()
    port = free_port()
    env = os.environ | {"QDSN_PASSPHRASE": "pw", "QDSN_HOME": str(reg)}
    proc = subprocess.Popen([sys.executable, "-m", "qdsn", "node", "start", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url + "/ledger/checkpoint", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "the node did not start"
                time.sleep(0.2)
        out = qdsn("ledger", "verify", "--db", str(tmp_path / "old.db"), "--peer", url, home=tmp_path / "x", ok=False)
        behind = "the replica is at size 4, behind the peer's checkpoint of size 5"
        assert out.returncode == 2 and behind in out.stderr, out.stderr
        assert "✓" in qdsn("ledger", "verify", "--peer", url, home=acme.path).stdout
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_the_vault_without_its_reference_ledger(acme):
    ledger = acme.path.parent / "reg" / "ledger.db"
    ledger.unlink()
    out = verify_vault(acme, 2)
    assert "the ledger database" in out and "does not exist" in out and "reference" in out
    assert not ledger.exists()  # verifying creates nothing
