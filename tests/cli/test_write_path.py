"""The one write path, with real node processes, one home per organisation: every command that writes on a
member puts its transaction on the operator's log (through the member's running node, or itself through the
operator when the node is stopped), a member's replica is written only by following that log, and a home is
used by one running node at a time."""

import base64
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

from qdsn.api.client import NodeClient
from qdsn.compute import package
from qdsn.ledger import Ledger
from qdsn.ledger.audit import audit
from qdsn.node import NodeHome, requested
from qdsn.node.consumer import negotiate
from qdsn.node.follow import log_key

from ..api.conftest import FAST, answering
from ..services import free_port
from .test_cli import PASS, qdsn


def start(home, port, *more):
    env = os.environ | PASS | {"QDSN_HOME": str(home)}
    cmd = [sys.executable, "-m", "qdsn", "node", "start", "--port", str(port), "--monitor", "0.3", *more]
    return answering(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT), home.name, port)


def stop(proc) -> str:
    proc.terminate()
    out, _ = proc.communicate(timeout=15)
    return out.decode()


def said(text: str) -> str:
    """What a command said, its lines joined as the terminal wrapped them."""
    return " ".join(text.split())


def types(home) -> list[tuple[str, str]]:
    """(type, submitter) of every entry in a home's replica, read from its database."""
    with sqlite3.connect(home / "ledger.db") as c:
        return list(c.execute("SELECT type, submitter FROM entries ORDER BY seq"))


def consortium(tmp_path):
    """A regulator operating the log and two members that know it from node.toml; registered with the
    regulator's own command. Returns (reg, cqc, acme, urls)."""
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", PASS["QDSN_PASSPHRASE"], scrypt_n=FAST)
    ports = {n: free_port() for n in ("reg", "cqc", "acme")}
    urls = {n: f"http://127.0.0.1:{p}" for n, p in ports.items()}
    members = []
    for name, role in (("cqc", "certifier"), ("acme", "enterprise")):
        m = NodeHome.init(tmp_path / name, role, name, PASS["QDSN_PASSPHRASE"], origin=reg.origin, scrypt_n=FAST)
        with (m.path / "node.toml").open("a") as f:
            f.write(f'\n[service]\noperator = "{urls["reg"]}"\n')
        qdsn("ledger", "append", "identity.register", json.dumps(m.registration()), home=reg.path)
        members.append(m)
    return reg, *members, ports, urls


def converged(urls, who) -> list[int]:
    """Wait until every node's replica has the same size twice in a row; their sizes."""
    sizes: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = [NodeClient(u, who.key(), who.did).call("GET", "/ledger/entries?start=0&end=0")["size"]
               for u in urls]  # fmt: skip
        if len(set(now)) == 1 and now == sizes:
            return now
        sizes = now
        time.sleep(1)
    raise AssertionError(f"the replicas did not converge: {sizes}")


def test_member_commands_land_in_the_operators_log(tmp_path):
    reg, cqc, acme, ports, urls = consortium(tmp_path)
    procs = {"reg": start(reg.path, ports["reg"])}
    try:
        # the manufacturer's node is not running: the commands hold its home and go to the operator
        made = qdsn("dataset", "create", "line-1", "--title", "Line 1", "--characteristic",
                    "resistance:Ω/km:17.0:18.1:critical", home=acme.path).stdout  # fmt: skip
        assert "declared on the ledger (entry 3)" in made
        assert ("dataset.declare", acme.did) in types(reg.path)  # in the operator's log, not only in acme's replica
        rows = "characteristic,value,time\n" + "".join(
            f"resistance,{17.5 + (i % 7) / 100:.2f},2026-03-01T08:{i // 60:02d}:{i % 60:02d}Z\n" for i in range(120)
        )
        (tmp_path / "r.csv").write_text(rows)
        assert "anchored as entry 4" in qdsn("ingest", "csv", str(tmp_path / "r.csv"), "--dataset", "line-1",
                                             home=acme.path).stdout  # fmt: skip

        procs |= {n: start(h.path, ports[n]) for n, h in (("cqc", cqc), ("acme", acme))}
        # now every command of a member goes through its running node
        published = qdsn("model", "publish", "process-capability", home=cqc.path)
        assert "sent through it" in published.stderr and "published (entry" in published.stdout
        offer = {"@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Offer", "uid": "urn:qdsn:offer:line-1:c",
                 "profile": "urn:qdsn:odrl:profile:v1", "assigner": acme.did, "target": "urn:qdsn:dataset:line-1",
                 "permission": [{"action": "compute"}]}  # fmt: skip
        (tmp_path / "offer.json").write_text(json.dumps(offer))
        assert "on the ledger (entry" in qdsn("policy", "publish", "line-1", str(tmp_path / "offer.json"),
                                              home=acme.path).stdout  # fmt: skip

        to_acme = NodeClient(urls["acme"], cqc.key(), cqc.did)  # the certification body asks for a run
        (ds,) = to_acme.call("POST", "/catalog/request", {})["dcat:dataset"]
        agreement = negotiate(to_acme, ds["odrl:hasPolicy"][0])
        blob, _ = package.load(package.builtin("process-capability"))
        job = to_acme.call("POST", "/jobs", {
            "agreementId": agreement["uid"], "archive": base64.b64encode(blob).decode(), "nonce": "write-path-1",
            "datasets": [{"dataset": "line-1", "first": 0, "count": 120}],
            "parameters": {"threshold": 1.0}})  # fmt: skip
        requested.record(cqc.path, urls["acme"], job["id"], "write-path-1")  # as `qdsn jobs request` keeps it
        approved = qdsn("jobs", "approve", job["id"], home=acme.path).stdout
        assert "done" in approved and "on the ledger: entries" in approved  # the use decided, the run attested
        (tmp_path / "result.json").write_text(json.dumps(to_acme.call("GET", f"/jobs/{job['id']}")["result"]))

        issue = ["cert", "issue", str(tmp_path / "result.json"), "--number", "CQC-1", "--standard", "GB/T 5023",
                 "--category", "cable", "--scope", "BV 2.5", "--site", "Hangzhou", "--status-list",
                 f"{urls['cqc']}/status-lists/1"]  # fmt: skip
        deadline = time.monotonic() + 60
        while (issued := qdsn(*issue, home=cqc.path, ok=False)).returncode:  # until cqc cosigned the attestation
            assert time.monotonic() < deadline, issued.stderr
            time.sleep(1)
        assert "credential.issue is on the ledger (entry" in issued.stdout
        assert (
            "credential.status is on the ledger (entry"
            in qdsn("cert", "suspend", "CQC-1", "--reason", "audit finding", home=cqc.path).stdout
        )

        # --operator named while the node runs: the command still goes through the node, which goes on
        aside = qdsn("dataset", "create", "line-2", "--title", "Line 2", "--operator", urls["reg"], home=acme.path)
        assert "sent through it" in aside.stderr
        late = NodeHome.init(tmp_path / "late", "enterprise", "Late", "pw", origin=reg.origin, scrypt_n=FAST)
        qdsn("ledger", "append", "identity.register", json.dumps(late.registration()), home=reg.path)
        converged(list(urls.values()), cqc)
        logs = {n: stop(procs[n]) for n in ("acme", "cqc", "reg")}  # the members first: they follow the operator
        procs.clear()
        # the manufacturer's node stopped: its command goes to the operator's log again, and it follows
        procs["reg"] = start(reg.path, ports["reg"])
        assert "(entry" in qdsn("dataset", "create", "line-3", "--title", "Line 3", home=acme.path).stdout
        qdsn("trust", "export", home=cqc.path)  # follows the log first, under cqc's lock
        logs["reg"] += stop(procs.pop("reg"))
    finally:
        for p in procs.values():
            p.kill()
            p.wait()

    assert not any("monitor round failed" in text for text in logs.values()), logs  # no node was wedged
    logged = types(reg.path)
    for entry in [("dataset.declare", acme.did), ("dataset.anchor", acme.did), ("model.publish", cqc.did),
                  ("policy.set", acme.did), ("access.decision", acme.did), ("compute.attest", acme.did),
                  ("credential.issue", cqc.did), ("credential.status", cqc.did)]:  # fmt: skip
        assert entry in logged, entry
    assert sum(1 for t in logged if t == ("dataset.declare", acme.did)) == 3
    replicas = {h.name: Ledger.open(str(h.path / "ledger.db")) for h in (reg, cqc, acme)}
    key = log_key(replicas["SAMR"])
    reports = {n: audit(r.store, key) for n, r in replicas.items()}
    assert all(r.ok for r in reports.values()), {n: r.reason for n, r in reports.items()}
    assert len({(r.size, r.root, r.state_digest) for r in reports.values()}) == 1  # one log, followed everywhere
    cosigners = {s for t, s in logged if t == "checkpoint.cosign"}
    assert cosigners == {cqc.did, acme.did}
    for r in replicas.values():
        r.close()


def test_a_home_runs_one_node_and_a_killed_node_lets_go(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", PASS["QDSN_PASSPHRASE"], scrypt_n=FAST)
    port = free_port()
    first = start(reg.path, port)
    try:
        env = os.environ | PASS | {"QDSN_HOME": str(reg.path), "COLUMNS": "300"}
        second = subprocess.run([sys.executable, "-m", "qdsn", "node", "start", "--port", str(free_port())], env=env,
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        assert second.returncode == 1 and "Traceback" not in second.stderr
        assert f"a node is already running on {reg.path} (pid {first.pid}" in said(second.stderr)
        assert "stop it first" in second.stderr
        # the regulator's own command goes through its node: the node's replica stays its only writer
        done = qdsn("ledger", "append", "identity.register", json.dumps(
            NodeHome.init(tmp_path / "x", "enterprise", "X", "pw", origin=reg.origin, scrypt_n=FAST).registration()),
            home=reg.path)  # fmt: skip
        assert "sent through it" in done.stderr and "(entry 1)" in done.stdout
        assert NodeClient(f"http://127.0.0.1:{port}", reg.key(), reg.did).call(
            "GET", "/ledger/entries?start=0&end=0")["size"] == 2  # fmt: skip
    finally:
        first.send_signal(signal.SIGKILL)  # a crash: the kernel releases the lock with the process
        first.wait()
    again = start(reg.path, port)
    try:
        assert "operates the log" in again.stdout.readline().decode()
        assert qdsn("ledger", "append", "identity.register", json.dumps(
            NodeHome.init(tmp_path / "y", "enterprise", "Y", "pw", origin=reg.origin, scrypt_n=FAST).registration()),
            home=reg.path).stdout.count("(entry 2)") == 1  # fmt: skip
    finally:
        stop(again)


def test_a_member_that_knows_no_way_to_the_log_writes_nothing(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", PASS["QDSN_PASSPHRASE"], scrypt_n=FAST)
    acme = NodeHome.init(tmp_path / "acme", "enterprise", "Acme", PASS["QDSN_PASSPHRASE"], origin=reg.origin,
                         scrypt_n=FAST)  # fmt: skip
    refused = qdsn("dataset", "create", "line-1", "--title", "Line 1", home=acme.path, ok=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "knows no way to it" in said(refused.stderr) and "--operator URL" in said(refused.stderr)
    assert types(acme.path) == []  # nothing in its replica
    assert not (acme.path / "vault.db").exists()  # refused before the vault was touched
    for cmd in (
        ["device", "gauge-1", "--key", "z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"],
        ["did", "rotate"],
        ["vault", "shred", "line-1"],
    ):
        out = qdsn(*cmd, home=acme.path, ok=False)
        assert out.returncode == 1 and "knows no way to it" in said(out.stderr), cmd
    assert types(acme.path) == []
