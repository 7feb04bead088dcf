"""Transfer processes over the API: sealed deliveries that only the consumer opens and that prove
every record against its anchored batch, each start and use decided and recorded, counts enforced
on the ledger, agreements that end, and the same meters for owner and consumer."""

import base64
import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from fastapi.testclient import TestClient

from qdsn.api.app import create_app
from qdsn.api.client import NodeClient
from qdsn.crypto import hpke
from qdsn.errors import IntegrityError, InvalidInput, NotFound, PermissionDenied
from qdsn.identity.didkey import x25519_from_ed25519
from qdsn.ledger import tx
from qdsn.node import Node, NodeHome
from qdsn.node.consumer import negotiate, receive, transfer
from qdsn.node.provider import publish
from qdsn.node.transfer import delivery_info, expire

from ..conftest import LOOPBACK
from .conftest import FAST

SOON = (datetime.now(UTC) + timedelta(hours=1)).isoformat()


def offer(maker, dataset, uid, *, action="read", count=None, until=None):
    cons = [{"leftOperand": "purpose", "operator": "eq", "rightOperand": "certification"}]
    if count is not None:
        cons.append({"leftOperand": "count", "operator": "lteq", "rightOperand": count})
    if until is not None:
        cons.append({"leftOperand": "dateTime", "operator": "lteq", "rightOperand": until})
    rule = {"action": action, "constraint": cons, "duty": [{"action": "compensate", "refinement": [
        {"leftOperand": "payAmount", "operator": "eq", "rightOperand": 50, "unit": "CNY"}]}]}  # fmt: skip
    return {
        "@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Offer", "uid": uid,
        "profile": "urn:qdsn:odrl:profile:v1", "assigner": maker.did, "target": f"urn:qdsn:dataset:{dataset}",
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
    maker = homes["maker"]
    node = Node(maker, operator=True)
    for ds in ("line-1", "line-2"):
        node.submit([maker.sign("dataset.declare", {"dataset": ds, "title": ds, "kind": "measurements"})])
        node.vault.create(ds, "measurements")
        for start in (0, 100):
            rows = [{"characteristic": "resistance", "value": 17.0 + (start + i) / 1000, "time": "2026-03-01T08:00:00Z"}
                    for i in range(100)]  # fmt: skip
            batch = node.vault.add_batch(ds, rows)
            (receipt,) = node.order([maker.sign("dataset.anchor", batch.anchor_payload())])
            node.vault.mark_anchored(batch, receipt.txid)
    publish(node, "line-1", offer(maker, "line-1", "urn:qdsn:offer:line-1:read", count=2, until=SOON))
    publish(node, "line-1", offer(maker, "line-1", "urn:qdsn:offer:line-1:compute", action="compute"))
    publish(node, "line-2", offer(maker, "line-2", "urn:qdsn:offer:line-2:read"))
    http = TestClient(create_app(node), client=LOOPBACK)
    clients = {n: NodeClient(str(http.base_url), h.key(), h.did, http=http) for n, h in homes.items()}
    yield node, clients, homes
    node.close()


def agreed(node, client, uid):
    return negotiate(client, node.policies.offer(uid)[1])["uid"]


def decisions(node):
    return [e.payload for e in map(tx.from_leaf, node.ledger.store.leaves(0, node.ledger.size))
            if e.type == "access.decision"]  # fmt: skip


def test_sealed_delivery_proves_every_record_and_meters_it(market):
    node, clients, homes = market
    cqc = clients["cqc"]
    a = agreed(node, cqc, "urn:qdsn:offer:line-1:read")
    t = transfer(cqc, a, "sealed-delivery", purpose="certification", records={"first": 50, "count": 120})
    assert t["dspace:state"] == "dspace:STARTED" and t["dspace:dataAddress"]["dspace:endpoint"].endswith("/data")
    raw = cqc.request("POST", t["dspace:dataAddress"]["dspace:endpoint"])
    assert raw.status_code == 200 and b"resistance" not in raw.content and b"17.05" not in raw.content
    got = receive(node.ledger, homes["cqc"].key(), homes["cqc"].did, raw.json())
    assert [r["seq"] for r in got] == list(range(50, 170))  # across both anchored batches
    assert got[0]["record"]["value"] == 17.05 and got[-1]["record"]["value"] == 17.169
    assert [(d["point"], d["allowed"]) for d in decisions(node)][-3:] == [
        ("negotiation", True), ("transfer", True), ("use", True)]  # fmt: skip
    with pytest.raises(IntegrityError, match="does not open"):  # sealed to cqc: nobody else opens it
        receive(node.ledger, homes["rival"].key(), homes["cqc"].did, raw.json())
    with pytest.raises(NotFound):  # nor may anybody else fetch it
        clients["rival"].call("POST", t["dspace:dataAddress"]["dspace:endpoint"])
    assert clients["maker"].call("GET", "/usage") == cqc.call("GET", "/usage")  # the same figures for both
    mine = cqc.call("GET", f"/usage?agreement={a}")
    assert mine["meters"][0]["uses"] == 1 and mine["meters"][0]["records"] == 120
    assert mine["invoice"]["totals"] == {"CNY": 50.0}
    assert clients["rival"].call("GET", "/usage")["meters"] == []
    with pytest.raises(InvalidInput, match="RFC 3339"):
        cqc.call("GET", "/usage?since=yesterday")


def test_a_forged_record_fails_its_proof(market):
    node, clients, homes = market
    cqc = clients["cqc"]
    a = agreed(node, cqc, "urn:qdsn:offer:line-1:read")
    t = transfer(cqc, a, "sealed-delivery", purpose="certification", records={"first": 0, "count": 3})
    d = cqc.call("POST", f"/transfers/{t['dspace:providerPid']}/data")
    info = delivery_info(node.did, homes["cqc"].did, t["dspace:providerPid"], a)
    body = orjson.loads(hpke.unseal(homes["cqc"].key(), base64.urlsafe_b64decode(d["qdsn:sealed"] + "=="), info))
    body["records"][1]["leaf"] = body["records"][1]["leaf"].replace("17.001", "16.001")
    forged = hpke.seal(x25519_from_ed25519(homes["cqc"].key().verify_key.raw), orjson.dumps(body), info)
    d["qdsn:sealed"] = base64.urlsafe_b64encode(forged).decode().rstrip("=")
    with pytest.raises(IntegrityError):
        receive(node.ledger, homes["cqc"].key(), homes["cqc"].did, d)
    body["records"][1]["leaf"] = body["records"][1]["leaf"].replace("16.001", "17.001")
    body["batches"][0]["root"] = "00" * 32
    d["qdsn:sealed"] = base64.urlsafe_b64encode(hpke.seal(
        x25519_from_ed25519(homes["cqc"].key().verify_key.raw), orjson.dumps(body), info)).decode()  # fmt: skip
    with pytest.raises(IntegrityError, match="not the one anchored"):
        receive(node.ledger, homes["cqc"].key(), homes["cqc"].did, d)


def test_count_limit_is_counted_on_the_ledger(market):
    node, clients, _ = market
    cqc = clients["cqc"]
    a = agreed(node, cqc, "urn:qdsn:offer:line-1:read")
    t = transfer(cqc, a, "sealed-delivery", purpose="certification", records={"first": 0, "count": 10})
    data = f"/transfers/{t['dspace:providerPid']}/data"
    cqc.call("POST", data)
    cqc.call("POST", data)
    with pytest.raises(PermissionDenied, match="count must be lteq 2, was 3"):
        cqc.call("POST", data)
    with pytest.raises(PermissionDenied, match="count must be lteq 2, was 3"):  # a new process counts the same
        transfer(cqc, a, "sealed-delivery", purpose="certification", records={"first": 0, "count": 1})
    last = decisions(node)[-1]
    assert (last["point"], last["allowed"], last["agreement"]) == ("transfer", False, a)
    assert cqc.call("GET", f"/usage?agreement={a}")["meters"][0]["uses"] == 2


def test_refusals_are_recorded_and_say_why(market):
    node, clients, homes = market
    cqc = clients["cqc"]
    a = agreed(node, cqc, "urn:qdsn:offer:line-1:read")
    with pytest.raises(PermissionDenied, match="covers dataset line-1, not line-2"):
        transfer(cqc, a, "sealed-delivery", purpose="certification", dataset="line-2", records={"first": 0, "count": 1})
    assert decisions(node)[-1]["reason"] == f"agreement {a} covers dataset line-1, not line-2"
    with pytest.raises(PermissionDenied, match="purpose must be eq 'certification', was 'marketing'"):
        transfer(cqc, a, "sealed-delivery", purpose="marketing", records={"first": 0, "count": 1})
    with pytest.raises(PermissionDenied, match="another consumer"):  # somebody else's agreement
        transfer(clients["rival"], a, "sealed-delivery", purpose="certification", records={"first": 0, "count": 1})
    assert decisions(node)[-1]["requester"] == homes["rival"].did
    compute = agreed(node, cqc, "urn:qdsn:offer:line-1:compute")
    with pytest.raises(PermissionDenied, match="covers compute, not read"):  # the model may come; the data may not go
        transfer(cqc, compute, "sealed-delivery", purpose="certification", records={"first": 0, "count": 1})
    started = transfer(cqc, compute, "compute", purpose="certification")
    assert started["dspace:state"] == "dspace:STARTED" and "dspace:dataAddress" not in started
    with pytest.raises(InvalidInput, match="delivers no records"):
        cqc.call("POST", f"/transfers/{started['dspace:providerPid']}/data")
    with pytest.raises(InvalidInput, match="not all anchored"):
        transfer(cqc, a, "sealed-delivery", purpose="certification", records={"first": 150, "count": 51})
    with pytest.raises(InvalidInput, match="unknown transfer format"):
        cqc.call("POST", "/transfers/request", {"consumerPid": "c", "agreementId": a, "format": "HTTP_PULL"})
    with pytest.raises(InvalidInput, match="names its records"):
        transfer(cqc, a, "sealed-delivery", purpose="certification", records={"first": 0, "count": 0})
    with pytest.raises(NotFound, match="no agreement"):
        transfer(cqc, "urn:qdsn:agreement:nope", "sealed-delivery", records={"first": 0, "count": 1})


def test_the_process_follows_dsp_states(market):
    node, clients, _ = market
    cqc = clients["cqc"]
    a = agreed(node, cqc, "urn:qdsn:offer:line-2:read")
    pid = transfer(cqc, a, "sealed-delivery", purpose="certification", records={"first": 0, "count": 5})[
        "dspace:providerPid"
    ]
    s = cqc.call("POST", f"/transfers/{pid}/suspension", {"code": "audit", "reason": "pausing for an audit"})
    assert s["dspace:state"] == "dspace:SUSPENDED" and s["dspace:reason"] == ["pausing for an audit"]
    with pytest.raises(InvalidInput, match="is SUSPENDED"):
        cqc.call("POST", f"/transfers/{pid}/data")
    assert cqc.call("POST", f"/transfers/{pid}/start", {})["dspace:state"] == "dspace:STARTED"
    cqc.call("POST", f"/transfers/{pid}/data")
    done = cqc.call("POST", f"/transfers/{pid}/completion", {})
    assert done["dspace:state"] == "dspace:COMPLETED" and done["qdsn:uses"] == 1
    with pytest.raises(InvalidInput, match="COMPLETED is final"):
        cqc.call("POST", f"/transfers/{pid}/termination", {"reason": "too late"})
    with pytest.raises(NotFound):
        clients["rival"].call("GET", f"/transfers/{pid}")


def test_the_monitor_ends_expired_agreements(market):
    node, clients, _ = market
    cqc = clients["cqc"]
    a = agreed(node, cqc, "urn:qdsn:offer:line-1:read")
    other = agreed(node, cqc, "urn:qdsn:offer:line-2:read")
    pid = transfer(cqc, a, "sealed-delivery", purpose="certification", records={"first": 0, "count": 5})[
        "dspace:providerPid"
    ]
    assert expire(node) == []
    (ended,) = expire(node, datetime.now(UTC) + timedelta(hours=2))
    assert ended.uid == a and "dateTime bound" in node.policies.agreement(a).ended
    t = cqc.call("GET", f"/transfers/{pid}")
    assert t["dspace:state"] == "dspace:TERMINATED" and t["dspace:code"] == "expired"
    last = decisions(node)[-1]
    assert (last["agreement"], last["allowed"]) == (a, False) and "has passed" in last["reason"]
    with pytest.raises(PermissionDenied, match="has ended"):
        transfer(cqc, a, "sealed-delivery", purpose="certification", records={"first": 0, "count": 1})
    assert node.policies.agreement(other).ended is None  # no time bound: it stays


def test_the_running_node_ends_agreements_on_its_own(market):
    node, _, homes = market
    until = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    publish(node, "line-2", offer(homes["maker"], "line-2", "urn:qdsn:offer:line-2:brief", until=until))
    with TestClient(create_app(node, monitor=0.1), client=LOOPBACK) as http:  # the lifespan starts the monitor
        cqc = NodeClient(str(http.base_url), homes["cqc"].key(), homes["cqc"].did, http=http)
        a = agreed(node, cqc, "urn:qdsn:offer:line-2:brief")
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while node.policies.agreement(a).ended is None and datetime.now(UTC) < deadline:
            time.sleep(0.1)
    assert "has passed" in node.policies.agreement(a).ended
