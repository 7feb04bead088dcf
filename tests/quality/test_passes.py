"""Blocked passes over long series, the packed flag series of the run rules, and the results of
charts and capability computed in many blocks on two threads, with the C kernels and with numpy:
the same as computed whole."""

import math
import threading
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qdsn import quality
from qdsn.errors import InvalidInput
from qdsn.quality import bits, passes
from qdsn.quality.rules import Scan, evaluate, rules


@pytest.fixture
def small_blocks(monkeypatch, hot_loops):
    """Blocks of 64 points shared between two threads, so that short series cross many blocks;
    with the C kernels and with numpy."""
    monkeypatch.setattr(passes, "BLOCK", 64)
    monkeypatch.setattr(passes, "CORES", 2)


def test_every_block_once_in_order(small_blocks):
    seen = []
    out = passes.over(1000, lambda a, b: (seen.append((a, b)), (a, b, threading.get_ident()))[1])
    assert [(a, b) for a, b, _ in out] == [(s, min(s + 64, 1000)) for s in range(0, 1000, 64)]
    assert sorted(seen) == [(a, b) for a, b, _ in out]
    assert len({t for *_, t in out}) == 2  # the stretches ran on two threads


def test_a_failing_block_fails_the_pass(small_blocks):
    def work(a, b):
        if a == 640:
            raise ValueError("block 10")
        return a

    with pytest.raises(ValueError, match="block 10"):
        passes.over(1000, work)


def test_without_threads_one_core_does_it_all(small_blocks, monkeypatch):
    class NoThreads:
        def submit(self, *args):
            raise RuntimeError("can't start new thread")

    monkeypatch.setattr(passes, "_workers", NoThreads)
    assert passes.over(300, lambda a, b: (a, b, threading.get_ident())) == [
        (a, min(a + 64, 300), threading.get_ident()) for a in range(0, 300, 64)
    ]


def test_scratch_is_kept_per_thread_and_grows():
    a = passes.scratch("t", (10,))
    assert passes.scratch("t", (5, 2)).base is a.base and passes.scratch("t", (4,), bool).base is a.base
    assert passes.scratch("t", (100,)).size == 100  # a larger request replaces the buffer
    other = []
    t = threading.Thread(target=lambda: other.append(passes.scratch("t", (100,))))
    t.start(), t.join()
    assert not np.shares_memory(other[0], passes.scratch("t", (100,)))


def packed(flags: np.ndarray) -> np.ndarray:
    w = bits.empty(1, flags.size)
    bits.pack(w, 0, flags[None, :])
    return bits.before(w[0], flags.size)


def shifted(f: np.ndarray, k: int) -> np.ndarray:
    return np.r_[np.zeros(min(k, f.size), bool), f[: max(f.size - k, 0)]]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=300), st.integers(1, 140), st.integers(1, 6))
def test_word_operations_match_boolean_arrays(flags, m, k):
    f = np.array(flags)
    n, w = f.size, packed(f)
    assert bits.positions(w, n).tolist() == np.flatnonzero(f).tolist()
    assert bits.positions(bits.before(bits.later(w, m), n), n).tolist() == np.flatnonzero(shifted(f, m)).tolist()
    run = np.logical_and.reduce([shifted(f, j) for j in range(m)])
    assert bits.positions(bits.before(bits.held(w, m), n), n).tolist() == np.flatnonzero(run).tolist()
    k = min(k, m)
    count = np.sum([shifted(f, j) for j in range(m)], axis=0)
    expected = np.flatnonzero(f & (count >= k))
    assert bits.positions(bits.before(bits.at_least(w, m, k), n), n).tolist() == expected.tolist()


def test_positions_ignore_the_padding_past_the_last_point():
    w = np.full(3, np.uint64(2**64 - 1))
    assert bits.positions(w, 130).tolist() == list(range(130))
    assert bits.positions(w[:0], 0).tolist() == []


def test_imr_in_many_blocks_is_the_whole_computation(small_blocks):
    x = np.random.default_rng(5).normal(10, 1, 5000)
    chart = quality.imr(x)
    mr = np.abs(np.diff(x))
    assert chart.companion.statistic[1:] == pytest.approx(mr, abs=0)
    assert chart.center == pytest.approx(x.mean(), rel=1e-13)
    assert chart.sigma == pytest.approx(mr.mean() / 1.1283791670955126, rel=1e-12)
    assert chart.companion.violations.indices().tolist() == (np.flatnonzero(mr > chart.companion.ucl) + 1).tolist()
    z = (x - chart.center) / chart.sigma
    assert {tuple(v) for v in chart.violations} == {tuple(v) for v in evaluate(z, rules("nelson"))}


def test_capability_in_many_blocks_matches_numpy_and_scipy(small_blocks):
    from scipy import stats

    x = np.random.default_rng(6).gamma(9, size=20_000)
    c = quality.capability(x, 2, 20)
    assert c.mean == pytest.approx(x.mean(), rel=1e-13)
    assert c.sigma_overall == pytest.approx(x.std(ddof=1), rel=1e-12)
    assert c.sigma_within == pytest.approx(np.abs(np.diff(x)).mean() / 1.1283791670955126, rel=1e-12)
    assert c.ppm["observed_below_lsl"] == pytest.approx(np.count_nonzero(x < 2) / x.size * 1e6)
    assert c.ppm["observed_above_usl"] == pytest.approx(np.count_nonzero(x > 20) / x.size * 1e6)
    ref = stats.normaltest(x)
    assert c.normality["k2"] == pytest.approx(ref.statistic, rel=1e-9)
    assert c.normality["skewness"] == pytest.approx(stats.skew(x), rel=1e-10)


def exact_moments(x: np.ndarray) -> tuple[float, float, float, float]:
    """Mean and central moments m2, m3, m4 of x in exact rational arithmetic, rounded once."""
    values = [Fraction(v) for v in x.tolist()]
    mean = sum(values) / len(values)
    d = [v - mean for v in values]
    return float(mean), *(float(sum(t**k for t in d) / len(d)) for k in (2, 3, 4))


@pytest.mark.parametrize(
    "x",
    [
        np.r_[np.full(16, 1e4), np.random.default_rng(7).normal(0, 1, 6000)],  # first values far from the mean
        np.random.default_rng(8).normal(1e6, 1e-3, 6000),  # a large offset, a small spread
    ],
    ids=["drifted", "offset"],
)
def test_capability_moments_keep_their_digits(x, small_blocks):
    mean, m2, m3, m4 = exact_moments(x)
    c = quality.capability(x, float(x.min()) - 1, float(x.max()) + 1)
    assert c.mean == pytest.approx(mean, rel=1e-15)
    assert c.sigma_overall == pytest.approx(math.sqrt(m2 * x.size / (x.size - 1)), rel=1e-13)
    assert c.normality["skewness"] == pytest.approx(m3 / m2**1.5, rel=1e-12)
    assert c.normality["kurtosis"] == pytest.approx(m4 / m2**2, rel=1e-12)


def test_sums_that_overflow_are_refused(hot_loops):
    with pytest.raises(InvalidInput, match="too large"):
        quality.imr([1e308, 1e308, -1e308])
    with pytest.raises(InvalidInput, match="too large"):
        quality.capability([1e308, 1e308, -1e308], 0, 1)


@pytest.mark.parametrize(
    "options",
    [{}, {"drop_out_of_control": True}, {"limits": quality.Limits("imr", 10.0, 1.0)}],
    ids=["phase I", "dropped", "phase II"],
)
def test_capability_of_an_individuals_chart_is_that_of_its_values(options, small_blocks):
    x = np.random.default_rng(10).normal(10, 1, 7000)
    x[100] = 16  # a point the phase I chart drops
    alone, charted = quality.capability(x, 6, 13.5, 10), quality.capability(quality.imr(x, **options), 6, 13.5, 10)
    assert charted.sigma_within == pytest.approx(alone.sigma_within, rel=1e-14)
    for name in ("mean", "sigma_overall", "cp", "cpk", "pp", "ppk", "cpm"):
        assert getattr(charted, name) == pytest.approx(getattr(alone, name), rel=1e-12), name
    assert charted.ppm == alone.ppm and charted.normality.pop("test") == alone.normality.pop("test")
    assert charted.normality == pytest.approx(alone.normality, rel=1e-10)


def test_capability_takes_only_an_individuals_chart():
    with pytest.raises(InvalidInput, match="individuals chart, not a xbar chart"):
        quality.capability(quality.xbar_r(np.arange(20.0).reshape(5, 4)), 0, 30)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from([-3.0, -2.0, -1.5, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 4.0, float("nan")]), min_size=1, max_size=400
    ),
    st.sampled_from(["nelson", "western-electric", "nelson1", "nelson3"]),
    st.sampled_from([64, 128, 192]),
)
def test_the_c_kernel_flags_what_numpy_flags(values, picked, block):
    """Points on boundaries, equal neighbours, NaN, words cut short, blocks of any start."""
    assert passes.kernels is not None
    x = np.array(values)
    c, w = 0.5, 0.5  # boundaries at 0.5 ± 0.5k: every grid value lies on one
    scans = [Scan(x, c, w, rules(picked)) for _ in range(2)]
    for start in range(0, x.size, block):
        stop = min(start + block, x.size)
        assert passes.kernels.flags(
            x,
            start,
            stop,
            scans[0].upper,
            scans[0].lower,
            scans[0].packed,
            scans[0].moves,
        )
        kernels, passes.kernels = passes.kernels, None
        try:
            scans[1].block(start, stop)
        finally:
            passes.kernels = kernels
    assert np.array_equal(bits.before(scans[0].packed, x.size), bits.before(scans[1].packed, x.size))


@pytest.mark.parametrize("upper, lower", [([1.0], []), ([0.5, 1.5], [-1.0]), ([], [0.0, -2.0, -3.0])])
def test_the_c_kernel_flags_any_number_of_limits_each_side(upper, lower):
    assert passes.kernels is not None
    x = np.random.default_rng(11).choice([-3.0, -2.0, -1.0, 0.0, 0.5, 1.0, 1.5, 2.0, float("nan")], 1000)
    packed = bits.empty(len(upper) + len(lower), x.size)
    for start in range(0, x.size, 192):
        assert passes.kernels.flags(x, start, min(start + 192, x.size), np.array(upper), np.array(lower), packed, False)
    with np.errstate(invalid="ignore"):
        expected = [x > u for u in upper] + [x < v for v in lower]
    for row, flags in zip(bits.before(packed, x.size), expected, strict=True):
        assert bits.positions(row, x.size).tolist() == np.flatnonzero(flags).tolist()


def test_the_c_kernels_refuse_a_block_that_does_not_fit():
    assert passes.kernels is not None
    x, packed = np.zeros(100), bits.empty(2, 100)
    bound = np.zeros((1, 1))
    with pytest.raises(ValueError, match="do not fit"):
        passes.kernels.flags(x, 3, 50, bound, bound, packed, False)  # a start inside a word
    with pytest.raises(ValueError, match="do not fit"):
        passes.kernels.flags(x, 0, 101, bound, bound, packed, False)
    with pytest.raises(ValueError, match="does not fit"):
        passes.kernels.ranges(x, 0, 50, np.zeros(99))
    with pytest.raises(TypeError, match="float64 values expected"):
        passes.kernels.moments(x.astype(np.float32), 0, 50, 0.0, 1.0, 2.0, True)
    with pytest.raises(TypeError, match="float64 values expected"):
        passes.kernels.ranges(x.astype(np.int64), 0, 50, np.zeros(100))
