"""What one counterpart may make a provider's node decide and record: a throttle per signer's DID in front
of every such route (429 with Retry-After), repeated refusals on the ledger as one counted entry, open
negotiations and pending jobs bounded, and a private offer that answers as an unknown one."""

import base64

import numpy as np
import pytest
from fastapi.testclient import TestClient

from qdsn.api.app import OVERALL, PER_COUNTERPART, create_app
from qdsn.api.client import NodeClient
from qdsn.api.signatures import Throttle
from qdsn.compute import params
from qdsn.errors import Conflict, NotFound, RateLimited
from qdsn.ledger import tx
from qdsn.node import jobs, pact
from qdsn.node.consumer import negotiate
from qdsn.node.provider import MAX_OPEN
from qdsn.quality import multivariate as mv

from .test_jobs_api import ask
from .test_jobs_api import lab as lab  # the fixtures of the jobs and negotiation API tests
from .test_negotiation_api import market as market


def decisions(node, since):
    return [e.payload for e in map(tx.from_leaf, node.ledger.store.leaves(since, node.ledger.size))
            if e.type == "access.decision"]  # fmt: skip


@pytest.fixture
def later(monkeypatch):
    """Move the node's denial clock: `later(s)` is `s` seconds after the test began."""
    start = pact.clock()
    return lambda s: monkeypatch.setattr(pact, "clock", lambda: start + s)


def test_repeated_refusals_make_one_counted_entry(market, later):
    """The review's flood: a rival asking again and again for an offer it tampered with made the maker's
    node sign one ledger entry per request. Now the first refusal goes on at once, the rest are counted
    into one entry after the window; every refusal is still on the ledger, by its count."""
    later(0)
    node, clients, _, public, _ = market
    tampered = dict(public, permission=[{"action": "compute"}])
    before = node.ledger.size
    for i in range(30):
        n = clients["rival"].call("POST", "/negotiations/request", {"consumerPid": f"urn:uuid:{i}", "offer": tampered})
        assert n["dspace:state"] == "dspace:TERMINATED" and n["dspace:code"] == "offer-mismatch"
    (first,) = decisions(node, before)
    assert (first["allowed"], first["rule"], first["point"]) == (False, "offer", "negotiation")
    assert "count" not in first
    later(pact.DENIAL_WINDOW)
    size = node.ledger.size
    assert pact.flush_denials(node) == 1
    (rest,) = decisions(node, size)
    assert rest["count"] == 29 and rest["requester"] == first["requester"] == market[2]["rival"].did
    assert pact.flush_denials(node) == 0  # nothing counted twice


def test_a_counterpart_past_its_budget_gets_429_before_anything_is_decided(market):
    node, _, homes, public, _ = market
    now = [0.0]
    app = create_app(node, counterparts=Throttle(PER_COUNTERPART, OVERALL, clock=lambda: now[0]))
    http = TestClient(app)
    rival = NodeClient(str(http.base_url), homes["rival"].key(), homes["rival"].did, http=http)
    cqc = NodeClient(str(http.base_url), homes["cqc"].key(), homes["cqc"].did, http=http)
    tampered = dict(public, permission=[{"action": "compute"}])
    codes = [rival.request("POST", "/negotiations/request", {"consumerPid": f"urn:uuid:{i}", "offer": tampered})
             for i in range(int(PER_COUNTERPART[0]) + 20)]  # fmt: skip
    assert [r.status_code for r in codes].count(201) == PER_COUNTERPART[0]
    last = codes[-1]
    assert last.status_code == 429 and int(last.headers["retry-after"]) >= 1
    assert "too many requests from your organisation" in last.json()["detail"]
    size = node.ledger.size
    with pytest.raises(RateLimited):  # the budget is the DID's, across every route that decides
        rival.call("POST", "/transfers/request", {"consumerPid": "x", "agreementId": "urn:x", "format":
                                                  "urn:qdsn:transfer:compute"})  # fmt: skip
    assert node.ledger.size == size
    assert cqc.call("POST", "/negotiations/request", {"consumerPid": "c", "offer": public})["dspace:state"] == \
        "dspace:AGREED"  # another organisation is not held up  # fmt: skip
    now[0] += 60
    assert rival.request("POST", "/negotiations/request", {"consumerPid": "y", "offer": tampered}).status_code == 201


ROUTES = [
    "/negotiations/request", "/negotiations/urn:x/agreement/verification", "/negotiations/urn:x/termination",
    "/transfers/request", "/transfers/urn:x/data", "/transfers/urn:x/start", "/transfers/urn:x/completion",
    "/transfers/urn:x/suspension", "/transfers/urn:x/termination", "/jobs", "/notifications/inbox", "/ai/score",
]  # fmt: skip


@pytest.mark.parametrize("path", ROUTES)
def test_every_route_that_decides_is_throttled_per_did(market, path):
    node, _, homes, _, _ = market
    http = TestClient(create_app(node, counterparts=Throttle((2, 1e-6), (100, 1), clock=lambda: 0.0)))
    rival = NodeClient(str(http.base_url), homes["rival"].key(), homes["rival"].did, http=http)
    first = [rival.request("POST", path, {}).status_code for _ in range(2)]
    assert 429 not in first
    third = rival.request("POST", path, {})
    assert third.status_code == 429 and third.headers["retry-after"].isdigit()


def test_a_private_offer_answers_as_an_unknown_uid(market):
    """The review's probe: a uid that exists but is hidden from the requester answered 201 (TERMINATED,
    and a denial on the ledger), one that does not exist 404."""
    node, clients, homes, _, private = market
    before = node.ledger.size
    hidden = clients["rival"].request("POST", "/negotiations/request", {"consumerPid": "p", "offer": private})
    ghost = private | {"uid": "urn:qdsn:offer:line-1:nobody"}
    unknown = clients["rival"].request("POST", "/negotiations/request", {"consumerPid": "p", "offer": ghost})
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json() == orjson_swap(unknown.json(), ghost["uid"], private["uid"])
    assert node.ledger.size == before  # nothing decided, nothing recorded
    assert node.policies.open_negotiations(homes["rival"].did) == 0
    with pytest.raises(NotFound, match="no offer"):  # the same through the client
        clients["rival"].call("POST", "/negotiations/request", {"consumerPid": "p", "offer": private})
    ok = clients["cqc"].call("POST", "/negotiations/request", {"consumerPid": "c", "offer": private})
    assert ok["dspace:state"] == "dspace:AGREED"  # the one it names still sees it


def orjson_swap(doc, old, new):
    """`doc` with every string's `old` replaced by `new`."""
    if isinstance(doc, dict):
        return {k: orjson_swap(v, old, new) for k, v in doc.items()}
    return doc.replace(old, new) if isinstance(doc, str) else doc


def test_open_negotiations_are_bounded_per_counterpart(market):
    node, clients, _, public, _ = market
    c = clients["cqc"]
    pids = [c.call("POST", "/negotiations/request", {"consumerPid": f"c-{i}", "offer": public})["dspace:providerPid"]
            for i in range(MAX_OPEN)]  # fmt: skip
    size = node.ledger.size
    with pytest.raises(Conflict, match=f"{MAX_OPEN} is the most one counterpart may hold open") as e:
        c.call("POST", "/negotiations/request", {"consumerPid": "one-more", "offer": public})
    assert "terminate the others" in e.value.fix
    assert node.ledger.size == size  # refused before anything was decided
    assert clients["rival"].call("POST", "/negotiations/request", {"consumerPid": "r", "offer": public})[
        "dspace:state"] == "dspace:AGREED"  # the bound is per counterpart  # fmt: skip
    c.call("POST", f"/negotiations/{pids[0]}/termination", {"code": "x", "reason": "not needed"})
    c.call("POST", f"/negotiations/{pids[1]}/agreement/verification", {})
    for i in range(2):  # a finalized or terminated negotiation is no longer open
        assert c.call("POST", "/negotiations/request", {"consumerPid": f"d-{i}", "offer": public})["dspace:state"] == \
            "dspace:AGREED"  # fmt: skip
    with pytest.raises(Conflict):
        c.call("POST", "/negotiations/request", {"consumerPid": "again", "offer": public})


def test_pending_jobs_are_bounded_per_agreement_requester_and_bytes(lab, monkeypatch):
    """The review's suspicion: every allowed job request kept its archive (up to about 8 MiB) pending
    until the owner acted, and wrote an entry, without bound."""
    node, c, blob = lab
    offer = node.policies.offer("urn:qdsn:offer:line-1:compute")[1]
    a = negotiate(c["cqc"], offer)["uid"]
    for _ in range(jobs.MAX_PENDING_PER_AGREEMENT):
        assert ask(c["cqc"], a, blob)["state"] == "pending"
    size = node.ledger.size
    with pytest.raises(Conflict, match=f"{jobs.MAX_PENDING_PER_AGREEMENT} is the most one agreement may have") as e:
        ask(c["cqc"], a, blob)
    assert "wait for the owner to approve or deny" in e.value.fix
    assert node.ledger.size == size  # refused before it was decided or stored
    assert len(c["maker"].call("GET", "/jobs")["jobs"]) == jobs.MAX_PENDING_PER_AGREEMENT
    first = c["cqc"].call("GET", "/jobs")["jobs"][0]["id"]
    c["maker"].call("POST", f"/jobs/{first}/denial", {"reason": "not now"})
    assert ask(c["cqc"], a, blob)["state"] == "pending"  # room again once the owner acts
    # across agreements, and by the bytes their archives hold
    monkeypatch.setattr(jobs, "MAX_PENDING", jobs.MAX_PENDING_PER_AGREEMENT + 1)
    b = negotiate(c["cqc"], offer)["uid"]
    assert ask(c["cqc"], b, blob)["state"] == "pending"
    with pytest.raises(Conflict, match=f"{jobs.MAX_PENDING} is the most one requester may have pending"):
        ask(c["cqc"], b, blob)
    monkeypatch.setattr(jobs, "MAX_PENDING", 100)
    monkeypatch.setattr(jobs, "MAX_PENDING_BYTES", (jobs.MAX_PENDING_PER_AGREEMENT + 1.5) * len(
        base64.b64encode(blob)))  # fmt: skip
    with pytest.raises(Conflict, match="bytes of model archives"):
        ask(c["cqc"], b, blob)


def test_refused_jobs_and_transfers_are_counted_not_written_one_by_one(lab, later):
    later(0)
    node, c, blob = lab
    a = negotiate(c["cqc"], node.policies.offer("urn:qdsn:offer:line-1:compute")[1])["uid"]
    before = node.ledger.size
    for _ in range(5):
        with pytest.raises(PermissionError, match="another consumer"):
            ask(c["rival"], a, blob)
        with pytest.raises(PermissionError, match="another consumer"):
            c["rival"].call("POST", "/transfers/request", {"consumerPid": "r", "agreementId": a,
                                                            "format": "urn:qdsn:transfer:compute"})  # fmt: skip
    assert len(decisions(node, before)) == 1  # one key: the rival, the agreement, the transfer point
    later(pact.DENIAL_WINDOW)
    pact.flush_denials(node)
    assert sum(p.get("count", 1) for p in decisions(node, before)) == 10


def test_ai_score_rows_are_limited_per_did(market):
    """The review: any participant could have another member's node score 10,000 rows per request against
    a file of its own, unmetered. Now the rows count against its organisation's budget."""
    _, clients, _, _, _ = market
    x = np.random.default_rng(0).normal(size=(200, 3))
    blob = params.dump_arrays(mv.fit_t2(x, names=("a", "b", "c")).arrays())
    body = {"model": base64.b64encode(blob).decode(), "sha256": params.digest(blob),
            "rows": np.random.default_rng(1).normal(size=(10_000, 3)).round(3).tolist()}  # fmt: skip
    for _ in range(2):
        assert len(clients["rival"].call("POST", "/ai/score", body)["scores"]) == 10_000
    r = clients["rival"].request("POST", "/ai/score", body)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert "too many rows scored for your organisation" in r.json()["detail"]
    assert len(clients["cqc"].call("POST", "/ai/score", body | {"rows": body["rows"][:10]})["scores"]) == 10
