"""Fault tests of a consortium ordered by a real 3-member etcd cluster on loopback: members and the
leader are killed and restarted, and a node is stopped, under a steady load; a tampered replica is
exposed by the others; a node behind a pruned sequence catches up from a peer."""

import collections
import itertools
import sqlite3
import threading
import time
import uuid

import pytest
from fastapi.testclient import TestClient

from qdsn.api.app import create_app
from qdsn.api.client import NodeClient
from qdsn.crypto import SigningKey
from qdsn.errors import Unavailable
from qdsn.identity import did_key_from_public_key, multikey_from_public_key
from qdsn.ledger import merkle, tx
from qdsn.ledger.ordering.etcd import append
from qdsn.ledger.store import node_key
from qdsn.node import Node, NodeHome, witness

from ..conftest import LOOPBACK
from ..services import etcd_cluster
from .conftest import FAST

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster():
    with etcd_cluster(3) as c:  # its own: these tests kill its members
        yield c


class Consortium:
    def __init__(self, tmp_path, url: str) -> None:
        self.url = url
        reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
        self.homes = [reg] + [
            NodeHome.init(tmp_path / n, "enterprise", n, "pw", origin=reg.origin, scrypt_n=FAST)
            for n in ("acme", "bolt")
        ]
        self.nodes: list[Node | None] = [Node(reg, ordering=url, quorum=2), None, None]
        self.nodes[0].submit([reg.sign("identity.register", h.registration()) for h in self.homes[1:]])
        self.nodes[0].start(every=0.2)
        for i in (1, 2):
            self.open(i)
        self.acked: list[str] = []
        self.stop = threading.Event()
        self.loads: dict[int, threading.Thread] = {}

    def open(self, i: int, link=None) -> Node:
        node = Node(self.homes[i], ordering=self.url, link=link, quorum=2)
        node.start(every=0.2)
        self.nodes[i] = node
        return node

    def one(self, i: int) -> tx.Envelope:
        home = self.homes[i]
        if home.role == "regulator":
            key = SigningKey.generate().verify_key.raw
            did = did_key_from_public_key(key)
            payload = {"did": did, "role": "certifier", "name": "Lab", "key": multikey_from_public_key(key)}
            return home.sign("identity.register", payload)
        return home.sign(
            "dataset.declare", {"dataset": f"ds-{uuid.uuid4().hex}", "title": "Line", "kind": "inspections"}
        )

    def load(self, i: int) -> None:
        def run() -> None:
            while not self.stop.is_set() and not halt.is_set():
                envs = [self.one(i) for _ in range(5)]
                try:
                    self.nodes[i].submit(envs)
                except Exception:  # not acknowledged, so not counted
                    continue
                self.acked += [tx.txid(e.leaf()) for e in envs]

        halt = threading.Event()
        t = threading.Thread(target=run, daemon=True)
        t.halt = halt  # type: ignore[attr-defined]
        self.loads[i] = t
        t.start()

    def halt(self, i: int) -> None:
        t = self.loads.pop(i)
        t.halt.set()  # type: ignore[attr-defined]
        t.join(60)

    def settle(self, timeout: float = 60) -> None:
        """Until every replica has applied all of etcd's sequence under a checkpoint all three cosigned."""
        give_up = time.monotonic() + timeout
        while not all(n.settled() for n in self.nodes if n is not None):
            assert time.monotonic() < give_up, "the replicas did not settle"
            time.sleep(0.1)

    def close(self) -> None:
        self.stop.set()
        for i in list(self.loads):
            self.halt(i)
        for n in self.nodes:
            if n is not None:
                n.close()


def test_faults_under_load_lose_nothing_and_replicas_agree(tmp_path, cluster):
    c = Consortium(tmp_path, cluster.url)
    try:
        for i in range(3):
            c.load(i)
        time.sleep(1.5)
        leader = cluster.leader()
        for n in c.nodes:
            n.etcd.cluster._current = leader  # every node talks to the leader when it dies
        cluster.kill(leader)
        time.sleep(2)
        assert all(n.etcd.cluster.switches for n in c.nodes)
        cluster.restart(leader)
        cluster.wait_healthy()
        member = (cluster.leader() + 1) % 3
        cluster.kill(member)  # a follower member
        time.sleep(1.5)
        cluster.restart(member)
        cluster.wait_healthy()
        c.halt(2)
        c.nodes[2].close()  # a node goes down while the others go on
        c.nodes[2] = None
        time.sleep(1.5)
        c.open(2)
        c.load(2)
        time.sleep(1.5)
        c.stop.set()
        for i in list(c.loads):
            c.halt(i)
        c.settle()
        ledgers = [n.ledger for n in c.nodes]
        assert len(c.acked) > 300
        for led in ledgers:
            counts = collections.Counter(r.txid for r in led.store.rows(0, led.size))
            assert all(counts[t] == 1 for t in c.acked)  # every acknowledged transaction, exactly once
            assert not led.store.rows_of_type("alert.raise")
        assert len({(led.size, led.root(), led.state.digest()) for led in ledgers}) == 1
        notes = c.nodes[0].ledger.store.checkpoint_notes()
        assert len(notes) > 3
        for led in ledgers:  # every checkpoint the log signed is a prefix of the next, on every replica
            for (a, _), (b, _) in itertools.pairwise(notes):
                merkle.verify_consistency(a, b, led.root_at(a), led.root_at(b), led.consistency_proof(a, b))
            size, who = witness.trusted(led, 2)
            assert size == notes[-1][0] and len(who) == 2  # both members; the regulator signs as the log
    finally:
        c.close()


def _rewrite(path, seq: int) -> None:
    """Rewrite entry `seq` of a stopped replica and recompute its whole tree, as someone who wants the
    change to look consistent would."""
    db = sqlite3.connect(path)
    leaf = bytearray(db.execute("SELECT leaf FROM entries WHERE seq = ?", (seq,)).fetchone()[0])
    leaf[leaf.index(b'"title":"') + 9] ^= 1
    db.execute("UPDATE entries SET leaf = ? WHERE seq = ?", (bytes(leaf), seq))
    frontier, rows = merkle.Frontier(0, []), []
    for (x,) in db.execute("SELECT leaf FROM entries ORDER BY seq").fetchall():
        rows += [(node_key(lv, ix), h) for lv, ix, h in frontier.append(merkle.leaf_hash(x))]
    db.execute("DELETE FROM nodes")
    db.executemany("INSERT INTO nodes VALUES (?, ?)", rows)
    db.commit()
    db.close()


def test_a_tampered_replica_is_exposed_by_the_others(tmp_path, cluster, caplog):
    c = Consortium(tmp_path, cluster.url)
    try:
        c.nodes[2].submit([c.one(2) for _ in range(3)])
        c.settle()
        seq = next(r.seq for r in c.nodes[2].ledger.store.rows_of_type("dataset.declare"))
        c.nodes[2].close()
        _rewrite(tmp_path / "bolt" / "ledger.db", seq)
        c.open(2)
        c.nodes[1].submit([c.one(1)])  # the log grows: a new checkpoint
        give_up = time.monotonic() + 30
        while time.monotonic() < give_up:
            raised = [tx.from_leaf(r.leaf) for r in c.nodes[0].ledger.store.rows_of_type("alert.raise")]
            if {a.submitter for a in raised} >= {c.homes[0].did, c.homes[1].did}:
                break
            time.sleep(0.1)
        honest = {a.submitter: a for a in raised if a.submitter != c.homes[2].did}
        assert set(honest) == {c.homes[0].did, c.homes[1].did}
        for alert in honest.values():
            theirs, ours = alert.payload["claims"]
            assert (
                theirs["signer"] == c.homes[2].did
                and ours["root"] == c.nodes[0].ledger.root_at(alert.payload["size"]).hex()
            )
        # the two honest replicas agree once both have applied the last alert, whichever applied it first
        give_up = time.monotonic() + 30
        while c.nodes[0].ledger.size != c.nodes[1].ledger.size and time.monotonic() < give_up:
            time.sleep(0.1)
        assert c.nodes[0].ledger.root() == c.nodes[1].ledger.root() != c.nodes[2].ledger.root()
        assert "is not the one it cosigned: it was changed" in caplog.text  # the tampered node notices too
    finally:
        c.close()


def test_a_node_behind_a_pruned_sequence_catches_up_from_a_peer(tmp_path, cluster):
    c = Consortium(tmp_path, cluster.url)
    try:
        c.nodes[2].close()
        c.nodes[2] = None
        for _ in range(20):
            c.nodes[1].submit([c.one(1) for _ in range(10)])
        c.nodes[0].retain = 50  # the log signer keeps only the newest 50 positions in etcd
        give_up = time.monotonic() + 30
        while int(c.nodes[0].etcd.cluster.get("pruned") or 0) < 150:
            assert time.monotonic() < give_up, "the log signer did not prune etcd"
            time.sleep(0.1)
        http = TestClient(create_app(c.nodes[0]), client=LOOPBACK)
        home = c.homes[2]
        node = c.open(2, link=NodeClient(str(http.base_url), home.key(), home.did, http=http))
        c.nodes[1].submit([c.one(1)])
        c.settle()
        assert node.ledger.size > 200 and node.ledger.root() == c.nodes[0].ledger.root()
    finally:
        c.close()


def test_losing_quorum_answers_503_at_once_and_a_batch_sent_again_is_written_once(tmp_path, cluster):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    maker = NodeHome.init(tmp_path / "maker", "enterprise", "Maker", "pw", origin=reg.origin, scrypt_n=FAST)
    reg.submit("identity.register", maker.registration())
    node = Node(reg, ordering=cluster.url)
    http = TestClient(create_app(node), client=LOOPBACK)
    client = NodeClient(str(http.base_url), maker.key(), maker.did, http=http)
    declare = lambda name: maker.sign("dataset.declare", {"dataset": name, "title": "Line", "kind": "inspections"})  # noqa: E731
    try:
        answered = [declare("line-0")]
        receipts = client.submit(answered)
        landed = [declare("line-1"), declare("line-2")]
        # etcd committed this batch, and then the quorum went before its answer came back
        at = append(node.etcd.cluster, [e.leaf() for e in landed])
        down = [i for i in range(3) if i != cluster.leader()]
        for i in down:
            cluster.kill(i)
        t = time.monotonic()
        r = client.request("POST", "/ledger/transactions", {"transactions": [e.to_json() for e in landed]})
        took = time.monotonic() - t
        assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json", r.text
        assert r.json()["type"] == "urn:qdsn:problem:unavailable" and "ordering service (etcd)" in r.json()["detail"]
        assert int(r.headers["retry-after"]) > 0 and took < 10, took
        node.etcd.cluster.deadline = 2.0  # the default bound was shown; the rest of the test need not wait it out
        t = time.monotonic()
        assert client.submit(answered, attempts=1) == receipts  # this replica holds it: no need to ask etcd
        assert client.call("GET", f"/ledger/transactions/{receipts[0]['txid']}")["seq"] == receipts[0]["seq"]
        assert time.monotonic() - t < 1
        t = time.monotonic()
        asked = client.request("GET", f"/ledger/transactions/{tx.txid(landed[0].leaf())}")
        assert asked.status_code == 503 and time.monotonic() - t < 10  # cannot tell yet: not a 404
        with pytest.raises(Unavailable):
            client.submit([declare("line-3")], attempts=1)  # nor is a new batch taken

        def back() -> None:
            for i in down:
                cluster.restart(i)

        threading.Timer(2, back).start()
        got = client.submit(landed)  # retried on 503 with the same batch until the quorum is back
        assert [r["seq"] for r in got] == [at, at + 1] and at == receipts[0]["seq"] + 1  # where it landed
        assert client.submit([declare("line-3")])[0]["seq"] == at + 2
        rows = node.ledger.store.rows(0, node.ledger.size)
        assert node.ledger.size == at + 3 and len({r.txid for r in rows}) == len(rows)  # each written once
    finally:
        node.close()


def test_a_refused_batch_is_on_no_member(tmp_path, cluster):
    c = Consortium(tmp_path, cluster.url)
    try:
        maker = c.homes[1]
        http = TestClient(create_app(c.nodes[1]), client=LOOPBACK)
        client = NodeClient(str(http.base_url), maker.key(), maker.did, http=http)
        declare = lambda: maker.sign("dataset.declare", {"dataset": "line-1", "title": "Line", "kind": "inspections"})  # noqa: E731
        twice = [declare(), declare()]
        r = client.request("POST", "/ledger/transactions", {"transactions": [e.to_json() for e in twice]})
        assert r.status_code == 409 and "transaction 1 " in r.json()["detail"], r.text
        c.nodes[2].submit([c.one(2)])  # the log goes on
        c.settle()
        for n in c.nodes:
            ids = {row.txid for row in n.ledger.store.rows(0, n.ledger.size)}
            assert tx.txid(twice[0].leaf()) not in ids and "line-1" not in n.ledger.state.datasets
    finally:
        c.close()
