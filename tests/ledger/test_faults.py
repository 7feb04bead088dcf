"""Crashes and corruption: SIGKILL during appends loses no acknowledged transaction, and
`verify` names tampering with the database file."""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from qdsn.ledger import Ledger
from qdsn.ledger.audit import audit
from qdsn.ledger.checkpoint import NoteSigner
from qdsn.ledger.store import Store

from .conftest import member

WRITER = Path(__file__).with_name("crash_writer.py")


@pytest.mark.slow
def test_sigkill_during_appends_loses_no_acknowledged_transaction(tmp_path):
    db = str(tmp_path / "crash.db")
    seed = os.urandom(32).hex()
    acknowledged: list[str] = []
    rng = random.Random(7)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for _ in range(50):
        proc = subprocess.Popen([sys.executable, str(WRITER), db, seed], stdout=subprocess.PIPE, text=True, env=env)
        lines: list[str] = []
        started = threading.Event()
        reader = threading.Thread(target=_collect, args=(proc, lines, started), daemon=True)
        reader.start()
        # the kill moment counts from the first acknowledged batch: a busy machine may take seconds to start
        assert started.wait(60), "the writer acknowledged nothing in 60 s"
        time.sleep(rng.uniform(0.0, 0.8))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        reader.join(5)
        # only lines that ended in a newline were printed after the commit returned
        acknowledged.extend(t for line in lines if line.endswith("\n") for t in line.split())
    assert len(acknowledged) > 100
    store = Store(db)
    stored = {r.txid for r in store.rows(0, store.size)}
    assert set(acknowledged) <= stored
    report = audit(store)
    assert report.ok, report.reason
    assert report.size == store.size


def _collect(proc: subprocess.Popen[str], lines: list[str], started: threading.Event) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        started.set()


@pytest.fixture
def sealed_ledger(tmp_path, regulator):
    """A small ledger with a checkpoint, closed so everything is in the main database file."""
    db = tmp_path / "ledger.db"
    led = Ledger.open(str(db), origin="qdsn.test/log")
    led.append([regulator.sign("identity.register", regulator.register_payload())])
    names = [f"Factory-{i:03d}" for i in range(30)]
    led.append([regulator.sign("identity.register", {**member().register_payload(), "name": n}) for n in names])
    led.sign_checkpoint(NoteSigner("qdsn.test/log", regulator.key))
    led.close()
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert audit(Store(str(db))).ok
    return db


def flip_at(path: Path, needle: bytes, delta: int = 0) -> None:
    data = bytearray(path.read_bytes())
    i = data.find(needle)
    assert i >= 0, needle
    data[i + delta] ^= 0x01
    path.write_bytes(bytes(data))


def test_flipped_leaf_byte_is_named(sealed_ledger):
    flip_at(sealed_ledger, b'"name":"Factory-017"', 16)
    report = audit(Store(str(sealed_ledger)))
    assert not report.ok and report.first_bad == 18


def test_flipped_tree_node_is_named(sealed_ledger):
    store = Store(str(sealed_ledger))
    node = store.nodes([(0, 5)])[0]
    store.close()
    flip_at(sealed_ledger, node, 3)
    report = audit(Store(str(sealed_ledger)))
    assert not report.ok and "tree node" in report.reason and report.first_bad == 5


def test_flipped_state_is_reported(sealed_ledger):
    data = sealed_ledger.read_bytes()
    in_state = [i for i in range(len(data)) if data.startswith(b"Factory-020", i) and data[i - 8 : i] != b'"name":"']
    assert in_state
    flip_at(sealed_ledger, data[in_state[0] - 4 : in_state[0] + 11], 12)
    report = audit(Store(str(sealed_ledger)))
    assert not report.ok and "state" in report.reason


def test_flipped_checkpoint_is_reported(sealed_ledger):
    flip_at(sealed_ledger, b"qdsn.test/log\n31\n", 14)
    report = audit(Store(str(sealed_ledger)))
    assert not report.ok
    assert "signature" in report.reason or "checkpoint" in report.reason


def test_damaged_page_is_reported(sealed_ledger):
    data = bytearray(sealed_ledger.read_bytes())
    page = 4096
    for i in range(page * 2, min(len(data), page * 6)):
        data[i] ^= 0xFF
    sealed_ledger.write_bytes(bytes(data))
    try:
        report = audit(Store(str(sealed_ledger)))
    except Exception as e:  # the store may refuse to open at all, which must also name the damage
        assert "unreadable" in str(e) or "damaged" in str(e)
        return
    assert not report.ok
