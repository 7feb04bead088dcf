"""The inspection endpoints: the regulator's own node commits, draws and records; anyone reads the plans and
re-runs a draw; the regulator sees every class, an enterprise only its own."""

import pytest
from fastapi.testclient import TestClient

from qdsn.api.app import create_app
from qdsn.api.client import NodeClient
from qdsn.errors import InvalidInput, NotFound, PermissionDenied
from qdsn.node import Node, NodeHome

from ..conftest import LOOPBACK
from .conftest import FAST


@pytest.fixture
def network(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    homes = [NodeHome.init(tmp_path / f"m{i}", "enterprise", f"Maker {i}", "pw", origin=reg.origin, scrypt_n=FAST)
             for i in range(4)]  # fmt: skip
    for h in homes:
        reg.submit("identity.register", h.registration() | {"industry": "C3831"})
    node = Node(reg)
    http = TestClient(create_app(node), client=LOOPBACK)
    yield node, homes, http
    node.close()


def client(http, home):
    return NodeClient(str(http.base_url), home.key(), home.did, http=http)


def test_plan_draw_verify_and_who_sees_what(network):
    node, (m0, m1, *_), http = network
    reg, maker = client(http, node.home), client(http, m0)
    result = {"enterprise": m1.did, "product": "BV 2.5", "standard": "GB/T 5023.3-2008", "passed": False,
              "date": "2026-03-01"}  # fmt: skip
    assert reg.call("POST", "/supervision/inspections", result)["entry"] > 0
    with pytest.raises(PermissionDenied, match="own operator"):
        maker.call("POST", "/supervision/inspections", result)
    with pytest.raises(InvalidInput, match="'passed' must be a JSON bool"):
        reg.call("POST", "/supervision/inspections", result | {"passed": "no"})
    with pytest.raises(InvalidInput, match="YYYY-MM-DD"):
        reg.call("POST", "/supervision/inspections", result | {"date": "1 March"})

    seen = reg.call("GET", "/supervision/risk?as_of=2026-03-31")["assessments"]
    assert len(seen) == 4 and seen[0]["enterprise"] == m1.did
    own = maker.call("GET", "/supervision/risk")["assessments"]
    assert [a["enterprise"] for a in own] == [m0.did]
    with pytest.raises(PermissionDenied, match="each enterprise's own"):
        maker.call("GET", f"/supervision/risk?enterprise={m1.did}")
    with pytest.raises(PermissionDenied, match="each enterprise's own"):
        maker.call("GET", f"/supervision/inspections?enterprise={m1.did}")
    assert maker.call("GET", "/supervision/inspections")["results"] == []  # its own: none
    assert [r["enterprise"] for r in reg.call("GET", "/supervision/inspections")["results"]] == [m1.did]

    plan = {"plan": "2026-Q1", "title": "电线电缆", "count": 2, "as_of": "2026-03-31", "inspectors": ["E1", "E2"]}
    with pytest.raises(PermissionDenied, match="own operator"):
        maker.call("POST", "/supervision/plans", plan)
    with pytest.raises(InvalidInput, match="'count' must be a JSON int"):
        reg.call("POST", "/supervision/plans", plan | {"count": "2"})
    committed = reg.call("POST", "/supervision/plans", plan)
    assert committed["population"] == 4 and committed["per_inspection"] == 2
    assert http.get("/supervision/plans/2026-Q1/verification").json()["outcome"] == "incomplete"
    drawn = reg.call("POST", "/supervision/plans/2026-Q1/draw")
    assert len(drawn["selection"]) == 2 and [sorted(t) for t in drawn["inspectors"]] == [["E1", "E2"]] * 2
    public = http.get("/supervision/plans").json()["plans"][0]
    assert public["seed"] == drawn["seed"] and public["selection"] == drawn["selection"]
    verified = http.get("/supervision/plans/2026-Q1/verification").json()
    assert verified["outcome"] == "verified", verified
    r = http.get("/supervision/plans/nope/verification")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    with pytest.raises(NotFound):
        reg.call("POST", "/supervision/plans/nope/draw")
