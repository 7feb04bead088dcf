"""The MUSTs of PACT v3's REST API (rest-api.md, index.md §HTTP REST API, openapi.yaml), one test each,
positive and negative, against a real node over HTTPS on loopback. Each test is named after the
requirement it checks."""

import base64
import time
from urllib.parse import urlsplit

import httpx
import pytest

from qdsn.data import pact
from qdsn.errors import PermissionDenied
from qdsn.node import pact as host

from .conftest import EVENTS_URL, EXAMPLE

EXAMPLE_PCF = EXAMPLE["pcf"]

ERROR_CODES = {"BadRequest": 400, "AccessDenied": 403, "NotFound": 404, "TokenExpired": 401, "NotImplemented": 400}


def ids(response):
    return [pf["id"] for pf in response.json()["data"]]


def error(response, code):
    """The spec's error response: the code's status, JSON content, {code, message}."""
    assert response.status_code == ERROR_CODES.get(code, response.status_code), response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code and isinstance(body["message"], str) and body["message"]
    pact.check(body, "Error")
    return body["message"]


# -- Action Authenticate ---------------------------------------------------------------------------


def test_auth_must_implement_client_credentials_rfc6749_4_4(world):
    r = world.http.post(world.base + "/auth/token", data={"grant_type": "client_credentials"},
                        auth=(world.creds["client_id"], world.creds["client_secret"]))  # fmt: skip
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["token_type"].lower() == "bearer" and len(body["access_token"]) >= 32 and body["expires_in"] > 0
    assert r.headers["cache-control"] == "no-store"  # RFC 6749 §5.1
    assert world.get("/3/footprints", token=body["access_token"]).status_code == 200


def test_auth_must_be_offered_under_auth_token(world):
    assert world.http.post(world.base + "/auth/token", data={}).status_code in (400, 401)  # there, and refusing
    config = world.http.get(world.base + "/.well-known/openid-configuration").json()
    assert urlsplit(config["token_endpoint"]).path == "/auth/token"


def test_auth_client_secret_in_the_body_is_accepted(world):
    form = {"grant_type": "client_credentials", "client_id": world.creds["client_id"],
            "client_secret": world.creds["client_secret"]}  # fmt: skip
    r = world.http.post(world.base + "/auth/token", data=form)
    assert r.status_code == 200


def test_auth_must_answer_400_or_401_with_invalid_client_when_authentication_fails(world):
    for user, secret in ((world.creds["client_id"], "wrong"), ("pact-unknown", world.creds["client_secret"])):
        r = world.http.post(world.base + "/auth/token", data={"grant_type": "client_credentials"}, auth=(user, secret))
        assert r.status_code in (400, 401) and r.json()["error"] == "invalid_client"
    r = world.http.post(world.base + "/auth/token", data={"grant_type": "client_credentials"},
                        headers={"authorization": "Basic !!!"})  # fmt: skip
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_auth_grant_type_must_be_client_credentials(world):
    r = world.http.post(world.base + "/auth/token", data={"grant_type": "password"},
                        auth=(world.creds["client_id"], world.creds["client_secret"]))  # fmt: skip
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    r = world.http.post(world.base + "/auth/token", content=b'{"grant_type": "client_credentials"}',
                        headers={"content-type": "application/json"},
                        auth=(world.creds["client_id"], world.creds["client_secret"]))  # fmt: skip
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    twice = "grant_type=client_credentials&grant_type=client_credentials"
    r = world.http.post(world.base + "/auth/token", content=twice.encode(), auth=(world.creds["client_id"], "x"),
                        headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def test_host_must_authenticate_any_client_prior_to_the_actions(world):
    for method, path in (("GET", "/3/footprints"), ("GET", f"/3/footprints/{world.pfs[1]['id']}"),
                         ("POST", "/3/events")):  # fmt: skip
        r = world.http.request(method, world.base + path)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer"), (path, r.text)
        pact.check(r.json(), "Error")


def test_host_must_return_401_for_an_invalid_token(world):
    r = world.get("/3/footprints", token="not-a-token-this-host-issued")
    assert r.status_code == 401 and "not one this host issued" in r.json()["message"]
    pact.check(r.json(), "Error")  # a code of the spec's enum
    basic = {"authorization": "Basic " + base64.b64encode(b"a:b").decode()}
    r = world.http.get(world.base + "/3/footprints", headers=basic)
    assert r.status_code == 401


def test_host_must_return_401_when_the_token_has_expired(world, monkeypatch):
    token = world.token()
    monkeypatch.setattr(host, "clock", lambda: time.time() + host.TOKEN_SECONDS + 1)
    world.token()  # a token issued meanwhile does not make the expired one unknown
    assert error(world.get("/3/footprints", token=token), "TokenExpired")


def test_host_must_offer_its_actions_over_https_only(world):
    for method, path in (("GET", "/3/footprints"), ("GET", f"/3/footprints/{world.pfs[1]['id']}"),
                         ("POST", "/3/events")):  # fmt: skip
        r = httpx.request(method, world.plain + path, headers={"authorization": f"Bearer {world.token()}"})
        assert r.status_code == 400 and "HTTPS only" in r.json()["message"]
    r = httpx.post(world.plain + "/auth/token", data={"grant_type": "client_credentials"},
                   auth=(world.creds["client_id"], world.creds["client_secret"]))  # fmt: skip
    assert r.status_code == 400 and "HTTPS only" in r.json()["error_description"]
    assert "access_token" not in r.text


def test_host_must_offer_all_actions_under_one_base_url_with_3(world):
    r = world.get("/3/footprints")
    assert r.status_code == 200
    assert world.get(f"/3/footprints/{world.pfs[1]['id']}").status_code == 200
    assert world.get("/2/footprints").status_code == 404


def test_a_token_is_good_only_for_its_own_agreement(world):
    rival = world.agree("rival", "urn:qdsn:offer:pcf")
    with pytest.raises(PermissionDenied, match=r"was made with .*, not "):  # the buyer cannot take the rival's
        world.credentials("buyer", rival)
    theirs = world.credentials("rival", rival)
    assert world.http.post(world.base + "/auth/token", data={"grant_type": "client_credentials"},
                           auth=(world.creds["client_id"], theirs["client_secret"])).status_code == 401  # fmt: skip


# -- Action ListFootprints: filtering --------------------------------------------------------------


def test_list_must_support_filter_productId(world):
    r = world.get("/3/footprints?productId=urn:gtin:2000&productId=URN:GTIN:3000")
    assert ids(r) == [world.pfs[2]["id"], world.pfs[3]["id"]]  # OR within a criterion, case-insensitive
    assert ids(world.get("/3/footprints?productId=urn:gtin:5555")) == []


def test_list_must_support_filter_companyId(world):
    assert ids(world.get("/3/footprints?companyId=urn:company:example:sister")) == [world.pfs[3]["id"]]


def test_list_must_support_filter_geography(world):
    assert ids(world.get("/3/footprints?geography=DE")) == [world.pfs[2]["id"]]
    assert len(ids(world.get("/3/footprints?geography=cn&limit=100"))) == len(world.pfs) - 1


def test_list_must_support_filter_classification(world):
    assert ids(world.get("/3/footprints?classification=urn:pact:cpc:46210")) == [world.pfs[2]["id"]]


def test_list_must_support_filter_validOn(world):
    got = ids(world.get("/3/footprints?validOn=2026-03-01T00:00:00Z&productId=urn:gtin:4000&productId=urn:gtin:3000"))
    assert got == [world.pfs[4]["id"]]  # the 2022 footprint's three years ended with 2025


def test_list_must_support_filter_validAfter(world):
    got = ids(world.get("/3/footprints?validAfter=2025-12-31T00:00:00Z&limit=100"))
    assert got == [world.pfs[4]["id"]]  # the only one whose validity starts after it


def test_list_must_support_filter_validBefore(world):
    assert ids(world.get("/3/footprints?validBefore=2026-01-01T00:00:00Z")) == [world.pfs[3]["id"]]


def test_list_must_support_filter_status(world):
    assert ids(world.get("/3/footprints?status=Deprecated")) == [world.pfs[0]["id"]]
    assert world.pfs[0]["id"] not in ids(world.get("/3/footprints?status=Active&limit=100"))
    assert error(world.get("/3/footprints?status=Retired"), "BadRequest")


def test_list_criteria_must_combine_with_and(world):
    assert ids(world.get("/3/footprints?productId=urn:gtin:2000&geography=CN")) == []
    assert ids(world.get("/3/footprints?productId=urn:gtin:2000&geography=DE")) == [world.pfs[2]["id"]]


def test_list_refuses_a_criterion_it_cannot_read(world):
    assert "RFC 3339" in error(world.get("/3/footprints?validOn=yesterday"), "BadRequest")
    assert error(world.get("/3/footprints?x-other-invoice=1"), "NotImplemented")


# -- Action ListFootprints: pagination and response ------------------------------------------------


def test_list_must_not_return_more_than_limit(world):
    assert len(ids(world.get("/3/footprints?limit=3"))) == 3


def test_list_limit_must_be_a_positive_integer(world):
    for bad in ("0", "-1", "ten", "1.5"):
        assert "limit must be a positive integer" in error(world.get(f"/3/footprints?limit={bad}"), "BadRequest")


def test_list_must_return_a_link_header_when_more_footprints_are_ready(world):
    r = world.get("/3/footprints?limit=5&geography=CN")
    link = httpx.Headers(r.headers).get("link")
    target, rel = link.split(";")
    assert rel.strip() == 'rel="next"' and target.startswith("<") and target.endswith(">")
    url = urlsplit(target[1:-1])
    assert url.scheme == "https" and url.netloc == urlsplit(world.base).netloc  # absolute, with the request's host
    assert "geography=CN" in url.query and "limit=5" in url.query
    last = world.get("/3/footprints?limit=100")
    assert "link" not in last.headers  # nothing more: no link


def test_list_link_host_must_equal_the_request_host_header(world):
    r = world.get("/3/footprints?limit=2", headers={"host": "pact.maker.example"})
    assert urlsplit(r.headers["link"].split(";")[0][1:-1]).netloc == "pact.maker.example"


def test_list_pagination_link_must_return_the_same_set_each_call_and_follow_to_the_end(world):
    token = world.token()
    seen, url = [], world.base + "/3/footprints?limit=4"
    while url:
        r = world.http.get(url, headers={"authorization": f"Bearer {token}"})
        again = world.http.get(url, headers={"authorization": f"Bearer {token}"})
        assert ids(r) == ids(again) and len(ids(r)) <= 4
        seen += ids(r)
        link = r.headers.get("link")
        url = link.split(";")[0][1:-1].replace(urlsplit(link.split(";")[0][1:-1]).netloc,
                                              urlsplit(world.base).netloc) if link else None  # fmt: skip
    assert seen == [pf["id"] for pf in world.pfs]


def test_list_pagination_link_must_be_valid_for_180_seconds(world, monkeypatch):
    token = world.token()
    link = world.get("/3/footprints?limit=4", token=token).headers["link"].split(";")[0][1:-1]
    before = ids(world.http.get(link.replace(urlsplit(link).netloc, urlsplit(world.base).netloc),
                                headers={"authorization": f"Bearer {token}"}))  # fmt: skip
    monkeypatch.setattr(host, "clock", lambda: time.time() + 181)
    later = world.http.get(link.replace(urlsplit(link).netloc, urlsplit(world.base).netloc),
                           headers={"authorization": f"Bearer {token}"})  # fmt: skip
    assert later.status_code == 200 and ids(later) == before


def test_list_body_must_be_an_object_with_data_an_array_even_when_empty(world):
    r = world.get("/3/footprints?productId=urn:gtin:5555")
    assert r.status_code == 200 and r.json() == {"data": []}
    for pf in world.get("/3/footprints?limit=100").json()["data"]:
        pact.validate_footprint(pf, lifecycle=False)


def test_list_must_mark_a_changed_footprint_deprecated_and_return_the_latest(world):
    got = {pf["id"]: pf for pf in world.get("/3/footprints?productId=urn:gtin:1000").json()["data"]}
    assert got[world.pfs[0]["id"]]["status"] == "Deprecated" and got[world.pfs[1]["id"]]["status"] == "Active"


def test_list_must_return_access_denied_without_permission(world):
    inbound = host.add_client(world.node, counterpart=world.homes["rival"].did)  # may send events, read nothing
    assert "no agreement" in error(world.get("/3/footprints", token=world.token(inbound)), "AccessDenied")


def test_list_is_a_use_decided_by_the_agreement_and_recorded(world):
    once = world.agree("buyer", "urn:qdsn:offer:pcf:once")
    token = world.token(world.credentials("buyer", once))
    assert world.get("/3/footprints?limit=2", token=token).status_code == 200
    assert "count" in error(world.get("/3/footprints?limit=2", token=token), "AccessDenied")
    mine = [d for d in world.decisions() if d.get("agreement") == once and d["point"] == "use"]
    assert [(d["allowed"], d.get("records")) for d in mine] == [(True, 2), (False, None)]  # records: only those read


# -- Action GetFootprint ---------------------------------------------------------------------------


def test_get_must_return_200_with_the_footprint_in_data(world):
    r = world.get(f"/3/footprints/{world.pfs[2]['id'].upper()}")
    assert r.status_code == 200 and r.json()["data"] == world.pfs[2]
    recorded = world.decisions()[-1]
    assert recorded["agreement"] == world.agreement and recorded["allowed"] and recorded["records"] == 1


def test_get_must_return_404_for_an_unknown_footprint(world):
    assert error(world.get("/3/footprints/00000000-0000-4000-8000-000000000000"), "NotFound")


def test_get_must_return_403_for_a_footprint_outside_the_agreement(world):
    assert "outside agreement" in error(world.get(f"/3/footprints/{world.secret_pf['id']}"), "AccessDenied")
    denied = world.decisions()[-1]
    assert denied["allowed"] is False and "outside agreement" in denied["reason"]


# -- Action Events ---------------------------------------------------------------------------------


def event(kind, data, **kw):
    base = {"type": f"org.wbcsd.pact.ProductFootprint.{kind}.3", "specversion": "1.0", "id": str(time.time_ns()),
            "source": "//buyer.example/3/events", "time": "2025-03-05T17:31:00Z", "data": data}  # fmt: skip
    return base | kw


def post(world, body, token=None, media="application/cloudevents+json; charset=UTF-8"):
    import orjson

    headers = {"authorization": f"Bearer {token or world.token()}", "content-type": media}
    return world.http.post(world.base + "/3/events", content=orjson.dumps(body), headers=headers)


def test_events_must_accept_a_valid_event_with_200(world):
    r = post(world, event("RequestCreatedEvent", {"productId": ["urn:gtin:2000"]}))
    assert r.status_code == 200 and r.content == b""


def test_events_must_return_4xx_for_an_invalid_event(world):
    bad = event("RequestCreatedEvent", {"productId": ["gtin"]})
    assert "data.productId[0]" in error(post(world, bad), "BadRequest")
    assert "not a PACT v3 event type" in error(post(world, event("Unknown", {})), "BadRequest")
    assert error(post(world, {"type": "x"}), "BadRequest")
    assert "cloudevents" in error(post(world, event("RequestCreatedEvent", {}), media="application/json"), "BadRequest")


def test_events_must_handle_the_four_event_types(world):
    kinds = {"RequestCreatedEvent", "RequestFulfilledEvent", "RequestRejectedEvent", "PublishedEvent"}
    assert set(pact.EVENT_TYPES.values()) == kinds
    inbound = world.token(host.add_client(world.node, counterpart=world.homes["buyer"].did))
    # handled: taken only from an owner the ledger shows gives this node footprints (test_async: accepted)
    r = post(world, event("PublishedEvent", {"pfIds": [world.pfs[1]["id"]]}), token=inbound)
    assert "shows no agreement" in error(r, "AccessDenied")
    assert post(world, event("RequestRejectedEvent", {"requestEventId": "never-sent", "error": {
        "code": "NotFound", "message": "none"}}), token=inbound).status_code == 400  # fmt: skip


def test_events_request_must_be_refused_at_once_when_it_cannot_be_handled(world):
    inbound = host.add_client(world.node, counterpart=world.homes["rival"].did)
    assert error(post(world, event("RequestCreatedEvent", {}), token=world.token(inbound)), "AccessDenied")


def test_events_must_validate_source_before_sending_the_response(world):
    r = post(world, event("RequestCreatedEvent", {}, source="//attacker.example/3/events"))
    assert "is not the events URL registered" in error(r, "BadRequest")


def test_events_the_answer_must_go_to_source_and_hold_what_a_listing_gives(world):
    asked = event("RequestCreatedEvent", {"geography": ["DE", "FR"], "status": "Active"})
    assert post(world, asked).status_code == 200
    key = next(p["key"] for p in host.pending_requests(world.node) if p["event"]["id"] == asked["id"])
    to, answer = host.answer(world.node, key, world.base)
    assert to == EVENTS_URL and pact.validate_event(answer) == "RequestFulfilledEvent"
    assert answer["data"]["requestEventId"] == asked["id"]
    listed = world.get("/3/footprints?geography=DE&geography=FR&status=Active").json()["data"]
    assert answer["data"]["pfs"] == listed  # the same footprints by either way


def test_events_a_request_nothing_meets_is_rejected_with_an_error(world):
    asked = event("RequestCreatedEvent", {"productId": ["urn:gtin:5555"]})
    assert post(world, asked).status_code == 200
    key = next(p["key"] for p in host.pending_requests(world.node) if p["event"]["id"] == asked["id"])
    _, answer = host.answer(world.node, key, world.base)
    assert pact.validate_event(answer) == "RequestRejectedEvent" and answer["data"]["error"]["code"] == "NotFound"


def test_events_the_same_event_twice_is_refused(world):
    once = event("RequestCreatedEvent", {"productId": ["urn:gtin:2000"]})
    assert post(world, once).status_code == 200
    assert "received already" in error(post(world, once), "BadRequest")


def test_events_a_response_is_taken_only_for_a_request_this_host_sent(world):
    inbound = host.add_client(world.node, counterpart=world.homes["buyer"].did)
    sent = event("RequestCreatedEvent", {"productId": ["urn:gtin:1"]})
    host.note_sent(world.node, world.homes["buyer"].did, sent)
    pf = world.pfs[2]
    fulfilled = event("RequestFulfilledEvent", {"requestEventId": sent["id"], "pfs": [pf]})
    assert post(world, fulfilled, token=world.token(inbound)).status_code == 200
    assert host.received(world.node, "RequestFulfilledEvent")[-1]["data"]["pfs"] == [pf]
    other = world.token(host.add_client(world.node, counterpart=world.homes["rival"].did))
    spoof = event("RequestFulfilledEvent", {"requestEventId": sent["id"], "pfs": [pf]})
    assert "was sent to you" in error(post(world, spoof, token=other), "BadRequest")
    bad = event("RequestFulfilledEvent", {"requestEventId": sent["id"], "pfs": [pf | {"pcf": {}}]})
    assert error(post(world, bad, token=world.token(inbound)), "BadRequest")


def test_a_footprint_id_is_stored_once_across_datasets_and_its_predecessors_must_exist(world):
    from qdsn.errors import Conflict, InvalidInput

    from .conftest import footprint

    with pytest.raises(Conflict, match="already stored"):
        host.add_footprints(world.node, "pcf-other", [world.pfs[0] | {"id": world.pfs[0]["id"].upper()}])
    with pytest.raises(InvalidInput, match=r"precedingPfIds .* are not footprints of this node"):
        orphan = footprint("urn:gtin:1", preceding=["00000000-0000-4000-8000-000000000001"])
        host.add_footprints(world.node, "pcf", [orphan])
    with pytest.raises(InvalidInput, match=r"footprint 0: not a PACT v3 ProductFootprint: pcf\.declaredUnitAmount"):
        numeric = footprint("urn:gtin:1") | {"pcf": EXAMPLE_PCF | {"declaredUnitAmount": 2}}
        host.add_footprints(world.node, "pcf", [numeric])
    assert "pcf-other" not in world.node.ledger.state.datasets  # nothing was declared for what was refused
