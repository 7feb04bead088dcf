"""The explorer and the member registry as JSON: participants only (signed), the same pages as the
console, bad parameters a 400 problem that says what to send."""

import pytest
from fastapi.testclient import TestClient

from qdsn.api.app import create_app
from qdsn.api.client import NodeClient
from qdsn.cli.member import registration
from qdsn.errors import InvalidInput, NotFound
from qdsn.node import Node, NodeHome

from ..conftest import LOOPBACK
from .conftest import FAST


@pytest.fixture
def network(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    maker = NodeHome.init(tmp_path / "maker", "enterprise", "杭州电缆", "pw", origin=reg.origin, scrypt_n=FAST)
    reg.submit("identity.register", registration(maker.did, "enterprise", maker.name, None, "91330100716105852F",
                                                 "330106", "C3831", "杭州市西湖区某路 1 号"))  # fmt: skip
    node = Node(reg)
    http = TestClient(create_app(node), client=LOOPBACK)
    yield node, maker, http
    node.close()


def test_participants_page_through_the_registry_and_the_log(network):
    _, maker, http = network
    c = NodeClient(str(http.base_url), maker.key(), maker.did, http=http)
    got = c.call("GET", "/members?region=330000&industry=C38")
    assert [m["did"] for m in got["items"]] == [maker.did] and got["total"] == 1
    assert got["items"][0]["region_name"] == "浙江省 杭州市 西湖区"
    assert c.call("GET", "/members?region=110000")["items"] == []
    assert c.call("GET", f"/members/{maker.did}")["credit_code"] == "91330100716105852F"
    assert c.call("GET", "/members/regions")["regions"] == [{"region": "330000", "name": "浙江省", "members": 1}]
    page = c.call("GET", "/explorer/entries?type=identity.register&limit=1")
    assert [e["payload"]["did"] for e in page["items"]] == [maker.did] and page["older"] == 1
    older = c.call("GET", f"/explorer/entries?type=identity.register&before={page['older']}")
    assert [e["seq"] for e in older["items"]] == [0] and older["older"] is None
    assert c.call("GET", "/explorer/entries/1")["payload"]["region"] == "330106"
    assert c.call("GET", "/explorer/alerts")["items"] == []
    with pytest.raises(InvalidInput, match="not a transaction type"):
        c.call("GET", "/explorer/entries?type=nothing")
    with pytest.raises(InvalidInput, match="region"):
        c.call("GET", "/members?region=3300")
    with pytest.raises(NotFound):
        c.call("GET", "/members/did:key:z6MkNobody")
    for path in ("/members", "/explorer/entries", "/explorer/witnesses", "/explorer/checkpoints"):
        r = http.get(path)
        assert r.status_code == 401 and r.json()["type"] == "urn:qdsn:problem:bad-signature", path
    bad = c.request("GET", "/explorer/entries?limit=100000")
    assert bad.status_code == 400 and "limit" in bad.json()["detail"]
