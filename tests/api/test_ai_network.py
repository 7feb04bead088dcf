"""Hotelling's T² across makers as the organisations run it: the regulator (log operator, helper,
collector) and the certification body (leader) each run `qdsn node start`; the regulator creates the
task with `qdsn ai task`, three makers send their rows' statistics with `qdsn ai send` from their own
homes, and the regulator collects with `qdsn ai collect` — killed (SIGKILL) first while it starts, then
together with the leader's node once the batch is on the ledger.
The collected model is the centralised T² of the union of the three makers' rows (raw, not on a grid)
within 1e-9, each report counted once. Refused at that boundary, the aggregate unchanged: a second send
in the period, a send to no such task, a member the task does not name, rows off the grid, and a forged
vector of the wrong length or with an entry out of range."""

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from qdsn.api.client import NodeClient
from qdsn.compute import params
from qdsn.errors import IntegrityError
from qdsn.node import Node, NodeHome
from qdsn.privacy import aggregator, prio3, report, reporter
from qdsn.privacy.task import vdaf_of
from qdsn.quality import multivariate as mv

from ..services import free_port
from .conftest import FAST
from .test_stats_network import qdsn, start

NAMES = ["diameter", "tension", "temperature"]
LOW, HIGH = [9.0, 100.0, 150.0], [11.0, 300.0, 250.0]


def rows(seed: int, m: int, shift: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = np.array([[0.1, 0, 0], [3.0, 20.0, 0], [1.0, 2.0, 8.0]])
    return np.array([10.0, 200.0, 200.0]) + shift + rng.normal(size=(m, 3)) @ a.T


def csv(path, x):
    np.savetxt(path, x, delimiter=",", header=",".join(NAMES), comments="", fmt="%.6f")
    return path


@pytest.fixture
def consortium(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    cqc = NodeHome.init(tmp_path / "cqc", "certifier", "CQC", "pw", origin=reg.origin, scrypt_n=FAST)
    makers = [NodeHome.init(tmp_path / f"m{i}", "enterprise", f"Maker {i}", "pw", origin=reg.origin, scrypt_n=FAST)
              for i in range(4)]  # fmt: skip
    for h in (cqc, *makers):
        reg.submit("identity.register", h.registration())
    ports = {"reg": free_port(), "cqc": free_port()}
    url = {k: f"http://127.0.0.1:{p}" for k, p in ports.items()}
    procs = {"reg": start(reg, ports["reg"])}
    procs["cqc"] = start(cqc, ports["cqc"], url["reg"])
    yield reg, cqc, makers, url, ports, procs
    for p in procs.values():
        p.terminate()
        p.wait(timeout=10)


def released(url: str) -> list[int]:
    (task,) = httpx.get(url + "/stats/tasks").json()["tasks"]
    return list(task["released"])


def test_t2_across_three_makers_as_they_run_it(consortium, tmp_path):
    reg, cqc, makers, url, ports, procs = consortium
    # the regulator creates the task while its node runs (the command goes through it); m0–m2 may report
    qdsn("ai", "task", "cable-t2", "--columns", ",".join(NAMES), "--low", ",".join(map(str, LOW)),
         "--high", ",".join(map(str, HIGH)), "--leader-url", url["cqc"], "--helper-url", url["reg"],
         *(f"--reporter={m.did}" for m in makers[:3]), home=reg.path)  # fmt: skip
    data = [rows(1, 400, 0.0), rows(2, 250, 0.02), rows(3, 600, -0.01)]  # each stays in its maker's home
    send = ["ai", "send", "cable-t2", "--operator", url["reg"]]
    files = [csv(tmp_path / f"{m.path.name}.csv", x) for m, x in zip(makers, data, strict=False)]
    for m, f, x in zip(makers[:2], files, data, strict=False):
        assert f"{len(x)} rows' statistics accepted" in qdsn(*send, str(f), home=m.path).stdout

    # a maker sending twice in the period
    again = qdsn(*send, str(tmp_path / "m0.csv"), home=makers[0].path, ok=False)
    assert again.returncode == 1 and "already reported for period 0" in again.stderr
    # a send to a task that does not exist
    nosuch = ["ai", "send", "no-such-task", str(tmp_path / "m0.csv"), "--operator", url["reg"]]
    out = qdsn(*nosuch, home=makers[1].path, ok=False)
    assert out.returncode == 1 and "no-such-task" in out.stderr and "Traceback" not in out.stderr
    # a member the task does not name
    out = qdsn(*send, str(csv(tmp_path / "m3.csv", rows(4, 100, 0.0))), home=makers[3].path, ok=False)
    assert out.returncode == 1 and "not an eligible reporter" in out.stderr
    # rows off the task's grid: refused before anything is sent
    off = rows(5, 50, 0.0)
    off[7, 1] = 400.0
    out = qdsn(*send, str(csv(tmp_path / "off.csv", off)), home=makers[1].path, ok=False)
    assert out.returncode == 1 and "value 400.0 (row 8, variable 2) is outside the agreed range" in out.stderr
    assert "Traceback" not in out.stderr

    # before its honest report, m2's client sends what no honest one makes: both aggregators refuse it
    m2 = Node(makers[2], link=NodeClient(url["reg"], makers[2].key(), makers[2].did))
    store = aggregator.open_store(makers[2])
    leader = NodeClient(url["cqc"], makers[2].key(), makers[2].did)
    try:
        task = aggregator.task_of(m2, "cable-t2")
        vdaf = vdaf_of(task)
        # an entry of 2^32 and more, where Prio3SumVec takes each below 2^32 (its 32 "bits" are not bits)
        with pytest.raises(IntegrityError, match="validity proof"):
            reporter.send(m2, store, "cable-t2", None, leader, encoded=[2**32] + [0] * (vdaf.flp.MEAS_LEN - 1))
        # a vector of another length, its shares sealed to this task's aggregators as a real report's are
        keys = [m2.key_of(task.leader), m2.key_of(task.helper)]
        for length in (task.params["length"] - 1, task.params["length"] + 3):
            other = prio3.from_params("Prio3SumVec", {**task.params, "length": length})
            rep = report.make(task, other, None, makers[2].key(), makers[2].did, 0, *keys,
                              encoded=[1] * other.flp.MEAS_LEN)  # fmt: skip
            with pytest.raises(IntegrityError, match="refused: its share does not open or verify"):
                leader.call("POST", "/stats/reports", rep)
    finally:
        store.close()
        leader.close()
        m2.close()
    # none of that counted: m2's honest report is still its first
    assert "600 rows' statistics accepted" in qdsn(*send, str(files[2]), home=makers[2].path).stdout

    # the collect killed at several moments, then run to its end: each report counted once
    env = {**os.environ, "QDSN_PASSPHRASE": "pw", "QDSN_HOME": str(reg.path), "COLUMNS": "200"}
    collect = [sys.executable, "-m", "qdsn", "ai", "collect", "cable-t2", "--period", "0",
               "--out", str(tmp_path / "t2.npz"), "--json"]  # fmt: skip
    # killed while it starts, then — with the leader's node — the moment the leader has put the batch on
    # the ledger (the aggregate shares kept, asked for, unsealed, the model written — or not yet)
    proc = subprocess.Popen(collect, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    proc.kill()
    assert proc.wait() == -signal.SIGKILL and released(url["cqc"]) == []
    proc = subprocess.Popen(collect, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while released(url["cqc"]) != [0] and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.kill()
    procs["cqc"].kill()  # and the leader with it, its share perhaps not yet kept
    # killed, or (on a quick machine) already done in the moment between the poll and the kill: either
    # way the run below must give the one model, each report once
    assert proc.wait() in (-signal.SIGKILL, 0), "the collect failed before the batch was on the ledger"
    assert procs["cqc"].wait() == -signal.SIGKILL
    procs["cqc"] = start(cqc, ports["cqc"], url["reg"])
    got = json.loads(qdsn("ai", "collect", "cable-t2", "--period", "0", "--out", str(tmp_path / "t2.npz"), "--json",
                          home=reg.path).stdout)  # fmt: skip
    assert released(url["cqc"]) == [0]
    assert got["makers"] == 3 and got["rows"] == 1250 and got["variables"] == NAMES

    blob = (tmp_path / "t2.npz").read_bytes()
    model = mv.T2Model.from_arrays(params.load_arrays(blob, got["sha256"]))
    union = np.vstack([np.loadtxt(f, delimiter=",", skiprows=1) for f in files])  # the rows the makers hold
    central = mv.fit_t2(union, names=tuple(NAMES))  # the raw rows: the default 48-bit grid keeps within 1e-9
    assert model.n == central.n == 1250
    assert np.abs(model.mean - central.mean).max() < 1e-9
    assert np.abs(model.cov - central.cov).max() < 1e-9
    assert got["ucl"] == pytest.approx(central.ucl, rel=1e-12)
    x = rows(9, 20, 0.0)
    assert np.allclose(model.score(x), central.score(x), rtol=1e-9)

    # the regulator's model scores a maker's new rows with `qdsn ai score`, the hash checked first
    new = csv(tmp_path / "new.csv", np.vstack([rows(10, 30, 0.0), rows(11, 3, 0.0) + [0.5, 0, 0]]))
    scored = json.loads(qdsn("ai", "score", str(new), "--model", str(tmp_path / "t2.npz"), "--sha256", got["sha256"],
                             "--json", home=reg.path).stdout)  # fmt: skip
    assert scored["rows"] == 33 and {31, 32, 33} <= set(scored["signals"])
