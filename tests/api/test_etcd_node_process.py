"""`qdsn node start --ordering etcd://…` as real processes: two organizations' nodes order through a
3-member etcd cluster, follow it into their own replicas, and witness the log's checkpoints."""

import os
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from qdsn.api.client import NodeClient
from qdsn.node import NodeHome

from ..services import etcd_cluster, free_port
from .conftest import FAST


def start(home, etcd, *extra):
    port = free_port()
    env = os.environ | {"QDSN_PASSPHRASE": "pw", "QDSN_HOME": str(home)}
    cmd = [sys.executable, "-m", "qdsn", "node", "start", "--port", str(port), "--ordering", etcd.url,
           "--monitor", "0.3", *extra]  # fmt: skip
    log = home.parent / f"{home.name}.log"
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(base + "/.well-known/did.json", timeout=1)
            return proc, base
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"the node did not start: {log.read_text()}")
            time.sleep(0.1)


def test_two_node_processes_order_through_etcd(tmp_path, etcd):
    origin = f"qdsn.test/{uuid.uuid4().hex[:8]}"
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", origin=origin, scrypt_n=FAST)
    maker = NodeHome.init(tmp_path / "maker", "enterprise", "Maker", "pw", origin=origin, scrypt_n=FAST)
    reg.submit("identity.register", maker.registration())  # before ordering moves to etcd
    procs = []
    try:
        procs.append(start(tmp_path / "reg", etcd))
        proc, base = start(tmp_path / "maker", etcd, "--quorum", "1")
        procs.append((proc, base))
        assert "orders through etcd://" in " ".join((tmp_path / "maker.log").read_text().split())
        to_maker = NodeClient(base, maker.key(), maker.did)
        env = maker.sign("dataset.declare", {"dataset": "line-1", "title": "Line 1", "kind": "measurements"})
        (receipt,) = to_maker.call("POST", "/ledger/transactions", {"transactions": [env.to_json()]})["receipts"]
        assert receipt["seq"] >= 2  # after the regulator's entries, which came to it through etcd
        to_reg = NodeClient(procs[0][1], maker.key(), maker.did)
        deadline = time.monotonic() + 30
        while True:
            note = to_maker.call("GET", "/ledger/checkpoint", signed=False)
            if int(note.split("\n")[1]) > receipt["seq"] and f"— {maker.did} " in note:
                break  # the regulator's checkpoint over the declaration, with the maker's cosignature
            assert time.monotonic() < deadline, note
            time.sleep(0.2)
        marks = [c.call("GET", "/ledger/ordering") for c in (to_maker, to_reg)]
        assert marks[0]["position"] > receipt["seq"] and all(m["size"] > receipt["seq"] for m in marks)

        # the maker's node is killed (SIGKILL) while the regulator admits members, then started again
        as_reg = NodeClient(procs[0][1], reg.key(), reg.did)
        newcomers = [NodeHome.init(tmp_path / f"n{i}", "certifier", f"Lab {i}", "pw", origin=origin, scrypt_n=FAST)
                     for i in range(6)]  # fmt: skip
        for i, home in enumerate(newcomers):
            admit = reg.sign("identity.register", home.registration())
            as_reg.call("POST", "/ledger/transactions", {"transactions": [admit.to_json()]})
            if i == 2:
                procs[1][0].kill()
                procs[1][0].wait()
        procs[1] = start(tmp_path / "maker", etcd, "--quorum", "1")
        to_maker = NodeClient(procs[1][1], maker.key(), maker.did)
        deadline = time.monotonic() + 30
        while True:
            mine, theirs = to_maker.call("GET", "/ledger/ordering"), to_reg.call("GET", "/ledger/ordering")
            if mine["size"] >= theirs["size"] > 10:
                break
            assert time.monotonic() < deadline, (mine, theirs)
            time.sleep(0.2)
    finally:
        for proc, _ in procs:
            proc.terminate()
            proc.wait(timeout=15)
    env = os.environ | {"QDSN_PASSPHRASE": "pw", "QDSN_HOME": str(tmp_path / "maker"), "COLUMNS": "200"}
    status = subprocess.run([sys.executable, "-m", "qdsn", "ledger", "status"], env=env, capture_output=True,
                            text=True, timeout=60, check=True).stdout  # fmt: skip
    a, b = reg.ledger(), maker.ledger()
    n = min(a.size, b.size)  # the last witness round of one may have landed after the other stopped
    assert n > 10 and a.root_at(n) == b.root_at(n)
    assert all(h.did in b.state.identities for h in newcomers)
    a.close()
    b.close()
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in status.splitlines() if "│" in line}
    assert rows["ordering"].startswith("etcd, position") and rows["alerts"] == "none"
    assert rows["trusted (quorum 1)"].endswith("cosigned by 1")


def test_a_node_process_answers_503_without_quorum_and_takes_the_batch_once_it_is_back(tmp_path):
    origin = f"qdsn.test/{uuid.uuid4().hex[:8]}"
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", origin=origin, scrypt_n=FAST)
    maker = NodeHome.init(tmp_path / "maker", "enterprise", "Maker", "pw", origin=origin, scrypt_n=FAST)
    reg.submit("identity.register", maker.registration())
    with etcd_cluster(3) as etcd:  # its own: two of its members are killed
        proc, base = start(tmp_path / "reg", etcd)
        try:
            client = NodeClient(base, maker.key(), maker.did, timeout=30)
            batch = [maker.sign("dataset.declare", {"dataset": f"line-{i}", "title": "Line", "kind": "inspections"})
                     for i in range(3)]  # fmt: skip
            down = [i for i in range(3) if i != etcd.leader()]
            for i in down:
                etcd.kill(i)
            t = time.monotonic()
            r = client.request("POST", "/ledger/transactions", {"transactions": [e.to_json() for e in batch]})
            assert r.status_code == 503 and int(r.headers["retry-after"]) > 0, r.text
            assert r.json()["type"] == "urn:qdsn:problem:unavailable" and time.monotonic() - t < 10
            for i in down:
                etcd.restart(i)
            got = client.submit(batch)  # the same batch, retried until etcd has a quorum again
            assert [g["seq"] - got[0]["seq"] for g in got] == [0, 1, 2] and client.submit(batch) == got
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    ledger = reg.ledger()
    ids = [r.txid for r in ledger.store.rows(0, ledger.size)]
    assert all(ids.count(g["txid"]) == 1 for g in got)  # written once
    ledger.close()
