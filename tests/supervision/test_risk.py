"""Risk classes: each from ledger evidence, explained factor by factor, the factors adding up to the score."""

from __future__ import annotations

import dataclasses
import random
from datetime import date

import pytest

from qdsn.errors import InvalidInput
from qdsn.supervision import evidence, risk
from qdsn.supervision.risk import Evidence, Notice

from .world import world

AS_OF = date(2026, 3, 31)
STATES = ("SENT", "RECEIVED", "ACKNOWLEDGED", "ACCEPTED", "DECLINED", "CLOSED", "CANCELED")


def _random_evidence(rng: random.Random, i: int) -> Evidence:
    certs = rng.randint(0, 4)
    notices = tuple(Notice(rng.choice(list(risk.SEVERITY)), tuple(sorted(rng.sample(STATES, rng.randint(1, 3)))),
                           f"did:key:z6Mk{rng.randint(0, 2)}", rng.choice(["enterprise", "certifier", "regulator"]),
                           rng.random() < 0.2) for _ in range(rng.randint(0, 3)))  # fmt: skip
    n = rng.randint(0, 6)
    return Evidence(f"did:key:z6Mk{i}", certificates=certs, suspensions=rng.randint(0, 3) if certs else 0,
                    revocations=rng.randint(0, 1) if certs else 0, runs=rng.randint(0, 9),
                    runs_failed=rng.randint(0, 3), runs_passed=rng.randint(0, 5), notices=notices, inspections=n,
                    inspections_failed=rng.randint(0, n),
                    last_anchor=rng.choice([None, date(2025, rng.randint(1, 12), 1), AS_OF]))  # fmt: skip


def test_explanations_sum_to_the_score_and_the_class_follows_it():
    rng = random.Random(21)
    for i in range(2000):
        a = risk.assess(_random_evidence(rng, i), AS_OF)
        assert sum(f.contribution for f in a.factors) == pytest.approx(a.score, abs=1e-9)
        assert {f.name for f in a.factors} == set(risk.WEIGHTS)
        for f in a.factors:
            assert 0 <= f.value <= 1 and f.contribution == round(f.weight * f.value * 100, 2)
            assert f.why and f.why_zh
        assert 0 <= a.score <= 100 and a.risk_class == risk.classify(a.score)
        lines = risk.explain(a)
        assert lines[0].startswith(f"class {a.risk_class}") and len(lines) == 1 + len(risk.WEIGHTS)
    assert sum(risk.WEIGHTS.values()) == pytest.approx(1.0)


def test_evidence_moves_the_class_the_way_it_should():
    clean = Evidence("a", certificates=3, runs=6, runs_passed=6, inspections=4, last_anchor=AS_OF)
    unknown = Evidence("b")
    unanswered = Notice("CRITICAL", ("RECEIVED", "SENT"), "r", "regulator")
    bad = Evidence("c", certificates=1, suspensions=1, revocations=1, runs_failed=2, inspections=2,
                   inspections_failed=2, notices=(unanswered,))  # fmt: skip
    classes = [risk.assess(e, AS_OF).risk_class for e in (clean, unknown, bad)]
    assert classes == ["A", "B", "D"]
    # Each factor alone raises the score.
    base = risk.assess(clean, AS_OF).score
    for worse in (dict(inspections_failed=2), dict(suspensions=2), dict(runs_failed=3),
                  dict(notices=(Notice("MAJOR", ("SENT",)),)), dict(last_anchor=date(2025, 6, 1))):  # fmt: skip
        assert risk.assess(dataclasses.replace(clean, **worse), AS_OF).score > base


def test_notifications_weigh_by_outcome_and_no_competitor_can_class_a_firm():
    def score(*notices: Notice) -> float:
        return risk.assess(Evidence("a", notices=notices), AS_OF).score

    def by_regulator(states: tuple[str, ...]) -> Notice:
        return Notice("MAJOR", states, "reg", "regulator")

    assert score(by_regulator(("CREATED",))) == score(by_regulator(("CANCELED", "SENT"))) == score()
    assert score(by_regulator(("DECLINED", "RECEIVED"))) < score(by_regulator(("ACKNOWLEDGED",))) \
        < score(by_regulator(("ACCEPTED", "ACKNOWLEDGED"))) == score(by_regulator(("RECEIVED", "SENT")))  # fmt: skip
    assert score(Notice("MAJOR", ("SENT",), "me", own=True)) < score(by_regulator(("SENT",)))  # disclosing pays
    # One competitor filing ten life-threatening notifications adds at most half the factor: 10 points.
    spam = [Notice("LIFE-THREATENING", ("SENT",), "did:key:rival", "enterprise") for _ in range(10)]
    assert score(*spam) - score() == pytest.approx(risk.WEIGHTS["notifications"] * risk.ENTERPRISE_CAP * 100)
    unknown = [Notice("LIFE-THREATENING", ("SENT",), "did:key:nobody", "") for _ in range(10)]
    assert score(*unknown) == score(*spam)
    assert score(*spam, by_regulator(("SENT",))) > score(*spam)


def test_evidence_read_from_the_ledger(tmp_path):
    w = world(tmp_path, firms=3)
    good, bad, idle = w.firms
    w.append(good, "dataset.declare", {"dataset": "g1", "title": "line 1", "kind": "measurements"})
    batch = {"first": 0, "count": 10, "root": "11" * 32}
    w.append(good, "dataset.anchor", batch | {"dataset": "g1"}, at="2026-03-30T08:00:00")
    w.append(bad, "dataset.declare", {"dataset": "b1", "title": "line 1", "kind": "measurements"})
    w.append(bad, "dataset.anchor", batch | {"dataset": "b1"}, at="2025-06-01T08:00:00")
    cert = {"vct": "urn:qdsn:vct:quality-certificate:1", "hash": "22" * 32, "status_list": "https://cqc/list/1"}
    w.append(w.certifier, "credential.issue", cert | {"credential": "C1", "subject": good.did, "index": 1,
                                                      "attestations": ["33" * 32]})  # fmt: skip
    w.append(w.certifier, "credential.issue", cert | {"credential": "C2", "subject": bad.did, "index": 2})
    w.append(w.certifier, "credential.status", {"credential": "C2", "status": "suspended", "reason": "Cpk 0.8",
                                                "attestation": "44" * 32})  # fmt: skip
    w.result(bad, False)
    w.result(bad, False, day="2026-06-01")  # after as_of: not yet known
    w.result(good, True)
    ev = evidence.read(w.ledger, AS_OF)
    assert ev[good.did].certificates == 1 and ev[good.did].runs_passed == 1
    assert ev[good.did].last_anchor == AS_OF.replace(day=30)
    assert ev[bad.did].suspensions == 1 and ev[bad.did].runs_failed == 1 and ev[bad.did].inspections == 1
    assert ev[bad.did].inspections_failed == 1 and ev[idle.did].last_anchor is None
    assert ev[idle.did].notices == ()  # no notification.transition on this log: the factor reads nothing
    classes = {d: a.risk_class for d, a in risk.assess_all(ev, AS_OF).items()}
    assert classes[good.did] == "A" and classes[bad.did] in "CD" and classes[idle.did] == "B"
    # Evidence before a point of the log: the suspension and results were not there yet.
    early = evidence.read(w.ledger, AS_OF, upto=w.ledger.state.credentials["C2"].issued + 1)
    assert early[bad.did].suspensions == 0 and early[bad.did].inspections == 0
    assert set(evidence.read(w.ledger, AS_OF, scope={"region": "33"})) == {good.did, idle.did}


def test_evidence_that_cannot_be_is_refused():
    for bad, said in ((dict(inspections=1, inspections_failed=2), "2 failed of 1"), (dict(suspensions=-1), "count"),
                      (dict(runs=1.5), "count"), (dict(industry_rate=1.5), "share"),
                      (dict(notices=(Notice("SEVERE", ("SENT",)),)), "severity 'SEVERE'")):  # fmt: skip
        with pytest.raises(InvalidInput, match=said):
            Evidence("did:key:z6Mkx", **bad)


def test_as_of_refuses_what_is_not_a_date():
    assert risk.as_of_date(None, AS_OF) == AS_OF
    with pytest.raises(InvalidInput, match="YYYY-MM-DD"):
        risk.as_of_date("31/03/2026", AS_OF)


@pytest.fixture
def notifications():
    """`notification.transition` as the contract between the branches defines its payload. Where this tree
    does not define the type yet, a stand-in that takes any such payload and folds nothing is registered for
    the test; where it does, the real type (and its state machine) is used."""
    from pydantic import ConfigDict

    from qdsn.ledger import state, tx

    if "notification.transition" in tx.REGISTRY:
        yield
        return

    class Transition(tx.Payload):
        model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    tx.REGISTRY["notification.transition"] = tx.TxType("notification.transition", Transition, frozenset(tx.ROLES))
    state._APPLY["notification.transition"] = lambda *_: None
    try:
        yield
    finally:
        del tx.REGISTRY["notification.transition"], state._APPLY["notification.transition"]


def test_notifications_read_from_the_ledger(tmp_path, notifications):
    w = world(tmp_path, firms=3)
    a, b, rival = w.firms

    def move(who, nid, state, classification, sender, recipient, severity="MAJOR", **extra):
        payload = {"notification": nid, "state": state, "classification": classification, "severity": severity,
                   "sender": sender.did, "recipient": recipient.did, "content": "ab" * 32, **extra}  # fmt: skip
        w.append(who, "notification.transition", payload)

    # The certifier asks A about a suspected defect (an investigation); A receives it and declines, saying why.
    move(w.certifier, "N1", "CREATED", "investigation", w.certifier, a)
    move(w.certifier, "N1", "SENT", "investigation", w.certifier, a)
    move(a, "N1", "RECEIVED", "investigation", w.certifier, a)
    move(a, "N1", "ACKNOWLEDGED", "investigation", w.certifier, a)
    move(a, "N1", "DECLINED", "investigation", w.certifier, a, reason="the batch was not ours")
    # B alerts its customer A to a problem of its own products (an alert is about the sender).
    move(b, "N2", "CREATED", "alert", b, a, "CRITICAL")
    move(b, "N2", "SENT", "alert", b, a, "CRITICAL")
    # A rival files five life-threatening investigations against A and never follows up.
    for i in range(5):
        move(rival, f"R{i}", "CREATED", "investigation", rival, a, "LIFE-THREATENING")
        move(rival, f"R{i}", "SENT", "investigation", rival, a, "LIFE-THREATENING")
    ev = evidence.read(w.ledger, AS_OF)
    got = {n.sender: n for n in ev[a.did].notices}
    moves = ("ACKNOWLEDGED", "CREATED", "DECLINED", "RECEIVED", "SENT")
    assert got[w.certifier.did] == Notice("MAJOR", moves, w.certifier.did, "certifier")
    assert len(ev[a.did].notices) == 6 and ev[b.did].notices == (Notice("CRITICAL", ("CREATED", "SENT"), b.did,
                                                                         "enterprise", own=True),)  # fmt: skip
    factor = {f.name: f for f in risk.assess(ev[a.did], AS_OF).factors}["notifications"]
    assert factor.value == pytest.approx(0.5 * 0.5 + risk.ENTERPRISE_CAP)  # declined MAJOR, the rival capped
    assert "6 notifications received (5 unanswered), 0 own alerts" in factor.why


def test_the_quick_score_is_the_assessments_to_the_last_digit():
    """`risk.score` ranks a region without the explanations: the same number as `assess`, for any evidence."""
    rng = random.Random(22)
    for i in range(5000):
        ev = _random_evidence(rng, i)
        if i % 3 == 0:
            ev = dataclasses.replace(ev, industry="C38", industry_rate=rng.random())
        assert risk.score(ev, AS_OF) == risk.assess(ev, AS_OF).score, ev


def test_the_evidence_folded_in_steps_is_the_evidence_read_at_once(tmp_path, notifications):
    """A console keeps a `Tally` and folds only what was appended since: at every size, and for a day in the
    past (anchors made after it left out), it gives what `read` gives from the whole log."""
    w = world(tmp_path, firms=4)
    a, b, c, d = w.firms
    tally = evidence.Tally().fold(w.ledger.store)
    cert = {"vct": "urn:qdsn:vct:quality-certificate:1", "hash": "22" * 32, "status_list": "https://cqc/list/1"}
    result = {"product": "电线电缆", "standard": "GB/T 5023.3-2008", "passed": False, "date": "2026-02-01"}
    alert = {"state": "CREATED", "classification": "alert", "severity": "MAJOR", "content": "ab" * 32}
    steps = [
        (a, "dataset.declare", {"dataset": "a1", "title": "line", "kind": "measurements"}, None),
        (a, "dataset.anchor", {"dataset": "a1", "first": 0, "count": 5, "root": "11" * 32}, "2026-01-10T08:00:00"),
        (b, "dataset.declare", {"dataset": "b1", "title": "line", "kind": "measurements"}, None),
        (b, "dataset.anchor", {"dataset": "b1", "first": 0, "count": 5, "root": "12" * 32}, "2026-02-10T23:30:00"),
        (a, "dataset.anchor", {"dataset": "a1", "first": 5, "count": 5, "root": "13" * 32}, "2026-03-20T08:00:00"),
        (
            w.certifier,
            "credential.issue",
            cert | {"credential": "C1", "subject": c.did, "index": 1, "attestations": ["33" * 32]},
            None,
        ),
        (
            w.certifier,
            "credential.status",
            {"credential": "C1", "status": "suspended", "reason": "Cpk 0.8", "attestation": "44" * 32},
            None,
        ),
        (w.regulator, "inspection.result", result | {"enterprise": d.did}, None),
        (b, "notification.transition", alert | {"notification": "N1", "sender": b.did, "recipient": a.did}, None),
    ]
    for who, type, payload, at in steps:
        w.append(who, type, payload, at=at)
        tally.fold(w.ledger.store)
        assert tally.size == w.ledger.size
        for day in (AS_OF, date(2026, 2, 15), date(2026, 1, 1)):
            for scope in ({}, {"region": "33"}, {"industry": "C38"}):
                assert tally.evidence(w.ledger, day, scope) == evidence.read(w.ledger, day, scope=scope), (type, day)
    assert evidence.read(w.ledger, date(2026, 2, 15))[a.did].last_anchor == date(2026, 1, 10)  # the later one is after
    assert evidence.read(w.ledger, AS_OF)[a.did].last_anchor == date(2026, 3, 20)
    # Folding up to a point of the log is the evidence before it, whatever was folded after.
    assert evidence.Tally().fold(w.ledger.store, 5).size == 5


def test_an_anchor_time_with_an_offset_is_its_utc_day(tmp_path):
    """The day of an anchor is read from its leaf's head; a time a submitter gave with an offset is moved to
    UTC first (07:30 at +08:00 on the 21st is the 20th)."""
    from qdsn.crypto.encoding import b64url_encode
    from qdsn.ledger.tx import Envelope

    w = world(tmp_path, firms=1)
    (a,) = w.firms
    w.append(a, "dataset.declare", {"dataset": "a1", "title": "line", "kind": "measurements"})
    plain = Envelope("dataset.anchor", {"dataset": "a1", "first": 0, "count": 5, "root": "11" * 32}, a.did,
                     "ab" * 16, "2026-03-21T07:30:00+08:00", "")  # fmt: skip
    env = Envelope(plain.type, plain.payload, plain.submitter, plain.nonce, plain.created,
                   b64url_encode(a.key.sign(plain.signing_input())))  # fmt: skip
    w.ledger.append([env])
    assert evidence.read(w.ledger, AS_OF)[a.did].last_anchor == date(2026, 3, 20)
    assert evidence.read(w.ledger, date(2026, 3, 20))[a.did].last_anchor == date(2026, 3, 20)
    assert evidence.read(w.ledger, date(2026, 3, 19))[a.did].last_anchor is None
