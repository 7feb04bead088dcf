"""ISO 2859-1: code letters (Table 1), single sampling plans (Tables 2-A, 2-B, 2-C) including
cells reached through the arrows, the switching rules and the OC curve."""

import pytest

from qdsn import quality
from qdsn.errors import InvalidInput


@pytest.mark.parametrize(
    ("lot", "level", "letter"),
    [(2, "II", "A"), (8, "III", "B"), (50, "II", "D"), (1000, "II", "J"), (1000, "S-1", "C"), (3200, "I", "H"),
     (10_000, "III", "M"), (500_001, "II", "Q"), (10**7, "III", "R"), (200_000, "S-4", "J")],
)  # fmt: skip
def test_code_letters(lot, level, letter):
    assert quality.code_letter(lot, level) == letter


@pytest.mark.parametrize(
    ("lot", "level", "aql", "severity", "plan"),
    [
        (1000, "II", 1.0, "normal", ("J", 80, 2, 3)),
        (1000, "II", 1.0, "tightened", ("J", 80, 1, 2)),
        (1000, "II", 1.0, "reduced", ("J", 32, 1, 3)),
        (1000, "II", 0.65, "normal", ("J", 80, 1, 2)),
        (1000, "II", 0.40, "normal", ("K", 125, 1, 2)),  # J at 0.40: arrow down to K's 1/2
        (1000, "II", 0.25, "normal", ("H", 50, 0, 1)),  # J at 0.25: arrow up to H's 0/1
        (1000, "II", 0.10, "normal", ("K", 125, 0, 1)),  # J at 0.10: arrow down to K's 0/1
        (1000, "II", 2.5, "normal", ("J", 80, 5, 6)),
        (1000, "II", 10, "normal", ("J", 80, 14, 15)),
        (50, "II", 65, "normal", ("D", 8, 10, 11)),
        (10_000, "II", 4.0, "normal", ("L", 200, 14, 15)),
        (10_000, "II", 6.5, "normal", ("L", 200, 21, 22)),
        (10_000, "II", 10, "normal", ("K", 125, 21, 22)),  # beyond Ac 21: up the column
        (5, "II", 10, "normal", ("C", 5, 1, 2)),  # A at 10: down to C
        (500_001, "III", 0.015, "normal", ("P", 800, 0, 1)),  # R at 0.015: up to P
        (500_001, "III", 0.025, "tightened", ("S", 3150, 1, 2)),  # R at 0.025 tightened: down to S
        (1000, "II", 6.5, "tightened", ("J", 80, 8, 9)),
        (1000, "II", 0.15, "reduced", ("J", 32, 0, 1)),
        (1000, "II", 0.10, "reduced", ("K", 50, 0, 1)),
        (1000, "II", 4.0, "reduced", ("J", 32, 3, 6)),
    ],
)
def test_plans(lot, level, aql, severity, plan):
    p = quality.sampling_plan(lot, level, aql, severity)
    assert (p.plan_letter, p.n, p.ac, p.re) == plan


def test_master_table_shape_and_arrows():
    normal = quality.master_table("normal")
    assert len(normal) == 16 and all(len(row) == 26 for row in normal)
    a = normal[0]
    assert a[14] == (0, 1) and a[13] == "v" and a[25] == (30, 31)
    assert normal[5][9:13] == [(0, 1), "^", "v", (1, 2)]  # F: 0.65, 1.0, 1.5, 2.5
    assert len(quality.master_table("tightened")) == 17


def test_oc_curve():
    plan = quality.sampling_plan(1000, "II", 1.0)  # n = 80, Ac = 2
    pa = quality.oc_curve(plan, [0.0, 0.01, 0.05, 1.0])
    assert pa[0] == 1 and pa[-1] == 0 and pa[1] > 0.95 > 0.24 > pa[2]
    assert plan.accept_probability(0.01) == pytest.approx(0.9534, abs=1e-4)  # Σ_{d≤2} C(80,d)·0.01^d·0.99^(80−d)
    assert quality.oc_curve(plan, [0.01], nonconformities=True)[0] == pytest.approx(0.9526, abs=1e-4)


def test_switching_rules():
    sw = quality.Switching(1000, "II", 1.0)  # normal: n = 80, Ac 2; one step tighter (0.65): Ac 1
    assert sw.plan().ac == 2
    assert sw.record(0) == "normal" and sw.score == 3
    assert sw.record(2) == "normal" and sw.score == 0  # accepted, but not at the tighter AQL
    assert sw.record(3) == "normal"  # one lot not accepted
    assert sw.record(4) == "tightened"  # two of the last five
    assert sw.plan().ac == 1
    for _ in range(4):
        assert sw.record(0) == "tightened"
    assert sw.record(0) == "normal"  # five accepted in a row
    for _ in range(9):
        assert sw.record(1) == "normal"
    assert sw.score == 27
    assert sw.record(1, steady=False) == "normal"  # score 30, but production is not steady
    assert sw.record(0) == "reduced"
    assert sw.plan().n == 32
    assert sw.record(3) == "normal"  # not accepted on reduced inspection


def test_discontinued_after_five_lots_rejected_on_tightened():
    sw = quality.Switching(1000, "II", 1.0, reduced_allowed=False)
    sw.record(3), sw.record(3)
    assert sw.state == "tightened"
    for _ in range(5):
        state = sw.record(2)  # tightened Ac is 1
    assert state == "discontinued"
    with pytest.raises(InvalidInput, match="discontinued"):
        sw.record(0)


def test_bad_input():
    with pytest.raises(InvalidInput, match="at least 2"):
        quality.code_letter(1)
    with pytest.raises(InvalidInput, match="inspection level"):
        quality.code_letter(100, "IV")
    with pytest.raises(InvalidInput, match=r"AQL 0\.7"):
        quality.sampling_plan(100, "II", 0.7)
    with pytest.raises(InvalidInput, match="severity"):
        quality.sampling_plan(100, "II", 1.0, "strict")
    with pytest.raises(InvalidInput, match="out of range"):
        quality.oc_curve(quality.sampling_plan(100), [1.5])
