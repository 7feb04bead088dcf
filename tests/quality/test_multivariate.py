"""Hotelling's T², its MCD variant, the learned models and the exact sufficient statistics."""

import numpy as np
import pytest
from scipy import stats

from qdsn.errors import InvalidInput
from qdsn.quality import learn
from qdsn.quality import multivariate as mv


def process(m: int, p: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(p, p))
    return rng.multivariate_normal(np.arange(p, dtype=float), a @ a.T + np.eye(p), size=m)


@pytest.mark.parametrize(("m", "p", "alpha"), [(20, 2, 0.05), (50, 3, 0.0027), (200, 10, 0.01), (25, 22, 0.05)])
def test_limits_agree_with_the_f_distribution_computed_independently(m, p, alpha):
    """Phase I's beta quantile and phase II's F quantile, each checked through the other distribution
    (if B ~ Beta(a, b) then (b/a)·B/(1 − B) ~ F(2a, 2b))."""
    f1 = stats.f.ppf(1 - alpha, p, m - p - 1)
    r = p / (m - p - 1)
    assert mv.ucl_phase1(m, p, alpha) == pytest.approx((m - 1) ** 2 / m * r * f1 / (1 + r * f1), rel=1e-10)
    b = stats.beta.ppf(1 - alpha, p / 2, (m - p) / 2)
    f2 = (m - p) / p * b / (1 - b)
    assert mv.ucl_phase2(m, p, alpha) == pytest.approx(p * (m + 1) * (m - 1) / (m * (m - p)) * f2, rel=1e-10)


def test_phase2_limit_from_a_printed_f_table():
    """F(0.95; 2, 28) = 3.34 in the printed F tables, so for m = 30 rows of p = 2 variables at α = 0.05
    the phase II limit is 2·31·29 / (30·28) · 3.34 ≈ 7.15."""
    assert mv.ucl_phase2(30, 2, 0.05) == pytest.approx(2 * 31 * 29 / (30 * 28) * 3.34, abs=0.01)


def test_false_alarm_rates_are_nominal_in_both_phases():
    """Simulated in-control processes: the share of points above each limit is α (within sampling error)."""
    rng = np.random.default_rng(7)
    m, p, alpha, reps = 30, 3, 0.05, 3000
    above1 = above2 = 0
    for _ in range(reps):
        x = rng.normal(size=(m + 1, p))
        model = mv.fit_t2(x[:m], alpha=alpha)
        above1 += int((model.score(x[:m]) > model.ucl_phase1).sum())
        above2 += int(model.score(x[m:])[0] > model.ucl)
    assert above1 / (reps * m) == pytest.approx(alpha, abs=0.004)
    assert above2 / reps == pytest.approx(alpha, abs=0.012)


def test_score_is_the_mahalanobis_distance():
    x = process(100)
    model = mv.fit_t2(x)
    inv = np.linalg.inv(np.cov(x, rowvar=False))
    d = x - x.mean(axis=0)
    assert np.allclose(model.score(x), np.einsum("ij,jk,ik->i", d, inv, d), rtol=1e-10)


def test_phase1_drops_the_shifted_rows_and_reestimates():
    x = process(300, seed=1)
    x[[10, 50, 90]] += np.array([8.0, -8.0, 8.0])
    model = mv.phase1(x)
    assert {10, 50, 90} <= set(model.excluded)
    assert model.n == 300 - len(model.excluded)
    kept = np.delete(x, model.excluded, axis=0)
    assert np.allclose(model.mean, kept.mean(axis=0)) and np.allclose(model.cov, np.cov(kept, rowvar=False))
    assert (model.score(kept) <= mv.ucl_phase1(model.n, 3)).all()


def test_mcd_is_not_masked_by_a_cluster_of_outliers():
    """10 % of rows shifted together inflate the classical covariance; the MCD keeps the in-control
    scatter and flags them."""
    x = process(2000, seed=2)
    clean_cov = np.cov(x, rowvar=False)
    x[:200] += np.array([4.0, 4.0, -4.0])
    robust, plain = mv.fit_mcd(x), mv.fit_t2(x)
    assert np.abs(robust.cov - clean_cov).max() < 0.25 * np.abs(plain.cov - clean_cov).max()
    assert (robust.score(x[:200]) > robust.ucl).mean() > 0.9
    assert (robust.score(x[200:]) > robust.ucl).mean() < 0.02
    assert len(set(range(200)) & set(robust.excluded)) > 190


def test_federated_sums_give_the_pooled_model_exactly():
    x = process(3000, p=4, seed=3)
    grid = mv.FixedPoint(tuple(x.min(axis=0) - 1), tuple(x.max(axis=0) + 1), bits=16)
    parts = [mv.Sums.of(grid.quantise(x[i::3])) for i in range(3)]
    total = parts[0] + parts[1] + parts[2]
    assert total == mv.Sums.of(grid.quantise(x))
    pooled = mv.fit_t2(grid.dequantise(grid.quantise(x)))
    model = total.model(grid)
    assert np.abs(model.mean - pooled.mean).max() < 1e-9 and np.abs(model.cov - pooled.cov).max() < 1e-9
    # the quantisation itself moves the model by about one grid step
    assert np.abs(model.mean - x.mean(axis=0)).max() < 2 / grid.scale.min()


def test_sums_of_48_bit_values_are_exact_and_the_model_is_the_raw_rows_own():
    """Products of 48-bit values pass int64; the sums are checked against Python's exact integers, and the
    model against the raw rows within the bound the grid step gives (ranges 20 and more)."""
    x = process(40_000, p=3, seed=5)
    grid = mv.FixedPoint(tuple(x.min(axis=0) - 10), tuple(x.max(axis=0) + 10), bits=48)
    q = grid.quantise(x)
    assert int(q.max()) > 2**47
    s = mv.Sums.of(q)
    rows = [[int(v) for v in r] for r in q]
    assert s.sq == tuple(sum(r[i] for r in rows) for i in range(3))
    assert s.sqq == tuple(sum(r[i] * r[j] for r in rows) for i in range(3) for j in range(i, 3))
    model, raw = s.model(grid), mv.fit_t2(x)
    assert np.abs(model.mean - raw.mean).max() < 1e-9 and np.abs(model.cov - raw.cov).max() < 1e-9
    with pytest.raises(InvalidInput, match="bits must be 1 to 48"):
        mv.FixedPoint((0.0,), (1.0,), 49)


def test_sums_survive_digits_summed_in_a_field():
    grid = mv.FixedPoint((0.0,) * 2, (1.0,) * 2, bits=16)
    parts = [mv.Sums.of(grid.quantise(np.random.default_rng(i).random((500, 2)))) for i in range(3)]
    digits = [mv.to_limbs(s.vector(), 2) for s in parts]
    assert all(0 <= d < 2**32 for ds in digits for d in ds)
    summed = [sum(col) for col in zip(*digits, strict=True)]
    assert mv.Sums.from_vector(mv.from_limbs(summed, 2), 2) == parts[0] + parts[1] + parts[2]
    with pytest.raises(InvalidInput, match="does not fit 1 digits"):
        mv.to_limbs([2**40], 1)


@pytest.mark.parametrize(("x", "message"), [
    (np.ones((4, 3)), "4 rows are too few for 3 variables"),
    (np.array([[1.0, 2.0], [np.nan, 1.0], [3.0, 1.0], [2.0, 2.0]]),
     r"missing or non-finite values \(first at row 2, variable 1"),
    (np.column_stack([np.arange(10.0), np.full(10, 5.0)]), "variable 2 do"),
    (np.column_stack([np.arange(10.0), np.arange(10.0) ** 2, np.arange(10.0) + np.arange(10.0) ** 2]),
     "linearly dependent"),
])  # fmt: skip
def test_bad_input_is_named(x, message):
    for fit in (mv.fit_t2, mv.phase1, mv.fit_mcd):
        with pytest.raises(InvalidInput, match=message):
            fit(x)


def test_bad_grid_and_scoring_input_are_named():
    grid = mv.FixedPoint((0.0,), (1.0,))
    with pytest.raises(InvalidInput, match=r"value 1.5 \(row 2, variable 1\) is outside the agreed range"):
        grid.quantise([[0.5], [1.5]])
    with pytest.raises(InvalidInput, match="high bound"):
        mv.FixedPoint((1.0,), (1.0,))
    with pytest.raises(InvalidInput, match="the model has 3 variables, the data 2"):
        mv.fit_t2(process(50)).score(np.ones((2, 2)))


def test_arrays_round_trip():
    model = mv.phase1(process(80), names=("a", "b", "c"))
    back = mv.T2Model.from_arrays(model.arrays())
    assert back.names == ("a", "b", "c") and back.ucl == model.ucl
    assert np.array_equal(back.score(process(5, seed=9)), model.score(process(5, seed=9)))
    with pytest.raises(InvalidInput, match="not a T² model"):
        mv.T2Model.from_arrays({k: v for k, v in model.arrays().items() if k != "cov"})


def test_predictive_model_reports_its_held_out_error():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(400, 5))
    y = x @ np.array([1.0, -2.0, 0.5, 0.0, 3.0]) + 10 + rng.normal(scale=0.3, size=400)
    model = learn.fit_predictive(x, y)
    assert model.cv_rmse == pytest.approx(0.3, rel=0.15) and model.cv_r2 > 0.98
    assert np.allclose(model.coef, [1.0, -2.0, 0.5, 0.0, 3.0], atol=0.05)
    back = learn.Predictive.from_arrays(model.arrays())
    assert np.array_equal(back.predict(x), model.predict(x))
    with pytest.raises(InvalidInput, match="does not vary"):
        learn.fit_predictive(x, np.ones(400))
    with pytest.raises(InvalidInput, match="too few"):
        learn.fit_predictive(x[:6], y[:6])


def test_isolation_forest_ranks_shifted_rows_first():
    x = process(1000, seed=5)
    x[:10] += 6.0
    scores = learn.anomaly_score(learn.fit_isolation_forest(x), x)
    assert set(np.argsort(scores)[-10:]) == set(range(10))


def test_contributions_say_how_far_t2_falls_when_a_variable_is_put_right():
    rng = np.random.default_rng(5)
    mix = np.array([[1.0, 0, 0, 0], [0.9, 0.4, 0, 0], [0.5, 0.5, 0.7, 0], [0, 0, 0, 1.0]])
    x = rng.normal(size=(400, 4)) @ mix.T
    model = mv.phase1(x)
    bad = x[:5].copy()
    bad[:, 2] += 4.0  # one variable leaves its relation to the correlated others
    parts = mv.contributions(model, bad)
    inverse = np.linalg.inv(model.cov)
    for row, part in zip(bad, parts, strict=True):
        assert int(np.argmax(part)) == 2
        for j in range(4):
            fixed = row.copy()
            fixed[j] -= (inverse @ (row - model.mean))[j] / inverse[j, j]
            assert model.score(row[None])[0] - model.score(fixed[None])[0] == pytest.approx(part[j], abs=1e-9)
    with pytest.raises(InvalidInput, match="4 variables, the data 3"):
        mv.contributions(model, bad[:, :3])


def test_rows_are_the_times_every_variable_was_read():
    records = [
        {"characteristic": "a", "value": 1.0, "time": "t2"}, {"characteristic": "b", "value": 2, "time": "t2"},
        {"characteristic": "a", "value": 3.0, "time": "t1"}, {"characteristic": "b", "value": 4.0, "time": "t1"},
        {"characteristic": "a", "value": 5.0, "time": "t3"},  # b not read at t3
        {"characteristic": "b", "value": True, "time": "t4"}, {"characteristic": "a", "value": 6.0, "time": "t4"},
        {"characteristic": "c", "value": 7.0, "time": "t1"},
    ]  # fmt: skip
    times, x = mv.rows_at_times(records, ["a", "b"])
    assert times == ["t1", "t2"] and x.tolist() == [[3.0, 4.0], [1.0, 2.0]]
    assert mv.rows_at_times([], ["a", "b"])[1].shape == (0, 2)


def plain_rows_at_times(records, names):
    """The reading `rows_at_times` must give, written the plain way: a dict of readings per time."""
    at = {}
    for r in records:
        v = r.get("value")
        if r.get("characteristic") in names and isinstance(v, int | float) and not isinstance(v, bool):
            at.setdefault(str(r.get("time", "")), {})[r["characteristic"]] = float(v)
    kept = [(t, v) for t, v in sorted(at.items()) if len(v) == len(names)]
    return [t for t, _ in kept], np.array([[v[n] for n in names] for _, v in kept]).reshape(len(kept), len(names))


def test_rows_at_times_is_the_plain_reading_of_any_records():
    """Records as they come: readings repeated at one time (the last counts), out of order, missing, of
    other characteristics, with values that are not numbers (bools, text, None) or not finite, times that
    are not text or absent; a list or a generator."""
    rng = np.random.default_rng(11)
    for _ in range(300):
        records = []
        for _ in range(int(rng.integers(0, 80))):
            r = {}
            if rng.random() < 0.95:
                r["characteristic"] = ["a", "b", "c", "d", None, 3, ["a"]][int(rng.integers(7))]
            if rng.random() < 0.95:
                r["value"] = [float(rng.normal()), int(rng.integers(-5, 5)), True, "1.5", None, float("nan"),
                              10**20, np.float64(2.5)][int(rng.integers(8))]  # fmt: skip
            if rng.random() < 0.9:
                r["time"] = ["t1", "t2", "t3", "t0", 5, None, ""][int(rng.integers(7))]
            records.append(r)
        names = list(rng.permutation(["a", "b", "c", "d"])[: int(rng.integers(1, 4))])
        times, x = mv.rows_at_times(iter(records) if rng.random() < 0.3 else records, names)
        want_times, want = plain_rows_at_times(records, names)
        assert times == want_times and x.shape == want.shape and np.array_equal(x, want, equal_nan=True)


def test_a_reading_repeated_at_one_time_counts_its_last_value():
    records = [{"characteristic": "a", "value": 1.0, "time": "t"}, {"characteristic": "b", "value": 2.0, "time": "t"},
               {"characteristic": "a", "value": 3.0, "time": "t"}]  # fmt: skip
    assert mv.rows_at_times(records, ["a", "b"])[1].tolist() == [[3.0, 2.0]]


def test_the_limits_are_scipy_stats_quantiles_exactly():
    """The limits come from scipy.special (scipy.stats costs a second to import): the very quantiles
    scipy.stats gives, to the last bit, over phase I and II windows from p + 2 rows to a million."""
    for alpha in (0.0027, 0.01, 0.05):
        for p in (1, 2, 3, 5, 10, 20):
            for m in (p + 2, p + 3, 30, 200, 999, 20_000, 1_000_000):
                beta, f = stats.beta.ppf(1 - alpha, p / 2, (m - p - 1) / 2), stats.f.ppf(1 - alpha, p, m - p)
                assert mv.ucl_phase1(m, p, alpha) == (m - 1) ** 2 / m * beta
                assert mv.ucl_phase2(m, p, alpha) == p * (m + 1) * (m - 1) / (m * (m - p)) * f
            assert mv.ucl_chi2(p, alpha) == stats.chi2.ppf(1 - alpha, p)


def test_the_robust_fit_is_the_one_scipy_stats_quantiles_give():
    """fit_mcd's reweighting cut χ²(0.975; p) and its consistency factor, from scipy.stats, give the same model."""
    from sklearn.covariance import MinCovDet

    x = process(400, p=3, seed=4)
    x[:12] += 6.0
    model = mv.fit_mcd(x)
    raw = MinCovDet(random_state=0).fit(x)
    d = raw.mahalanobis(x)
    cut = stats.chi2.ppf(0.975, 3)
    keep = d <= cut
    assert model.excluded == tuple(np.flatnonzero(~keep).tolist())
    want = np.cov(x[keep], rowvar=False) / (stats.chi2.cdf(cut, 5) / 0.975)
    assert np.allclose(model.cov, want, rtol=1e-12, atol=0)
    assert np.allclose(model.mean, x[keep].mean(axis=0), rtol=1e-12, atol=0)


def test_the_model_does_not_import_scipy_stats():
    """A first chart in a running console waits for every import the model makes: scipy.stats alone takes
    about a second, and the limits need only scipy.special."""
    import subprocess
    import sys

    code = "import sys; import qdsn.quality.multivariate; print('scipy.stats' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_the_chart_judges_each_phase_against_its_own_limit():
    from qdsn.quality import render

    scores = np.array([5.0, 9.0, 5.0, 9.0, 12.0])
    fig = render.draw_t2(scores, 10.0, first=11, ucl_phase1=8.0, phase1=12)  # rows 11–15; phase I up to row 12
    marked = [line for line in fig.axes[0].lines if line.get_label() == "out of control"]
    assert marked[0].get_xdata().tolist() == [12, 15]  # 9 > 8 in phase I; 9 ≤ 10 and 12 > 10 in phase II
    assert {t.get_text() for t in fig.axes[0].texts} == {"phase I UCL 8", "UCL 10"}


def test_the_default_forest_scores_faster_than_a_hundred_trees_and_detects_as_well():
    """Scoring time is the trees walked per row (benchmarks/ai.py's target: 10 µs a row): the default
    forest costs at most 0.8 of the processor time of Liu, Ting and Zhou's 100 trees on the benchmark's
    process, and detects its shift as well. One forest's ROC-AUC differs from another's by ±0.03 with
    the seed alone, so detection is compared over four forests of each size."""
    import sys
    import time
    from pathlib import Path

    from sklearn.metrics import average_precision_score, roc_auc_score

    sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
    from ai import process as correlated

    x, bad = correlated(20_000, 20, 1.5, 1)

    def forests(trees):
        cpu, roc, pr = [], [], []
        for seed in range(4):
            forest = learn.fit_isolation_forest(x, seed=seed, trees=trees)
            t = time.process_time()
            scores = learn.anomaly_score(forest, x)
            cpu.append((time.process_time() - t) / len(x) * 1e6)
            roc.append(roc_auc_score(bad, scores))
            pr.append(average_precision_score(bad, scores))
        return min(cpu), np.mean(roc), np.mean(pr)

    mine, hundred = forests(learn.TREES), forests(100)
    assert mine[0] < 0.8 * hundred[0], f"{mine[0]:.2f} against {hundred[0]:.2f} µs of processor time per row"
    assert mine[1] > hundred[1] - 0.015 and mine[2] > 0.9 * hundred[2], (mine, hundred)


def test_a_predictive_model_with_no_error_is_refused_and_a_perfect_fit_keeps_a_positive_unit():
    """Residuals are in units of the cross-validated error: an error of 0 (a file from elsewhere, or a
    perfectly linear characteristic) would make every score infinite or not a number."""
    from qdsn.compute import monitor, params

    x = np.random.default_rng(0).normal(size=(100, 3))
    y = x @ [1.0, 2.0, 3.0] + 5.0
    model = learn.fit_predictive(x, y)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        arrays = model.arrays() | {"cv_rmse": np.array(bad)}
        with pytest.raises(InvalidInput, match="cross-validated error must be a positive number"):
            learn.Predictive.from_arrays(arrays)
        blob = params.dump_arrays(arrays)
        with pytest.raises(InvalidInput, match="cross-validated error must be a positive number"):
            monitor.open_model(blob, params.digest(blob))
    with pytest.raises(InvalidInput, match="finite numbers"):
        learn.Predictive.from_arrays(model.arrays() | {"coef": np.array([1.0, np.inf, 0.0])})
    assert model.cv_rmse >= learn.RESOLUTION * np.std(y) > 0
    assert np.isfinite(model.residual_score(x, y)).all()
