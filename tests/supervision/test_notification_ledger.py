"""The ledger refuses every move of a quality notification its state machine does not allow to the
submitter's side, so the log never holds one; the notices are persisted, reloaded and digested."""

import uuid
from datetime import UTC, datetime

import pytest

from qdsn.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from qdsn.ledger import Ledger
from qdsn.ledger.state import MAX_OPEN_PER_PAIR, SETTLED_NOTICES
from qdsn.supervision import notifications as qn

from ..ledger.conftest import ORIGIN, member
from ..services import fresh_database
from .test_notifications import ALLOWED, STATES

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
# The shortest path of moves (state, side) to each state.
PATHS = {
    "CREATED": [], "SENT": ["SENT"], "RECEIVED": ["SENT", "RECEIVED"],
    "ACKNOWLEDGED": ["SENT", "RECEIVED", "ACKNOWLEDGED"],
    "ACCEPTED": ["SENT", "ACKNOWLEDGED", "ACCEPTED"], "DECLINED": ["SENT", "ACKNOWLEDGED", "DECLINED"],
    "CLOSED": ["SENT", "CLOSED"], "CANCELED": ["CANCELED"],
}  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    return fresh_database(request.getfixturevalue("postgres_url"), f"qdsn_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def parties(url):
    reg, maker, lab, other = member("regulator", "SAMR"), member("enterprise", "Maker"), member("certifier", "Lab"), \
        member("enterprise", "Other")  # fmt: skip
    led = Ledger.open(url, origin=ORIGIN)
    led.append([reg.sign("identity.register", reg.register_payload())])
    led.append([reg.sign("identity.register", m.register_payload()) for m in (maker, lab, other)])
    yield led, reg, maker, lab, other
    led.close()


def moved(led, sender, recipient, n, path):
    side = {"sender": sender, "recipient": recipient}
    led.append([sender.sign("notification.transition", n.transition("CREATED"))])
    for state in path:
        led.append([side[ALLOWED[(led.state.notices[n.id].state, state)]].sign(
            "notification.transition", n.transition(state, "why"))])  # fmt: skip


def settle(led, sender, n):
    """The sender cancels or closes `n` unless it is settled already."""
    state = led.state.notices[n.id].state
    if state not in SETTLED_NOTICES:
        led.append([sender.sign("notification.transition", n.transition("CANCELED" if state == "CREATED" else "CLOSED",
                                                                        "settled"))])  # fmt: skip


def test_open_notifications_are_bounded_per_sender_and_recipient_and_a_decline_frees_one(parties, url):
    led, _, maker, lab, other = parties
    held = [qn.new(lab.did, maker.did, "alert", "CRITICAL", f"n{i}", now=NOW) for i in range(MAX_OPEN_PER_PAIR)]
    led.append([lab.sign("notification.transition", n.transition("CREATED")) for n in held])
    led.append([lab.sign("notification.transition", n.transition("SENT")) for n in held[:1]])
    more = qn.new(lab.did, maker.did, "alert", "CRITICAL", "one more", now=NOW)
    with pytest.raises(Conflict, match=f"holds {MAX_OPEN_PER_PAIR} notifications open"):
        led.append([lab.sign("notification.transition", more.transition("CREATED"))])
    led.append([lab.sign("notification.transition", qn.new(lab.did, other.did, "alert", "MINOR", "x", now=NOW)
                         .transition("CREATED"))])  # another recipient is another count  # fmt: skip
    led.append([maker.sign("notification.transition", held[0].transition("DECLINED", "never received"))])
    led.append([lab.sign("notification.transition", more.transition("CREATED"))])
    again = Ledger.open(url, origin=ORIGIN)
    try:  # the bound is rebuilt from the stored notices by a new process
        with pytest.raises(Conflict, match="notifications open"):
            again.append([lab.sign("notification.transition", qn.new(lab.did, maker.did, "alert", "MINOR", "y",
                                                                     now=NOW).transition("CREATED"))])  # fmt: skip
    finally:
        again.close()


def test_every_move_from_every_state_by_every_party_on_the_ledger(parties):
    led, _, maker, lab, other = parties
    for start in STATES:
        for new in STATES:
            for who, name in ((lab, "sender"), (maker, "recipient"), (other, "third")):
                n = qn.new(lab.did, maker.did, "investigation", "MAJOR", "look into it", now=NOW)
                moved(led, lab, maker, n, PATHS[start])
                assert led.state.notices[n.id].state == start
                size, digest = led.size, led.state.digest()
                env = who.sign("notification.transition", n.transition(new, "why"))
                if ALLOWED.get((start, new)) == name:
                    led.append([env])
                    assert led.state.notices[n.id].state == new and led.size == size + 1
                else:
                    with pytest.raises((Conflict, PermissionDenied)):
                        led.append([env])
                    assert (led.size, led.state.digest()) == (size, digest)
                settle(led, lab, n)  # one sender holds a bounded number open towards one recipient
    folded = qn.fold(led.store.rows_of_type("notification.transition"))
    assert {k: v.state for k, v in folded.items()} == {k: v.state for k, v in led.state.notices.items()}


def test_the_first_move_is_created_by_the_sender_to_a_registered_participant(parties):
    led, _, maker, lab, _ = parties
    n = qn.new(lab.did, maker.did, "alert", "CRITICAL", "x", now=NOW)
    with pytest.raises(Conflict, match="does not exist yet"):
        led.append([lab.sign("notification.transition", n.transition("SENT"))])
    with pytest.raises(PermissionDenied, match="only the sender"):
        led.append([maker.sign("notification.transition", n.transition("CREATED"))])
    stranger = member("enterprise", "Stranger")
    m = qn.new(lab.did, stranger.did, "alert", "CRITICAL", "x", now=NOW)
    with pytest.raises(NotFound, match="not registered"):
        led.append([lab.sign("notification.transition", m.transition("CREATED"))])
    r = qn.new(lab.did, maker.did, "alert", "CRITICAL", "x", now=NOW, related="qn-nothing")
    with pytest.raises(NotFound, match="related"):
        led.append([lab.sign("notification.transition", r.transition("CREATED"))])
    led.append([lab.sign("notification.transition", n.transition("CREATED"))])
    with pytest.raises(Conflict, match="cannot move to CREATED"):
        led.append([lab.sign("notification.transition", n.transition("CREATED"))])


def test_what_a_notification_is_cannot_change(parties):
    led, _, maker, lab, other = parties
    n = qn.new(lab.did, maker.did, "alert", "MINOR", "x", now=NOW)
    led.append([lab.sign("notification.transition", n.transition("CREATED"))])
    for change in ({"severity": "CRITICAL"}, {"classification": "investigation"}, {"content": "0" * 64},
                   {"recipient": other.did}):  # fmt: skip
        with pytest.raises((InvalidInput, PermissionDenied)):
            led.append([lab.sign("notification.transition", n.transition("SENT") | change)])
    assert led.state.notices[n.id].state == "CREATED"


def test_a_decline_or_close_without_a_reason_is_refused_on_the_ledger(parties):
    led, reg, maker, _, _ = parties
    n = qn.new(reg.did, maker.did, "investigation", "LIFE-THREATENING", "x", now=NOW)
    moved(led, reg, maker, n, ["SENT", "ACKNOWLEDGED"])
    with pytest.raises(InvalidInput, match="needs a reason"):
        led.append([maker.sign("notification.transition", n.transition("DECLINED"))])
    led.append([maker.sign("notification.transition", n.transition("DECLINED", "not ours"))])
    with pytest.raises(InvalidInput, match="needs a reason"):
        led.append([reg.sign("notification.transition", n.transition("CLOSED"))])


def test_notices_survive_a_reopen_and_a_replay(parties, url, tmp_path):
    led, _, maker, lab, _ = parties
    n = qn.new(maker.did, lab.did, "alert", "MAJOR", "x", now=NOW)
    moved(led, maker, lab, n, ["SENT", "RECEIVED"])
    digest = led.state.digest()
    again = Ledger.open(url, origin=ORIGIN)
    assert again.state.digest() == digest and again.state.notices[n.id].state == "RECEIVED"
    again.close()
    replay = Ledger.open(str(tmp_path / "replay.db"), origin=ORIGIN)
    from qdsn.ledger import tx

    replay.append([tx.from_leaf(leaf) for leaf in led.store.leaves(0, led.size)])
    assert replay.state.digest() == digest
    replay.close()


def test_a_notice_altered_in_the_store_is_named_by_the_audit(tmp_path):
    import sqlite3

    from qdsn.ledger.audit import verify_ledger
    from qdsn.ledger.integrity import Outcome

    reg, maker, lab = member("regulator", "SAMR"), member("enterprise", "Maker"), member("certifier", "Lab")
    db = str(tmp_path / "ledger.db")
    led = Ledger.open(db, origin=ORIGIN)
    led.append([reg.sign("identity.register", reg.register_payload())])
    led.append([reg.sign("identity.register", m.register_payload()) for m in (maker, lab)])
    n = qn.new(lab.did, maker.did, "alert", "MAJOR", "x", now=NOW)
    moved(led, lab, maker, n, ["SENT", "RECEIVED"])
    led.close()
    assert verify_ledger(db, origin=ORIGIN).ok
    with sqlite3.connect(db) as c:
        c.execute("UPDATE notices SET state = 'CLOSED'")
    v = verify_ledger(db, origin=ORIGIN)
    assert v.outcome is Outcome.DAMAGED and f"notification {n.id}" in v.message, v
