"""The provider's catalog and contract negotiation over the API: offers shown to whom they name,
offers matched by hash, decisions on the ledger, and a reason for every refusal."""

import pytest
from fastapi.testclient import TestClient

from qdsn.api.app import create_app
from qdsn.api.client import NodeClient
from qdsn.errors import InvalidInput, NotFound
from qdsn.ledger import tx
from qdsn.node import Node, NodeHome
from qdsn.node.provider import publish
from qdsn.policy import offer_hash

from ..conftest import LOOPBACK
from .conftest import FAST


def offer(maker, uid, assignee=None):
    rule = {
        "action": "compute",
        "constraint": [{"leftOperand": "purpose", "operator": "eq", "rightOperand": "certification"}],
    }
    if assignee:
        rule["assignee"] = assignee
    return {
        "@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Offer", "uid": uid,
        "profile": "urn:qdsn:odrl:profile:v1", "assigner": maker.did, "target": "urn:qdsn:dataset:line-1",
        "permission": [rule],
    }  # fmt: skip


@pytest.fixture
def market(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    shared = str(tmp_path / "reg" / "ledger.db")  # one machine: the members share the log's file
    homes = {
        name: NodeHome.init(tmp_path / name, role, name, "pw", ledger_url=shared, scrypt_n=FAST)
        for name, role in (("maker", "enterprise"), ("cqc", "certifier"), ("rival", "enterprise"))
    }
    for h in homes.values():
        reg.submit("identity.register", h.registration())
    maker, cqc = homes["maker"], homes["cqc"]
    maker.submit("dataset.declare", {"dataset": "line-1", "title": "Line 1 resistance", "kind": "measurements"})
    node = Node(maker, operator=True)
    public = offer(maker, "urn:qdsn:offer:line-1:public")
    private = offer(maker, "urn:qdsn:offer:line-1:cqc", assignee=cqc.did)
    publish(node, "line-1", public)
    publish(node, "line-1", private)
    http = TestClient(create_app(node), client=LOOPBACK)
    clients = {n: NodeClient(str(http.base_url), h.key(), h.did, http=http) for n, h in homes.items()}
    yield node, clients, homes, public, private
    node.close()


def test_catalog_shows_offers_to_whom_they_name(market):
    node, clients, _, public, private = market
    anonymous = clients["cqc"].call("POST", "/catalog/request", {}, signed=False)
    (ds,) = anonymous["dcat:dataset"]
    assert ds["dct:title"] == "Line 1 resistance" and [o["uid"] for o in ds["odrl:hasPolicy"]] == [public["uid"]]
    assert clients["cqc"].call("GET", "/catalog", signed=False) == anonymous
    signed = clients["cqc"].call("POST", "/catalog/request", {})
    assert clients["cqc"].call("GET", "/catalog") == signed
    assert {o["uid"] for o in signed["dcat:dataset"][0]["odrl:hasPolicy"]} == {public["uid"], private["uid"]}
    sets = [tx.from_leaf(x) for x in node.ledger.store.leaves(0, node.ledger.size)]
    assert {e.payload["hash"] for e in sets if e.type == "policy.set"} == {offer_hash(public), offer_hash(private)}


def test_negotiation_to_finalized(market):
    node, clients, homes, _, private = market
    c = clients["cqc"]
    n = c.call("POST", "/negotiations/request", {"consumerPid": "urn:uuid:c-1", "offer": private})
    assert n["dspace:state"] == "dspace:AGREED"
    assert n["dspace:agreement"]["offer"] == {"uid": private["uid"], "hash": offer_hash(private)}
    pid = n["dspace:providerPid"]
    done = c.call("POST", f"/negotiations/{pid}/agreement/verification", {})
    assert done["dspace:state"] == "dspace:FINALIZED" == c.call("GET", f"/negotiations/{pid}")["dspace:state"]
    decisions = [
        e for e in map(tx.from_leaf, node.ledger.store.leaves(0, node.ledger.size)) if e.type == "access.decision"
    ]
    p = decisions[-1].payload
    assert (p["point"], p["allowed"], p["requester"]) == ("negotiation", True, homes["cqc"].did)
    with pytest.raises(InvalidInput, match="cannot move a negotiation in state FINALIZED"):
        c.call("POST", f"/negotiations/{pid}/agreement/verification", {})
    with pytest.raises(NotFound):  # somebody else's negotiation does not exist for them
        clients["rival"].call("GET", f"/negotiations/{pid}")


def test_refusals_say_why_and_are_recorded(market):
    node, clients, homes, public, private = market
    tampered = private | {"permission": [{"action": "use", "assignee": homes["cqc"].did}]}
    n = clients["cqc"].call("POST", "/negotiations/request", {"consumerPid": "urn:uuid:c-2", "offer": tampered})
    assert n["dspace:state"] == "dspace:TERMINATED" and n["dspace:code"] == "offer-mismatch"
    assert "differs from urn:qdsn:offer:line-1:cqc as published" in n["dspace:reason"][0]
    last = tx.from_leaf(node.ledger.store.leaves(node.ledger.size - 1, node.ledger.size)[0]).payload
    assert (last["allowed"], last["rule"], last["point"]) == (False, "offer", "negotiation")
    size = node.ledger.size  # an offer granted to another does not exist for the rival: nothing is decided
    with pytest.raises(NotFound, match="no offer 'urn:qdsn:offer:line-1:cqc' here"):
        clients["rival"].call("POST", "/negotiations/request", {"consumerPid": "urn:uuid:r-1", "offer": private})
    assert node.ledger.size == size
    ok = clients["cqc"].call("POST", "/negotiations/request", {"consumerPid": "urn:uuid:c-3", "offer": public})
    ended = clients["cqc"].call(
        "POST", f"/negotiations/{ok['dspace:providerPid']}/termination", {"code": "price", "reason": "too expensive"}
    )
    assert ended["dspace:state"] == "dspace:TERMINATED" and ended["dspace:reason"] == ["too expensive"]
    with pytest.raises(NotFound, match="no offer"):
        clients["cqc"].call("POST", "/negotiations/request", {"consumerPid": "x", "offer": public | {"uid": "urn:x:1"}})
    with pytest.raises(InvalidInput, match="carries consumerPid"):
        clients["cqc"].call("POST", "/negotiations/request", {"offer": public})
