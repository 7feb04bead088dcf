"""Capability against published results, intervals, non-normal methods, and bad input."""

import numpy as np
import pytest

from qdsn import quality
from qdsn.errors import InvalidInput


def test_piston_rings_with_r_bar(pistonrings):
    # qcc's process.capability for the 25 trial samples, LSL 73.95, USL 74.05, σ = R̄/d2 = 0.009785:
    # Cp 1.703, Cp_l 1.743, Cp_u 1.663, Cp_k 1.663.
    c = quality.capability(pistonrings[:25], 73.95, 74.05, sigma_method="rbar")
    assert (round(c.cp, 3), round(c.cpl, 3), round(c.cpu, 3), round(c.cpk, 3)) == (1.703, 1.743, 1.663, 1.663)
    assert c.n == 125 and c.sigma_within == pytest.approx(0.02276 / 2.325929, rel=1e-6)
    assert c.intervals["cp"].low < c.cp < c.intervals["cp"].high
    assert c.ppm["observed_total"] == 0 and c.ppm["expected_within_total"] < 1
    assert c.normality["p_value"] > 0.05


def test_montgomery_interval_examples():
    # Montgomery, Example 8.5: n = 20, Ĉp = 1.15 → 0.79 ≤ Cp ≤ 1.51.
    ci = quality.cp_interval(1.15, 19)
    assert (round(ci.low, 2), round(ci.high, 2)) == (0.79, 1.51)
    # Example 8.6: n = 20, Ĉpk = 1.33 → 0.88 ≤ Cpk ≤ 1.78 (Bissell's approximation).
    ci = quality.cpk_interval(1.33, 20, 19)
    assert (round(ci.low, 2), round(ci.high, 2)) == (0.88, 1.78)


def test_sigma_estimators_agree_on_normal_data():
    rng = np.random.default_rng(7)
    x = rng.normal(10, 2, size=(400, 5))
    for method in ("pooled", "rbar", "sbar"):
        c = quality.capability(x, 4, 16, sigma_method=method)
        assert c.sigma_within == pytest.approx(2, rel=0.05), method
        assert c.cp == pytest.approx(1, rel=0.05) and c.pp == pytest.approx(1, rel=0.05)
    individuals = quality.capability(x.ravel(), 4, 16, target=10)
    assert individuals.sigma_method == "mrbar" and individuals.cpm == pytest.approx(1, rel=0.05)
    one_sided = quality.capability(x.ravel(), usl=16)
    assert one_sided.cp is None and one_sided.cpk == one_sided.cpu and "cp" not in one_sided.intervals


def test_expected_ppm_follows_the_normal_tails():
    rng = np.random.default_rng(3)
    c = quality.capability(rng.normal(0, 1, 20000), -3, 3)
    assert c.ppm["expected_overall_total"] == pytest.approx(2700, rel=0.1)
    assert c.ppm["observed_total"] == pytest.approx(2700, rel=0.35)


def test_anderson_darling_flags_skewed_data():
    rng = np.random.default_rng(1)
    assert quality.anderson_darling(rng.normal(size=500))["p_value"] > 0.01
    assert quality.anderson_darling(rng.lognormal(0, 0.8, size=500))["p_value"] < 0.005


def test_non_normal_capability():
    rng = np.random.default_rng(11)
    x = rng.lognormal(0, 0.5, 20000)
    exact_low, exact_high = np.exp(0.5 * np.array([-3, 3]))  # the lognormal's own 0.135 % and 99.865 % points
    fitted = quality.percentile_capability(x, 0.1, 6, distribution="lognorm")
    assert fitted["p0135"] == pytest.approx(exact_low, rel=0.03) and fitted["p99865"] == pytest.approx(
        exact_high, rel=0.03
    )
    assert fitted["ppu"] == pytest.approx((6 - 1) / (exact_high - 1), rel=0.05)
    empirical = quality.percentile_capability(x, 0.1, 6)
    assert empirical["ppk"] == pytest.approx(fitted["ppk"], rel=0.15)
    transformed, lam = quality.box_cox(x, 0.1, 6)
    assert abs(lam) < 0.1  # lognormal data: λ near 0, the log
    assert transformed.normality["p_value"] > 0.01
    with pytest.raises(InvalidInput, match="≥ 100"):
        quality.percentile_capability(x[:50], 0.1, 6)
    with pytest.raises(InvalidInput, match="positive"):
        quality.box_cox(x - 5, 0.1, 6)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (([1.0, 2.0, 3.0], 5, 4), {}, "must be below the upper"),
        (([1.0, 2.0, 3.0], 5, 5), {}, "must be below the upper"),
        (([1.0, 2.0, 3.0],), {}, "at least one specification limit"),
        (([1.0, float("nan"), 3.0], 0, 4), {}, "finite"),
        (([], 0, 4), {}, "at least 2"),
        (([2.0, 2.0, 2.0], 0, 4), {}, "do not vary"),
        (([1.0, 2.0, 3.0], 0, 4), {"sigma_method": "rbar"}, "needs subgroups"),
        (([1.0, 2.0, 3.0], 0, 4), {"target": 9}, "outside the specification"),
    ],
)
def test_bad_input_is_named(args, kwargs, message):
    with pytest.raises(InvalidInput, match=message):
        quality.capability(*args, **kwargs)


def test_normality_test_by_size_and_scipy_agreement():
    from scipy import stats

    rng = np.random.default_rng(4)
    small, large = rng.normal(size=1000), rng.gamma(9, size=50_000)
    assert quality.capability(small, -4, 4).normality["test"] == "anderson-darling"
    big = quality.capability(large, 0, 40).normality
    assert big["test"] == "dagostino-pearson"
    ref = stats.normaltest(large)
    assert big["k2"] == pytest.approx(ref.statistic, rel=1e-10) and big["p_value"] == pytest.approx(
        ref.pvalue, abs=1e-12
    )
    # Anderson-Darling A² against scipy's statistic (same estimator of μ and σ up to ddof)
    assert quality.anderson_darling(small)["a2"] == pytest.approx(
        stats.anderson(small, method="interpolate").statistic, rel=2e-3
    )


def test_anderson_darling_p_value_of_far_from_normal_data_is_zero():
    # two clusters far apart: A² in the thousands, where D'Agostino and Stephens' fit would overflow
    x = np.r_[np.zeros(500), np.full(500, 1e4)] + np.random.default_rng(9).normal(0, 1, 1000)
    ad = quality.anderson_darling(x)
    assert ad["a2"] > 153 and ad["p_value"] == 0.0
