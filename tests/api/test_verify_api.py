"""POST /verify: a verifier that asks for key binding gives both its audience and its nonce; either
alone, or either not a string, is a 400 problem, never a check quietly skipped."""

import pytest
from fastapi.testclient import TestClient

from qdsn.api.app import create_app
from qdsn.node import Node, NodeHome

from ..conftest import LOOPBACK
from .conftest import FAST


@pytest.fixture
def http(tmp_path):
    node = Node(NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST))
    yield TestClient(create_app(node), client=LOOPBACK)
    node.close()


@pytest.mark.parametrize(
    "asked",
    [{"aud": "did:web:buyer.example"}, {"nonce": "q-1"}, {"aud": "did:web:buyer.example", "nonce": 7},
     {"aud": ["did:web:buyer.example"], "nonce": "q-1"}, {"aud": "", "nonce": "q-1"}],
)  # fmt: skip
def test_aud_and_nonce_come_together(http, asked):
    both = http.post("/verify", json={"presentation": "x~", "aud": "did:web:buyer.example", "nonce": "q-1"})
    assert both.status_code == 200 and both.json()["ok"] is False  # asked properly; the presentation is no good
    assert http.post("/verify", json={"presentation": "x~"}).status_code == 200
    r = http.post("/verify", json={"presentation": "x~"} | asked)
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json")
    assert "aud" in r.json()["detail"] and "nonce" in r.json()["detail"]


def test_strangers_cannot_take_the_nodes_cores(http):
    codes = [http.post(path, json={"presentation": "x~"}).status_code for path in ("/verify", "/bundle") * 12]
    assert 429 in codes and codes[:10].count(429) == 0, codes  # a burst of ten, then two a second
    refused = http.post("/verify", json={"presentation": "x~"})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert "too many verifications from this address" in refused.json()["detail"]
