"""The supervision routes of the node API: the regulator acts through its own node only, everyone reads the
actions, participants read indicators; every refusal is problem+json with its reason."""

import pytest
from fastapi.testclient import TestClient

from qdsn.api.app import create_app
from qdsn.api.client import NodeClient
from qdsn.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from qdsn.node import Node, NodeHome

from ..conftest import LOOPBACK

FAST = 2**4


@pytest.fixture
def network(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    maker = NodeHome.init(tmp_path / "maker", "enterprise", "Zhejiang Cable", "pw", origin=reg.origin, scrypt_n=FAST)
    lab = NodeHome.init(tmp_path / "lab", "certifier", "CQC", "pw", origin=reg.origin, scrypt_n=FAST)
    reg.submit("identity.register", maker.registration() | {"region": "330106"})
    reg.submit("identity.register", lab.registration())
    node = Node(reg)
    http = TestClient(create_app(node), client=LOOPBACK)
    yield node, maker, lab, http
    node.close()


def client(http, home):
    return NodeClient(str(http.base_url), home.key(), home.did, http=http)


def test_the_regulator_acts_through_its_own_node_and_everyone_reads(network):
    node, maker, lab, http = network
    reg = client(http, node.home)
    with pytest.raises(PermissionDenied, match="only this node's own regulator"):
        client(http, lab).call("POST", "/supervision/actions", {"action": "suspend", "scope": "member",
                                                                "subject": maker.did, "reason": "x"})  # fmt: skip
    for body, why in (({"action": "suspend", "scope": "member", "subject": maker.did}, InvalidInput),
                      ({"action": "suspend", "scope": "member", "subject": 7, "reason": "x"}, InvalidInput),
                      ({"action": "suspend", "scope": "issuer", "subject": maker.did, "reason": "x"}, InvalidInput),
                      ({"action": "reinstate", "scope": "member", "subject": maker.did, "reason": "x"}, Conflict),
                      ({"action": "suspend", "scope": "member", "subject": maker.did, "reason": "x",
                        "credentials": "C-1"}, InvalidInput),
                      ({"action": "suspend", "scope": "model", "subject": "ab" * 32, "reason": "x"},
                       NotFound)):  # fmt: skip
        with pytest.raises(why):
            reg.call("POST", "/supervision/actions", body)
    suspend = {"action": "suspend", "scope": "member", "subject": maker.did, "reason": "未按期整改",
               "notification": "urn:uuid:n-2"}  # fmt: skip
    got = reg.call("POST", "/supervision/actions", suspend)
    assert got["seq"] == 3 and got["payload"]["reason"] == "未按期整改"
    public = http.get("/supervision/actions").json()
    assert [(a["action"], a["subject"]) for a in public["actions"]] == [("suspend", maker.did)]
    assert public["in_force"][0]["reason"] == "未按期整改"
    assert http.get("/supervision/actions", params={"subject": lab.did}).json()["actions"] == []

    seen = client(http, lab).call("GET", f"/indicators/enterprises/{maker.did}")
    assert seen["name"] == "Zhejiang Cable" and seen["level"] is None
    standing = next(c for c in seen["criteria"] if c["key"] == "standing")
    assert standing["met"] is False and "未按期整改" in standing["detail"]
    region = client(http, lab).call("GET", "/indicators/regions/3301")
    assert region["summary"]["enterprises"] == 1 and region["enterprises"][0]["did"] == maker.did
    assert client(http, lab).call("GET", "/indicators/regions/32")["summary"]["enterprises"] == 0
    with pytest.raises(InvalidInput, match="GB/T 2260"):
        client(http, lab).call("GET", "/indicators/regions/abc")
    with pytest.raises(InvalidInput, match="certifier"):
        client(http, maker).call("GET", f"/indicators/enterprises/{lab.did}")
    assert http.get(f"/indicators/enterprises/{maker.did}").status_code == 401  # participants only
