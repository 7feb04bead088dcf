"""Run rules: Western Electric 1–4 and Nelson 1–8, as word operations on packed flag series.

Where the limits are the same for every point, points are compared with the zone boundaries
center ± k·σ themselves; where they vary (stair-step p and u charts), each point is judged on its
own scale z = (x − center) / σ_point. Conventions:

- "Beyond" is strict: a point exactly on a limit or zone boundary belongs to the inner zone, so it
  is not beyond that boundary and it is within it (rule 7); a point exactly on the center line is
  on neither side and ends a same-side run. Equal neighbours end a trend and an alternation.
- A violation is reported at the point that completes the pattern (the 9th point of a run of 9,
  the 3rd of "2 of 3"), and at every later point that keeps it going. For "k of m" rules that
  point must itself be one of the k. A point that breaks several rules is reported under each.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from qdsn.errors import InvalidInput
from qdsn.quality import bits, passes


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

    def describe_zh(self) -> str:
        """The same in Chinese, worded as GB/T 4091 words its tests."""
        return {
            "beyond": f"1 个点落在 {self.zone:g}σ 以外",
            "same-side": f"连续 {self.length} 点落在中心线同一侧",
            "trend": f"连续 {self.length} 点递增或递减",
            "alternating": f"连续 {self.length} 点中相邻点交替上下",
            "k-of-m": f"连续 {self.length} 点中有 {self.k} 点落在中心线同一侧 {self.zone:g}σ 以外",
            "within": f"连续 {self.length} 点落在中心线两侧 {self.zone:g}σ 以内",
            "outside": f"连续 {self.length} 点落在中心线两侧且无一在 {self.zone:g}σ 以内",
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
LIMITS = "limits"  # the name violations of a chart judged by its limits alone go by


def test_of(name: str, nsigma: float = 3.0) -> dict[str, Any]:
    """How a violated rule is shown to people: its family, its test number as Western Electric and
    Nelson number them (1 = a point beyond the limits), a short label and what it looks for, on a
    chart whose limits lie at ± nsigma σ (the zones scale with them)."""
    if name == LIMITS:
        return {"family": "limits", "number": 1, "label": "limits", "description": "a point beyond the control limits",
                "description_zh": "点超出控制限"}  # fmt: skip
    rule = RULES.get(name)
    if rule is None:
        raise InvalidInput(f"unknown run rule {name!r}")
    family, number = ("nelson", name[6:]) if name.startswith("nelson") else ("western-electric", name[2:])
    label = f"{'Nelson' if family == 'nelson' else 'WE'} {number}"
    scaled = Rule(rule.name, rule.test, rule.length, rule.k, rule.zone * nsigma / 3)
    return {"family": family, "number": int(number), "label": label, "description": scaled.describe(),
            "description_zh": scaled.describe_zh()}  # fmt: skip


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
    """The violations found, kept per rule and side as index arrays — or, from the run rules, as
    packed series of n points (see `bits`) — until someone asks for them."""

    def __init__(self, hits: Sequence[tuple[str, str, np.ndarray]] = (), n: int | None = None) -> None:
        self._n = n
        # packed series are kept even when empty: they decode to nothing, and testing costs a pass each
        self._hits = [(rule, side, a) for rule, side, a in hits if n is not None or a.size]
        self._list: list[Violation] | None = None

    def _at(self, a: np.ndarray) -> np.ndarray:
        return a if self._n is None else bits.positions(a, self._n)

    def _all(self) -> list[Violation]:
        if self._list is None:
            out = [Violation(int(i), rule, side) for rule, side, a in self._hits for i in self._at(a)]
            self._list = sorted(out, key=lambda v: (v.index, v.rule))
        return self._list

    def __len__(self) -> int:
        if self._n is not None:
            return sum(int(np.bitwise_count(a).sum()) for _, _, a in self._hits)
        return sum(a.size for _, _, a in self._hits)

    def __getitem__(self, i):  # type: ignore[no-untyped-def]
        return self._all()[i]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._all())

    def indices(self) -> np.ndarray:
        """Every point that breaks at least one rule, once, in order."""
        if not self._hits:
            return np.empty(0, dtype=np.intp)
        if self._n is not None:
            seen = self._hits[0][2].copy()
            for _, _, a in self._hits[1:]:
                seen |= a
            return bits.positions(seen, self._n)
        seen = np.zeros(max(int(a[-1]) for _, _, a in self._hits) + 1, dtype=bool)
        for _, _, a in self._hits:
            seen[a] = True
        return np.flatnonzero(seen)

    def __repr__(self) -> str:
        return f"Violations({self._all()!r})"


def evaluate(z: np.ndarray, picked: Iterable[Rule]) -> Violations:
    """Violations of `picked` in the series z (in σ units from the center line)."""
    return scan(np.asarray(z, dtype=float), 0.0, 1.0, picked)


def scan(series: np.ndarray, center: Any, width: Any, picked: Iterable[Rule]) -> Violations:
    """Violations of `picked` in `series`, whose zone k (k σ from the center line) lies at
    center ± k·width: scalars, or arrays of the series' length where limits vary point by point."""
    s = Scan(series, center, width, picked)
    passes.over(s.n, s.block)
    return s.violations()


class Scan:
    """The run rules over one series, in two steps: `block` sets, for a stretch of points, a
    packed flag series (see `bits`) for each comparison the rules need — above or below a zone
    boundary, rising, falling; run it for every block of the series, alone (`scan`) or in a pass
    that does other work on the same blocks. `violations` then applies the rules as word
    operations on the flags.

    With one center and width the points are compared with the zone boundaries themselves, so a
    point equal to a limit the chart reports is on that limit; where they vary, or the width is
    zero, each point is judged on its own scale z = (x − center)/width."""

    def __init__(
        self, series: np.ndarray, center: Any, width: Any, picked: Iterable[Rule], limits: tuple[Any, Any] | None = None
    ) -> None:
        self.picked = list(picked)
        exact = np.ndim(center) == 0 and np.ndim(width) == 0 and width > 0
        if not exact:
            series, center, width = _standard(series, center, width), 0.0, 1.0
        self.series = np.ascontiguousarray(series, dtype=float)
        self.n = self.series.size
        zones = sorted({_zone(r) for r in self.picked if r.test not in _MOVING})
        self.moves = any(r.test in _MOVING for r in self.picked)  # rising and falling flags wanted
        moves = [("rise", 0.0), ("fall", 0.0)] if self.moves else []
        self.keys = [*(("above", z) for z in zones), *(("below", z) for z in zones), *moves]
        self.packed = bits.empty(len(self.keys), self.n)
        self.flags = dict(zip(self.keys, self.packed, strict=True))
        steps = np.array(zones)[:, None]
        self.upper, self.lower = center + steps * width, center - steps * width  # one boundary a row
        if exact and limits is not None and 3.0 in zones:  # zone 3 is the limits: as reported, to the bit
            lcl, ucl = limits
            self.lower[zones.index(3.0)], self.upper[zones.index(3.0)] = lcl, ucl

    def block(self, start: int, stop: int) -> None:
        """Set the flags of points start … stop − 1 (start a multiple of 64)."""
        if not self.keys:
            return
        x, z = self.series, len(self.upper)
        if passes.kernels and passes.kernels.flags(x, start, stop, self.upper, self.lower, self.packed, self.moves):
            return
        here = x[start:stop]
        buf = passes.scratch("flags", (len(self.keys), here.size), bool)
        # each comparison with all boundaries at once: one numpy call, one release of the GIL
        np.greater(here, self.upper, out=buf[:z])
        np.less(here, self.lower, out=buf[z : 2 * z])
        if self.moves:  # a step up or down from the point before
            rise, fall = buf[2 * z], buf[2 * z + 1]
            rise[0] = start > 0 and bool(x[start] > x[start - 1])
            fall[0] = start > 0 and bool(x[start] < x[start - 1])
            np.greater(here[1:], here[:-1], out=rise[1:])
            np.less(here[1:], here[:-1], out=fall[1:])
        bits.pack(self.packed, start, buf)

    def violations(self) -> Violations:
        """The rules applied to the flags of every block."""
        n, flags = self.n, self.flags
        bits.before(self.packed, n)  # the last word's padding: false, whatever a comparison said
        hits: list[tuple[str, str, np.ndarray]] = []
        for rule in self.picked:
            m = rule.length
            if rule.test == "alternating":  # m points: m − 2 changes of direction
                turn = bits.turns(flags["rise", 0.0], flags["fall", 0.0])
                hits.append((rule.name, "both", bits.held(turn, m - 2)))
            elif rule.test == "trend":  # m points: m − 1 steps, each flagged at the point it ends on
                hits += [(rule.name, side, bits.held(flags[move, 0.0], m - 1)) for side, move in _MOVES]
            elif rule.test in ("within", "outside"):
                beyond = flags["above", rule.zone] | flags["below", rule.zone]
                run = bits.before(~beyond, n) if rule.test == "within" else beyond
                hits.append((rule.name, "both", bits.held(run, m)))
            else:
                for side in ("above", "below"):
                    f = flags[side, _zone(rule)]
                    if rule.test == "beyond":
                        hit = f
                    elif rule.test == "same-side":
                        hit = bits.held(f, m)
                    else:  # k of m, the point itself among the k
                        hit = bits.at_least(f, m, rule.k)
                    hits.append((rule.name, side, hit))
        return Violations([(name, side, bits.before(w, n)) for name, side, w in hits], n)


_MOVING = {"trend", "alternating"}
_MOVES = (("above", "rise"), ("below", "fall"))


def _zone(r: Rule) -> float:
    """The zone whose boundaries a rule compares with: the center line for same-side runs."""
    return 0.0 if r.test == "same-side" else float(r.zone)


def _standard(s: np.ndarray, center: Any, width: Any) -> np.ndarray:
    """(s − center)/width; with zero width a point on the center line is on it, any other beyond."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (s - center) / width
    return np.where(np.isnan(z) & ~np.isnan(s), 0.0, z)
