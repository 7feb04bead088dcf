"""Six Sigma metrics against the conventional table (3.4 DPMO is six sigma with the 1.5σ shift)."""

import math

import pytest

from qdsn import quality
from qdsn.errors import InvalidInput


def test_sigma_levels():
    assert quality.sigma_level(3.4) == pytest.approx(6.0, abs=1e-3)
    assert quality.sigma_level(66_807) == pytest.approx(3.0, abs=1e-4)
    assert quality.sigma_level(308_538) == pytest.approx(2.0, abs=1e-4)
    assert quality.sigma_level(2700, shift=0, two_tailed=True) == pytest.approx(3.0, abs=1e-3)
    assert quality.dpmo_from_sigma(quality.sigma_level(1234)) == pytest.approx(1234)
    assert quality.sigma_level(0) == math.inf


def test_counts_and_yields():
    assert quality.dpu(30, 100) == 0.3
    assert quality.dpo(30, 100, 10) == 0.03 and quality.dpmo(30, 100, 10) == 30_000
    assert quality.yield_from_dpu(0.3) == pytest.approx(math.exp(-0.3))
    assert quality.rolled_throughput_yield([0.9, 0.95, 0.99]) == pytest.approx(0.84645)


def test_pareto():
    rows = quality.pareto({"scratch": 5, "dent": 30, "crack": 15})
    assert [r["category"] for r in rows] == ["dent", "crack", "scratch"]
    assert rows[0]["percent"] == 60 and rows[-1]["cumulative"] == 100


def test_bad_input():
    with pytest.raises(InvalidInput, match="exceed"):
        quality.dpo(11, 1, 10)
    with pytest.raises(InvalidInput, match="units must be a positive"):
        quality.dpu(1, 0)
    with pytest.raises(InvalidInput, match="below 1,000,000"):
        quality.sigma_level(1e6)
    with pytest.raises(InvalidInput, match="yield 1"):
        quality.rolled_throughput_yield([0.9, 1.2])
