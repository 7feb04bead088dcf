"""A consortium as four processes on loopback — the regulator operating the log, a certification
body and two manufacturers following it — negotiating, delivering sealed records, and ending with
four replicas of one verified log, cosigned by every member."""

import os
import subprocess
import sys
import time

from qdsn.api.client import NodeClient
from qdsn.ledger import tx
from qdsn.ledger.audit import audit
from qdsn.node import Node, NodeHome
from qdsn.node.consumer import negotiate, receive, transfer
from qdsn.node.follow import log_key
from qdsn.node.provider import publish

from ..services import free_port
from .conftest import FAST, answering


def start(home, port, operator=None):
    """The regulator is started with options; members read theirs from node.toml's [service] table."""
    env = os.environ | {"QDSN_PASSPHRASE": "pw", "QDSN_HOME": str(home.path)}
    cmd = [sys.executable, "-m", "qdsn", "node", "start"]
    if operator:
        with (home.path / "node.toml").open("a") as f:
            f.write(f'\n[service]\nport = {port}\noperator = "{operator}"\nmonitor = 0.3\n')
    else:
        cmd += ["--port", str(port), "--monitor", "0.3"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return answering(proc, home.name, port)


def offer(maker):
    return {
        "@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Offer", "uid": "urn:qdsn:offer:zj-1:read",
        "profile": "urn:qdsn:odrl:profile:v1", "assigner": maker.did, "target": "urn:qdsn:dataset:zj-1",
        "permission": [{"action": "read", "constraint": [
            {"leftOperand": "purpose", "operator": "eq", "rightOperand": "certification"}]}],
    }  # fmt: skip


def test_four_nodes_one_log(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    members = {
        name: NodeHome.init(tmp_path / name, role, name, "pw", origin=reg.origin, scrypt_n=FAST)
        for name, role in (("cqc", "certifier"), ("zj", "enterprise"), ("js", "enterprise"))
    }
    for m in members.values():
        reg.submit("identity.register", m.registration())
    ports = {name: free_port() for name in ("reg", *members)}
    url = {name: f"http://127.0.0.1:{p}" for name, p in ports.items()}
    procs = [start(reg, ports["reg"])]
    try:
        zj = members["zj"]  # the manufacturer seals, anchors and offers its data through the operator
        node = Node(zj, link=NodeClient(url["reg"], zj.key(), zj.did))
        node.submit([zj.sign("dataset.declare", {"dataset": "zj-1", "title": "Line 1", "kind": "measurements"})])
        node.vault.create("zj-1", "measurements")
        for start_at in (0, 100):
            rows = [{"characteristic": "resistance", "value": 17.5 + i / 1000, "time": "2026-03-01T08:00:00Z"}
                    for i in range(start_at, start_at + 100)]  # fmt: skip
            batch = node.vault.add_batch("zj-1", rows)
            anchor = zj.sign("dataset.anchor", batch.anchor_payload())
            node.submit([anchor])
            node.vault.mark_anchored(batch, tx.txid(anchor.leaf()))
        publish(node, "zj-1", offer(zj))
        node.close()
        procs += [start(m, ports[name], url["reg"]) for name, m in members.items()]

        cqc = members["cqc"]
        to_zj = NodeClient(url["zj"], cqc.key(), cqc.did)
        (ds,) = to_zj.call("POST", "/catalog/request", {})["dcat:dataset"]
        assert ds["qdsn:anchoredRecords"] == 200
        agreement = negotiate(to_zj, ds["odrl:hasPolicy"][0])
        t = transfer(to_zj, agreement["uid"], "sealed-delivery", purpose="certification",
                     records={"first": 25, "count": 150})  # fmt: skip
        delivery = to_zj.call("POST", t["dspace:dataAddress"]["dspace:endpoint"])
        assert to_zj.call("GET", "/usage")["meters"][-1]["records"] == 150

        sizes: list[int] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # every member follows and cosigns on its own rounds
            now = [NodeClient(url[n], cqc.key(), cqc.did).call("GET", "/ledger/entries?start=0&end=0")["size"]
                   for n in url]  # fmt: skip
            if len(set(now)) == 1 and now == sizes:
                break
            sizes = now
            time.sleep(1)
        assert len(set(sizes)) == 1, f"the replicas did not converge: {sizes}"
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=15)

    replicas = {"reg": reg.ledger(), **{n: m.ledger() for n, m in members.items()}}
    key = log_key(replicas["reg"])
    reports = {n: audit(r.store, key) for n, r in replicas.items()}
    assert all(r.ok for r in reports.values()), {n: r.reason for n, r in reports.items()}
    assert len({(r.size, r.root, r.state_digest) for r in reports.values()}) == 1
    cosigners = {e.submitter for e in map(tx.from_leaf, replicas["reg"].store.leaves(0, replicas["reg"].size))
                 if e.type == "checkpoint.cosign"}  # fmt: skip
    assert cosigners == {m.did for m in members.values()}
    got = receive(replicas["cqc"], cqc.key(), cqc.did, delivery)  # proved against the certifier's own replica
    assert [r["seq"] for r in got] == list(range(25, 175)) and got[0]["record"]["value"] == 17.525
    for r in replicas.values():
        r.close()
