"""The node API in process: public identity and checkpoint, signed log reads and submissions, and
problem+json for every refusal."""

import base64

import pytest
from fastapi.testclient import TestClient

from qdsn.api.app import MAX_BODY, create_app
from qdsn.api.client import NodeClient
from qdsn.crypto import SigningKey
from qdsn.errors import InvalidInput, NotFound, PermissionDenied
from qdsn.identity import did_key_from_public_key
from qdsn.ledger import tx
from qdsn.node import Node, NodeHome

from ..conftest import LOOPBACK
from .conftest import FAST


@pytest.fixture
def network(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    maker = NodeHome.init(tmp_path / "maker", "enterprise", "Zhejiang Cable", "pw", origin=reg.origin, scrypt_n=FAST)
    reg.submit("identity.register", maker.registration())
    node = Node(reg)
    http = TestClient(create_app(node), client=LOOPBACK)
    yield node, maker, http
    node.close()


def client(http, home):
    return NodeClient(str(http.base_url), home.key(), home.did, http=http)


def test_public_identity_and_checkpoint(network):
    node, _, http = network
    doc = http.get("/.well-known/did.json").json()
    assert doc["id"] == node.did
    note = http.get("/ledger/checkpoint").text
    assert note.startswith(node.home.origin + "\n2\n")


def test_signed_log_reading(network):
    node, maker, http = network
    got = client(http, maker).call("GET", "/ledger/entries?start=0&end=2")
    leaves = [base64.b64decode(x) for x in got["entries"]]
    assert got["size"] == 2 and leaves == node.ledger.store.leaves(0, 2)
    assert tx.from_leaf(leaves[1]).payload["did"] == maker.did
    unsigned = http.get("/ledger/entries")
    assert unsigned.status_code == 401 and unsigned.headers["content-type"] == "application/problem+json"
    assert unsigned.json()["type"] == "urn:qdsn:problem:bad-signature"
    stranger = SigningKey.generate()
    with pytest.raises(PermissionDenied, match="not a participant"):
        NodeClient(str(http.base_url), stranger, did_key_from_public_key(stranger.verify_key.raw), http=http).call(
            "GET", "/ledger/entries"
        )
    with pytest.raises(InvalidInput, match="not within the log"):
        client(http, maker).call("GET", "/ledger/entries?start=5")


def test_submitting_transactions(network):
    node, maker, http = network
    c = client(http, maker)
    env = maker.sign("dataset.declare", {"dataset": "zj-line-1", "title": "Line 1", "kind": "measurements"})
    (receipt,) = c.call("POST", "/ledger/transactions", {"transactions": [env.to_json()]})["receipts"]
    assert receipt["seq"] == 2 and node.ledger.state.datasets["zj-line-1"].owner == maker.did
    other = node.home.sign("dataset.declare", {"dataset": "x", "title": "X", "kind": "measurements"})
    with pytest.raises(PermissionDenied, match=r"but .* signed the request"):
        c.call("POST", "/ledger/transactions", {"transactions": [other.to_json()]})
    with pytest.raises(InvalidInput, match="at least one envelope"):
        c.call("POST", "/ledger/transactions", {"transactions": []})
    again = maker.sign("dataset.declare", {"dataset": "zj-line-1", "title": "Line 1", "kind": "measurements"})
    r = c.request("POST", "/ledger/transactions", {"transactions": [again.to_json()]})
    assert r.status_code == 409 and "already declared" in r.json()["detail"]


def test_replays_and_oversized_bodies(network):
    _, maker, http = network
    c = client(http, maker)
    env = maker.sign("dataset.declare", {"dataset": "d2", "title": "D2", "kind": "measurements"})
    r = c.request("POST", "/ledger/transactions", {"transactions": [env.to_json()]})
    assert r.status_code == 201
    replay = http.post(r.request.url, content=r.request.content, headers=r.request.headers)
    assert replay.status_code == 401 and "replays a nonce" in replay.json()["detail"]
    big = http.post("/ledger/transactions", content=b"x" * (MAX_BODY + 1))
    assert big.status_code == 413 and big.json()["type"] == "urn:qdsn:problem:too-large"
    assert http.get("/nowhere").json()["status"] == 404


def test_a_follower_does_not_serve_checkpoints(tmp_path):
    home = NodeHome.init(tmp_path / "e", "enterprise", "E", "pw", scrypt_n=FAST)
    node = Node(home)
    try:
        r = TestClient(create_app(node), client=LOOPBACK).get("/ledger/checkpoint")
        assert r.status_code == 404 and "does not operate the log" in r.json()["detail"]
        with pytest.raises(NotFound):
            node.order([])
    finally:
        node.close()


def test_openapi_is_served(network):
    _, _, http = network
    paths = http.get("/openapi.json").json()["paths"]
    assert {"/.well-known/did.json", "/ledger/checkpoint", "/ledger/entries", "/ledger/transactions"} <= set(paths)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_api_docs_load_everything_from_the_node(network, page):
    """A plant network reaches no public CDN: the docs pages name no other host, and every script,
    style sheet and icon they name is served by the node itself."""
    import re
    from urllib.parse import urlsplit

    _, _, http = network
    r = http.get(page)
    assert r.status_code == 200
    refs = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']+)["\']', r.text) + re.findall(r"url:\s*'([^']+)'", r.text)
    refs += re.findall(r"https?://[^\s\"'<>)]+", r.text)
    assert refs, r.text
    assert not [u for u in refs if urlsplit(u).netloc], f"{page} names another host: {refs}"
    assets = [u for u in refs if u.endswith((".js", ".css", ".png"))]
    assert len(assets) >= 2
    for url in assets:
        got = http.get(url)
        assert got.status_code == 200 and len(got.content) > 1000, url


def test_bundle_is_refused_for_anything_but_a_signed_certificate_of_this_log(network):
    """POST /bundle is public: what a stranger sends is refused as a problem, never a 500, and opens no log."""
    from qdsn.credentials import sdjwt

    _, maker, http = network
    forged = sdjwt.issue({"iss": maker.did, "vct": "x", "certificate_number": "CQC-1"}, SigningKey.generate())
    for body in ({}, {"presentation": 3}, {"presentation": "~"}, {"presentation": "a.b.c~"},
                 {"presentation": forged}):  # fmt: skip
        r = http.post("/bundle", json=body)
        assert 400 <= r.status_code < 500 and r.headers["content-type"].startswith("application/problem+json"), body
        assert "log" not in r.json()
