"""What the other organisation controls at the PACT boundary, each tried: the events URL it registers,
how often it asks, the timing of its asynchronous requests, the case of its filter names, the scheme it
asks for credentials over, the events it posts, the Host header it sends."""

import time

import httpx
import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from qdsn.api import pact as pact_api
from qdsn.api.app import create_app
from qdsn.api.client import NodeClient
from qdsn.api.signatures import Throttle
from qdsn.data import pact
from qdsn.errors import Conflict, InvalidInput, PermissionDenied
from qdsn.node import pact as host
from qdsn.policy.meter import usage

from ..conftest import LOOPBACK
from .conftest import EVENTS_URL
from .test_rest_api import error, event, ids, post


def decisions_of(world, agreement):
    return [d for d in world.decisions() if d.get("agreement") == agreement and d["point"] == "use"]


# -- 1. events go only to the node the ledger records for the recipient ----------------------------


def test_an_events_url_away_from_the_recipients_recorded_node_is_refused(world):
    for elsewhere in ("https://attacker.example/3/events", "https://buyer.example.attacker.example/3/events",
                      "https://buyer.example:8443/3/events", "https://10.0.0.1/3/events"):  # fmt: skip
        with pytest.raises(PermissionDenied, match=r"is not at https://buyer\.example"):
            world.credentials("buyer", world.agreement, events=elsewhere)
        with pytest.raises(PermissionDenied, match=r"is not at https://buyer\.example"):
            host.add_client(world.node, agreement=world.agreement, events_url=elsewhere)
    with pytest.raises(InvalidInput, match="not an https URL"):
        host.add_client(world.node, agreement=world.agreement, events_url="https://buyer.example/../admin")
    # the rival's node is recorded nowhere: no events URL at all, not even the buyer's
    rival = world.agree("rival", "urn:qdsn:offer:pcf")
    with pytest.raises(PermissionDenied, match="records no node URL"):
        world.credentials("rival", rival, events=EVENTS_URL)
    assert host.add_client(world.node, agreement=world.agreement, events_url=EVENTS_URL)["client_id"]


def test_an_answer_goes_nowhere_once_the_ledger_moves_the_recipients_node(world):
    creds = world.credentials("buyer", world.agreement)
    asked = event("RequestCreatedEvent", {"productId": ["urn:gtin:2000"]})
    assert post(world, asked, token=world.token(creds)).status_code == 200
    key = next(p["key"] for p in host.pending_requests(world.node) if p["event"]["id"] == asked["id"])
    before = len(world.decisions())
    moved = {"did": world.homes["buyer"].did, "url": "https://moved.buyer.example"}
    world.node.submit([world.reg.sign("identity.endpoint", moved)])
    try:
        assert host.node_url(world.node, world.homes["buyer"].did) == "https://moved.buyer.example"
        with pytest.raises(PermissionDenied, match=r"not at https://moved\.buyer\.example"):
            host.answering(world.node, key, world.base)
        assert len(world.decisions()) == before  # nothing used, nothing sent: the request still waits
        assert key in [p["key"] for p in host.pending_requests(world.node)]
        assert all(o.events != EVENTS_URL for o in host.announcing(world.node, [world.pfs[2]["id"]], world.base))
        late = event("RequestCreatedEvent", {"productId": ["urn:gtin:2000"]})  # could not be answered: refused
        refused = post(world, late, token=world.token(creds))
        assert "not at https://moved.buyer.example" in error(refused, "AccessDenied")
    finally:
        back = {"did": world.homes["buyer"].did, "url": "https://buyer.example"}
        world.node.submit([world.reg.sign("identity.endpoint", back)])
    out = host.answering(world.node, key, world.base)
    assert (out.counterpart, out.node, out.events) == (world.homes["buyer"].did, "https://buyer.example", EVENTS_URL)


def test_only_the_regulator_records_a_registered_members_node_over_https(world):
    from qdsn.errors import NotFound

    buyer = world.homes["buyer"]
    with pytest.raises(PermissionDenied):  # a member cannot name its own node, nor another's
        world.node.submit([buyer.sign("identity.endpoint", {"did": buyer.did, "url": "https://victim.example"})])
    with pytest.raises(NotFound, match="not a participant"):
        unknown = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
        world.node.submit([world.reg.sign("identity.endpoint", {"did": unknown, "url": "https://x.example"})])
    for bad in ("http://buyer.example", "https://buyer.example/a/../b", "https://user@buyer.example"):
        with pytest.raises(InvalidInput, match="url"):
            world.node.submit([world.reg.sign("identity.endpoint", {"did": buyer.did, "url": bad})])
    assert host.node_url(world.node, world.homes["rival"].did) is None
    assert host.node_url(world.node, "did:web:maker.example%3A8443") == "https://maker.example:8443"


# -- 2. requests throttled per organisation; repeated denials collapsed, each still counted ---------


def test_requests_are_throttled_per_organisation_before_any_use_is_decided(world):
    app = FastAPI()
    app.include_router(pact_api.router(world.node, throttle=Throttle((2, 0.001), (100, 100))))
    token = world.token()
    with TestClient(app, base_url="https://pact.maker.example", client=LOOPBACK) as http:
        auth = {"authorization": f"Bearer {token}"}
        assert http.get("/3/footprints?limit=1", headers=auth).status_code == 200
        assert http.get("/3/footprints?limit=1", headers=auth).status_code == 200
        before = len(world.decisions())
        r = http.get("/3/footprints?limit=1", headers=auth)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.json()["code"] == "BadRequest" and "too many" in r.json()["message"]
        pact.check(r.json(), "Error")
        # another credential of the same organisation draws on the same allowance
        other = world.token(world.credentials("buyer", world.agreement))
        assert http.get(f"/3/footprints/{world.pfs[1]['id']}", headers={"authorization": f"Bearer {other}"}
                        ).status_code == 429  # fmt: skip
        assert len(world.decisions()) == before  # a throttled request writes nothing on the ledger
        creds = world.creds
        for _ in range(3):
            r = http.post("/auth/token", data={"grant_type": "client_credentials"},
                          auth=(creds["client_id"], creds["client_secret"]))  # fmt: skip
        assert r.status_code == 429 and r.json()["error"] == "invalid_request" and r.headers["retry-after"]


def test_repeated_denials_are_one_ledger_entry_per_window_and_every_one_is_counted(world, monkeypatch):
    once = world.agree("buyer", "urn:qdsn:offer:pcf:once")
    token = world.token(world.credentials("buyer", once))
    assert world.get("/3/footprints?limit=1", token=token).status_code == 200
    for _ in range(6):
        assert "count" in error(world.get("/3/footprints?limit=1", token=token), "AccessDenied")
    mine = decisions_of(world, once)
    assert [(d["allowed"], d.get("count", 1)) for d in mine] == [(True, 1), (False, 1)]  # 5 counted, not written
    assert host.flush_denials(world.node) == 0  # their window has not passed
    later = time.time() + host.DENIAL_WINDOW + 1
    monkeypatch.setattr(host, "clock", lambda: later)
    assert host.flush_denials(world.node) == 1
    mine = decisions_of(world, once)
    assert [(d["allowed"], d.get("count", 1)) for d in mine] == [(True, 1), (False, 1), (False, 5)]
    assert host.flush_denials(world.node) == 0
    # after the window the next denial is written at once, with any counted meanwhile
    monkeypatch.setattr(host, "clock", lambda: later + 1)
    assert world.get("/3/footprints?limit=1", token=token).status_code == 403
    monkeypatch.setattr(host, "clock", lambda: later + host.DENIAL_WINDOW + 2)
    assert world.get("/3/footprints?limit=1", token=token).status_code == 403
    mine = decisions_of(world, once)
    assert sum(d.get("count", 1) for d in mine if not d["allowed"]) == 8  # every denial accounted for
    meter = next(m for m in usage(world.node.ledger, world.maker.did) if m.agreement == once)
    assert (meter.uses, meter.denied) == (1, 8)


def test_an_allowed_decision_cannot_claim_a_count(world):
    from qdsn.ledger import tx

    base = {"dataset": "pcf", "requester": world.homes["buyer"].did, "action": "read", "point": "use",
            "allowed": True, "rule": "r", "reason": "ok"}  # fmt: skip
    with pytest.raises(InvalidInput, match="count"):
        tx.check_payload("access.decision", base | {"count": 3})
    assert tx.check_payload("access.decision", base | {"allowed": False, "count": 3}).count == 3


# -- 3. an asynchronous request is one use, decided when it is answered ------------------------------


def test_an_async_request_under_a_single_use_agreement_is_counted_once_and_fulfilled(world):
    once = world.agree("buyer", "urn:qdsn:offer:pcf:once")
    token = world.token(world.credentials("buyer", once))
    asked = event("RequestCreatedEvent", {"productId": ["urn:gtin:2000"]})
    assert post(world, asked, token=token).status_code == 200
    assert decisions_of(world, once) == []  # accepted; the use comes with the answer
    key = next(p["key"] for p in host.pending_requests(world.node) if p["event"]["id"] == asked["id"])
    _, answer = host.answer(world.node, key, world.base)
    assert pact.validate_event(answer) == "RequestFulfilledEvent" and answer["data"]["pfs"] == [world.pfs[2]]
    assert [(d["allowed"], d["records"]) for d in decisions_of(world, once)] == [(True, 1)]
    with pytest.raises(Conflict, match="answered already"):
        host.answer(world.node, key, world.base)
    assert len(decisions_of(world, once)) == 1
    # the count is used up: a new request is refused at once, and the refusal recorded
    again = event("RequestCreatedEvent", {"productId": ["urn:gtin:2000"]})
    assert "count" in error(post(world, again, token=token), "AccessDenied")
    assert [d["allowed"] for d in decisions_of(world, once)] == [True, False]


def test_a_request_the_agreement_no_longer_allows_when_answered_is_rejected_to_the_recipient(world):
    once = world.agree("buyer", "urn:qdsn:offer:pcf:once")
    token = world.token(world.credentials("buyer", once))
    asked = event("RequestCreatedEvent", {"productId": ["urn:gtin:3000"]})
    assert post(world, asked, token=token).status_code == 200
    assert world.get("/3/footprints?limit=1", token=token).status_code == 200  # the one use, meanwhile
    key = next(p["key"] for p in host.pending_requests(world.node) if p["event"]["id"] == asked["id"])
    to, answer = host.answer(world.node, key, world.base)
    assert to == EVENTS_URL and pact.validate_event(answer) == "RequestRejectedEvent"
    assert answer["data"]["error"]["code"] == "AccessDenied" and "count" in answer["data"]["error"]["message"]
    assert answer["data"]["requestEventId"] == asked["id"]
    assert [d["allowed"] for d in decisions_of(world, once)] == [True, False]
    assert key not in [p["key"] for p in host.pending_requests(world.node)]


# -- 4. filter names in any case (the spec's own example), validOn with the end included ------------


def test_filter_names_are_matched_in_any_case_as_the_spec_example_writes_them(world):
    assert ids(world.get("/3/footprints?productId=urn:gtin:2000&productid=urn:gtin:3000")) == [
        world.pfs[2]["id"], world.pfs[3]["id"]]  # fmt: skip
    assert ids(world.get("/3/footprints?PRODUCTID=urn:gtin:2000")) == [world.pfs[2]["id"]]
    got = ids(world.get("/3/footprints?validon=2026-03-01T00:00:00Z&productid=urn:gtin:4000&productid=urn:gtin:3000"))
    assert got == [world.pfs[4]["id"]]
    assert ids(world.get("/3/footprints?Geography=de")) == [world.pfs[2]["id"]]
    assert "given once" in error(world.get("/3/footprints?validOn=2026-03-01T00:00:00Z&validon=2026-03-02T00:00:00Z"),
                                 "BadRequest")  # fmt: skip
    assert host.criteria({"productid": ["urn:gtin:1"], "STATUS": "active"}) == {"productId": {"urn:gtin:1"},
                                                                                "status": "active"}  # fmt: skip


def test_validOn_matches_a_footprint_on_the_last_day_of_its_validity(world):
    # footprint 4 is valid 2026-01-01 .. 2026-06-30: the filter's rule is start <= validOn <= end
    end = "2026-06-30T00:00:00Z"
    assert ids(world.get(f"/3/footprints?validOn={end}&productId=urn:gtin:4000")) == [world.pfs[4]["id"]]
    assert ids(world.get("/3/footprints?validOn=2026-06-30T00:00:01Z&productId=urn:gtin:4000")) == []
    assert host.matches(world.pfs[4] | {"status": "Active"}, host.criteria({"validOn": end}))


# -- 5. credentials over HTTPS only, and revocable ------------------------------------------------


def test_credentials_are_not_issued_over_plain_http(world):
    before = len(host.list_clients(world.node))
    plain = NodeClient(world.plain, world.homes["buyer"].key(), world.homes["buyer"].did)
    try:
        with pytest.raises(InvalidInput, match="HTTPS only"):
            plain.call("POST", "/pact/clients", {"agreement": world.agreement, "purpose": "supply-chain"})
    finally:
        plain.close()
    assert len(host.list_clients(world.node)) == before


def test_revoked_credentials_and_their_tokens_stop_working_and_the_revocation_is_kept(world):
    creds = world.credentials("buyer", world.agreement)
    token = world.token(creds)
    assert world.get("/3/footprints?limit=1", token=token).status_code == 200
    done = host.revoke_client(world.node, creds["client_id"], "contract ended")
    assert done["revoked"] and done["revoked_reason"] == "contract ended"
    r = world.get("/3/footprints?limit=1", token=token)
    assert r.status_code == 401
    r = world.http.post(world.base + "/auth/token", data={"grant_type": "client_credentials"},
                        auth=(creds["client_id"], creds["client_secret"]))  # fmt: skip
    assert r.status_code == 401 and r.json()["error"] == "invalid_client" and "revoked" in r.json()["error_description"]
    with pytest.raises(Conflict, match="revoked already"):
        host.revoke_client(world.node, creds["client_id"], "again")
    with pytest.raises(InvalidInput, match="why"):
        host.revoke_client(world.node, world.creds["client_id"], " ")


def test_revoking_from_the_command_line(world):
    from .test_cli import qdsn

    creds = host.add_client(world.node, agreement=world.agreement, purpose="supply-chain")
    out = qdsn("footprint", "clients", "revoke", creds["client_id"], "--reason", "leaked", home=world.maker.path)
    assert "revoked" in out.stdout
    listed = orjson.loads(qdsn("footprint", "clients", "list", "--json", home=world.maker.path).stdout)
    mine = next(c for c in listed if c["client_id"] == creds["client_id"])
    assert mine["revoked_reason"] == "leaked" and mine["revoked"]
    unknown = qdsn("footprint", "clients", "revoke", "pact-none", "--reason", "x", home=world.maker.path, ok=False)
    assert unknown.returncode == 1 and "no PACT client" in unknown.stderr and "Traceback" not in unknown.stderr


# -- 6. credentials bounded per organisation; events kept within bounds ------------------------------


def test_live_credentials_per_counterpart_and_agreement_are_bounded(world):
    rival = world.homes["rival"].did
    made = [host.add_client(world.node, counterpart=rival) for _ in range(host.MAX_CLIENTS + 2)]
    live = [c for c in host.list_clients(world.node) if c["counterpart"] == rival and c["agreement"] is None
            and not c["revoked"]]  # fmt: skip
    assert len(live) == host.MAX_CLIENTS and made[-1]["client_id"] in [c["client_id"] for c in live]
    gone = [c for c in made if c["client_id"] not in [x["client_id"] for x in live]]
    assert len(gone) == 2
    for c in gone:
        r = world.http.post(world.base + "/auth/token", data={"grant_type": "client_credentials"},
                            auth=(c["client_id"], c["client_secret"]))  # fmt: skip
        assert r.status_code == 401 and "revoked" in r.json()["error_description"]


def test_events_kept_from_one_organisation_are_bounded(world, monkeypatch):
    creds = world.credentials("buyer", world.agreement)
    token = world.token(creds)
    from sqlalchemy import func, select

    theirs = select(host.clients.c.id).where(host.clients.c.counterpart == world.homes["buyer"].did)
    with world.node.policies.engine.connect() as c:
        kept = c.execute(select(func.count()).select_from(host.events).where(host.events.c.client.in_(theirs)))
        kept = kept.scalar_one()
    monkeypatch.setattr(host, "MAX_EVENTS", kept + 1)
    assert post(world, event("RequestCreatedEvent", {"productId": ["urn:gtin:9000"]}), token=token).status_code == 200
    r = post(world, event("RequestCreatedEvent", {"productId": ["urn:gtin:9001"]}), token=token)
    assert "at most" in error(r, "BadRequest")


# -- 7. the OpenID configuration names this node, whatever Host is sent -----------------------------


def test_openid_configuration_names_the_nodes_own_url_not_the_host_header(world):
    r = world.http.get(world.base + "/.well-known/openid-configuration", headers={"host": "attacker.example"})
    assert r.status_code == 200 and r.json()["issuer"] == world.base
    assert r.json()["token_endpoint"] == world.base + "/auth/token"
    assert "max-age" in r.headers["cache-control"]
    app = create_app(world.node, public_url="https://pact.maker.example")
    with TestClient(app, base_url="https://pact.maker.example", client=LOOPBACK) as http:
        conf = http.get("/.well-known/openid-configuration", headers={"host": "attacker.example"}).json()
    assert conf["issuer"] == "https://pact.maker.example"
    assert conf["token_endpoint"] == "https://pact.maker.example/auth/token"
    plain = httpx.get(world.plain + "/.well-known/openid-configuration")
    assert plain.status_code == 400 and plain.headers["cache-control"] == "no-store"
