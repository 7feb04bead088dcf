"""Run rules on hand-built series: each rule fires where its pattern completes, and nowhere else."""

import numpy as np
import pytest

from qdsn.errors import InvalidInput
from qdsn.quality.rules import evaluate, rules


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
