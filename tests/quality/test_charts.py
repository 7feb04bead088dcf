"""Control charts against published worked examples (raw data in tests/fixtures/quality, sources in
its README), and every chart's limits against the textbook formulas for random data (hypothesis)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qdsn import quality
from qdsn.errors import InvalidInput

from .conftest import rows


def test_xbar_r_piston_rings(pistonrings):
    # Montgomery, Example 6.1: x̿ = 74.001, limits 73.988 and 74.014; qcc's output for the same data:
    # center 74.00118, σ = R̄/d2 = 0.009785, LCL 73.98805, UCL 74.0143.
    chart = quality.xbar_r(pistonrings[:25])
    assert chart.center == pytest.approx(74.00118, abs=5e-6)
    assert chart.sigma == pytest.approx(0.02276 / 2.325929, rel=1e-6)  # R̄ = 0.02276
    assert (chart.lcl, chart.ucl) == (pytest.approx(73.98805, abs=5e-6), pytest.approx(74.0143, abs=5e-5))
    assert round(chart.lcl, 3) == 73.988 and round(chart.ucl, 3) == 74.014
    assert chart.companion.lcl == 0 and chart.companion.ucl == pytest.approx(2.114 * 0.02276, rel=1e-3)
    assert not chart.violations and not chart.companion.violations
    # Phase II (Example 6.2): the 15 new samples against the frozen limits; the last ones are above the UCL.
    new = quality.xbar_r(pistonrings[25:], limits=chart.limits)
    beyond = sorted({v.index + 26 for v in new.violations if v.rule == "nelson1"})
    assert beyond == [37, 38, 39]
    assert new.lcl == chart.lcl and new.ucl == chart.ucl


def test_xbar_s_piston_rings(pistonrings):
    # Montgomery, Example 6.3: X̄ limits 73.988 and 74.014 from S̄ (A3 = 1.427); S chart LCL 0, UCL B4·S̄.
    chart = quality.xbar_s(pistonrings[:25])
    s = chart.companion
    sbar = pistonrings[:25].std(axis=1, ddof=1).mean()
    assert s.center == pytest.approx(sbar) and s.lcl == 0 and s.ucl == pytest.approx(2.089 * sbar, rel=1e-3)
    assert round(chart.lcl, 3) == 73.988 and round(chart.ucl, 3) == 74.014


def test_p_chart_orange_juice_phase_one():
    # Montgomery, Example 7.1: p̄ = 0.2313, UCL 0.4102, LCL 0.0524; samples 15 and 23 are above the
    # UCL; with them left out, p̄ = 0.2150, UCL 0.3893, LCL 0.0407.
    d = [int(r["D"]) for r in rows("orangejuice.csv")][:30]
    chart = quality.p_chart(d, 50)
    assert (chart.center, chart.ucl, chart.lcl) == (
        pytest.approx(0.2313, abs=5e-5),
        pytest.approx(0.4102, abs=5e-5),
        pytest.approx(0.0524, abs=5e-5),
    )
    assert [v.index + 1 for v in chart.violations if v.rule == "nelson1"] == [15, 23]
    revised = quality.p_chart(d, 50, exclude=[14, 22])
    assert (revised.center, revised.ucl, revised.lcl) == (
        pytest.approx(0.2150, abs=5e-5),
        pytest.approx(0.3893, abs=5e-5),
        pytest.approx(0.0407, abs=5e-5),
    )
    assert revised.excluded == [14, 22]
    # Dropping until nothing is beyond the limits also drops sample 21, which is above the revised UCL.
    assert quality.p_chart(d, 50, drop_out_of_control=True).excluded == [14, 20, 22]


def test_c_chart_circuit_boards():
    # Montgomery, Example 7.3: c̄ = 19.85, UCL 33.22, LCL 6.48; samples 6 and 20 out of control;
    # revised without them: c̄ = 19.67, UCL 32.97, LCL 6.36.
    c = [int(r["x"]) for r in rows("circuit.csv")][:26]
    chart = quality.c_chart(c)
    assert (chart.center, chart.ucl, chart.lcl) == (
        pytest.approx(19.85, abs=0.005),
        pytest.approx(33.22, abs=0.01),
        pytest.approx(6.48, abs=0.005),
    )  # the book rounds c̄ to 19.85 before computing the limits
    assert [v.index + 1 for v in chart.violations if v.rule == "nelson1"] == [6, 20]
    revised = quality.c_chart(c, exclude=[5, 19])
    assert (round(revised.center, 2), round(revised.ucl, 2), round(revised.lcl, 2)) == (19.67, 32.97, 6.36)


def test_u_chart_constant_and_varying_sizes():
    # Montgomery, Example 7.4: ū = 1.93, UCL 3.79, LCL 0.07.
    pc = rows("pcmanufact.csv")
    chart = quality.u_chart([int(r["x"]) for r in pc], [int(r["size"]) for r in pc])
    assert (round(chart.center, 2), round(chart.ucl, 2), round(chart.lcl, 2)) == (1.93, 3.79, 0.07)
    # Example 7.5, rolls of cloth of varying size: ū = 153/107.5; stair-step limits ū ± 3√(ū/nᵢ).
    dy = rows("dyedcloth.csv")
    n = np.array([float(r["size"]) for r in dy])
    varying = quality.u_chart([int(r["x"]) for r in dy], n)
    assert varying.center == pytest.approx(153 / 107.5)
    assert np.allclose(varying.ucl, 153 / 107.5 + 3 * np.sqrt(153 / 107.5 / n))
    assert round(float(varying.ucl[0]), 1) == 2.6 and round(float(varying.lcl[0]), 2) == 0.29


def test_imr_viscosity_and_phase_two():
    v = [float(r["viscosity"]) for r in rows("viscosity.csv")]
    chart = quality.imr(v[:20])
    mr = np.abs(np.diff(v[:20]))
    assert chart.sigma == pytest.approx(mr.mean() / 1.128379, rel=1e-6)
    assert chart.companion.ucl == pytest.approx(3.267 * mr.mean(), rel=1e-3)
    assert chart.ucl == pytest.approx(np.mean(v[:20]) + 3 * mr.mean() / 1.128379, rel=1e-6)
    later = quality.imr(v[20:], limits=chart.limits)
    assert later.center == chart.center and later.sigma == chart.sigma


def test_ewma_nist_example():
    # NIST/SEMATECH e-Handbook 6.3.2.4: λ = 0.3, target 50, s = 2.0539; asymptotic limits
    # 47.4115 and 52.5884; EWMA 50.60, 49.52, 50.56, … 51.94, 51.99.
    x = [52.0, 47.0, 53.0, 49.3, 50.1, 47.0, 51.0, 50.1, 51.2, 50.5, 49.6, 47.6, 49.9, 51.3, 47.8, 51.2, 52.6, 52.4,
         53.6, 52.1]  # fmt: skip
    chart = quality.ewma(x, lam=0.3, target=50, sigma=2.0539, asymptotic=True)
    assert chart.ucl == pytest.approx(52.5884, abs=1e-4) and chart.lcl == pytest.approx(47.4116, abs=1e-4)
    assert list(np.round(chart.statistic[:4], 2)) == [50.60, 49.52, 50.56, 50.18]
    assert list(np.round(chart.statistic[-3:], 2)) == [51.23, 51.94, 51.99]
    assert not chart.violations
    exact = quality.ewma(x, lam=0.3, target=50, sigma=2.0539)
    assert exact.ucl[0] == pytest.approx(50 + 3 * 2.0539 * 0.3) and exact.ucl[-1] < chart.ucl


def test_cusum_montgomery_example():
    # Montgomery, Example 9.1: μ0 = 10, σ = 1, k = 0.5, h = 5: C⁺ first exceeds H at sample 29
    # (C⁺ = 5.28, N⁺ = 7, so the shift began after sample 22), estimated mean 10 + 0.5 + 5.28/7 = 11.25.
    x = [9.45, 7.99, 9.29, 11.66, 12.16, 10.18, 8.04, 11.46, 9.20, 10.34, 9.03, 11.47, 10.51, 9.40, 10.08, 9.37,
         10.62, 10.31, 8.52, 10.84, 10.90, 9.33, 12.29, 11.50, 10.60, 11.08, 10.38, 11.62, 11.31, 10.52]  # fmt: skip
    chart = quality.cusum(x, target=10, sigma=1)
    assert [v.index + 1 for v in chart.violations] == [29, 30]
    assert round(chart.statistic[28], 2) == 5.28 and chart.extra["n_plus"][28] == 7
    assert round(chart.extra["shift_up"][28], 2) == 11.25
    assert not chart.companion.violations


subgroups = st.integers(2, 10).flatmap(
    lambda n: st.lists(st.lists(st.floats(-1e3, 1e3), min_size=n, max_size=n), min_size=2, max_size=30)
)


@settings(max_examples=60, deadline=None)
@given(subgroups)
def test_variables_limits_match_textbook_formulas(data):
    x = np.array(data)
    n = x.shape[1]
    c = quality.constants
    rbar, sbar, xbb = np.ptp(x, axis=1).mean(), x.std(axis=1, ddof=1).mean(), x.mean()
    r = quality.xbar_r(x)
    assert r.ucl == pytest.approx(xbb + c.constant("A2", n) * rbar, abs=1e-6)
    assert r.lcl == pytest.approx(xbb - c.constant("A2", n) * rbar, abs=1e-6)
    assert r.companion.ucl == pytest.approx(c.constant("D4", n) * rbar, abs=1e-6)
    assert r.companion.lcl == pytest.approx(c.constant("D3", n) * rbar, abs=1e-6)
    s = quality.xbar_s(x)
    assert s.ucl == pytest.approx(xbb + c.constant("A3", n) * sbar, abs=1e-6)
    assert s.companion.ucl == pytest.approx(c.constant("B4", n) * sbar, abs=1e-6)
    assert s.companion.lcl == pytest.approx(c.constant("B3", n) * sbar, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 500), st.floats(0, 1)), min_size=2, max_size=40))
def test_attribute_limits_match_textbook_formulas(samples):
    n = np.array([s for s, _ in samples], dtype=float)
    d = np.floor(n * np.array([f for _, f in samples]))
    p = quality.p_chart(d, n)
    pbar = d.sum() / n.sum()
    assert np.allclose(p.ucl, np.minimum(1, pbar + 3 * np.sqrt(pbar * (1 - pbar) / n)))
    assert np.allclose(p.lcl, np.maximum(0, pbar - 3 * np.sqrt(pbar * (1 - pbar) / n)))
    u = quality.u_chart(d, n)
    assert np.allclose(u.ucl, pbar + 3 * np.sqrt(pbar / n))
    c = quality.c_chart(d)
    assert c.ucl == pytest.approx(d.mean() + 3 * np.sqrt(d.mean()))
    size = int(n.max())
    npc = quality.np_chart(np.minimum(d, size), size)
    pb = np.minimum(d, size).sum() / (size * d.size)
    assert npc.ucl == pytest.approx(min(size, size * pb + 3 * np.sqrt(size * pb * (1 - pb))))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: quality.xbar_r([]), "no subgroups"),
        (lambda: quality.xbar_r([[1.0, 2.0], [3.0]]), "subgroup 1 has 1 values"),
        (lambda: quality.imr([1.0, float("nan"), 2.0]), r"values\[1\] is nan"),
        (lambda: quality.imr([1.0, float("inf")]), "finite"),
        (lambda: quality.p_chart([3, 9], [10, 8]), "9 defectives among only 8"),
        (lambda: quality.p_chart([3, 1], [10, 0]), "sizes must be positive"),
        (lambda: quality.u_chart([3, 1], [10, -2]), "sizes must be positive"),
        (lambda: quality.c_chart([3, -1]), "negative"),
        (lambda: quality.np_chart([1, 2], [5, 6]), "one sample size"),
        (lambda: quality.ewma([1.0, 2.0], lam=0), "λ"),
        (lambda: quality.imr([1.0, 2.0], limits=quality.c_chart([1, 2]).limits), "for a c chart"),
        (lambda: quality.imr([1.0, 2.0, 3.0], exclude=[7]), "cannot exclude subgroup 7"),
        (lambda: quality.imr([1.0, 2.0, 3.0], sigmas=2), "unknown chart option 'sigmas'"),
        (lambda: quality.imr([1.0, 2.0, 3.0], nsigma=0), "nsigma must be positive"),
        (lambda: quality.ewma([1.0, 2.0, 3.0], sigma=0), "sigma must be a positive number"),
        (lambda: quality.cusum([1.0, 2.0], limits=quality.ewma([1.0, 2.0]).limits), "not for this cusum chart"),
    ],
)
def test_bad_input_is_named(call, message):
    with pytest.raises(InvalidInput, match=message):
        call()


def test_json_series_has_no_nan():
    chart = quality.imr([1.0, 2.0, 1.5, 3.0])
    data = chart.to_json()
    assert data["companion"]["statistic"][0] is None and data["kind"] == "i"
    import orjson

    orjson.dumps(data)  # plain JSON: no NaN, no numpy scalars
