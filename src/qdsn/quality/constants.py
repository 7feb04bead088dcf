"""Control chart constants from their definitions, for any subgroup size n ≥ 2.

d2 and d3 are the mean and standard deviation of the relative range W = R/σ of n standard normal
observations, computed by numerical integration of the range's distribution; c4 is E[s]/σ from
the gamma function. The others follow: A2 = 3/(d2·√n), A3 = 3/(c4·√n), D3,4 = 1 ∓ 3·d3/d2 and
B3,4 = 1 ∓ 3·√(1 − c4²)/c4 (the lower ones floored at zero).

`mode="table"` rounds each constant as the printed tables do (ASTM STP 15D, Montgomery's Appendix
VI): four decimals for c4, three for the rest, so results match hand calculations from those tables.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import special

from qdsn.errors import InvalidInput

NAMES = ("d2", "d3", "c4", "A2", "A3", "B3", "B4", "D3", "D4")
_PRINTED_DECIMALS = {"c4": 4}  # the others: 3


def _check(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 2:
        raise InvalidInput(f"control chart constants need a subgroup size n ≥ 2, got {n!r}")
    return int(n)


# Gauss-Legendre on [-9, 9] (Φ is 1 to 1e-19 beyond): the integrands are smooth, so 400 nodes give
# d2 and d3 to 1e-12 in milliseconds, where adaptive quadrature of the double integral takes seconds.
_NODES, _WEIGHTS = special.roots_legendre(400)
_Y, _WY = 9.0 * _NODES, 9.0 * _WEIGHTS
_T, _WT = 9.0 * _NODES + 9.0, 9.0 * _WEIGHTS


@lru_cache(maxsize=512)
def _d2d3(n: int) -> tuple[float, float]:
    cdf = special.ndtr(_Y)
    # E[W] = ∫ 1 − Φ(y)ⁿ − (1 − Φ(y))ⁿ dy
    d2 = float(_WY @ (1 - cdf**n - special.ndtr(-_Y) ** n))
    # E[W²] = 2 ∫∫_{t>0} 1 − Φ(y)ⁿ − (1 − Φ(y − t))ⁿ + (Φ(y) − Φ(y − t))ⁿ dt dy  (Tippett, 1925)
    x = _Y[:, None] - _T[None, :]
    g = 1 - (cdf**n)[:, None] - special.ndtr(-x) ** n + (cdf[:, None] - special.ndtr(x)) ** n
    return d2, math.sqrt(2 * float(_WY @ g @ _WT) - d2 * d2)


def _c4(n: int) -> float:
    return math.sqrt(2.0 / (n - 1)) * math.exp(special.gammaln(n / 2) - special.gammaln((n - 1) / 2))


def constant(name: str, n: int, mode: str = "exact") -> float:
    """One constant (d2, d3, c4, A2, A3, B3, B4, D3, D4) for subgroup size n; mode "exact" or "table"."""
    n = _check(n)
    if mode not in ("exact", "table"):
        raise InvalidInput(f"mode must be 'exact' or 'table', got {mode!r}")
    if name not in NAMES:
        raise InvalidInput(f"unknown control chart constant {name!r}", f"use one of {', '.join(NAMES)}")
    (d2, d3), c4 = _d2d3(n), _c4(n)
    spread = 3 * math.sqrt(1 - c4 * c4) / c4 if name in ("B3", "B4") else 0.0
    value = {
        "d2": lambda: d2,
        "d3": lambda: d3,
        "c4": lambda: c4,
        "A2": lambda: 3 / (d2 * math.sqrt(n)),
        "A3": lambda: 3 / (c4 * math.sqrt(n)),
        "B3": lambda: max(0.0, 1 - spread),
        "B4": lambda: 1 + spread,
        "D3": lambda: max(0.0, 1 - 3 * d3 / d2),
        "D4": lambda: 1 + 3 * d3 / d2,
    }[name]()
    return round(value, _PRINTED_DECIMALS.get(name, 3)) if mode == "table" else value


def d2(n: int) -> float:
    """Mean of the relative range of n normal observations."""
    return constant("d2", n)


def d3(n: int) -> float:
    """Standard deviation of the relative range of n normal observations."""
    return constant("d3", n)


def c4(n: int) -> float:
    """E[s]/σ for samples of n normal observations."""
    return constant("c4", n)


def table(n_max: int = 25, mode: str = "exact") -> list[dict[str, float]]:
    """All constants for n = 2 … n_max, one row per n."""
    return [{"n": n} | {k: constant(k, n, mode) for k in NAMES} for n in range(2, _check(n_max) + 1)]
