"""Six Sigma metrics: defects per unit and per opportunity, DPMO, yields, sigma level, Pareto."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from scipy import special

from qdsn.errors import InvalidInput


def _positive(name: str, v: float, allow_zero: bool = False) -> float:
    if (
        isinstance(v, bool)
        or not isinstance(v, int | float)
        or not math.isfinite(v)
        or v < 0
        or (v == 0 and not allow_zero)
    ):
        raise InvalidInput(f"{name} must be a {'non-negative' if allow_zero else 'positive'} number, got {v!r}")
    return float(v)


def dpu(defects: float, units: float) -> float:
    """Defects per unit."""
    return _positive("defects", defects, True) / _positive("units", units)


def dpo(defects: float, units: float, opportunities: float) -> float:
    """Defects per opportunity: defects / (units × opportunities per unit)."""
    d = _positive("defects", defects, True)
    total = _positive("units", units) * _positive("opportunities", opportunities)
    if d > total:
        raise InvalidInput(f"{d:g} defects exceed the {total:g} opportunities for one")
    return d / total


def dpmo(defects: float, units: float, opportunities: float = 1) -> float:
    """Defects per million opportunities."""
    return dpo(defects, units, opportunities) * 1e6


def yield_from_dpu(dpu_value: float) -> float:
    """First-time yield e^(−DPU), defects assumed Poisson."""
    return math.exp(-_positive("dpu", dpu_value, True))


def rolled_throughput_yield(yields: Iterable[float]) -> float:
    """The product of the process steps' first-time yields."""
    out = 1.0
    for i, y in enumerate(yields):
        if not 0 <= y <= 1:
            raise InvalidInput(f"yield {i} is {y!r}: a yield lies in [0, 1]")
        out *= y
    return out


def sigma_level(dpmo_value: float, shift: float = 1.5, two_tailed: bool = False) -> float:
    """The sigma level for a DPMO: z of the defect fraction, plus the long-term `shift` (1.5 by
    convention, 0 for none). Two-tailed splits the defects evenly between the two tails."""
    d = _positive("dpmo", dpmo_value, True)
    if d >= 1e6:
        raise InvalidInput("DPMO must be below 1,000,000")
    if d == 0:
        return math.inf
    p = d / 1e6 / (2 if two_tailed else 1)
    return float(-special.ndtri(p)) + shift


def dpmo_from_sigma(level: float, shift: float = 1.5, two_tailed: bool = False) -> float:
    """The inverse of `sigma_level`."""
    return float(special.ndtr(-(level - shift))) * (2 if two_tailed else 1) * 1e6


def pareto(counts: Mapping[str, float]) -> list[dict[str, float | str]]:
    """Categories by count, largest first, with their share and cumulative share (in %)."""
    items = sorted(((k, _positive(f"count of {k!r}", v, True)) for k, v in counts.items()), key=lambda kv: -kv[1])
    total = sum(v for _, v in items)
    if total == 0:
        raise InvalidInput("a Pareto analysis needs at least one non-zero count")
    out, running = [], 0.0
    for name, v in items:
        running += v
        out.append({"category": name, "count": v, "percent": 100 * v / total, "cumulative": 100 * running / total})
    return out
