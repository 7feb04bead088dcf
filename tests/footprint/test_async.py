"""The asynchronous exchange between two PACT hosts over HTTPS on loopback: a buyer's node sends a
request event to the owner's, the owner answers to the events URL registered with the buyer's
credentials, and the buyer's node takes the answer only from the owner it asked."""

import pytest

from qdsn.api.app import create_app
from qdsn.api.client import NodeClient
from qdsn.api.pact import send_event
from qdsn.data import pact
from qdsn.errors import InvalidInput
from qdsn.node import Node
from qdsn.node import pact as host

from .conftest import serve


@pytest.fixture(scope="module")
def buyer_host(world, tmp_path_factory):
    node = Node(world.homes["buyer"], operator=False)
    pem = str(world.ca_pem.parent / "node.pem")
    server, port = serve(create_app(node), ssl_certfile=pem, ssl_keyfile=pem)
    # the regulator records where the buyer's node serves (the maker's node orders the log here)
    at = {"did": world.homes["buyer"].did, "url": f"https://127.0.0.1:{port}"}
    world.node.submit([world.reg.sign("identity.endpoint", at)])
    yield node, f"https://127.0.0.1:{port}"
    server.should_exit = True
    node.close()


def test_a_request_is_answered_at_the_registered_events_url_with_what_a_listing_gives(world, buyer_host):
    node, buyer_url = buyer_host
    events = buyer_url + "/3/events"
    creds = world.credentials("buyer", world.agreement, events=events)
    assert creds["owner"] == world.maker.did
    asked = host.request_event({"geography": ["DE"]}, events, comment="current PCF, please")
    host.note_sent(node, creds["owner"], asked)
    send_event(world.base + "/3/events", asked, creds["client_id"], creds["client_secret"], verify=world.ca)
    key = next(p["key"] for p in host.pending_requests(world.node) if p["event"]["id"] == asked["id"])
    to, answer = host.answer(world.node, key, world.base)
    assert to == events
    # the owner's node gets credentials at the buyer's node with a signed request, and sends the answer there
    maker = NodeClient(buyer_url, world.maker.key(), world.maker.did, verify=world.ca)
    inbound = maker.call("POST", "/pact/clients", {})
    maker.close()
    send_event(to, answer, inbound["client_id"], inbound["client_secret"], verify=world.ca)
    got = host.received(node, "RequestFulfilledEvent")[-1]
    assert got["data"]["requestEventId"] == asked["id"]
    assert got["data"]["pfs"] == world.get("/3/footprints?geography=DE").json()["data"] == [world.pfs[2]]
    for pf in got["data"]["pfs"]:
        pact.validate_footprint(pf, lifecycle=False)


def test_an_answer_from_another_member_is_refused(world, buyer_host):
    node, buyer_url = buyer_host
    asked = host.request_event({"productId": ["urn:gtin:2000"]}, buyer_url + "/3/events")
    host.note_sent(node, world.maker.did, asked)
    rival = NodeClient(buyer_url, world.homes["rival"].key(), world.homes["rival"].did, verify=world.ca)
    inbound = rival.call("POST", "/pact/clients", {})
    rival.close()
    forged = {"type": "org.wbcsd.pact.ProductFootprint.RequestFulfilledEvent.3", "specversion": "1.0", "id": "f-1",
              "source": "//rival.example/3/events", "time": "2026-01-01T00:00:00Z",
              "data": {"requestEventId": asked["id"], "pfs": [world.pfs[2]]}}  # fmt: skip
    with pytest.raises(InvalidInput, match="was sent to you"):
        send_event(buyer_url + "/3/events", forged, inbound["client_id"], inbound["client_secret"], verify=world.ca)


def test_events_are_sent_over_https_only(world):
    asked = host.request_event({}, "https://buyer.example/3/events")
    with pytest.raises(InvalidInput, match="not an https URL"):
        send_event(world.plain + "/3/events", asked, world.creds["client_id"], world.creds["client_secret"])
    with pytest.raises(InvalidInput, match="not an https URL"):
        host.request_event({}, "http://buyer.example/3/events")


def test_the_exchange_from_the_command_line(world, buyer_host, tmp_path):
    from .test_cli import qdsn

    _, buyer_url = buyer_host
    buyer, ca = world.homes["buyer"].path, str(world.ca_pem)
    events = buyer_url + "/3/events"
    creds = world.credentials("buyer", world.agreement, events=events)
    (tmp_path / "creds.json").write_text(__import__("json").dumps(creds))
    out = qdsn("footprint", "request", world.base, "--events", events, "--product-id", "urn:gtin:3000",
               "--source", str(tmp_path / "creds.json"), "--ca", ca, home=buyer).stdout  # fmt: skip
    assert "accepted by" in out
    pending = qdsn("footprint", "requests", home=world.maker.path).stdout
    mine = {"productId": ["urn:gtin:3000"]}
    key = next(p["key"] for p in host.pending_requests(world.node) if p["event"]["data"] == mine)
    assert key in pending
    said = qdsn("footprint", "answer", key, "--public-url", world.base, "--ca", ca, home=world.maker.path).stdout
    assert "answered with 1 footprint(s)" in said
    got = qdsn("footprint", "received", "--json", home=buyer).stdout
    assert world.pfs[3]["id"] in got


def test_published_events_go_to_the_recipients_whose_agreement_covers_the_footprints(world, buyer_host):
    from qdsn.errors import NotFound

    node, buyer_url = buyer_host
    events = buyer_url + "/3/events"
    world.credentials("buyer", world.agreement, events=events)
    sends = host.published(world.node, [world.pfs[1]["id"], world.secret_pf["id"]], world.base)
    mine = [e for to, e in sends if to == events]
    assert [e["data"]["pfIds"] for e in mine] == [[world.pfs[1]["id"]]]  # not the one outside its agreement
    maker = NodeClient(buyer_url, world.maker.key(), world.maker.did, verify=world.ca)
    inbound = maker.call("POST", "/pact/clients", {})
    maker.close()
    send_event(events, mine[0], inbound["client_id"], inbound["client_secret"], verify=world.ca)
    assert host.received(node, "PublishedEvent")[-1]["data"]["pfIds"] == [world.pfs[1]["id"]]
    with pytest.raises(NotFound):
        host.published(world.node, ["00000000-0000-4000-8000-000000000009"], world.base)


def test_publications_are_taken_only_from_an_owner_with_an_agreement(world, buyer_host):
    _, buyer_url = buyer_host
    rival = NodeClient(buyer_url, world.homes["rival"].key(), world.homes["rival"].did, verify=world.ca)
    inbound = rival.call("POST", "/pact/clients", {})
    rival.close()
    spam = {"type": "org.wbcsd.pact.ProductFootprint.PublishedEvent.3", "specversion": "1.0", "id": "spam-1",
            "source": "//rival.example/3/events", "time": "2026-01-01T00:00:00Z",
            "data": {"pfIds": [world.pfs[1]["id"]]}}  # fmt: skip
    with pytest.raises(InvalidInput, match=r"403.*shows no agreement"):
        send_event(buyer_url + "/3/events", spam, inbound["client_id"], inbound["client_secret"], verify=world.ca)


def test_the_owner_reuses_its_credentials_at_the_recipients_node(world, buyer_host):
    from .test_cli import qdsn

    node, buyer_url = buyer_host
    world.credentials("buyer", world.agreement, events=buyer_url + "/3/events")

    def makers():
        return [c for c in host.list_clients(node) if c["counterpart"] == world.maker.did]

    import shutil

    shutil.rmtree(world.maker.path / "pact-inbound", ignore_errors=True)  # none kept yet
    before = len(makers())
    for _ in range(2):
        out = qdsn("footprint", "notify", world.pfs[1]["id"], "--public-url", world.base, "--ca", str(world.ca_pem),
                   home=world.maker.path).stdout  # fmt: skip
        assert "announced at" in out
    assert len(makers()) == before + 1  # asked for once, then reused
    got = host.received(node, "PublishedEvent")
    assert [e["data"]["pfIds"] for e in got[-2:]] == [[world.pfs[1]["id"]]] * 2
