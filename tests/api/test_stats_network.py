"""Regional statistics across node processes: the regulator (log operator, helper, collector) and the
certification body (leader) each run `qdsn node start`; manufacturers report with `qdsn stats report`.
Refused: a non-regulator's task, a non-eligible reporter, an out-of-range report, a second report in
a period, a replayed upload, a collection below the minimum batch and one past the privacy budget."""

import json
import os
import subprocess
import sys

import httpx
import pytest

from qdsn.api.client import NodeClient
from qdsn.errors import Conflict, IntegrityError
from qdsn.node import Node, NodeHome
from qdsn.privacy import aggregator, figures, report, reporter
from qdsn.privacy.task import Task, vdaf_of

from ..services import free_port
from .conftest import FAST, answering


def qdsn(*args, home, ok=True):
    env = {**os.environ, "QDSN_PASSPHRASE": "pw", "QDSN_HOME": str(home), "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "qdsn", *args], capture_output=True, text=True, env=env, timeout=120)
    if ok:
        assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


def start(home, port, operator=None):
    env = os.environ | {"QDSN_PASSPHRASE": "pw", "QDSN_HOME": str(home.path)}
    cmd = [sys.executable, "-m", "qdsn", "node", "start", "--port", str(port), "--monitor", "0.3"]
    if operator:
        cmd += ["--operator", operator]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return answering(proc, home.name, port)


@pytest.fixture
def region(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    cqc = NodeHome.init(tmp_path / "cqc", "certifier", "CQC", "pw", origin=reg.origin, scrypt_n=FAST)
    makers = [NodeHome.init(tmp_path / f"m{i}", "enterprise", f"Maker {i}", "pw", origin=reg.origin, scrypt_n=FAST)
              for i in range(5)]  # fmt: skip
    for h in (cqc, *makers):
        reg.submit("identity.register", h.registration())
    ports = {"reg": free_port(), "cqc": free_port()}
    url = {k: f"http://127.0.0.1:{p}" for k, p in ports.items()}
    # the regulator creates the task before its node serves: m0–m3 may report, m4 may not
    eligible = [f"--reporter={m.did}" for m in makers[:4]]
    # (the leader by default: the ledger's one certification body)
    qdsn("stats", "task", "create", "units", "--title", "Units nonconforming", "--vdaf", "sum", "--max", "255",
         "--leader-url", url["cqc"], "--helper-url", url["reg"], *eligible,
         "--min-batch", "3", "--epsilon", "50", "--budget", "50", "--period", "3600", home=reg.path)  # fmt: skip
    procs = [start(reg, ports["reg"])]
    procs.append(start(cqc, ports["cqc"], url["reg"]))
    yield reg, cqc, makers, url
    for p in procs:
        p.terminate()
        p.wait(timeout=10)


def test_a_regional_figure_across_nodes(region, tmp_path):
    reg, cqc, makers, url = region
    report_ = ["stats", "report", "units", "--operator", url["reg"]]

    # a certification body may not create a task
    refused = qdsn("stats", "task", "create", "mine", "--title", "x", "--vdaf", "count", "--leader", cqc.did,
                   "--leader-url", url["cqc"], "--helper-url", url["reg"], "--helper", reg.did,
                   f"--reporter={makers[0].did}", "--operator", url["reg"], home=cqc.path, ok=False)  # fmt: skip
    assert refused.returncode == 1 and "may not submit aggregate.task" in refused.stderr

    values = [40, 7, 120]
    for m, v in zip(makers[:3], values, strict=True):
        assert "accepted for period 0" in qdsn(*report_, "--value", str(v), home=m.path).stdout

    # a member the task does not name
    out = qdsn(*report_, "--value", "5", home=makers[4].path, ok=False)
    assert out.returncode == 1 and "not an eligible reporter" in out.stderr

    # a second report in the same period
    out = qdsn(*report_, "--value", "9", home=makers[0].path, ok=False)
    assert out.returncode == 1 and "already reported for period 0" in out.stderr

    # an honest client cannot make an out-of-range report ...
    out = qdsn(*report_, "--value", "300", home=makers[3].path, ok=False)
    assert out.returncode == 1 and "cannot take 300" in out.stderr
    # ... a dishonest one shards 300 anyway: both aggregators refuse it on the validity proof
    m3 = Node(makers[3], link=NodeClient(url["reg"], makers[3].key(), makers[3].did))
    store = aggregator.open_store(makers[3])
    leader = NodeClient(url["cqc"], makers[3].key(), makers[3].did)
    task = Task.from_state(m3.ledger.state, "units")
    forged = [300] + [0] * (vdaf_of(task).flp.MEAS_LEN - 1)  # "bits" of which one is 300
    with pytest.raises(IntegrityError, match="validity proof"):
        reporter.send(m3, store, "units", None, leader, encoded=forged)
    # a tampered report, then its replay
    rep = report.make(task, vdaf_of(task), 1, makers[3].key(), makers[3].did, 0,
                      m3.key_of(cqc.did), m3.key_of(reg.did))  # fmt: skip
    tampered = dict(rep, id="0" * 32, leader_share=rep["helper_share"])  # its shares swapped, signed again
    tampered["signature"] = report.b64url_encode(makers[3].key().sign(report.signing_input(tampered)))
    with pytest.raises(IntegrityError, match="does not open"):
        leader.call("POST", "/stats/reports", tampered)
    with pytest.raises(Conflict, match="replay"):
        leader.call("POST", "/stats/reports", tampered)
    assert leader.call("POST", "/stats/reports", rep)["accepted"]
    with pytest.raises(Conflict, match="replay"):  # the very same upload again
        leader.call("POST", "/stats/reports", rep)
    values.append(1)

    (listed,) = httpx.get(url["cqc"] + "/stats/tasks").json()["tasks"]  # public: the tasks and what they spent
    assert listed["task"] == "units" and listed["spent"] == 0 and listed["released"] == []
    assert listed["leader"] == cqc.did and listed["helper"] == reg.did and listed["collector"] == reg.did

    # below the minimum batch: nothing was reported for period 1
    low = qdsn("stats", "collect", "units", "--period", "1", home=reg.path, ok=False)
    assert low.returncode == 1 and "at least 3" in low.stderr

    got = json.loads(qdsn("stats", "collect", "units", "--period", "0", "--json", home=reg.path).stdout)
    assert got["count"] == 4 and abs(got["result"] - sum(values)) <= 30  # scale 255/50 noise per aggregator

    # the same period again: the figure already released, never a fresh draw of noise to average away
    assert json.loads(qdsn("stats", "collect", "units", "--period", "0", "--json", home=reg.path).stdout) == got
    assert [f.to_json() for f in figures.kept(reg.path)] == [got]  # kept for the console's statistics page

    listing = " ".join(qdsn("stats", "show", "--operator", url["reg"], home=makers[2].path).stdout.split())
    assert "units: Units nonconforming — Prio3Sum" in listing and "epsilon 50 of 50 spent" in listing
    assert "released periods [0]" in listing
    # anyone checks which reporters the figure rests on; a reporter proves its report was counted
    shown = qdsn("stats", "show", "units", "--period", "0", "--operator", url["reg"], home=makers[1].path).stdout
    assert "4 reports" in shown and all(m.did in shown for m in makers[:4]) and makers[4].did not in shown
    proof = json.loads(qdsn("stats", "proof", "units", "--period", "0", "--json", "--operator", url["reg"],
                            home=makers[1].path).stdout)  # fmt: skip
    assert proof["count"] == 4 and proof["root"] == got["root"]
    # m3's node recorded only its forged report as sent, which was refused: it cannot prove it counted
    out = qdsn("stats", "proof", "units", "--period", "0", "--operator", url["reg"], home=makers[3].path, ok=False)
    assert out.returncode == 1 and "not counted" in out.stderr
    m3.close()
    store.close()
    leader.close()
