"""Sampling-inspection results: recorded by the regulator only, of registered enterprises, under a plan
only for an enterprise its draw selected; each refusal says what was wrong."""

from __future__ import annotations

from datetime import date

import pytest

from qdsn.errors import InvalidInput, NotFound, PermissionDenied
from qdsn.supervision import draw, inspections

from .world import world


def test_results_are_checked_before_signing_and_by_every_replica(tmp_path):
    w = world(tmp_path, firms=4)
    firm = w.firms[0]
    ok = inspections.result_payload(w.ledger, firm.did, " 电线电缆 ", "GB/T 5023.3-2008", False, "2026-03-01")
    assert ok["product"] == "电线电缆" and "plan" not in ok
    seq = w.append(w.regulator, "inspection.result", ok)
    assert inspections.results(w.ledger, firm.did) == [{"entry": seq, **ok}]
    with pytest.raises(PermissionDenied, match=r"may not submit inspection\.result"):
        w.append(w.certifier, "inspection.result", ok)
    with pytest.raises(InvalidInput, match="YYYY-MM-DD"):
        inspections.result_payload(w.ledger, firm.did, "x", "GB 1", True, "2026-13-01")
    with pytest.raises(InvalidInput, match="not a calendar date"):
        w.append(w.regulator, "inspection.result", ok | {"date": "2026-02-30"})
    with pytest.raises(InvalidInput, match="must not be empty"):
        inspections.result_payload(w.ledger, firm.did, " ", "GB 1", True, "2026-03-01")
    for who in (w.certifier.did, "did:key:z6MkunknownXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"):
        with pytest.raises(NotFound, match="not a registered enterprise"):
            inspections.result_payload(w.ledger, who, "x", "GB 1", True, "2026-03-01")
    with pytest.raises(NotFound, match="not a registered enterprise"):
        w.append(w.regulator, "inspection.result", ok | {"enterprise": w.certifier.did})


def test_a_result_under_a_plan_is_of_an_enterprise_it_drew(tmp_path):
    w = world(tmp_path, firms=6)
    seed = draw.new_seed()
    w.append(w.regulator, "inspection.plan", draw.plan_payload(w.ledger, "p", "t", seed, as_of=date(2026, 3, 31),
                                                                 count=2))  # fmt: skip
    with pytest.raises(NotFound, match="no drawn inspection plan"):
        inspections.result_payload(w.ledger, w.firms[0].did, "x", "GB 1", True, "2026-03-01", plan="p")
    revealed = draw.draw_payload(w.ledger, "p", seed)
    w.append(w.regulator, "inspection.draw", revealed)
    drawn, other = revealed["selection"][0], next(f.did for f in w.firms if f.did not in revealed["selection"])
    w.result(next(f for f in w.firms if f.did == drawn), True, plan="p")
    with pytest.raises(InvalidInput, match="was not selected"):
        inspections.result_payload(w.ledger, other, "x", "GB 1", True, "2026-03-01", plan="p")
    with pytest.raises(InvalidInput, match="was not selected"):
        w.append(w.regulator, "inspection.result", {"plan": "p", "enterprise": other, "product": "x",
                                                     "standard": "GB 1", "passed": True,
                                                     "date": "2026-03-01"})  # fmt: skip
