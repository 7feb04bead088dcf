"""Process capability: Cp, Cpl, Cpu, Cpk, Cpm, Pp, Ppl, Ppu, Ppk with confidence intervals, expected
and observed ppm, a normality check, and two ways for data that are not normal.

Within-subgroup σ (the C indices) comes from the estimator named by `sigma_method`; overall σ (the
P indices) is the sample standard deviation. Confidence intervals: chi-square for Cp and Pp, with
the degrees of freedom each estimator carries (Minitab's convention); Bissell's normal
approximation for Cpk, Cpl, Cpu and their P counterparts; Boyles' chi-square approximation for
Cpm = min(T − LSL, USL − T)/(3·√(Σ(x − T)²/(n − 1))).
Non-normal data: Box-Cox (λ by maximum likelihood, limits transformed with the data) or the
percentile method of ISO 22514-2 (the 0.135 %, 50 % and 99.865 % points of the data's distribution
in place of μ ± 3σ), from the empirical quantiles or a fitted distribution.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from scipy import special

from qdsn.errors import InvalidInput
from qdsn.quality import constants as k
from qdsn.quality import passes
from qdsn.quality.charts import Chart, _finite, _subgroups, _values

SIGMA_METHODS = ("pooled", "rbar", "sbar", "mrbar")
_SBAR_FACTOR = [(2, 0.88), (3, 0.92), (4, 0.94), (5, 0.95), (7, 0.96), (9, 0.97), (17, 0.98), (64, 0.99)]
P_LOW, P_HIGH = special.ndtr(-3.0), special.ndtr(3.0)  # 0.135 % and 99.865 %


def _chi2_ppf(q: float, nu: float) -> float:
    """The χ²(ν) quantile, through the inverse regularized gamma function (scipy.special, not stats)."""
    return 2.0 * float(special.gammaincinv(nu / 2.0, q))


@dataclass(frozen=True)
class Interval:
    """A two-sided confidence interval."""

    low: float
    high: float


@dataclass
class Capability:
    """Capability indices (None where a limit they need is missing), their intervals, and ppm."""

    n: int
    mean: float
    sigma_within: float
    sigma_overall: float
    sigma_method: str
    lsl: float | None
    usl: float | None
    target: float | None
    confidence: float
    cp: float | None = None
    cpl: float | None = None
    cpu: float | None = None
    cpk: float | None = None
    cpm: float | None = None
    pp: float | None = None
    ppl: float | None = None
    ppu: float | None = None
    ppk: float | None = None
    intervals: dict[str, Interval] = field(default_factory=dict)
    ppm: dict[str, float] = field(default_factory=dict)
    normality: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def capability(
    data: Any,
    lsl: float | None = None,
    usl: float | None = None,
    target: float | None = None,
    *,
    sigma_method: str | None = None,
    confidence: float = 0.95,
) -> Capability:
    """Capability of `data` (individual values, or subgroups as a list of lists or a 2-D array)
    against the specification limits. `sigma_method`: "mrbar" (MR̄/d2, the default for individual
    values), "pooled" (pooled SD over c4, the default for subgroups), "rbar" (R̄/d2), "sbar" (S̄/c4).
    `data` may also be an individuals chart from `imr`: the same result as from its values, with
    the mean and moving ranges the chart has already summed."""
    lsl, usl, target = _limits(lsl, usl, target)
    charted = data if isinstance(data, Chart) else None
    if charted is not None:
        if charted.kind != "i":
            raise InvalidInput(f"capability takes an individuals chart, not a {charted.kind} chart", "or pass the data")
        data = charted.statistic
    if not 0 < confidence < 1:
        raise InvalidInput(f"confidence must be between 0 and 1, got {confidence!r}")
    # Subgroups of unequal sizes are a ragged list, which np.ndim refuses: look at the first item instead.
    ragged = isinstance(data, list | tuple)
    grouped = len(data) > 0 and hasattr(data[0], "__len__") if ragged else np.ndim(data) == 2
    if grouped:
        sub, sizes = _subgroups(data, 2)
        x = np.ascontiguousarray(sub[~np.isnan(sub)])
    else:
        x = np.ascontiguousarray(_values(data, "data", 2, checked=False))
    method = sigma_method or ("pooled" if grouped else "mrbar")
    if method not in SIGMA_METHODS:
        raise InvalidInput(f"unknown sigma_method {method!r}", f"use one of {', '.join(SIGMA_METHODS)}")
    if method != "mrbar" and not grouped:
        raise InvalidInput(f"sigma_method {method!r} needs subgroups", "pass subgroups, or use mrbar")
    n = x.size
    if charted is not None:  # the chart summed every point and every moving range already
        m = _moments(x, lsl, usl, shift=charted.extra["sum"] / n)
        m = replace(m, steps=charted.extra["moving_range_sum"])
    else:
        m = _moments(x, lsl, usl, steps=method == "mrbar")
    mean, overall = m.mean, math.sqrt(m.m2 * n / (n - 1))
    if method == "mrbar":
        within, dof = m.steps / (n - 1) / k.d2(2), n - 1
    elif method == "pooled":
        dev = np.nansum((sub - np.nanmean(sub, axis=1, keepdims=True)) ** 2)
        dof = int((sizes - 1).sum())
        within = float(math.sqrt(dev / dof) / k.c4(dof + 1))
    elif method == "rbar":
        r = np.nanmax(sub, axis=1) - np.nanmin(sub, axis=1)
        within = float(np.mean(r / np.array([k.d2(int(m)) for m in sizes])))
        dof = 0.9 * len(sizes) * (sizes.mean() - 1)
    else:
        s = np.nanstd(sub, axis=1, ddof=1)
        within = float(np.mean(s / np.array([k.c4(int(m)) for m in sizes])))
        f = next((v for top, v in _SBAR_FACTOR if sizes.mean() <= top), 1.0)
        dof = f * len(sizes) * (sizes.mean() - 1)
    if within <= 0 or overall <= 0:
        raise InvalidInput("the data do not vary: capability is undefined when σ is 0")
    out = Capability(n, mean, within, overall, method, lsl, usl, target, confidence)
    for prefix, sigma, nu in (("c", within, dof), ("p", overall, n - 1)):
        lower = (mean - lsl) / (3 * sigma) if lsl is not None else None
        upper = (usl - mean) / (3 * sigma) if usl is not None else None
        setattr(out, f"{prefix}pl", lower)
        setattr(out, f"{prefix}pu", upper)
        one_sided = [v for v in (lower, upper) if v is not None]
        setattr(out, f"{prefix}pk", min(one_sided))
        for name in (f"{prefix}pl", f"{prefix}pu", f"{prefix}pk"):
            v = getattr(out, name)
            if v is not None:
                out.intervals[name] = cpk_interval(v, n, nu, confidence)
        if lsl is not None and usl is not None:
            v = (usl - lsl) / (6 * sigma)
            setattr(out, f"{prefix}p", v)
            out.intervals[f"{prefix}p"] = cp_interval(v, nu, confidence)
    if lsl is not None and usl is not None:
        t = target if target is not None else (lsl + usl) / 2
        tau = math.sqrt(overall**2 + n / (n - 1) * (mean - t) ** 2)  # √(Σ(x − T)²/(n − 1))
        out.cpm = min(t - lsl, usl - t) / (3 * tau)
        a = (mean - t) / overall
        nu_m = n * (1 + a * a) ** 2 / (1 + 2 * a * a)  # Boyles (1991)
        out.intervals["cpm"] = cp_interval(out.cpm, nu_m, confidence)
    out.ppm = _ppm(m, within, overall, lsl, usl)
    out.normality = normality(x, m)
    return out


def _quiet(f: Any, *args: Any) -> Any:
    """f(*args) without numpy's overflow warnings: a sum that is not finite is refused after."""
    with np.errstate(over="ignore", invalid="ignore"):  # per thread: each block sets its own
        return f(*args)


@dataclass(frozen=True)
class Moments:
    """What capability needs of a sample: n, the mean, central moments m2, m3, m4 (over n), the sum
    of the absolute steps between neighbours, and how many values lie below LSL and above USL."""

    n: int
    mean: float
    m2: float
    m3: float
    m4: float
    steps: float
    below: int
    above: int


def _moments(
    x: np.ndarray,
    lsl: float | None = None,
    usl: float | None = None,
    *,
    steps: bool = False,
    shift: float | None = None,
) -> Moments:
    """One pass over the contiguous x in blocks, on every core: power sums of x − K, for a K near
    the mean (`shift`, or the mean of the first values), from which the central moments follow.
    Where K lies far from the mean (a process that drifted), that conversion would lose digits: a
    second pass then takes the sums about the mean itself."""
    n = x.size

    def block(shift: float, a: int, b: int) -> tuple[float, ...]:
        if passes.kernels:
            return passes.kernels.moments(
                x, a, b, shift, math.nan if lsl is None else lsl, math.nan if usl is None else usl, steps
            )
        part = x[a:b]
        d = passes.scratch("d", part.shape)
        d2 = passes.scratch("d2", part.shape)
        np.subtract(part, shift, out=d)
        s1 = float(d.sum())
        s2 = float(np.multiply(d, d, out=d2).sum())
        s3 = float(np.multiply(d2, d, out=d).sum())  # not d2 @ d: BLAS would wake its own threads
        s4 = float(np.multiply(d2, d2, out=d).sum())
        step = 0.0
        if steps:
            lo = max(a, 1)
            diff = d[: b - lo]  # d is spent: its cache lines serve again
            np.subtract(x[lo:b], x[lo - 1 : b - 1], out=diff)
            step = float(np.abs(diff, out=diff).sum())
        # most blocks of a capable process lie within the limits: a minimum or maximum says so
        below = np.count_nonzero(part < lsl) if lsl is not None and part.min() < lsl else 0
        above = np.count_nonzero(part > usl) if usl is not None and part.max() > usl else 0
        return s1, s2, s3, s4, step, below, above

    def sums(shift: float) -> tuple[float, ...]:
        parts = passes.over(n, lambda a, b: _quiet(block, shift, a, b))
        out = tuple(math.fsum(p[i] for p in parts) for i in range(5))
        _finite(x, "data", *out)  # finite sums vouch for every value (and K) that went into them
        return (*out, sum(p[5] for p in parts), sum(p[6] for p in parts))

    if shift is None:
        shift = float(_quiet(x[:16].mean))
    s1, s2, s3, s4, step, below, above = sums(shift)
    mu = s1 / n  # the mean of x − K
    if mu * mu > 100 * (s2 / n - mu * mu):  # K more than 10σ away: |μ|^k would swamp the moments
        shift += mu
        s1, s2, s3, s4, *_ = sums(shift)
        mu = s1 / n
    r2, r3, r4 = s2 / n, s3 / n, s4 / n
    m2 = max(r2 - mu * mu, 0.0)  # ≥ 0, whatever the rounding
    m3 = r3 - 3 * mu * r2 + 2 * mu**3
    m4 = max(r4 - 4 * mu * r3 + 6 * mu * mu * r2 - 3 * mu**4, 0.0)
    return Moments(n, shift + mu, m2, m3, m4, step, below, above)


def _limits(lsl: Any, usl: Any, target: Any) -> tuple[float | None, float | None, float | None]:
    vals = []
    for name, v in (("lsl", lsl), ("usl", usl), ("target", target)):
        if v is not None and (not isinstance(v, int | float) or not math.isfinite(v)):
            raise InvalidInput(f"{name} must be a finite number, got {v!r}")
        vals.append(None if v is None else float(v))
    lsl, usl, target = vals
    if lsl is None and usl is None:
        raise InvalidInput("capability needs at least one specification limit", "give --lsl, --usl or both")
    if lsl is not None and usl is not None and lsl >= usl:
        raise InvalidInput(f"the lower specification limit ({lsl:g}) must be below the upper one ({usl:g})")
    if target is not None and ((lsl is not None and target < lsl) or (usl is not None and target > usl)):
        raise InvalidInput(f"the target {target:g} lies outside the specification limits")
    return lsl, usl, target


def cp_interval(v: float, nu: float, confidence: float = 0.95) -> Interval:
    """Chi-square interval for a Cp-like index estimated with ν degrees of freedom."""
    a = 1 - confidence
    return Interval(v * math.sqrt(_chi2_ppf(a / 2, nu) / nu), v * math.sqrt(_chi2_ppf(1 - a / 2, nu) / nu))


def cpk_interval(v: float, n: int, nu: float, confidence: float = 0.95) -> Interval:
    """Bissell's (1990) interval for Cpk (or Cpl, Cpu) from n values, σ with ν degrees of freedom."""
    half = float(special.ndtri(0.5 + confidence / 2)) * math.sqrt(1 / (9 * n) + v * v / (2 * nu))
    return Interval(v - half, v + half)


def _ppm(m: Moments, within: float, overall: float, lsl: float | None, usl: float | None) -> dict:
    out: dict[str, float] = {}
    mean = m.mean
    for side, limit in (("below_lsl", lsl), ("above_usl", usl)):
        if limit is None:
            continue
        tail = (limit - mean) if side == "below_lsl" else (mean - limit)
        out[f"observed_{side}"] = (m.below if side == "below_lsl" else m.above) / m.n * 1e6
        out[f"expected_within_{side}"] = float(special.ndtr(tail / within)) * 1e6
        out[f"expected_overall_{side}"] = float(special.ndtr(tail / overall)) * 1e6
    for kind in ("observed", "expected_within", "expected_overall"):
        out[f"{kind}_total"] = sum(v for key, v in out.items() if key.startswith(kind + "_") and "total" not in key)
    return out


AD_LIMIT = 5000  # beyond: D'Agostino-Pearson, whose one pass over the data costs less than AD's sort


def normality(x: Any, moments: Moments | None = None) -> dict[str, Any]:
    """A normality test: Anderson-Darling up to AD_LIMIT values (as Minitab), D'Agostino-Pearson K²
    beyond — both reject a normal fit for the smallest departures at such sizes, and K² needs no sort
    (and, given the sample's `moments`, no pass over it). The result names the test used."""
    x = _values(x, "data", 8, checked=moments is None)
    if x.size <= AD_LIMIT:
        return {"test": "anderson-darling"} | anderson_darling(x)
    return {"test": "dagostino-pearson"} | _k2(moments or _moments(np.ascontiguousarray(x)))


def dagostino_pearson(x: Any) -> dict[str, float]:
    """D'Agostino-Pearson omnibus test from sample skewness (D'Agostino, 1970) and kurtosis (Anscombe
    and Glynn, 1983): K² and its χ²(2) p-value. The same statistic as scipy.stats.normaltest."""
    return _k2(_moments(np.ascontiguousarray(_values(x, "data", 20, checked=False))))


def _k2(m: Moments) -> dict[str, float]:
    n = float(m.n)
    g1 = m.m3 / m.m2**1.5
    b2 = m.m4 / m.m2**2
    y = g1 * math.sqrt((n + 1) * (n + 3) / (6 * (n - 2)))
    beta2 = 3 * (n * n + 27 * n - 70) * (n + 1) * (n + 3) / ((n - 2) * (n + 5) * (n + 7) * (n + 9))
    w2 = -1 + math.sqrt(2 * (beta2 - 1))
    delta, alpha = 1 / math.sqrt(0.5 * math.log(w2)), math.sqrt(2 / (w2 - 1))
    y = y if y != 0 else 1.0
    zs = delta * math.log(y / alpha + math.sqrt((y / alpha) ** 2 + 1))
    mean_b2 = 3 * (n - 1) / (n + 1)
    var_b2 = 24 * n * (n - 2) * (n - 3) / ((n + 1) ** 2 * (n + 3) * (n + 5))
    xk = (b2 - mean_b2) / math.sqrt(var_b2)
    sqrt_beta1 = (
        6 * (n * n - 5 * n + 2) / ((n + 7) * (n + 9)) * math.sqrt(6 * (n + 3) * (n + 5) / (n * (n - 2) * (n - 3)))
    )
    a = 6 + 8 / sqrt_beta1 * (2 / sqrt_beta1 + math.sqrt(1 + 4 / sqrt_beta1**2))
    denom = 1 + xk * math.sqrt(2 / (a - 4))
    term2 = math.copysign(abs((1 - 2 / a) / denom) ** (1 / 3), denom) if denom != 0 else math.nan
    zk = (1 - 2 / (9 * a) - term2) / math.sqrt(2 / (9 * a))
    k2 = zs * zs + zk * zk
    return {"k2": k2, "skewness": g1, "kurtosis": b2, "p_value": math.exp(-k2 / 2)}  # χ²(2) survival, exactly


def anderson_darling(x: Any) -> dict[str, float]:
    """Anderson-Darling test of normality (mean and σ estimated): A², the adjusted A*² and its
    p-value by D'Agostino and Stephens (1986, table 4.9). Small p: the data are not normal."""
    x = np.sort(_values(x, "data", 8))
    n = x.size
    z = (x - x.mean()) / x.std(ddof=1)
    logcdf = special.log_ndtr(z)
    logsf = special.log_ndtr(-z)
    i = np.arange(1, n + 1)
    a2 = float(-n - np.sum((2 * i - 1) * (logcdf + logsf[::-1])) / n)
    a = a2 * (1 + 0.75 / n + 2.25 / n**2)
    if a >= 153:  # the fit below turns upward past its minimum (a ≈ 153.5, p ≈ 1e-190): p is 0 here
        p = 0.0
    elif a >= 0.6:
        p = math.exp(1.2937 - 5.709 * a + 0.0186 * a * a)
    elif a >= 0.34:
        p = math.exp(0.9177 - 4.279 * a - 1.38 * a * a)
    elif a >= 0.2:
        p = 1 - math.exp(-8.318 + 42.796 * a - 59.938 * a * a)
    else:
        p = 1 - math.exp(-13.436 + 101.14 * a - 223.73 * a * a)
    return {"a2": a2, "a2_adjusted": a, "p_value": min(max(p, 0.0), 1.0)}


def box_cox(
    data: Any,
    lsl: float | None = None,
    usl: float | None = None,
    target: float | None = None,
    *,
    lam: float | None = None,
    confidence: float = 0.95,
) -> tuple[Capability, float]:
    """Capability after a Box-Cox transformation (λ by maximum likelihood unless given) of the data
    and the limits alike; σ overall for both index families, as the transformed data have no
    subgroups. Returns the capability on the transformed scale and λ."""
    x = _values(data, "data", 3)
    lsl, usl, target = _limits(lsl, usl, target)
    if (x <= 0).any() or (lsl is not None and lsl <= 0):
        raise InvalidInput("Box-Cox needs positive data and limits", "shift the data, or use the percentile method")
    from scipy import stats  # imported here: scipy.stats costs ~1 s, and only Box-Cox needs it

    lam = float(stats.boxcox_normmax(x, method="mle")) if lam is None else float(lam)
    t = lambda v: None if v is None else float(stats.boxcox(np.array([v]), lam)[0])  # noqa: E731
    y = stats.boxcox(x, lam)
    lo, hi = t(lsl), t(usl)
    if lo is not None and hi is not None and lo > hi:
        lo, hi = hi, lo
    return capability(y, lo, hi, t(target), confidence=confidence), lam


def percentile(
    data: Any, lsl: float | None = None, usl: float | None = None, *, distribution: str = "empirical"
) -> dict[str, float | None]:
    """ISO 22514-2 percentile capability: Pp = (U − L)/(X₉₉.₈₆₅ − X₀.₁₃₅), Ppu = (U − X₅₀)/(X₉₉.₈₆₅ − X₅₀),
    Ppl = (X₅₀ − L)/(X₅₀ − X₀.₁₃₅), Ppk = min. The percentiles come from the data ("empirical", which
    needs enough data to reach the 0.135 % tails) or a distribution fitted by maximum likelihood:
    "lognorm", "weibull_min", "gamma", "norm"."""
    x = _values(data, "data", 3)
    lsl, usl, _ = _limits(lsl, usl, None)
    if distribution == "empirical":
        if x.size < 100:
            raise InvalidInput(
                f"the empirical 0.135 % and 99.865 % points need many values (≥ 100); got {x.size}",
                "fit a distribution instead: distribution='lognorm', 'weibull_min' or 'gamma'",
            )
        lo, mid, hi = np.quantile(x, [P_LOW, 0.5, P_HIGH])
    elif distribution in ("lognorm", "weibull_min", "gamma", "norm"):
        from scipy import stats  # imported here, as in box_cox

        dist = getattr(stats, distribution)
        params = dist.fit(x, floc=0) if distribution != "norm" else dist.fit(x)
        lo, mid, hi = dist.ppf([P_LOW, 0.5, P_HIGH], *params)
    else:
        raise InvalidInput(
            f"unknown distribution {distribution!r}", "use empirical, lognorm, weibull_min, gamma or norm"
        )
    lo, mid, hi = float(lo), float(mid), float(hi)
    out: dict[str, float | None] = {"p0135": lo, "p50": mid, "p99865": hi}
    out["ppl"] = (mid - lsl) / (mid - lo) if lsl is not None else None
    out["ppu"] = (usl - mid) / (hi - mid) if usl is not None else None
    out["pp"] = (usl - lsl) / (hi - lo) if lsl is not None and usl is not None else None
    out["ppk"] = min(v for v in (out["ppl"], out["ppu"]) if v is not None)
    return out
