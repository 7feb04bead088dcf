"""Multivariate process monitoring: Hotelling's T² for individual observations, its robust variant on
the minimum covariance determinant, and the sufficient statistics that let enterprises fit one model
together without pooling rows. Pure functions over numpy arrays.

Control limits for m individual observations of p variables at false-alarm rate α (Tracy, Young and
Mason 1992; Montgomery, Introduction to Statistical Quality Control, §11.3):

- phase I (each point judged against the mean and covariance it helped estimate):
  UCL = (m − 1)² / m · B(1 − α; p/2, (m − p − 1)/2), the beta quantile;
- phase II (a new point against frozen estimates): UCL = p(m + 1)(m − 1) / (m(m − p)) · F(1 − α; p, m − p).

The robust variant estimates location and scatter by scikit-learn's reweighted MCD (FAST-MCD) so the
outliers that phase I is meant to find do not inflate the covariance that hides them; its distances are
judged against the asymptotic χ²(1 − α; p) limit, as the MCD's consistency correction intends.

Federation (`Sums`, `FixedPoint`): T²'s model is a function of n, Σx and Σxxᵀ alone. Each enterprise
quantises its rows to integers on a grid every party agrees on (`FixedPoint`: per variable an offset and
a scale, `bits` bits), so its sums are exact integers; summed in a finite field (Prio3SumVec) they are
the integer sums of the pooled quantised rows, and `Sums.model` gives, bit for bit, the model a single
party holding every quantised row would fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import compress
from typing import Any

import numpy as np
from scipy import special  # the quantiles scipy.stats takes them from, without its ~1 s import

from qdsn.errors import IntegrityError, InvalidInput

ALPHA = 0.0027  # the false-alarm rate of a Shewhart chart's three-sigma limits
# A grid value and (x − low)·scale stay exact integers in a float64 below 2^53; 48 bits also keep one
# reporter's Σq² of 2^32 rows within 128 bits, four 32-bit digits (see `privacy.federated`).
MAX_BITS = 48
MCD_ROWS = 500  # FAST-MCD runs on at most this many rows (see fit_mcd)


def _rows(x: Any, what: str = "the data") -> np.ndarray:
    """A 2-D float array of rows × variables, every value finite, or InvalidInput naming the first bad cell."""
    a = np.asarray(x, dtype=float)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[1] == 0:
        raise InvalidInput(f"{what} must be a table of rows × variables, not shape {a.shape}")
    bad = ~np.isfinite(a)
    if bad.any():
        r, c = (int(i) for i in np.argwhere(bad)[0])
        raise InvalidInput(f"{what} has {int(bad.sum())} missing or non-finite values (first at row {r + 1}, "
                           f"variable {c + 1}: {a[r, c]})", "drop or fill those rows before fitting")  # fmt: skip
    return a


def _enough(m: int, p: int, extra: int = 2) -> None:
    if m < p + extra:
        raise InvalidInput(f"{m} rows are too few for {p} variables: T² needs at least {p + extra} "
                           f"(the variables + {extra}) to estimate a covariance and its limit",
                           "collect more rows, or monitor fewer variables")  # fmt: skip


def _whitener(cov: np.ndarray, names: tuple[str, ...] | None = None) -> np.ndarray:
    """W with WᵀΣW = I (the inverse Cholesky factor, transposed), so T² = ‖(x − μ)W‖²; InvalidInput
    naming the variables that make Σ singular."""
    p = cov.shape[0]
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    label = (lambda i: names[i]) if names else (lambda i: f"variable {i + 1}")
    flat = [label(i) for i in range(p) if not sd[i] > 0]
    if flat:
        raise InvalidInput(f"the covariance is singular: {', '.join(flat)} do(es) not vary",
                           "leave constant variables out of the model")  # fmt: skip
    corr = cov / np.outer(sd, sd)
    if np.linalg.cond(corr) > 1e12:
        w, v = np.linalg.eigh(corr)
        tied = [label(i) for i in np.flatnonzero(np.abs(v[:, 0]) > 0.1)]
        raise InvalidInput(f"the covariance is singular: {', '.join(tied)} are linearly dependent "
                           f"(smallest eigenvalue of the correlation {w[0]:.3g})",
                           "leave out variables that are sums or copies of others")  # fmt: skip
    chol = np.linalg.cholesky(cov)
    return np.asarray(np.linalg.inv(chol).T)


def ucl_phase1(m: int, p: int, alpha: float = ALPHA) -> float:
    """The phase I upper control limit of T² for m individual observations of p variables (beta)."""
    _enough(m, p)
    return float((m - 1) ** 2 / m * special.betaincinv(p / 2, (m - p - 1) / 2, 1 - alpha))


def ucl_phase2(m: int, p: int, alpha: float = ALPHA) -> float:
    """The phase II upper control limit of T² for a new observation, estimates from m rows (F)."""
    _enough(m, p, 1)
    return float(p * (m + 1) * (m - 1) / (m * (m - p)) * special.fdtri(p, m - p, 1 - alpha))


def ucl_chi2(p: int, alpha: float = ALPHA) -> float:
    """The asymptotic limit (known parameters, or the MCD's robust distances): χ²(1 − α; p)."""
    return _chi2_ppf(1 - alpha, p)


def _chi2_ppf(q: float, p: int) -> float:
    return float(2 * special.gammaincinv(p / 2, q))  # scipy.stats.chi2.ppf's own formula


@dataclass(frozen=True)
class T2Model:
    """A fitted T² model: location, scatter, the rows it rests on, and both limits."""

    method: str  # "t2" or "mcd"
    mean: np.ndarray
    cov: np.ndarray
    n: int
    alpha: float
    names: tuple[str, ...] = ()
    excluded: tuple[int, ...] = ()  # phase I rows left out of the estimates (0-based)
    whitener: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))

    @property
    def p(self) -> int:
        return int(self.mean.shape[0])

    @property
    def ucl(self) -> float:
        """The limit new observations are judged against (phase II)."""
        if self.method == "mcd":
            return ucl_chi2(self.p, self.alpha)
        return ucl_phase2(self.n, self.p, self.alpha)

    @property
    def ucl_phase1(self) -> float:
        """The limit the rows the model was fitted on are judged against."""
        if self.method == "mcd":
            return ucl_chi2(self.p, self.alpha)
        return ucl_phase1(self.n, self.p, self.alpha)

    def score(self, x: Any) -> np.ndarray:
        """T² of each row: (x − μ)ᵀ Σ⁻¹ (x − μ), in one matrix product for the whole batch."""
        a = _rows(x)
        if a.shape[1] != self.p:
            raise InvalidInput(f"the model has {self.p} variables, the data {a.shape[1]}",
                               "score rows with the model's variables, in its order")  # fmt: skip
        z = (a - self.mean) @ self.whitener
        return np.einsum("ij,ij->i", z, z)

    def signals(self, x: Any) -> np.ndarray:
        """Indices of the rows above the phase II limit."""
        return np.flatnonzero(self.score(x) > self.ucl)

    def arrays(self) -> dict[str, np.ndarray]:
        """The model as plain arrays (no objects), for a safe file."""
        return {"kind": np.array(self.method), "mean": self.mean, "cov": self.cov, "n": np.array(self.n),
                "alpha": np.array(self.alpha), "names": np.array(self.names, dtype=str),
                "excluded": np.array(self.excluded, dtype=np.int64)}  # fmt: skip

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> T2Model:
        """The model `arrays` wrote; InvalidInput when a field is missing or has the wrong shape."""
        try:
            method, mean, cov = str(a["kind"]), np.asarray(a["mean"], float), np.asarray(a["cov"], float)
            n, alpha = int(a["n"]), float(a["alpha"])
            names, excluded = tuple(str(s) for s in a["names"]), tuple(int(i) for i in a["excluded"])
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidInput(f"not a T² model's parameters: {e}") from None
        p = mean.shape[0] if mean.ndim == 1 else -1
        if method not in ("t2", "mcd") or cov.shape != (p, p) or not 0 < alpha < 1 or (names and len(names) != p):
            raise InvalidInput("not a T² model's parameters: kind, mean, covariance, names or alpha do not fit")
        return _model(method, mean, cov, n, alpha, names, excluded)


def _model(method: str, mean: np.ndarray, cov: np.ndarray, n: int, alpha: float, names: tuple[str, ...] = (),
           excluded: tuple[int, ...] = ()) -> T2Model:  # fmt: skip
    if not 0 < alpha < 0.5:
        raise InvalidInput(f"alpha is a false-alarm rate in (0, 0.5), not {alpha}")
    _enough(n, mean.shape[0])
    return T2Model(method, mean, cov, n, alpha, names, excluded, _whitener(cov, names or None))


def fit_t2(x: Any, *, alpha: float = ALPHA, names: tuple[str, ...] = ()) -> T2Model:
    """T² from every row: the sample mean and covariance (divisor m − 1)."""
    a = _rows(x)
    _enough(*a.shape)
    return _model("t2", a.mean(axis=0), np.cov(a, rowvar=False).reshape(a.shape[1], a.shape[1]), a.shape[0],
                  alpha, names)  # fmt: skip


def phase1(x: Any, *, alpha: float = ALPHA, names: tuple[str, ...] = (), rounds: int = 20) -> T2Model:
    """Phase I: fit, drop the rows above the beta limit, refit on the rest, until none is above (at most
    `rounds` times). `excluded` names the rows left out, in the numbering of `x`."""
    a = _rows(x)
    keep = np.arange(a.shape[0])
    model = fit_t2(a, alpha=alpha, names=names)
    for _ in range(rounds):
        above = model.score(a[keep]) > model.ucl_phase1
        if not above.any():
            break
        keep = keep[~above]
        model = fit_t2(a[keep], alpha=alpha, names=names)
    excluded = tuple(int(i) for i in np.setdiff1d(np.arange(a.shape[0]), keep))
    return _model("t2", model.mean, model.cov, model.n, alpha, names, excluded)


def fit_mcd(x: Any, *, alpha: float = ALPHA, names: tuple[str, ...] = (), seed: int = 0,
            subsample: int = MCD_ROWS) -> T2Model:  # fmt: skip
    """The robust variant: scikit-learn's FAST-MCD on a random subsample of `subsample` rows, then one
    reweighting step over every row (those within χ²(0.975; p) of the MCD estimate give the mean and
    covariance, corrected for the cut); `excluded` are the rows that step left out.
    FAST-MCD's cost grows steeply with the rows (2.3 s at 1,000 rows of 20 variables, 39 s at 4,000), so
    the subsample keeps a fit within seconds; the reweighting recovers the efficiency of all rows."""
    from sklearn.covariance import MinCovDet

    a = _rows(x)
    m, p = a.shape
    _enough(m, p)
    _whitener(np.cov(a, rowvar=False).reshape(p, p), names or None)  # name a singular input
    rng = np.random.default_rng(seed)
    part = a if m <= subsample else a[np.sort(rng.choice(m, subsample, replace=False))]
    raw = MinCovDet(random_state=seed).fit(part)
    z = (a - raw.location_) @ _whitener(raw.covariance_, names or None)
    cut = _chi2_ppf(0.975, p)
    keep = np.einsum("ij,ij->i", z, z) <= cut
    if keep.sum() < p + 2:
        raise InvalidInput("too few rows lie near the robust centre to estimate a covariance",
                           "check the data for a mixture of processes, or use the plain T²")  # fmt: skip
    kept = a[keep]
    excluded = tuple(int(i) for i in np.flatnonzero(~keep))
    # rows of a normal process within the cut have a covariance shrunk by P(χ²(p + 2) ≤ cut) / 0.975
    # (Croux and Haesbroeck 1999): undo it, so the limits hold at their nominal rate
    shrink = special.chdtr(p + 2, cut) / 0.975
    cov = np.cov(kept, rowvar=False).reshape(p, p) / shrink
    return _model("mcd", kept.mean(axis=0), cov, m, alpha, names, excluded)


def contributions(model: T2Model, x: Any) -> np.ndarray:
    """Each variable's reconstruction-based contribution to each row's T², rows × variables: how much T²
    falls when that variable alone is replaced by the value the others make most likely,
    (Σ⁻¹(x − μ))ⱼ² / (Σ⁻¹)ⱼⱼ (Alcala and Qin 2009). Unlike a share of T², it names the variable of a
    single-variable fault even among correlated ones, so the largest is where to look first."""
    a = _rows(x)
    if a.shape[1] != model.p:
        raise InvalidInput(f"the model has {model.p} variables, the data {a.shape[1]}")
    inverse = model.whitener @ model.whitener.T  # Σ⁻¹ = WWᵀ
    m = (a - model.mean) @ inverse
    return np.asarray(m**2 / np.diag(inverse))


def rows_at_times(records: Any, names: list[str]) -> tuple[list[str], np.ndarray]:
    """(times, rows × `names`) of measurement records: one row per time stamp at which every named
    characteristic was read (the same rows the multivariate-monitoring model reads), in time order; a
    characteristic read twice at one time counts its last reading."""
    return complete(*readings_at_times(records, names))


def readings_at_times(records: Any, names: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(times, values, read) of measurement records: every time stamp at which any of `names` was read, in
    time order, with each characteristic's last reading then (rows × `names`) and whether it was read; what
    `complete` takes the rows of any subset of `names` from. The records are read column by column in
    comprehensions that make no new objects per record (a loop building a dict per time takes three times
    as long over 200,000 records, much of it in the garbage collector); numpy fills the table."""
    p, column = len(names), {n: j for j, n in enumerate(names)}
    records = records if isinstance(records, list) else list(records)  # read three times
    if not p:
        return [], np.empty((0, 0)), np.empty((0, 0), dtype=bool)
    js = [column.get(c) if isinstance(c := r.get("characteristic"), str) else None for r in records]
    vs = [r.get("value") for r in records]
    good = [j is not None and (type(v) is float or type(v) is int or _number(v)) for j, v in zip(js, vs, strict=True)]
    ts = [t if type(t := r.get("time", "")) is str else str(t) for r in compress(records, good)]
    stamps = list(dict.fromkeys(ts))  # each time once, in order of first reading
    row = {t: i for i, t in enumerate(stamps)}
    n = len(ts)
    cells = np.fromiter(map(row.__getitem__, ts), np.int64, n) * p + np.fromiter(compress(js, good), np.int64, n)
    values = np.fromiter(map(float, compress(vs, good)), float, n)
    read = np.bincount(cells, minlength=len(stamps) * p)
    x = np.zeros(len(stamps) * p)
    if n and read.max() > 1:  # a cell read twice: its last reading, the first in the reversed order
        cell, last = np.unique(cells[::-1], return_index=True)
        x[cell] = values[::-1][last]
    else:
        x[cells] = values
    order = sorted(range(len(stamps)), key=stamps.__getitem__)
    return [stamps[i] for i in order], x.reshape(-1, p)[order], (read > 0).reshape(-1, p)[order]


def complete(times: list[str], values: np.ndarray, read: np.ndarray,
             columns: list[int] | None = None) -> tuple[list[str], np.ndarray]:  # fmt: skip
    """(times, rows × columns) of a `readings_at_times` table: the rows at which every one of `columns`
    (indices into its names; all of them by default) was read."""
    cols = list(range(values.shape[1])) if columns is None else list(columns)
    full = read[:, cols].all(axis=1) if cols else np.zeros(len(times), dtype=bool)
    return list(compress(times, full.tolist())), values[:, cols][full]


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


# --- federation: exact sufficient statistics -------------------------------------------------------


@dataclass(frozen=True)
class FixedPoint:
    """The grid every party quantises onto: q = round((x − low) · scale), an integer in [0, 2^bits),
    with scale = (2^bits − 1) / (high − low) per variable. Values outside [low, high] are refused."""

    low: tuple[float, ...]
    high: tuple[float, ...]
    bits: int = 16

    def __post_init__(self) -> None:
        if len(self.low) != len(self.high) or not self.low:
            raise InvalidInput("give one low and one high bound per variable")
        if not 1 <= self.bits <= MAX_BITS:
            raise InvalidInput(f"bits must be 1 to {MAX_BITS}, not {self.bits}")
        bounds = zip(self.low, self.high, strict=True)
        if not all(math.isfinite(lo) and math.isfinite(hi) and hi > lo for lo, hi in bounds):
            raise InvalidInput("each variable's high bound must be finite and above its low bound")

    @property
    def scale(self) -> np.ndarray:
        return (2**self.bits - 1) / (np.array(self.high) - np.array(self.low))

    def quantise(self, x: Any) -> np.ndarray:
        """The rows on the grid, as int64; InvalidInput naming the first value outside the bounds."""
        a = _rows(x)
        if a.shape[1] != len(self.low):
            raise InvalidInput(f"the grid has {len(self.low)} variables, the data {a.shape[1]}")
        q = np.rint((a - np.array(self.low)) * self.scale)
        out = (q < 0) | (q > 2**self.bits - 1)
        if out.any():
            r, c = (int(i) for i in np.argwhere(out)[0])
            raise InvalidInput(f"value {a[r, c]} (row {r + 1}, variable {c + 1}) is outside the agreed range "
                               f"[{self.low[c]}, {self.high[c]}]",
                               "agree on wider bounds, or fix the reading")  # fmt: skip
        return q.astype(np.int64)

    def dequantise(self, q: Any) -> np.ndarray:
        """Grid integers back to values: low + q / scale."""
        return np.array(self.low) + np.asarray(q, dtype=float) / self.scale


@dataclass(frozen=True)
class Sums:
    """T²'s sufficient statistics of quantised rows, as exact Python integers: n, Σq and the upper
    triangle of Σqqᵀ (row by row)."""

    n: int
    sq: tuple[int, ...]
    sqq: tuple[int, ...]

    @classmethod
    def of(cls, q: np.ndarray) -> Sums:
        """The sums of integer rows below 2^48, exact: each value split into 24-bit halves h·2^24 + l so
        every int64 product is below 2^48 and a block's sum of 2^14 of them below 2^62."""
        q = np.asarray(q, dtype=np.int64)
        if q.ndim != 2:
            raise InvalidInput("quantised rows form a table")
        if q.size and (int(q.min()) < 0 or int(q.max()) >= 2**MAX_BITS):
            raise InvalidInput(f"quantised values must be 0 to 2^{MAX_BITS} − 1")
        if q.shape[0] > 2**14:  # sum blockwise so no int64 product sum can overflow
            parts = [cls.of(q[i : i + 2**14]) for i in range(0, q.shape[0], 2**14)]
            return sum(parts[1:], parts[0])
        h, lo = q >> 24, q & (2**24 - 1)
        iu = np.triu_indices(q.shape[1])
        hh, hl, lh, ll = ([int(v) for v in g[iu]] for g in (h.T @ h, h.T @ lo, lo.T @ h, lo.T @ lo))
        g = tuple((a << 48) + ((b + c) << 24) + d for a, b, c, d in zip(hh, hl, lh, ll, strict=True))
        return cls(int(q.shape[0]), tuple(int(v) for v in q.sum(axis=0)), g)

    def __add__(self, other: Sums) -> Sums:
        if len(self.sq) != len(other.sq):
            raise InvalidInput("sums of different numbers of variables do not add")
        return Sums(self.n + other.n, tuple(a + b for a, b in zip(self.sq, other.sq, strict=True)),
                    tuple(a + b for a, b in zip(self.sqq, other.sqq, strict=True)))  # fmt: skip

    @property
    def p(self) -> int:
        return len(self.sq)

    def vector(self) -> list[int]:
        """[n, Σq…, Σqqᵀ upper triangle…]: what a party contributes."""
        return [self.n, *self.sq, *self.sqq]

    @classmethod
    def from_vector(cls, v: list[int], p: int) -> Sums:
        if len(v) != length(p) or any(x < 0 for x in v):
            raise InvalidInput(f"a sums vector of {p} variables has {length(p)} non-negative entries, not {len(v)}")
        return cls(v[0], tuple(v[1 : 1 + p]), tuple(v[1 + p :]))

    def check(self, grid: FixedPoint) -> None:
        """IntegrityError unless these could be the sums of n rows on the grid: each Σq within [0, n·top],
        each Σq² within [(Σq)²/n, n·top²] (top = 2^bits − 1). Sums arrive from parties who may lie; this
        catches a vector no rows could give, not a consistent lie."""
        n, top = self.n, 2**grid.bits - 1
        if len(self.sq) != len(grid.low) or len(self.sqq) != self.p * (self.p + 1) // 2:
            raise InvalidInput(f"sums of {self.p} variables do not fit a grid of {len(grid.low)}")
        k = 0
        for i in range(self.p):
            diag = self.sqq[k]
            if not (0 <= self.sq[i] <= n * top and self.sq[i] ** 2 <= n * diag and 0 <= diag <= n * top * top):
                raise IntegrityError(
                    f"the sums of variable {i + 1} are not those of any {n} rows on the grid",
                    "a party sent statistics that no data gives; find it and collect again",
                )
            k += self.p - i

    def model(self, grid: FixedPoint, *, alpha: float = ALPHA, names: tuple[str, ...] = ()) -> T2Model:
        """The T² model of the pooled rows, dequantised: the mean low + Σq/(n·scale) and the covariance
        (nΣqqᵀ − ΣqΣqᵀ) / (n(n − 1)·scaleᵢscaleⱼ), its numerator exact in integers."""
        p, n = self.p, self.n
        _enough(n, p)
        self.check(grid)
        full = [[0] * p for _ in range(p)]
        k = 0
        for i in range(p):
            for j in range(i, p):
                full[i][j] = full[j][i] = n * self.sqq[k] - self.sq[i] * self.sq[j]
                k += 1
        scale = grid.scale
        mean = np.array(grid.low) + np.array([float(s) / n for s in self.sq]) / scale
        cov = np.array([[float(v) for v in row] for row in full]) / (n * (n - 1)) / np.outer(scale, scale)
        return _model("t2", mean, cov, n, alpha, names)


def length(p: int) -> int:
    """Entries of a sums vector of p variables: 1 + p + p(p + 1)/2."""
    return 1 + p + p * (p + 1) // 2


def to_limbs(v: list[int], limbs: int, bits: int = 32) -> list[int]:
    """Each integer as `limbs` digits in base 2^bits, least significant first: Prio3 bounds each entry
    below 2^32, and digit sums carry back exactly (`from_limbs`)."""
    out: list[int] = []
    for x in v:
        if not 0 <= x < 2 ** (limbs * bits):
            raise InvalidInput(f"{x} does not fit {limbs} digits of {bits} bits",
                               "use fewer quantisation bits, or more digits")  # fmt: skip
        out.extend((x >> (bits * k)) & (2**bits - 1) for k in range(limbs))
    return out


def from_limbs(v: list[int], limbs: int, bits: int = 32) -> list[int]:
    """The integers whose digit sums `v` holds (digits may exceed 2^bits after summing)."""
    if len(v) % limbs:
        raise InvalidInput(f"{len(v)} digits do not split into groups of {limbs}")
    return [sum(d << (bits * k) for k, d in enumerate(v[i : i + limbs])) for i in range(0, len(v), limbs)]
