"""Inspection plans: the draw is reproducible from the revealed seed and verifiable by anyone, weights are
respected, and every replica refuses a reveal that misses its commitment, a draw before its plan, a
second draw."""

from __future__ import annotations

import json
import math
import random
from datetime import date

import pytest

from qdsn.errors import Conflict, IntegrityError, InvalidInput, NotFound, PermissionDenied
from qdsn.ledger.integrity import Outcome
from qdsn.supervision import draw

from ..ledger.conftest import member
from .world import world

AS_OF = date(2026, 3, 31)
TXID = "ab" * 32


def _pop(n: int) -> list[list[str]]:
    return [[f"did:key:z6Mk{i:044d}", "ABCD"[i % 4]] for i in range(n)]


def test_same_seed_same_draw_in_any_order_and_another_seed_another_draw():
    pop, seed = _pop(200), "11" * 32
    a = draw.draw(seed, TXID, pop, draw.DEFAULT_WEIGHTS, 20, ["i1", "i2", "i3", "i4"], 2)
    shuffled = pop[:]
    random.Random(3).shuffle(shuffled)
    assert draw.draw(seed, TXID, shuffled, draw.DEFAULT_WEIGHTS, 20, ["i4", "i3", "i2", "i1"], 2) == a
    assert len(set(a.selection)) == 20 and all(len(set(t)) == 2 for t in a.teams)
    assert draw.draw("12" * 32, TXID, pop, draw.DEFAULT_WEIGHTS, 20).selection != a.selection
    assert draw.draw(seed, "cd" * 32, pop, draw.DEFAULT_WEIGHTS, 20).selection != a.selection  # bound to the plan


def test_first_pick_follows_the_class_weights():
    """One draw of one from four firms of classes A–D (weights 1, 2, 4, 8): over 6,000 seeds each firm is
    drawn with probability w / 15, within 4.5 standard deviations (a false alarm about once in 10^5 runs)."""
    pop, n = _pop(4), 6000
    counts = {cls: 0 for cls in "ABCD"}
    for s in range(n):
        seed = f"{s:064x}"
        (did,) = draw.draw(seed, TXID, pop, draw.DEFAULT_WEIGHTS, 1).selection
        counts[dict(map(tuple, pop))[did]] += 1
    for cls, w in draw.DEFAULT_WEIGHTS.items():
        p = w / 15
        assert abs(counts[cls] / n - p) <= 4.5 * math.sqrt(p * (1 - p) / n), (cls, counts)


def test_riskier_classes_are_included_more_often_and_weight_zero_never():
    pop = _pop(400)
    weights = {"A": 0, "B": 1, "C": 3, "D": 9}
    seen = {cls: 0 for cls in "ABCD"}
    for s in range(60):
        for did in draw.draw(f"{s:064x}", TXID, pop, weights, 40).selection:
            seen[dict(map(tuple, pop))[did]] += 1
    assert seen["A"] == 0
    assert seen["B"] < seen["C"] < seen["D"], seen


def test_draw_refuses_what_cannot_be_drawn():
    with pytest.raises(InvalidInput, match="only 0 of the population have a weight above 0"):
        draw.draw("11" * 32, TXID, _pop(4), {"A": 0, "B": 0, "C": 0, "D": 0}, 1)
    with pytest.raises(InvalidInput, match="64 hex digits"):
        draw.draw("xyz", TXID, _pop(4), draw.DEFAULT_WEIGHTS, 1)
    with pytest.raises(InvalidInput, match="only 1 are named"):
        draw.draw("11" * 32, TXID, _pop(4), draw.DEFAULT_WEIGHTS, 1, ["i1"], 2)
    with pytest.raises(InvalidInput, match="64 lowercase hex"):
        draw.draw("11" * 32, "not a txid", _pop(4), draw.DEFAULT_WEIGHTS, 1)
    with pytest.raises(InvalidInput, match="at least one"):
        draw.draw("11" * 32, TXID, _pop(4), draw.DEFAULT_WEIGHTS, 0)
    with pytest.raises(InvalidInput, match="integer ≥ 0"):  # a negative weight would put its class first
        draw.draw("11" * 32, TXID, _pop(4), {"A": -1, "B": 2, "C": 4, "D": 8}, 1)
    with pytest.raises(InvalidInput, match="twice"):
        draw.draw("11" * 32, TXID, _pop(4) + _pop(1), draw.DEFAULT_WEIGHTS, 1)
    with pytest.raises(InvalidInput, match="no weight"):
        draw.draw("11" * 32, TXID, [["did:key:z6Mkx", "E"]], draw.DEFAULT_WEIGHTS, 1)
    for bad in ("A=1,B=2,C=4", "A=1,B=2,C=4,D=-1", "A=1,A=2,C=4,D=8", "A=1,B=2,C=4,D=x", "A=1,B=2,C=4,D=1001"):
        with pytest.raises(InvalidInput, match="--weights"):
            draw.parse_weights(bad)
    assert draw.parse_weights("a=1, b=2, c=4, d=8") == draw.DEFAULT_WEIGHTS


def _planned(w, seed: str, plan: str = "2026-Q1", **kw) -> dict:
    kw = {"count": 3, "inspectors": ["E01", "E02", "E03"], "per_inspection": 2} | kw
    payload = draw.plan_payload(w.ledger, plan, "电线电缆 2026 Q1", seed, as_of=AS_OF, **kw)
    w.append(w.regulator, "inspection.plan", payload)
    return payload


def test_plan_draw_verify_on_the_ledger(tmp_path):
    w = world(tmp_path, firms=8)
    w.result(w.firms[0], False)
    seed = draw.new_seed()
    spec = _planned(w, seed)
    assert spec["commitment"] == draw.commitment(seed) and spec["population"] == 8
    revealed = draw.draw_payload(w.ledger, "2026-Q1", seed)
    w.append(w.regulator, "inspection.draw", revealed)
    verdict = draw.verify(w.ledger, "2026-Q1")
    assert verdict.outcome is Outcome.VERIFIED and verdict.checked == 3, verdict
    listed = draw.plans(w.ledger)[0]
    assert listed["seed"] == seed and listed["selection"] == revealed["selection"]
    # The population the plan committed to is the ledger's before the plan: a later result changes nothing.
    w.result(w.firms[1], False)
    assert draw.verify(w.ledger, "2026-Q1").ok


def test_every_replica_refuses_a_wrong_reveal_a_draw_before_its_plan_and_a_second_draw(tmp_path):
    w = world(tmp_path)
    seed = draw.new_seed()
    with pytest.raises(NotFound, match="commit the plan"):  # the fold, not only the tool
        w.append(w.regulator, "inspection.draw", {"plan": "2026-Q1", "seed": seed, "selection": [w.firms[0].did]})
    _planned(w, seed)
    revealed = draw.draw_payload(w.ledger, "2026-Q1", seed)
    other = member("regulator", "Another bureau")
    w.append(w.regulator, "identity.register", other.register_payload())
    with pytest.raises(PermissionDenied, match="only it reveals the seed"):
        w.append(other, "inspection.draw", revealed)
    with pytest.raises(IntegrityError, match="does not match the commitment"):
        w.append(w.regulator, "inspection.draw", revealed | {"seed": "00" * 32})
    with pytest.raises(IntegrityError, match="does not match the commitment"):
        draw.draw_payload(w.ledger, "2026-Q1", "00" * 32)
    with pytest.raises(InvalidInput, match="by their DIDs"):
        w.append(w.regulator, "inspection.draw", revealed | {"selection": ["Firm 0", "Firm 1", "Firm 2"]})
    with pytest.raises(InvalidInput, match="draws 3 distinct"):
        w.append(w.regulator, "inspection.draw", revealed | {"selection": revealed["selection"][:2]})
    with pytest.raises(InvalidInput, match="of its own inspectors"):
        w.append(w.regulator, "inspection.draw", revealed | {"inspectors": [["E01", "X"]] * 3})
    w.append(w.regulator, "inspection.draw", revealed)
    with pytest.raises(Conflict, match="drawn once"):
        w.append(w.regulator, "inspection.draw", revealed)
    with pytest.raises(Conflict, match="drawn once"):
        draw.draw_payload(w.ledger, "2026-Q1", seed)
    with pytest.raises(Conflict, match="already exists"):
        _planned(w, draw.new_seed())


def test_only_the_regulator_plans_and_the_population_is_taken_before_the_plan(tmp_path):
    w = world(tmp_path)
    seed = draw.new_seed()
    payload = draw.plan_payload(w.ledger, "p", "t", seed, as_of=AS_OF, count=1)
    with pytest.raises(PermissionDenied, match=r"may not submit inspection\.plan"):
        w.append(w.certifier, "inspection.plan", payload)
    with pytest.raises(InvalidInput, match="after the plan itself"):
        w.append(w.regulator, "inspection.plan", payload | {"basis": w.ledger.size + 5})
    with pytest.raises(InvalidInput, match=r"cannot draw 7"):
        draw.plan_payload(w.ledger, "p", "t", seed, as_of=AS_OF, count=7)
    with pytest.raises(NotFound, match="no enterprise"):
        draw.plan_payload(w.ledger, "p", "t", seed, as_of=AS_OF, count=1, scope={"region": "11"})


def test_verify_names_a_selection_the_seed_does_not_give(tmp_path):
    """A regulator that reveals the right seed with a selection of its own choosing passes the fold (it cannot
    recompute classes) but not verification, which names the first wrong place."""
    w = world(tmp_path, firms=8)
    seed = draw.new_seed()
    _planned(w, seed)
    revealed = draw.draw_payload(w.ledger, "2026-Q1", seed)
    others = [f.did for f in w.firms if f.did not in revealed["selection"]]
    w.append(w.regulator, "inspection.draw", revealed | {"selection": [revealed["selection"][0], *others[:2]]})
    verdict = draw.verify(w.ledger, "2026-Q1")
    assert verdict.outcome is Outcome.DAMAGED and "selection 2 is" in verdict.message, verdict


def test_verify_names_a_population_the_ledger_does_not_give(tmp_path):
    w = world(tmp_path, firms=8)
    seed = draw.new_seed()
    payload = draw.plan_payload(w.ledger, "p", "t", seed, as_of=AS_OF, count=2)
    w.append(w.regulator, "inspection.plan", payload | {"population_hash": "00" * 32})
    assert draw.verify(w.ledger, "p").outcome is Outcome.INCOMPLETE  # not drawn yet
    with pytest.raises(Exception, match="committed population"):
        draw.draw_payload(w.ledger, "p", seed)
    pop = draw.population({f.did: "B" for f in w.firms})
    got = draw.draw(seed, w.ledger.store.entry(w.ledger.state.plans["p"].planned).txid, pop, payload["weights"], 2)
    w.append(w.regulator, "inspection.draw", {"plan": "p", "seed": seed, "selection": list(got.selection)})
    verdict = draw.verify(w.ledger, "p")
    assert verdict.outcome is Outcome.DAMAGED and "committed population" in verdict.message


def test_plans_survive_a_reopen_and_a_replay(tmp_path, store_url):
    """On SQLite and PostgreSQL: the plan and its draw are state, so a reopened replica still refuses a
    second draw, and a replay from zero folds to the same state."""
    from qdsn.ledger import Ledger
    from qdsn.ledger.audit import audit

    w = world(tmp_path, url=store_url)
    seed = draw.new_seed()
    _planned(w, seed)
    revealed = draw.draw_payload(w.ledger, "2026-Q1", seed)
    w.append(w.regulator, "inspection.draw", revealed)
    w.ledger.close()
    again = Ledger.open(store_url)
    try:
        assert again.state.plans["2026-Q1"].selection == tuple(revealed["selection"])
        assert draw.verify(again, "2026-Q1").ok
        with pytest.raises(Conflict, match="drawn once"):
            again.append([w.regulator.sign("inspection.draw", revealed)])
        report = audit(again.store)
        assert report.ok, report.reason
    finally:
        again.close()


def test_verify_names_inspectors_the_seed_does_not_send(tmp_path):
    w = world(tmp_path)
    seed = draw.new_seed()
    _planned(w, seed)
    revealed = draw.draw_payload(w.ledger, "2026-Q1", seed)
    teams = [list(t) for t in revealed["inspectors"]]
    teams[1] = sorted({"E01", "E02", "E03"} - set(teams[1]) | {teams[1][0]})
    w.append(w.regulator, "inspection.draw", revealed | {"inspectors": teams})
    verdict = draw.verify(w.ledger, "2026-Q1")
    assert verdict.outcome is Outcome.DAMAGED and "inspectors of selection 2" in verdict.message, verdict


def test_seeds_are_kept_per_commitment_and_checked(tmp_path):
    seeds = draw.Seeds(tmp_path / "seeds")
    s = draw.new_seed()
    seeds.keep("p", s)
    assert seeds.seed(draw.commitment(s)) == s
    assert (tmp_path / "seeds" / f"{draw.commitment(s)}.json").stat().st_mode & 0o777 == 0o600
    with pytest.raises(NotFound, match="does not hold the seed"):
        seeds.seed("00" * 32)
    (tmp_path / "seeds" / f"{'11' * 32}.json").write_text(json.dumps({"plan": "p", "seed": s}))
    with pytest.raises(IntegrityError, match="does not hash"):
        seeds.seed("11" * 32)
