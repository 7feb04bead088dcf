"""Run rules on hand-built series: each rule fires where its pattern completes, and nowhere else."""

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qdsn import quality
from qdsn.errors import InvalidInput
from qdsn.quality import passes
from qdsn.quality.rules import evaluate, rules, scan


def hits(z, name, **lengths):
    return [(v.index, v.side) for v in evaluate(np.array(z, dtype=float), rules(name, lengths or None))]


def test_beyond_is_strict():
    assert hits([0, 3.0, 3.01, -3.5], "nelson1") == [(2, "above"), (3, "below")]


def test_same_side_runs_and_the_center_line():
    z = [0.5] * 9 + [0.0] + [0.5] * 8 + [-0.2] * 10
    assert hits(z, "nelson2") == [(8, "above"), (26, "below"), (27, "below")]
    assert hits(z, "we4") == [(7, "above"), (8, "above"), (17, "above"), (25, "below"), (26, "below"), (27, "below")]
    assert hits(z, "nelson2", nelson2=7)[:2] == [(6, "above"), (7, "above")]


def test_trend_needs_strict_steps():
    assert hits([0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.4], "nelson3") == [(5, "above")]
    assert hits([0, 0.1, 0.2, 0.2, 0.4, 0.5, 0.6], "nelson3") == []
    assert hits([1, 0.8, 0.6, 0.4, 0.2, 0.0], "nelson3") == [(5, "below")]


def test_alternating():
    z = [0.1 if i % 2 else -0.1 for i in range(15)]
    assert hits(z, "nelson4") == [(13, "both"), (14, "both")]


def test_two_of_three_counts_only_one_side_and_needs_the_last_point():
    assert hits([2.5, 0, 2.1], "nelson5") == [(2, "above")]
    assert hits([2.5, 2.1, 0], "nelson5") == [(1, "above")]
    assert hits([2.5, 0, -2.1], "nelson5") == []
    assert hits([1.5, 1.2, 0, 1.1, 1.3], "nelson6") == [(4, "above")]


def test_stratification_and_mixture():
    assert hits([0.5, -0.5] * 8, "nelson7")[0] == (14, "both")
    assert hits([1.5, -1.5] * 4, "nelson8") == [(7, "both")]
    assert hits([1.5, -1.5, 1.5, 0.9, -1.5, 1.5, 1.5, -1.5], "nelson8") == []


def test_a_point_is_reported_under_each_rule_it_breaks():
    z = [0.5] * 8 + [3.5]
    found = evaluate(np.array(z), rules("nelson"))
    assert {v.rule for v in found if v.index == 8} == {"nelson1", "nelson2"}


def test_unknown_rules_and_lengths_are_refused():
    with pytest.raises(InvalidInput, match="unknown run rule"):
        rules("nelson9")
    with pytest.raises(InvalidInput, match="not among the rules"):
        rules("western-electric", {"nelson2": 7})
    with pytest.raises(InvalidInput, match="at least 2"):
        rules("nelson", {"nelson2": 1})


def reference(z, picked):
    """The rules read straight off their definitions, one point at a time."""
    out = set()
    for r in picked:
        n = r.length
        for i in range(len(z)):
            window = z[max(0, i - n + 1) : i + 1]
            full = len(window) == n
            if r.test == "beyond":
                if z[i] > r.zone or z[i] < -r.zone:
                    out.add((i, r.name, "above" if z[i] > 0 else "below"))
            elif r.test == "same-side" and full:
                if all(v > 0 for v in window):
                    out.add((i, r.name, "above"))
                if all(v < 0 for v in window):
                    out.add((i, r.name, "below"))
            elif r.test == "trend" and full:
                if all(b > a for a, b in pairwise(window)):
                    out.add((i, r.name, "above"))
                if all(b < a for a, b in pairwise(window)):
                    out.add((i, r.name, "below"))
            elif r.test == "alternating" and full:
                steps = [b - a for a, b in pairwise(window)]
                if all(s * t < 0 for s, t in pairwise(steps)):
                    out.add((i, r.name, "both"))
            elif r.test == "k-of-m":
                if z[i] > r.zone and sum(v > r.zone for v in window) >= r.k:
                    out.add((i, r.name, "above"))
                if z[i] < -r.zone and sum(v < -r.zone for v in window) >= r.k:
                    out.add((i, r.name, "below"))
            elif r.test in ("within", "outside") and full:
                inside = [abs(v) <= r.zone if r.test == "within" else abs(v) > r.zone for v in window]
                if all(inside):
                    out.add((i, r.name, "both"))
    return out


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from([-3.5, -3, -2.5, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5]), max_size=80),
    st.integers(2, 12),
    st.integers(3, 16),
    st.integers(5, 40),
)
def test_vectorized_rules_match_their_definitions(z, same_side, alternating, k_of_m):
    """Values on the zone boundaries and repeated values are common here, where conventions bite."""
    picked = rules(["nelson", "western-electric"], {"nelson2": same_side, "nelson4": alternating, "nelson6": k_of_m})
    assert {tuple(v) for v in evaluate(np.array(z, dtype=float), picked)} == reference(z, picked)


@pytest.mark.parametrize("n", [1, 2, 15, 63, 64, 65, 1000, 4099])
def test_long_series_across_words_blocks_and_threads(n, monkeypatch, hot_loops):
    """Windows that cross words, blocks and the threads sharing them find what the definitions
    find, for grid values (ties everywhere) and continuous ones."""
    monkeypatch.setattr(passes, "BLOCK", 64 * 3)
    monkeypatch.setattr(passes, "CORES", 2)
    rng = np.random.default_rng(n)
    picked = rules(["nelson", "western-electric"], {"nelson6": 9})
    for z in (rng.choice(np.arange(-7, 8) / 2, n), rng.normal(0, 1.2, n)):
        assert {tuple(v) for v in evaluate(z, picked)} == reference(z.tolist(), picked)


def test_limits_are_compared_as_the_chart_reports_them():
    """A point equal to the reported limit is on it, even where (x − center)/σ rounds past 3."""
    center, sigma = 0.06733366683341671, 0.11
    ucl = center + 3 * sigma
    assert (ucl - center) / sigma > 3  # rounding would put this point beyond its limit
    found = scan(np.array([center, ucl, np.nextafter(ucl, 10)]), center, sigma, rules("nelson1"))
    assert [(v.index, v.side) for v in found] == [(2, "above")]


def test_the_limits_at_any_nsigma_are_the_reported_ones():
    """With limits at 2.5σ, zone 3 at center + 3·(2.5σ/3) can round below the reported UCL: the
    rules take the limits the chart reports."""
    center, sigma = 17.98, 1.5788296592401105
    ucl = center + 2.5 * sigma
    assert center + 3 * (sigma * 2.5 / 3) < ucl  # the boundary the zones alone would give
    x = np.array([center, ucl, center, np.nextafter(ucl, 99)])
    chart = quality.imr(x, limits=quality.Limits("imr", center, sigma), nsigma=2.5, rules="nelson1")
    assert chart.ucl == ucl
    assert chart.out_of_control == [3]
