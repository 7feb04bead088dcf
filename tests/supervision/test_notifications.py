"""The quality notification's state machine, every move by every side, its content checks, and the fold."""

from datetime import UTC, datetime

import pytest

from qdsn.errors import Conflict, InvalidInput, PermissionDenied
from qdsn.supervision import notifications as qn

# The issue's table, written out again: (from, to) -> the side that makes the move.
ALLOWED = {
    (None, "CREATED"): "sender",
    ("CREATED", "SENT"): "sender", ("CREATED", "CANCELED"): "sender",
    ("SENT", "RECEIVED"): "recipient", ("SENT", "ACKNOWLEDGED"): "recipient", ("SENT", "CLOSED"): "sender",
    ("SENT", "DECLINED"): "recipient",  # what it never received, or contests
    ("RECEIVED", "ACKNOWLEDGED"): "recipient", ("RECEIVED", "CLOSED"): "sender", ("RECEIVED", "DECLINED"): "recipient",
    ("ACKNOWLEDGED", "ACCEPTED"): "recipient", ("ACKNOWLEDGED", "DECLINED"): "recipient",
    ("ACKNOWLEDGED", "CLOSED"): "sender",
    ("ACCEPTED", "CLOSED"): "sender", ("DECLINED", "CLOSED"): "sender",
}  # fmt: skip
STATES = ["CREATED", "SENT", "RECEIVED", "ACKNOWLEDGED", "ACCEPTED", "DECLINED", "CLOSED", "CANCELED"]
NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
A = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
B = "did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG"


def test_the_states_are_the_issues():
    assert list(qn.STATES) == STATES
    assert {"CLOSED", "CANCELED"} == qn.FINAL


@pytest.mark.parametrize("current", [None, *STATES])
@pytest.mark.parametrize("new", STATES)
@pytest.mark.parametrize("side", ["sender", "recipient"])
def test_every_move_by_every_side(current, new, side):
    owner = ALLOWED.get((current, new))
    if owner == side:
        assert qn.move(current, new, side, "because") == new
        assert new in qn.moves(current, side)
    elif owner is not None:  # a move of the other side
        with pytest.raises(PermissionDenied, match=f"only the {owner}"):
            qn.move(current, new, side, "because")
        assert new not in qn.moves(current, side)
    else:
        with pytest.raises(Conflict, match="final" if current in ("CLOSED", "CANCELED") else "cannot move"):
            qn.move(current, new, side, "because")


@pytest.mark.parametrize(
    "new,current",
    [
        ("DECLINED", "ACKNOWLEDGED"),
        ("DECLINED", "SENT"),
        ("DECLINED", "RECEIVED"),
        ("CLOSED", "SENT"),
        ("CLOSED", "RECEIVED"),
        ("CLOSED", "ACKNOWLEDGED"),
        ("CLOSED", "ACCEPTED"),
        ("CLOSED", "DECLINED"),
    ],
)
def test_declining_and_closing_need_a_reason(new, current):
    side = ALLOWED[(current, new)]
    for reason in (None, "", "   "):
        with pytest.raises(InvalidInput, match="needs a reason"):
            qn.move(current, new, side, reason)
    assert qn.reason_required(new)
    assert not qn.reason_required("ACCEPTED")


def note(**kw):
    args = {"sender": A, "recipient": B, "classification": "investigation", "severity": "MAJOR",
            "description": "Cpk of bore diameter fell below 1.0\non line 2", "now": NOW} | kw  # fmt: skip
    return qn.new(
        args.pop("sender"),
        args.pop("recipient"),
        args.pop("classification"),
        args.pop("severity"),
        args.pop("description"),
        **args,
    )


def test_content_is_canonical_and_hashed():
    n = note(affected={"certificates": ["QC-1"], "batches": ["line-2#0+500"]}, target_date="2026-03-15")
    again = qn.parse(n.model_dump(mode="json"))
    assert again.digest() == n.digest() and len(n.digest()) == 64
    p = n.transition("CREATED")
    assert p["content"] == n.digest() and p["sender"] == A and "reason" not in p
    assert n.affected.count() == 2


@pytest.mark.parametrize("change,what", [
    ({"classification": "warning"}, "classification"),
    ({"severity": "HIGH"}, "severity"),
    ({"description": ""}, "description"),
    ({"description": "x" * 9000}, "description"),
    ({"description": "ok\x1b[2Jcleared"}, "control"),
    ({"description": "reads \u202eright to left"}, "control"),
    ({"target_date": "2026-02-30"}, "target_date"),
    ({"recipient": A}, "two participants"),
    ({"affected": {"serials": ["S1\nS2"]}}, "control"),
    ({"affected": {"serials": ["s"] * 201}}, "serials"),
    ({"affected": {"parts": ["x"]}}, "parts"),
    ({"id": "bad id!"}, "id"),
])  # fmt: skip
def test_hostile_content_is_refused_naming_the_field(change, what):
    doc = note().model_dump(mode="json") | change
    with pytest.raises(InvalidInput, match=what):
        qn.parse(doc)


def test_oversize_content_is_refused():
    doc = note().model_dump(mode="json")
    doc["affected"] = {k: [f"{k}-{i:03d}-" + "x" * 180 for i in range(200)] for k in ("serials", "products")}
    with pytest.raises(InvalidInput, match="over 64 KiB"):
        qn.parse(doc)


def test_fold_follows_the_moves_and_leaves_out_refused_ones():
    from qdsn.crypto import SigningKey
    from qdsn.identity import did_key_from_public_key
    from qdsn.ledger import tx

    ka, kb, kc = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    a, b, c = (did_key_from_public_key(k.verify_key.raw) for k in (ka, kb, kc))
    n = note(sender=a, recipient=b)
    envs = [
        tx.sign_tx("notification.transition", n.transition("CREATED"), ka, a),
        tx.sign_tx("notification.transition", n.transition("SENT"), ka, a),
        tx.sign_tx("notification.transition", n.transition("ACCEPTED"), kb, b),  # skips ACKNOWLEDGED: refused
        tx.sign_tx("notification.transition", n.transition("RECEIVED"), kc, c),  # a third party: refused
        tx.sign_tx("notification.transition", n.transition("RECEIVED"), kb, b),
        tx.sign_tx("notification.transition", n.transition("CLOSED", "fixed"), ka, a),
    ]
    got = qn.fold(envs)[n.id]
    assert (got.sender, got.recipient, got.classification, got.severity, got.state) == (
        a,
        b,
        "investigation",
        "MAJOR",
        "CLOSED",
    )
    assert [(s, q, r) for s, _, q, r in got.history] == [
        ("CREATED", 0, None),
        ("SENT", 1, None),
        ("RECEIVED", 4, None),
        ("CLOSED", 5, "fixed"),
    ]
    assert qn.fold([(7, e) for e in envs[:2]])[n.id].history[-1][2] == 7
    assert qn.counts([got]) == {"state": {"CLOSED": 1}, "classification": {"investigation": 1},
                                "severity": {"MAJOR": 1}}  # fmt: skip
