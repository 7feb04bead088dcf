"""The graph's routes on the regulator's node: its own signed requests only, answers that follow the log as it
grows, problem+json for a bad question."""

import pytest
from fastapi.testclient import TestClient

from qdsn.api.app import create_app
from qdsn.api.client import NodeClient
from qdsn.errors import InvalidInput, NotFound, PermissionDenied
from qdsn.node import Node, NodeHome

from ..conftest import LOOPBACK

FAST = 2**4


@pytest.fixture
def bureau(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "市场监管局", "pw", scrypt_n=FAST)
    makers = []
    for i, region in enumerate(("330106", "320505")):
        m = NodeHome.init(tmp_path / f"m{i}", "enterprise", f"企业{i}", "pw", origin=reg.origin, scrypt_n=FAST)
        reg.submit("identity.register", m.registration() | {"region": region, "industry": "C3831"})
        makers.append(m)
    node = Node(reg)
    http = TestClient(create_app(node), client=LOOPBACK)
    yield node, makers, http
    node.close()


def client(http, home):
    return NodeClient(str(http.base_url), home.key(), home.did, http=http)


def test_the_regulator_asks_and_the_answers_follow_the_log(bureau):
    node, (a, b), http = bureau
    me = client(http, node.home)
    assert me.call("GET", "/graph/summary")["relations"] == 0
    assert me.call("GET", f"/graph/recall?source={a.did}")["enterprises"] == []
    node.submit([a.sign("supply.relation", {"supplier": a.did, "customer": b.did, "product": "铜杆"})])
    impact = me.call("GET", f"/graph/recall?source={a.did}")
    assert [e["did"] for e in impact["enterprises"]] == [b.did]
    coverage = me.call("GET", "/graph/coverage")
    assert [(r["key"], r["enterprises"]) for r in coverage] == [("320000", 1), ("330000", 1)]
    assert me.call("GET", "/graph/suppliers?product=铜杆")["hhi"] == 10000.0
    assert me.call("GET", "/graph/open") == []
    svg = me.call("GET", "/graph/map.svg?indicator=enterprises")
    assert svg.startswith("<svg") and 'data-code="330000"' in svg and "浙江" in svg
    assert http.get("/graph/map.svg").status_code == 401  # unsigned: refused before anything is drawn


def test_no_one_else_asks_and_bad_questions_are_problems(bureau):
    node, (a, _), http = bureau
    with pytest.raises(PermissionDenied, match="regulator's own"):
        client(http, a).call("GET", "/graph/summary")
    me = client(http, node.home)
    with pytest.raises(NotFound, match="not a participant"):
        me.call("GET", "/graph/recall?source=did:key:z6MkpTHR8VNsBxYAAWHut2Geadd9jSwuBV8xRoAnwWsdvktH")
    with pytest.raises(InvalidInput):
        me.call("GET", "/graph/coverage?region=33")
    with pytest.raises(InvalidInput, match="GB/T 2260"):
        me.call("GET", "/graph/coverage?region=999999")
    with pytest.raises(InvalidInput, match="indicator"):
        me.call("GET", "/graph/map.svg?indicator=nope")
