"""Run rules: Western Electric 1–4 and Nelson 1–8, vectorized over the whole series.

Zones are measured on each point's own scale z = (x − center) / σ_point, so charts with varying
limits (stair-step p and u charts, exact EWMA limits) are judged point by point. Conventions, the
same as Minitab's and the Western Electric handbook's:

- "Beyond" is strict: a point exactly on a limit or zone boundary is inside it; a point exactly on
  the center line is on neither side and ends a same-side run. Equal neighbours end a trend and an
  alternation.
- A violation is reported at the point that completes the pattern (the 9th point of a run of 9,
  the 3rd of "2 of 3"), and at every later point that keeps it going. For "k of m" rules that
  point must itself be one of the k. A point that breaks several rules is reported under each.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from qdsn.errors import InvalidInput


class Violation(NamedTuple):
    """Point `index` completes a pattern of `rule` on `side` ("above", "below" or "both")."""

    index: int
    rule: str
    side: str


@dataclass(frozen=True)
class Rule:
    """A run rule: its name, what it looks for and its length (and, for k-of-m rules, k)."""

    name: str
    test: str  # beyond, same-side, trend, alternating, k-of-m, within, outside
    length: int
    k: int = 0
    zone: float = 0.0  # in σ: the boundary a point must be beyond (or within)

    def describe(self) -> str:
        return {
            "beyond": f"a point beyond {self.zone:g}σ",
            "same-side": f"{self.length} points in a row on one side of the center line",
            "trend": f"{self.length} points in a row steadily increasing or decreasing",
            "alternating": f"{self.length} points in a row alternating up and down",
            "k-of-m": f"{self.k} of {self.length} points beyond {self.zone:g}σ on one side",
            "within": f"{self.length} points in a row within {self.zone:g}σ",
            "outside": f"{self.length} points in a row beyond {self.zone:g}σ on either side",
        }[self.test]


NELSON = {
    "nelson1": Rule("nelson1", "beyond", 1, zone=3),
    "nelson2": Rule("nelson2", "same-side", 9),
    "nelson3": Rule("nelson3", "trend", 6),
    "nelson4": Rule("nelson4", "alternating", 14),
    "nelson5": Rule("nelson5", "k-of-m", 3, k=2, zone=2),
    "nelson6": Rule("nelson6", "k-of-m", 5, k=4, zone=1),
    "nelson7": Rule("nelson7", "within", 15, zone=1),
    "nelson8": Rule("nelson8", "outside", 8, zone=1),
}
WESTERN_ELECTRIC = {
    "we1": Rule("we1", "beyond", 1, zone=3),
    "we2": Rule("we2", "k-of-m", 3, k=2, zone=2),
    "we3": Rule("we3", "k-of-m", 5, k=4, zone=1),
    "we4": Rule("we4", "same-side", 8),
}
RULES = NELSON | WESTERN_ELECTRIC


def rules(names: Iterable[str] | str = "nelson", lengths: dict[str, int] | None = None) -> list[Rule]:
    """The rules named ("nelson", "western-electric", or ids such as "nelson2"), with run lengths
    changed where `lengths` says, e.g. {"nelson2": 7}."""
    picked: list[Rule] = []
    for name in [names] if isinstance(names, str) else names:
        if name in ("nelson", "western-electric", "none"):
            picked += {"nelson": NELSON, "western-electric": WESTERN_ELECTRIC, "none": {}}[name].values()
        elif name in RULES:
            picked.append(RULES[name])
        else:
            raise InvalidInput(f"unknown run rule {name!r}", "use nelson, western-electric, nelson1…8 or we1…4")
    for name, length in (lengths or {}).items():
        i = next((i for i, r in enumerate(picked) if r.name == name), None)
        if i is None:
            raise InvalidInput(f"a run length was given for {name!r}, which is not among the rules applied")
        if not isinstance(length, int) or length < max(2, picked[i].k + 1) or picked[i].test == "beyond":
            raise InvalidInput(f"{name}: a run length must be a whole number of at least 2 (got {length!r})")
        picked[i] = Rule(name, picked[i].test, length, picked[i].k, picked[i].zone)
    return picked


def _run_length(flag: np.ndarray) -> np.ndarray:
    """For each point, how many points in a row up to and including it have `flag` set."""
    idx = np.arange(flag.size)
    last_break = np.maximum.accumulate(np.where(flag, -1, idx))
    return idx - last_break


def _window_count(flag: np.ndarray, m: int) -> np.ndarray:
    """How many of the last m points (including this one) have `flag` set."""
    c = np.cumsum(flag, dtype=np.int64)
    out = c.copy()
    out[m:] -= c[:-m]
    return out


def evaluate(z: np.ndarray, picked: Iterable[Rule]) -> list[Violation]:
    """Violations of `picked` in the series z (in σ units from the center line)."""
    z = np.asarray(z, dtype=float)
    found: list[tuple[np.ndarray, str, str]] = []
    diff = np.diff(z)
    for rule in picked:
        n = rule.length
        if rule.test == "beyond":
            found += [(z > rule.zone, rule.name, "above"), (z < -rule.zone, rule.name, "below")]
        elif rule.test == "same-side":
            found += [(_run_length(z > 0) >= n, rule.name, "above"), (_run_length(z < 0) >= n, rule.name, "below")]
        elif rule.test == "trend":  # n points need n − 1 steps
            up = np.concatenate(([0], _run_length(diff > 0)))
            down = np.concatenate(([0], _run_length(diff < 0)))
            found += [(up >= n - 1, rule.name, "above"), (down >= n - 1, rule.name, "below")]
        elif rule.test == "alternating":  # n points: n − 2 changes of direction in a row
            turn = diff[1:] * diff[:-1] < 0
            found.append((np.concatenate(([0, 0], _run_length(turn))) >= n - 2, rule.name, "both"))
        elif rule.test == "k-of-m":
            for side, beyond in (("above", z > rule.zone), ("below", z < -rule.zone)):
                found.append((beyond & (_window_count(beyond, n) >= rule.k), rule.name, side))
        elif rule.test == "within":
            found.append((_run_length(np.abs(z) < rule.zone) >= n, rule.name, "both"))
        elif rule.test == "outside":
            found.append((_run_length(np.abs(z) > rule.zone) >= n, rule.name, "both"))
    out = [Violation(int(i), name, side) for hit, name, side in found for i in np.flatnonzero(hit)]
    return sorted(out, key=lambda v: (v.index, v.rule))
