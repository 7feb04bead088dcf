"""`qdsn ingest csv` killed (SIGKILL) at random moments, 50 times and more: the same command run again
finishes the job, every record is stored exactly once and the vault verifies against the ledger.

The killed runs are the `qdsn` command in processes forked from this one (with the CLI imported once),
so that fifty kills cost the work they interrupt, not fifty interpreter start-ups."""

import json
import os
import random
import signal
import sqlite3
import sys
import time
from multiprocessing import get_context

import pytest

from qdsn.ledger import Ledger

from .test_cli import PASS, manufacturer, qdsn

ROWS, BATCH, KILLS = 240, 6, 50


def write_file(path, k):
    rows = [f"conductor resistance,{k}.{i:04d},2026-03-01T08:00:00Z,L{k}" for i in range(ROWS)]
    path.write_text("characteristic,value,time,lot\n" + "\n".join(rows) + "\n")
    return path


def stored(acme):
    try:
        with sqlite3.connect(f"file:{acme / 'vault.db'}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT next_seq FROM vault_datasets WHERE id = 'line-1'").fetchone()[0]
    except sqlite3.Error:
        return None


def _command(acme, path, log):
    from qdsn.cli.main import run

    os.environ.update({**PASS, "QDSN_HOME": str(acme), "COLUMNS": "200"})
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1), os.dup2(fd, 2)
    sys.argv = ["qdsn", "ingest", "csv", str(path), "--dataset", "line-1", "--batch-size", str(BATCH)]
    run()


def start(acme, path):
    import qdsn.cli.main  # noqa: F401  imported here, once, before the forks

    proc = get_context("fork").Process(target=_command, args=(acme, path, acme.parent / "runs.log"))
    proc.start()
    return proc


def finish(acme, path):
    proc = start(acme, path)
    proc.join(120)
    assert proc.exitcode == 0, (acme.parent / "runs.log").read_text()[-3000:]


@pytest.mark.timeout(900)  # fifty SIGKILLs and resumptions, each a process start
def test_ingest_killed_at_random_moments_resumes_with_every_record_once(tmp_path):
    reg, acme = manufacturer(tmp_path)
    rng = random.Random(int.from_bytes(os.urandom(4)))
    t = time.monotonic()
    first = write_file(tmp_path / "f0.csv", 0)
    finish(acme, first)
    whole = time.monotonic() - t  # one uninterrupted run, start to end
    files, kills, mid_write, startup = [first], 0, 0, whole / 2
    while kills < KILLS:
        path = write_file(tmp_path / f"f{len(files)}.csv", len(files))
        files.append(path)
        for _ in range(5):  # killed five times, then run to the end
            before, end = stored(acme), ROWS * len(files)
            proc, t = start(acme, path), time.monotonic()
            if rng.random() < 0.2:  # anywhere, start-up included
                time.sleep(rng.uniform(0, startup * 1.5))
            else:  # while it writes: after some batches, between a commit, its anchor and its mark
                deadline = t + 60
                while stored(acme) == before and proc.exitcode is None and time.monotonic() < deadline:
                    time.sleep(0.002)
                startup = 0.8 * startup + 0.2 * (time.monotonic() - t)
                target = stored(acme) + BATCH * rng.randrange(max(1, (end - before) // BATCH - 1))
                while (stored(acme) or 0) < target and proc.exitcode is None and time.monotonic() < deadline:
                    time.sleep(0.002)
                time.sleep(rng.uniform(0, 0.03))
            if proc.exitcode is None:
                proc.kill()  # SIGKILL
                kills += 1
            proc.join()
            assert proc.exitcode in (0, -signal.SIGKILL), (tmp_path / "runs.log").read_text()[-3000:]
            mid_write += stored(acme) not in (before, end)
        finish(acme, path)
    assert mid_write >= KILLS // 2, mid_write  # the kills did land while batches were being written
    assert "verified" in qdsn("vault", "verify", home=acme).stdout
    out = tmp_path / "all.jsonl"
    qdsn("dataset", "export", "line-1", "--format", "jsonl", "--out", str(out), home=acme)
    values = sorted(f"{json.loads(x)['value']:.4f}" for x in out.read_text().splitlines())
    assert values == sorted(f"{k}.{i:04d}" for k in range(len(files)) for i in range(ROWS))
    ledger = Ledger.open(str(reg / "ledger.db"))
    assert ledger.state.datasets["line-1"].anchored == ROWS * len(files)
    ledger.close()
    again = qdsn("ingest", "csv", str(files[3]), "--dataset", "line-1", home=acme).stdout
    assert "already stored" in again


def test_readings_set_aside_are_listed(tmp_path):
    from qdsn.node.home import NodeHome

    _, acme = manufacturer(tmp_path)
    vault = NodeHome.open(acme, PASS["QDSN_PASSPHRASE"]).vault()
    vault.quarantine(
        "line-1", [(b"raw\0m1", "plant/hz/1", b'{"value": "NaN-77"}', "value: not a number")], "2026-03-01T08:00:00Z"
    )
    shown = qdsn("ingest", "quarantined", "--dataset", "line-1", home=acme).stdout
    assert "1 readings set aside" in shown and "plant/hz/1" in shown and "not a number" in shown and "NaN-77" in shown
