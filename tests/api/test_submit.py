"""Submitting a batch through the API, ordered embedded and through a real 3-member etcd cluster: taken
or refused whole, answered the same when sent again (written once), and a client that can ask whether
a transaction was written."""

import uuid

import pytest
from fastapi.testclient import TestClient

from qdsn.api.app import create_app
from qdsn.api.client import NodeClient
from qdsn.errors import Conflict, InvalidInput, NotFound
from qdsn.ledger import merkle, tx
from qdsn.ledger.ledger import batch_key
from qdsn.node import Node, NodeHome

from ..conftest import LOOPBACK
from .conftest import FAST


@pytest.fixture(params=["embedded", "etcd"])
def network(request, tmp_path):
    origin = f"qdsn.test/{uuid.uuid4().hex[:8]}"  # each test its own log on the shared etcd cluster
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", origin=origin, scrypt_n=FAST)
    maker = NodeHome.init(tmp_path / "maker", "enterprise", "Maker", "pw", origin=origin, scrypt_n=FAST)
    reg.submit("identity.register", maker.registration())
    ordering = request.getfixturevalue("etcd").url if request.param == "etcd" else None
    node = Node(reg, ordering=ordering)
    http = TestClient(create_app(node), client=LOOPBACK)
    yield node, maker, http, NodeClient(str(http.base_url), maker.key(), maker.did, http=http)
    node.close()


def declare(home, dataset: str) -> tx.Envelope:
    return home.sign("dataset.declare", {"dataset": dataset, "title": "Line", "kind": "inspections"})


def post(client, envs, **headers):
    body = {"transactions": [e.to_json() for e in envs]}
    return client.request("POST", "/ledger/transactions", body, headers=list(headers.items()))


def test_a_refused_batch_is_written_nowhere(network):
    node, maker, _, client = network
    size = node.ledger.size
    twice = [declare(maker, "line-1"), declare(maker, "line-1")]
    r = post(client, twice)
    assert r.status_code == 409 and "transaction 1 " in r.json()["detail"], r.json()
    assert node.ledger.size == size
    with pytest.raises(NotFound, match="not in the log"):
        client.call("GET", f"/ledger/transactions/{tx.txid(twice[0].leaf())}")
    if node.etcd is not None:
        assert node.etcd.head() == size  # not proposed to etcd either


def test_a_batch_sent_again_gets_its_first_receipts_and_is_written_once(network):
    node, maker, _, client = network
    batch = [declare(maker, "line-1"), declare(maker, "line-2")]
    first = post(client, batch)
    assert first.status_code == 201, first.json()
    size = node.ledger.size
    again = post(client, batch, **{"Idempotency-Key": f'"{batch_key(batch)}"'})  # its answer was lost
    assert again.status_code == 200 and again.json() == first.json()
    assert first.json()["idempotencyKey"] == batch_key(batch)
    assert node.ledger.size == size and [r["seq"] for r in first.json()["receipts"]] == [size - 2, size - 1]
    assert client.submit(batch) == first.json()["receipts"]  # the client's submit alike
    other = post(client, [declare(maker, "line-3")], **{"Idempotency-Key": f'"{batch_key(batch)}"'})
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["detail"]
    assert node.ledger.size == size


def test_a_client_asks_whether_a_transaction_was_written(network):
    node, maker, _, client = network
    env = declare(maker, "line-1")
    (receipt,) = client.submit([env])
    got = client.call("GET", f"/ledger/transactions/{receipt['txid']}")
    assert (got["seq"], got["txid"], got["type"], got["submitter"]) == (receipt["seq"], receipt["txid"],
                                                                        "dataset.declare", maker.did)  # fmt: skip
    leaf = node.ledger.store.entry(seq=got["seq"]).leaf
    proof = [bytes.fromhex(h) for h in got["inclusion"]]
    merkle.verify_inclusion(merkle.leaf_hash(leaf), got["seq"], got["size"], proof, bytes.fromhex(got["root"]))
    with pytest.raises(NotFound, match="not in the log"):
        client.call("GET", f"/ledger/transactions/{tx.txid(declare(maker, 'line-2').leaf())}")
    with pytest.raises(InvalidInput, match="64 lowercase hex"):
        client.call("GET", "/ledger/transactions/nothex")
    with pytest.raises(Conflict, match="already declared"):
        client.submit([declare(maker, "line-1")])  # refused, not retried
    assert client.written([env]) == [receipt] and client.written([declare(maker, "line-3")]) is None
