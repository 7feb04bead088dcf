"""A member cannot flood the log or pin open notifications on another: the log operator's budget per
submitter (a token bucket and a daily quota of draft notifications, durable across a restart) holds at
every door, embedded and through etcd; a draft is not open in the regulator's views; one sender holds a
bounded number open towards one recipient, who may decline what it never received; a suspended member
raises none. A plant anchoring many batches is not refused, nor are the regulator and cosignatures."""

import os
import uuid

import pytest
from fastapi.testclient import TestClient

from qdsn.api.app import create_app
from qdsn.api.client import NodeClient
from qdsn.errors import RateLimited
from qdsn.graph.region import RegionGraph, of_replica
from qdsn.ledger.ordering.budget import BURST, DAILY
from qdsn.ledger.state import MAX_OPEN_PER_PAIR
from qdsn.node import Node, NodeHome, notify, witness
from qdsn.supervision import actions

from .conftest import FAST

CREATED_A_DAY = DAILY[("notification.transition", "CREATED")]


@pytest.fixture(params=["embedded", "etcd"])
def network(request, tmp_path):
    origin = f"qdsn.test/{uuid.uuid4().hex[:8]}"
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", origin=origin, scrypt_n=FAST)
    homes = {name: NodeHome.init(tmp_path / name, "enterprise", name, "pw", origin=origin, scrypt_n=FAST)
             for name in ("rival", "maker", "v1", "v2", "v3", "v4")}  # fmt: skip
    for h in homes.values():
        reg.submit("identity.register", h.registration())
    ordering = request.getfixturevalue("etcd").url if request.param == "etcd" else None
    net = Net(reg, homes, ordering)
    net.late = NodeHome.init(tmp_path / "late", "enterprise", "late", "pw", origin=origin, scrypt_n=FAST)
    yield net
    net.node.close()


class Net:
    def __init__(self, reg, homes, ordering):
        self.reg, self.homes, self.ordering = reg, homes, ordering
        self.start()

    def start(self):
        self.node = Node(self.reg, ordering=self.ordering)
        self.http = TestClient(create_app(self.node))

    def restart(self):
        self.node.close()
        self.start()

    def client(self, name):
        h = self.homes[name]
        return NodeClient(str(self.http.base_url), h.key(), h.did, http=self.http)


def draft(sender, recipient, n, state="CREATED", severity="LIFE-THREATENING", content=None, reason=None):
    p = {"notification": n, "state": state, "classification": "alert", "severity": severity, "sender": sender.did,
         "recipient": recipient.did, "content": content or "ab" * 32}  # fmt: skip
    return p | ({"reason": reason} if reason else {})


def post(client, envs):
    return client.request("POST", "/ledger/transactions", {"transactions": [e.to_json() for e in envs]})


def move(net, who, payload):
    """`who` posts one notification move to the regulator's node."""
    return post(net.client(who), [net.homes[who].sign("notification.transition", payload)])


def flood(net, to, count, tag):
    rival = net.homes["rival"]
    return post(net.client("rival"), [rival.sign("notification.transition", draft(rival, net.homes[to], f"{tag}-{i}"))
                                      for i in range(count)])  # fmt: skip


def open_rows(net):
    net.node.catch_up()
    graph = of_replica(net.node.ledger.store, net.node.home.path, RegionGraph())
    return {r["did"]: r for r in graph.open_notifications()}


def test_a_flood_of_drafts_is_bounded_per_recipient_and_per_day_and_the_day_survives_a_restart(network):
    net = network
    size = net.node.ledger.size
    assert flood(net, "maker", MAX_OPEN_PER_PAIR, "a").status_code == 201
    r = flood(net, "maker", 1, "b")
    assert r.status_code == 409 and f"holds {MAX_OPEN_PER_PAIR} notifications open" in r.json()["detail"], r.json()
    assert net.homes["maker"].did not in open_rows(net)  # drafts: nobody has to answer them, nothing is open
    left = CREATED_A_DAY - MAX_OPEN_PER_PAIR  # the rest of the day's drafts, to other victims
    for victim in ("v1", "v2", "v3"):
        if left > 0:
            got = flood(net, victim, min(MAX_OPEN_PER_PAIR, left), victim)
            assert got.status_code == 201, got.json()
            left -= MAX_OPEN_PER_PAIR
    assert left <= 0
    assert net.node.ledger.size == size + CREATED_A_DAY
    r = flood(net, "v4", 1, "late")
    assert r.status_code == 429, r.json()
    assert 0 < int(r.headers["retry-after"]) <= 86_400
    assert "today" in r.json()["detail"] and "00:00 UTC" in r.json()["fix"]
    net.restart()  # the day's count is the log operator's, kept in its database
    r = flood(net, "v4", 1, "after-restart")
    assert r.status_code == 429 and "today" in r.json()["detail"], r.json()
    rival = net.homes["rival"]
    with pytest.raises(RateLimited, match="today"):  # what a member's node gets from its operator
        net.client("rival").submit([rival.sign("notification.transition", draft(rival, net.homes["v4"], "c"))])
    assert net.node.ledger.size == size + CREATED_A_DAY


def test_a_refused_batch_does_not_use_up_the_daily_quota(network):
    net = network
    rival, maker = net.homes["rival"], net.homes["maker"]
    bad = [rival.sign("notification.transition", draft(rival, maker, "same")) for _ in range(2)]  # the same id twice
    assert post(net.client("rival"), bad).status_code == 409
    assert net.node.budget.used_today(rival.did, ("notification.transition", "CREATED")) == 0


def test_a_notification_is_open_once_sent_and_its_recipient_declines_one_it_never_received(network):
    net = network
    rival, maker = net.homes["rival"], net.homes["maker"]
    assert move(net, "rival", draft(rival, maker, "n1")).status_code == 201
    assert maker.did not in open_rows(net)
    assert move(net, "rival", draft(rival, maker, "n1", "SENT")).status_code == 201
    row = open_rows(net)[maker.did]
    assert (row["open"], row["severity"]) == (1, "LIFE-THREATENING")
    r = move(net, "maker", draft(rival, maker, "n1", "DECLINED", reason="never received: no such content reached us"))
    assert r.status_code == 201, r.json()
    assert maker.did not in open_rows(net)
    # the regulator's counts of notifications it is not party to leave drafts out
    assert move(net, "rival", draft(rival, maker, "n2")).status_code == 201
    net.node.catch_up()
    assert notify.listing(net.node)["others"]["state"] == {"DECLINED": 1}


def test_a_suspended_member_raises_no_notification_but_answers_those_it_holds(network):
    net = network
    rival, maker = net.homes["rival"], net.homes["maker"]
    for state in ("CREATED", "SENT"):  # maker alerts the rival before its suspension
        assert move(net, "maker", draft(maker, rival, "m1", state)).status_code == 201
    assert move(net, "rival", draft(rival, maker, "d1")).status_code == 201
    actions.act(net.node, "suspend", "member", rival.did, "flooding the log", None, [])
    r = flood(net, "maker", 50, "suspended")
    assert r.status_code == 403 and "raises no new notification" in r.json()["detail"], r.json()
    r = move(net, "rival", draft(rival, maker, "d1", "SENT"))  # its earlier draft
    assert r.status_code == 403, r.json()
    assert move(net, "rival", draft(maker, rival, "m1", "RECEIVED")).status_code == 201  # it answers
    assert move(net, "rival", draft(rival, maker, "d1", "CANCELED")).status_code == 201  # and withdraws its draft


def test_a_plant_anchoring_many_batches_is_not_refused_but_a_flood_of_entries_is(network):
    net = network
    maker = net.homes["maker"]
    mc = net.client("maker")
    decl = {"dataset": "line-1", "title": "Line 1", "kind": "measurements"}
    assert post(mc, [maker.sign("dataset.declare", decl)]).status_code == 201
    anchors = [maker.sign("dataset.anchor", {"dataset": "line-1", "first": i * 100, "count": 100,
                                             "root": os.urandom(32).hex()}) for i in range(BURST)]  # fmt: skip
    for k in range(0, len(anchors), 250):  # a file's batches, anchored one request after another
        r = post(mc, anchors[k : k + 250])
        assert r.status_code == 201, r.json()
    for k in range(0, BURST, 250):  # the bucket refilled only while the anchors went in: the rest is refused
        r = post(mc, [maker.sign("dataset.declare", {**decl, "dataset": f"spam-{k + i}"}) for i in range(250)])
        if r.status_code != 201:
            break
    assert r.status_code == 429 and "send fewer at a time" in r.json()["fix"], r.json()
    assert int(r.headers["retry-after"]) >= 1
    # a member's cosignature is never charged, nor are the regulator's own entries
    net.node.catch_up()
    r = post(mc, [witness.cosign(maker, net.node.ledger, net.node.ledger.size, 1_900_000_000)])
    assert r.status_code == 201, r.json()
    (receipt,) = net.node.submit([net.reg.sign("identity.register", net.late.registration())])
    assert receipt.seq == net.node.ledger.size - 1
