"""Control charts: X̄-R, X̄-S, I-MR, p, np, c, u, EWMA and tabular CUSUM.

Each chart function estimates its parameters from the data (phase I) — optionally leaving out
subgroups named in `exclude`, or, with `drop_out_of_control`, leaving out points beyond the limits
and estimating again until none are — or applies frozen parameters from an earlier chart's
`limits` (phase II). Variables charts come as a pair: the location chart, with the spread chart as
its `companion`. Run rules are applied to the location chart; the spread chart and the EWMA and
CUSUM statistics, whose points are not independent, are judged by their limits alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict, Unpack

import numpy as np

from qdsn.errors import InvalidInput
from qdsn.quality import bits, passes
from qdsn.quality import constants as k
from qdsn.quality.rules import Scan, Violations
from qdsn.quality.rules import rules as pick_rules

Array = np.ndarray


@dataclass(frozen=True)
class Limits:
    """The parameters a chart's limits were built from, frozen for phase II: its center and the
    process σ (for p, np, c and u charts the center alone decides the limits)."""

    kind: str
    center: float
    sigma: float


@dataclass
class Chart:
    """One control chart: the plotted statistic, its center line and limits (arrays where they
    vary), the process σ they came from, and what the run rules found."""

    kind: str
    statistic: Array
    center: float | Array
    lcl: float | Array
    ucl: float | Array
    sigma: float
    limits: Limits
    violations: Violations = field(default_factory=Violations)
    excluded: list[int] = field(default_factory=list)
    sizes: Array | None = None
    companion: Chart | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def out_of_control(self) -> list[int]:
        """Indices of points that violate any rule applied, in order."""
        return self.violations.indices().tolist()

    def to_json(self) -> dict[str, Any]:
        """The chart as a JSON series for plotting: NaN (no value) becomes null."""

        def num(x: Any) -> Any:
            if isinstance(x, np.ndarray):
                out = x.astype(float).tolist()
                for i in np.flatnonzero(~np.isfinite(x)).tolist():
                    out[i] = None
                return out
            return float(x)

        return {
            "kind": self.kind,
            "statistic": num(self.statistic),
            "center": num(self.center),
            "lcl": num(self.lcl),
            "ucl": num(self.ucl),
            "sigma": float(self.sigma),
            "violations": [v._asdict() for v in self.violations],
            "excluded": self.excluded,
            "companion": self.companion.to_json() if self.companion else None,
        } | ({"sizes": num(self.sizes)} if self.sizes is not None else {})


class ChartOptions(TypedDict, total=False):
    """What every Shewhart chart (X̄-R, X̄-S, I-MR, p, np, c, u) also takes."""

    limits: Limits | None  # phase II: the frozen parameters of an earlier chart
    exclude: Iterable[int]  # phase I: subgroups left out of the estimates (still plotted)
    drop_out_of_control: bool  # phase I: leave out points beyond the limits and estimate again
    rules: Any  # run rules: "nelson" (default), "western-electric", "none", or ids such as "nelson2"
    run_lengths: dict[str, int] | None  # e.g. {"nelson2": 7}
    nsigma: float  # limits at ± nsigma σ (3)


_DEFAULTS: ChartOptions = {
    "limits": None, "exclude": (), "drop_out_of_control": False, "rules": "nelson", "run_lengths": None, "nsigma": 3.0,
}  # fmt: skip


def _options(given: ChartOptions) -> ChartOptions:
    unknown = set(given) - set(_DEFAULTS)
    if unknown:
        raise InvalidInput(f"unknown chart option {sorted(unknown)[0]!r}", f"use {', '.join(_DEFAULTS)}")
    o: ChartOptions = {**_DEFAULTS, **given}  # type: ignore[typeddict-item]
    if not o["nsigma"] > 0:
        raise InvalidInput(f"nsigma must be positive, got {o['nsigma']!r}")
    return o


# ---- input checks -------------------------------------------------------------------------------


def _values(values: Any, what: str = "values", least: int = 1, *, checked: bool = True) -> Array:
    """A flat float array of at least `least` numbers; finite unless `checked` is False, for callers
    whose sums over the values check them at no extra cost (see `_finite`)."""
    try:
        x = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as e:
        raise InvalidInput(f"{what} must be numbers: {e}") from None
    if x.ndim != 1:
        raise InvalidInput(f"{what} must be a flat list of numbers, got an array of shape {x.shape}")
    if x.size < least:
        raise InvalidInput(f"{what}: at least {least} needed, got {x.size}")
    if checked:
        _finite(x, what)
    return x


def _finite(x: Array, what: str, *sums: float) -> None:
    """Refuse NaN and infinities in x. Given sums over x, a finite sum vouches for every value in it
    (NaN and ±inf make any sum they enter NaN or infinite) and no pass over x is needed."""
    if sums and all(math.isfinite(v) for v in sums):
        return
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        raise InvalidInput(f"{what}[{bad[0]}] is {x[bad[0]]}: every value must be a finite number")
    if sums:
        raise InvalidInput(f"{what} are too large: their sums overflow", "rescale them, e.g. into other units")


def grouped(data: Any) -> bool:
    """Whether data are subgroups (a 2-D array, or a list of lists, equal in length or not) rather
    than single values; np.ndim cannot say for lists of unequal lengths, it raises."""
    if isinstance(data, np.ndarray):
        return data.ndim == 2
    return isinstance(data, Sequence) and len(data) > 0 and hasattr(data[0], "__len__")


def _subgroups(subgroups: Any, least_size: int) -> tuple[Array, Array]:
    """Subgroups as a k×n array padded with NaN, and their sizes."""
    if isinstance(subgroups, np.ndarray) and subgroups.ndim == 2 and subgroups.shape[1] >= least_size:
        data = _values(subgroups.ravel(), "subgroups").reshape(subgroups.shape)  # equal sizes: no copying row by row
        return data, np.full(data.shape[0], data.shape[1])
    rows = list(subgroups)
    if not rows:
        raise InvalidInput("no subgroups: a chart needs data")
    sizes = np.array([len(r) if hasattr(r, "__len__") else -1 for r in rows])
    if (sizes < least_size).any():
        i = int(np.flatnonzero(sizes < least_size)[0])
        raise InvalidInput(
            f"subgroup {i} has {max(sizes[i], 0) if sizes[i] >= 0 else 'no'} values; this chart needs at least "
            f"{least_size} per subgroup",
            "use an individuals chart (imr) for single measurements",
        )
    data = np.full((len(rows), int(sizes.max())), np.nan)
    for i, r in enumerate(rows):
        data[i, : sizes[i]] = _values(r, f"subgroup {i}")
    return data, sizes


def _counts(counts: Any, what: str, integral: bool = True) -> Array:
    x = _values(counts, what)
    if (x < 0).any():
        raise InvalidInput(f"{what}[{int(np.flatnonzero(x < 0)[0])}] is negative: counts cannot be")
    if integral and (x != np.round(x)).any():
        raise InvalidInput(f"{what}[{int(np.flatnonzero(x != np.round(x))[0])}] is not a whole number")
    return x


def _sizes(sizes: Any, n: int, what: str = "sizes") -> Array:
    s = np.broadcast_to(_values(np.atleast_1d(sizes), what), (n,)) if np.ndim(sizes) == 0 else _values(sizes, what)
    if s.size != n:
        raise InvalidInput(f"{what}: one per subgroup needed, got {s.size} for {n} subgroups")
    if (s <= 0).any():
        raise InvalidInput(f"{what}[{int(np.flatnonzero(s <= 0)[0])}] is {s[s <= 0][0]:g}: sizes must be positive")
    return np.asarray(s, dtype=float)


# ---- phase I ------------------------------------------------------------------------------------


def _phase(
    n: int, estimate: Callable[[Array | None], Limits], build: Callable[[Limits], Chart], kind: str, o: ChartOptions
) -> Chart:
    limits = o["limits"]
    if limits is not None:
        if limits.kind != kind:
            raise InvalidInput(f"these limits are for a {limits.kind} chart, not a {kind} chart")
        return build(limits)
    dropped: set[int] = set()
    for i in o["exclude"]:
        if not -n <= i < n:
            raise InvalidInput(f"cannot exclude subgroup {i}: there are {n}")
        dropped.add(i % n)
    while True:
        if n - len(dropped) < 2:
            raise InvalidInput("fewer than two subgroups are left to estimate the limits from")
        keep = None
        if dropped:  # a mask only when something is left out: the whole series is the common case
            keep = np.ones(n, dtype=bool)
            keep[sorted(dropped)] = False
        chart = build(estimate(keep))
        chart.excluded = sorted(dropped)
        if not o["drop_out_of_control"]:
            return chart
        beyond = {int(i) for c in (chart, chart.companion) if c for i in _beyond(c).indices()} - dropped
        if not beyond:
            return chart
        dropped |= beyond


def _beyond(c: Chart) -> Violations:
    """The points beyond the chart's limits, in blocks on every core."""
    check = _Beyond(c)
    passes.over(c.statistic.size, check.block)
    return check.violations()


class _Beyond:
    """The points of a chart beyond its limits, flagged block by block into packed series (see
    `bits`), like the run rules' comparisons, and listed only when someone asks."""

    def __init__(self, c: Chart) -> None:
        self.chart = c
        # a spread never falls below a lower limit of 0: one comparison fewer over a long series
        self.sides = ["above"] if c.kind in _SPREADS and np.ndim(c.lcl) == 0 and c.lcl <= 0 else ["above", "below"]
        self.packed = bits.empty(len(self.sides), c.statistic.size)
        stat = c.statistic
        one = np.ndim(c.ucl) == 0 and np.ndim(c.lcl) == 0 and stat.dtype == float and stat.flags.c_contiguous
        # the limits as the C kernel takes them, where each is one number
        self.limits = (np.array([c.ucl]), np.array([c.lcl][: len(self.sides) - 1])) if one else None

    def block(self, start: int, stop: int) -> None:
        """Flag the points start … stop − 1 (start a multiple of 64)."""
        c, k = self.chart, passes.kernels
        if k and self.limits and k.flags(c.statistic, start, stop, *self.limits, self.packed, False):
            return
        part = c.statistic[start:stop]
        buf = passes.scratch("beyond", (len(self.sides), part.size), bool)
        with np.errstate(invalid="ignore"):  # no value (NaN) is beyond nothing
            np.greater(part, _part(c.ucl, start, stop), out=buf[0])
            if len(self.sides) > 1:
                np.less(part, _part(c.lcl, start, stop), out=buf[1])
        bits.pack(self.packed, start, buf)

    def violations(self) -> Violations:
        n = self.chart.statistic.size
        found = zip(self.sides, self.packed, strict=True)
        return Violations([("limits", side, bits.before(w, n)) for side, w in found], n)


def _part(limit: Any, start: int, stop: int) -> Any:
    return limit[start:stop] if np.ndim(limit) else limit


_SPREADS = {"mr", "r", "s"}


def _judge(chart: Chart, center: Any, width: Any, o: ChartOptions) -> Chart:
    """Apply the run rules to the chart, whose zone k lies at center ± k·width, and its limits to
    its companion: one pass over the points, in blocks on every core."""
    picked = pick_rules(o["rules"], o["run_lengths"])
    rules = Scan(chart.statistic, _const(center), _const(width), picked, (chart.lcl, chart.ucl))
    comp = chart.companion
    limits = _Beyond(comp) if comp is not None else None

    def block(start: int, stop: int) -> None:
        rules.block(start, stop)
        if limits is not None:
            limits.block(start, stop)

    passes.over(rules.n, block)
    chart.violations = rules.violations()
    if limits is not None:
        limits.chart.violations = limits.violations()
    return chart


def _const(x: Any) -> float | Array:
    """A limit as one number when it is the same for every point."""
    x = np.asarray(x, dtype=float)
    return float(x.flat[0]) if x.size and (x == x.flat[0]).all() else x


# ---- variables charts ---------------------------------------------------------------------------


def _xbar_pair(subgroups: Any, spread: str, o: ChartOptions) -> Chart:
    nsigma = o["nsigma"]
    data, sizes = _subgroups(subgroups, 2)
    means = np.nanmean(data, axis=1)
    if spread == "r":
        disp = np.nanmax(data, axis=1) - np.nanmin(data, axis=1)
        unbias = np.array([k.d2(int(m)) for m in sizes])
        sd_of = np.array([k.d3(int(m)) for m in sizes])
    else:
        disp = np.nanstd(data, axis=1, ddof=1)
        unbias = np.array([k.c4(int(m)) for m in sizes])
        sd_of = np.sqrt(1 - unbias**2)
    kind = f"xbar-{spread}"

    def estimate(keep: Array | None) -> Limits:
        k_ = slice(None) if keep is None else keep
        center = float(np.sum(means[k_] * sizes[k_]) / np.sum(sizes[k_]))
        return Limits(kind, center, float(np.mean(disp[k_] / unbias[k_])))

    def build(p: Limits) -> Chart:
        se = p.sigma / np.sqrt(sizes)
        comp = Chart(
            spread,
            disp,
            _const(unbias * p.sigma),
            _const(np.maximum(0.0, (unbias - nsigma * sd_of) * p.sigma)),
            _const((unbias + nsigma * sd_of) * p.sigma),
            p.sigma,
            p,
            sizes=sizes,
        )
        chart = Chart(
            "xbar",
            means,
            p.center,
            _const(p.center - nsigma * se),
            _const(p.center + nsigma * se),
            p.sigma,
            p,
            sizes=sizes,
            companion=comp,
        )
        return _judge(chart, p.center, se * nsigma / 3, o)

    return _phase(len(means), estimate, build, kind, o)


def xbar_r(subgroups: Any, **options: Unpack[ChartOptions]) -> Chart:
    """X̄ chart with its R chart as companion; σ = mean of Rᵢ/d2(nᵢ) (R̄/d2 for equal sizes)."""
    return _xbar_pair(subgroups, "r", _options(options))


def xbar_s(subgroups: Any, **options: Unpack[ChartOptions]) -> Chart:
    """X̄ chart with its S chart as companion; σ = mean of sᵢ/c4(nᵢ) (S̄/c4 for equal sizes)."""
    return _xbar_pair(subgroups, "s", _options(options))


def imr(values: Any, **options: Unpack[ChartOptions]) -> Chart:
    """Individuals chart with its moving-range chart as companion; σ = MR̄/d2(2). `extra` holds the
    sums over every point of the values and of the moving ranges, which `capability` reuses."""
    o = _options(options)
    nsigma = o["nsigma"]
    x = np.ascontiguousarray(_values(values, "values", 2, checked=False))
    mr, total, spread = _moving_ranges(x)
    _finite(x, "values", total, spread)
    d2, d3 = k.d2(2), k.d3(2)

    def estimate(keep: Array | None) -> Limits:
        if keep is None:
            return Limits("imr", total / x.size, spread / (x.size - 1) / d2)
        pair = keep[1:] & keep[:-1]  # a moving range counts only between two kept points
        if not pair.any():
            raise InvalidInput("no two consecutive points are left to estimate the moving range from")
        return Limits("imr", float(x[keep].mean()), float(mr[1:][pair].mean() / d2))

    def build(p: Limits) -> Chart:
        comp = Chart("mr", mr, d2 * p.sigma, 0.0, (d2 + nsigma * d3) * p.sigma, p.sigma, p)
        chart = Chart(
            "i", x, p.center, p.center - nsigma * p.sigma, p.center + nsigma * p.sigma, p.sigma, p, companion=comp
        )
        return _judge(chart, p.center, p.sigma * nsigma / 3, o)

    chart = _phase(x.size, estimate, build, "imr", o)
    chart.extra = {"sum": total, "moving_range_sum": spread}
    return chart


def _moving_ranges(x: Array) -> tuple[Array, float, float]:
    """|xᵢ − xᵢ₋₁| (NaN for the first point), with the sums of x and of the moving ranges: one pass
    over the contiguous x in blocks, on every core."""
    mr = np.empty_like(x)
    mr[0] = np.nan

    def block(start: int, stop: int) -> tuple[float, float]:
        if passes.kernels:
            return passes.kernels.ranges(x, start, stop, mr)
        lo = max(start, 1)
        part = mr[lo:stop]
        with np.errstate(over="ignore", invalid="ignore"):  # a sum that is not finite is refused after
            np.subtract(x[lo:stop], x[lo - 1 : stop - 1], out=part)
            np.abs(part, out=part)
            return float(x[start:stop].sum()), float(part.sum())

    sums = passes.over(x.size, block)
    return mr, math.fsum(a for a, _ in sums), math.fsum(b for _, b in sums)


# ---- attributes charts --------------------------------------------------------------------------


def _attribute(
    kind: str,
    stat: Array,
    sizes: Array,
    totals: Array,
    binomial: bool,
    o: ChartOptions,
    scale: Array | float = 1.0,
) -> Chart:
    """p, np (binomial: σ² = p̄(1 − p̄)/n, the fraction capped at 1) and c, u (Poisson: σ² = ū/n) charts;
    `scale` turns the per-item center into the plotted one (n for np)."""
    nsigma = o["nsigma"]

    def estimate(keep: Array | None) -> Limits:
        k_ = slice(None) if keep is None else keep
        center = float(totals[k_].sum() / sizes[k_].sum())
        return Limits(kind, center, float(np.sqrt(center * (1 - center) if binomial else center)))

    def build(p: Limits) -> Chart:
        center = p.center * scale
        sd = p.sigma / np.sqrt(sizes) * scale
        upper = center + nsigma * sd
        chart = Chart(
            kind,
            stat,
            _const(np.broadcast_to(center, stat.shape)),
            _const(np.maximum(0.0, center - nsigma * sd)),
            _const(np.minimum(scale, upper) if binomial else upper),
            p.sigma,
            p,
            sizes=sizes,
        )
        return _judge(chart, center, sd * nsigma / 3, o)

    return _phase(stat.size, estimate, build, kind, o)


def p_chart(defectives: Any, sizes: Any, **options: Unpack[ChartOptions]) -> Chart:
    """Fraction nonconforming; limits p̄ ± 3√(p̄(1 − p̄)/nᵢ), stair-stepped when sizes vary."""
    d = _counts(defectives, "defectives")
    n = _sizes(sizes, d.size)
    _not_more(d, n)
    return _attribute("p", d / n, n, d, True, _options(options))


def np_chart(defectives: Any, size: int, **options: Unpack[ChartOptions]) -> Chart:
    """Number nonconforming in samples of one size; limits n·p̄ ± 3√(n·p̄(1 − p̄))."""
    d = _counts(defectives, "defectives")
    if np.ndim(size) != 0:
        raise InvalidInput("an np chart needs one sample size for all samples", "use a p chart when sizes vary")
    n = _sizes(size, d.size, "size")
    _not_more(d, n)
    return _attribute("np", d, n, d, True, _options(options), scale=n)


def c_chart(counts: Any, **options: Unpack[ChartOptions]) -> Chart:
    """Nonconformities per inspection unit of constant size; limits c̄ ± 3√c̄."""
    c = _counts(counts, "counts")
    return _attribute("c", c, np.ones_like(c), c, False, _options(options))


def u_chart(counts: Any, sizes: Any, **options: Unpack[ChartOptions]) -> Chart:
    """Nonconformities per unit; limits ū ± 3√(ū/nᵢ), stair-stepped when sizes vary."""
    c = _counts(counts, "counts")
    n = _sizes(sizes, c.size)
    return _attribute("u", c / n, n, c, False, _options(options))


def _not_more(d: Array, n: Array) -> None:
    over = np.flatnonzero(d > n)
    if over.size:
        i = int(over[0])
        raise InvalidInput(f"sample {i} has {d[i]:g} defectives among only {n[i]:g} items")


# ---- time-weighted charts -----------------------------------------------------------------------


def _series(values: Any) -> tuple[Array, float | None]:
    """Individual values, or subgroup means with the within-subgroup σ̂ (pooled S̄/c4)."""
    if grouped(values):
        data, sizes = _subgroups(values, 2)
        if (sizes != sizes[0]).any():
            raise InvalidInput("EWMA and CUSUM charts of subgroup means need subgroups of one size")
        s = np.nanstd(data, axis=1, ddof=1).mean() / k.c4(int(sizes[0]))
        return np.nanmean(data, axis=1), float(s / np.sqrt(sizes[0]))
    return _values(values, "values", 2), None


def _target_and_sigma(
    kind: str, values: Any, target: float | None, sigma: float | None, limits: Limits | None
) -> tuple[Array, float, float]:
    """The series, its target and σ: from an earlier chart's `limits` (phase II), else the given
    target (default the mean) and σ (default MR̄/d2, or pooled S̄/c4/√n for subgroups)."""
    x, within = _series(values)
    if limits is not None:
        if limits.kind != kind:
            raise InvalidInput(f"these limits are for a {limits.kind} chart, not for this {kind} chart")
        return x, limits.center, limits.sigma
    mu = float(x.mean()) if target is None else float(target)
    if sigma is not None:
        if not np.isfinite(sigma) or sigma <= 0:
            raise InvalidInput(f"sigma must be a positive number, got {sigma!r}")
        return x, mu, float(sigma)
    return x, mu, within if within is not None else float(np.abs(np.diff(x)).mean() / k.d2(2))


def ewma(
    values: Any,
    *,
    lam: float = 0.2,
    L: float = 3.0,
    target: float | None = None,
    sigma: float | None = None,
    asymptotic: bool = False,
    limits: Limits | None = None,
) -> Chart:
    """EWMA zᵢ = λxᵢ + (1 − λ)zᵢ₋₁ from z₀ = target (the mean unless given); limits
    target ± L·σ·√(λ/(2 − λ)·(1 − (1 − λ)²ⁱ)), or their asymptote. σ: given, else MR̄/d2 (pooled S̄/c4/√n
    for subgroups). With `limits` the target and σ of an earlier chart are used."""
    if not 0 < lam <= 1:
        raise InvalidInput(f"lam (λ) must be in (0, 1], got {lam!r}")
    x, mu, s = _target_and_sigma("ewma", values, target, sigma, limits)
    from scipy import signal  # imported here: scipy.signal costs ~0.9 s, and only EWMA needs it

    z = signal.lfilter([lam], [1.0, lam - 1.0], x, zi=[(1.0 - lam) * mu])[0]
    i = np.arange(1, x.size + 1)
    width = L * s * np.sqrt(lam / (2 - lam) * (1.0 if asymptotic else 1 - (1 - lam) ** (2 * i)))
    chart = Chart("ewma", z, mu, _const(mu - width), _const(mu + width), s, Limits("ewma", mu, s))
    chart.extra = {"lambda": lam, "L": L, "values": x}
    chart.violations = _beyond(chart)
    return chart


def cusum(
    values: Any,
    *,
    k: float = 0.5,
    h: float = 5.0,
    target: float | None = None,
    sigma: float | None = None,
    limits: Limits | None = None,
) -> Chart:
    """Tabular CUSUM: C⁺ᵢ = max(0, xᵢ − (μ₀ + Kσ) + C⁺ᵢ₋₁) (the chart) and C⁻ᵢ = max(0, (μ₀ − Kσ) − xᵢ + C⁻ᵢ₋₁)
    (its companion), signalling beyond H = hσ. `extra` holds N⁺/N⁻ (points since each was last zero)
    and, at each signal, the estimated shifted mean μ₀ + K + C⁺/N⁺ (or μ₀ − K − C⁻/N⁻)."""
    if k < 0 or h <= 0:
        raise InvalidInput(f"k must be ≥ 0 and h > 0, got k={k!r}, h={h!r}")
    x, mu, s = _target_and_sigma("cusum", values, target, sigma, limits)
    upper, n_up = _lindley(x - (mu + k * s))
    lower, n_down = _lindley((mu - k * s) - x)
    p = Limits("cusum", mu, s)
    comp = Chart("cusum-", lower, 0.0, 0.0, h * s, s, p)
    chart = Chart("cusum+", upper, 0.0, 0.0, h * s, s, p, companion=comp)
    chart.violations = _beyond(chart)
    comp.violations = _beyond(comp)
    with np.errstate(divide="ignore", invalid="ignore"):
        chart.extra = {
            "k": k,
            "h": h,
            "n_plus": n_up,
            "n_minus": n_down,
            "values": x,
            "shift_up": np.where(upper > h * s, mu + k * s + upper / n_up, np.nan),
            "shift_down": np.where(lower > h * s, mu - k * s - lower / n_down, np.nan),
        }
    return chart


def _lindley(steps: Array) -> tuple[Array, Array]:
    """Cᵢ = max(0, Cᵢ₋₁ + stepᵢ) from C₀ = 0, without a Python loop: Cᵢ = Sᵢ − min(0, S₁ … Sᵢ) for the
    partial sums S; and how many points since C was last zero."""
    s = np.cumsum(steps)
    c = s - np.minimum(np.minimum.accumulate(s), 0.0)
    c[c < 0] = 0.0  # rounding
    idx = np.arange(c.size)
    last_zero = np.maximum.accumulate(np.where(c <= 0, idx, -1))
    return c, (idx - last_zero).astype(float)


def subgroup(values: Sequence[float], size: int) -> list[list[float]]:
    """Consecutive values cut into subgroups of `size` (a short last one is dropped)."""
    if size < 1:
        raise InvalidInput(f"a subgroup size must be at least 1, got {size}")
    x = list(values)
    return [x[i : i + size] for i in range(0, len(x) - size + 1, size)]
