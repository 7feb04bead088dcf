"""A notification raised automatically to a participant whose node address this node does not know is
shown as undelivered, with the reason and the next step, and is delivered once the address is learned:
by `remember` (qdsn notify address / send --url) or on a later start, by the node's next round."""

import time

import pytest

from qdsn.crypto.encoding import b64url_encode
from qdsn.errors import NotFound, Unavailable
from qdsn.ledger.checkpoint import Checkpoint, cosigned_message
from qdsn.node import Node, NodeHome, notify

from .test_jobs_api import lab  # noqa: F401 — the fixture: a plant, a published model, offers


def split_view(node, cqc, lab_node):
    """The certification body records a split view the maker's node signed: an alert to the maker."""
    size = node.ledger.size
    origin, root = node.ledger.origin, node.ledger.root_at(size)

    def claim(key, did, r):
        msg = cosigned_message(Checkpoint(origin, size, r).text(), 7)
        return {"signer": did, "root": r.hex(), "timestamp": 7, "signature": b64url_encode(key.sign(msg))}

    alert = cqc.sign("alert.raise", {"kind": "split-view", "origin": origin, "size": size,
                                     "claims": [claim(cqc.key(), cqc.did, root), claim(node.home.key(), node.did,
                                                                                      bytes(32))]})  # fmt: skip
    lab_node.submit([alert])
    notify._scanned.clear()
    (n,) = notify.on_split_views(lab_node)
    return n


def shown(lab_node, id):
    (n,) = [x for x in notify.listing(lab_node)["notifications"] if x["id"] == id]
    return n


def test_an_alert_to_an_unknown_address_is_shown_and_delivered_once_the_address_is_known(lab):  # noqa: F811
    node, c, _ = lab
    cqc = NodeHome.open(node.home.path.parent / "cqc", "pw", scrypt_n=2**4)
    lab_node = Node(cqc, operator=True, ledger=node.ledger)
    n = split_view(node, cqc, lab_node)
    asked = []
    links = lambda url: asked.append(url) or c["cqc"]  # noqa: E731
    assert notify.deliver_due(lab_node, links) == [] and asked == []  # nowhere to send it
    d = shown(lab_node, n.id)["delivery"]
    assert (d["delivered"], d["url"]) == (False, None) and "address is not known" in d["reason"]
    assert f"qdsn notify address --to {node.did}" in d["next"] and f"qdsn notify send {n.id}" in d["next"]
    assert shown(node, n.id)["delivery"] is None  # the recipient has nothing to deliver

    # the address becomes known while the node is down: delivery fails, is retried later, and says why
    assert notify.remember(lab_node, node.did, "http://maker/") == [n.id]
    assert notify.address_of(lab_node, node.did) == "http://maker"

    def down(url):
        raise Unavailable("connection refused")

    now = int(time.time())
    assert notify.deliver_due(lab_node, lambda url: down(url), now=now) == []
    d = shown(lab_node, n.id)["delivery"]
    assert d["url"] == "http://maker" and "connection refused" in d["reason"] and "tries again at" in d["next"]
    assert notify.deliver_due(lab_node, links, now=now) == []  # not before it is due

    # a later start (a new Node on the same home) delivers it in its first round
    again = Node(cqc, operator=True, ledger=node.ledger)
    assert notify.deliver_due(again, links, now=now + 3600) == [n.id]
    assert asked == ["http://maker"] and node.ledger.state.notices[n.id].state == "RECEIVED"
    assert shown(again, n.id)["delivery"] is None
    assert notify.content(node, n.id) == notify.content(lab_node, n.id)


def test_a_notification_raised_after_the_address_is_known_goes_there(lab):  # noqa: F811
    node, c, _ = lab
    cqc = NodeHome.open(node.home.path.parent / "cqc", "pw", scrypt_n=2**4)
    lab_node = Node(cqc, operator=True, ledger=node.ledger)
    assert notify.remember(lab_node, node.did, "http://maker") == []
    n = split_view(node, cqc, lab_node)
    d = shown(lab_node, n.id)["delivery"]
    assert d["url"] == "http://maker" and d["reason"] == "not tried yet"
    assert notify.deliver_due(lab_node, lambda url: c["cqc"]) == [n.id]
    assert node.ledger.state.notices[n.id].state == "RECEIVED"


def sent_undelivered(node, cqc, lab_node):
    """A notification its sender records as SENT on the ledger without ever delivering its content."""
    id = split_view(node, cqc, lab_node).id
    n = node.ledger.state.notices[id]
    lab_node.submit([cqc.sign("notification.transition", {
        "notification": n.id, "state": "SENT", "classification": n.classification, "severity": n.severity,
        "sender": n.sender, "recipient": n.recipient, "content": n.content})])  # fmt: skip
    return n.id


def test_a_recipient_declines_a_notification_it_never_received(lab):  # noqa: F811
    node, _, _ = lab
    cqc = NodeHome.open(node.home.path.parent / "cqc", "pw", scrypt_n=2**4)
    lab_node = Node(cqc, operator=True, ledger=node.ledger)
    id = sent_undelivered(node, cqc, lab_node)
    assert notify.content(node, id) is None and node.ledger.state.notices[id].state == "SENT"
    got = notify.answer(node, id, "DECLINED", "never received: nothing reached this node")
    assert got.state == "DECLINED" and node.ledger.state.notices[id].state == "DECLINED"
    with pytest.raises(NotFound, match="has not received the content"):  # acknowledging needs the content
        notify.answer(node, sent_undelivered(node, cqc, lab_node), "ACKNOWLEDGED")
