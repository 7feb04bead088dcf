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

from collections.abc import Iterable, Sequence
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
        least = 3 if picked[i].test == "alternating" else max(2, picked[i].k + 1)
        if not isinstance(length, int) or length < least or picked[i].test == "beyond":
            raise InvalidInput(f"{name}: a run length must be a whole number of at least {least} (got {length!r})")
        picked[i] = Rule(name, picked[i].test, length, picked[i].k, picked[i].zone)
    return picked


class Violations(Sequence[Violation]):
    """The violations found, kept as index arrays per rule and side until someone asks for the list."""

    def __init__(self, hits: Sequence[tuple[str, str, np.ndarray]] = ()) -> None:
        self._hits = [(rule, side, idx) for rule, side, idx in hits if idx.size]
        self._list: list[Violation] | None = None

    def _all(self) -> list[Violation]:
        if self._list is None:
            out = [Violation(int(i), rule, side) for rule, side, idx in self._hits for i in idx]
            self._list = sorted(out, key=lambda v: (v.index, v.rule))
        return self._list

    def __len__(self) -> int:
        return sum(idx.size for _, _, idx in self._hits)

    def __getitem__(self, i):  # type: ignore[no-untyped-def]
        return self._all()[i]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._all())

    def indices(self) -> np.ndarray:
        """Every point that breaks at least one rule, once, in order."""
        if not self._hits:
            return np.empty(0, dtype=np.intp)
        seen = np.zeros(max(int(idx[-1]) for _, _, idx in self._hits) + 1, dtype=bool)
        for _, _, idx in self._hits:
            seen[idx] = True
        return np.flatnonzero(seen)

    def __repr__(self) -> str:
        return f"Violations({self._all()!r})"


def _shift(a: np.ndarray, by: int) -> np.ndarray:
    """a moved `by` places later: out[i] = a[i − by], False before the start."""
    if by == 0:
        return a
    out = np.zeros_like(a)
    if by < a.size:
        out[by:] = a[:-by]
    return out


def _held(flag: np.ndarray, n: int) -> np.ndarray:
    """True at i when flag[i − n + 1 … i] are all True: windows doubled and combined by the binary
    digits of n, so a run of any length costs O(log n) passes over the series."""
    out = np.ones_like(flag)
    covered, window, span = 0, flag, 1
    while n:
        if n & 1:
            out &= _shift(window, covered)
            covered += span
        n >>= 1
        if n:
            window = window & _shift(window, span)
            span *= 2
    return out


def _count(flag: np.ndarray, m: int) -> np.ndarray:
    """How many of the last m points (this one included) have `flag` set."""
    if m > 32:
        c = np.cumsum(flag, dtype=np.int64)
        c[m:] -= c[:-m].copy()
        return c
    out = flag.view(np.int8).copy()  # counts up to 32 fit in a byte
    for by in range(1, m):
        out[by:] += flag[:-by]
    return out


def evaluate(z: np.ndarray, picked: Iterable[Rule]) -> Violations:
    """Violations of `picked` in the series z (in σ units from the center line)."""
    z = np.asarray(z, dtype=float)
    picked = list(picked)
    hits: list[tuple[str, str, np.ndarray]] = []
    tests = {r.test for r in picked}
    if tests & {"trend", "alternating"}:
        step = np.subtract(z[1:], z[:-1])
        rising, falling = step > 0, step < 0
    if tests & {"within", "outside"}:
        size = np.abs(z)
    flat = np.flatnonzero
    for rule in picked:
        n = rule.length
        if rule.test == "beyond":
            hits += [(rule.name, "above", flat(z > rule.zone)), (rule.name, "below", flat(z < -rule.zone))]
        elif rule.test == "same-side":
            hits += [(rule.name, "above", flat(_held(z > 0, n))), (rule.name, "below", flat(_held(z < 0, n)))]
        elif rule.test == "trend":  # n points need n − 1 steps; step j ends at point j + 1
            hits += [
                (rule.name, "above", flat(_held(rising, n - 1)) + 1),
                (rule.name, "below", flat(_held(falling, n - 1)) + 1),
            ]
        elif rule.test == "alternating":  # n points: n − 2 changes of direction; turn j is at point j + 2
            turn = (rising[1:] & falling[:-1]) | (falling[1:] & rising[:-1])
            hits.append((rule.name, "both", flat(_held(turn, n - 2)) + 2))
        elif rule.test == "k-of-m":
            for side, beyond in (("above", z > rule.zone), ("below", z < -rule.zone)):
                hits.append((rule.name, side, flat(beyond & (_count(beyond, n) >= rule.k))))
        elif rule.test == "within":
            hits.append((rule.name, "both", flat(_held(size < rule.zone, n))))
        elif rule.test == "outside":
            hits.append((rule.name, "both", flat(_held(size > rule.zone, n))))
    return Violations(hits)
