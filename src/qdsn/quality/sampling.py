"""Acceptance sampling by attributes, ISO 2859-1 (identical in its single plans to ANSI/ASQ Z1.4 and
MIL-STD-105E): sample-size code letters (Table 1), single sampling plans for normal, tightened and
reduced inspection (Tables 2-A, 2-B, 2-C) found by following the master tables' arrows, the
switching rules, and the operating characteristic of a plan.

The master tables are regular: along each diagonal (one code letter down, one AQL step left) the
plan is the same, so each table is written as the run of cells that starts at a code letter's 0/1
plan, with the few irregular cells the printed tables have at their edges. `master_table` prints a
table back with its arrows, for comparison with the standard.
"""

from __future__ import annotations

from dataclasses import dataclass

from qdsn.errors import InvalidInput

LETTERS = "ABCDEFGHJKLMNPQRS"  # S appears only in Table 2-B (tightened), below R
SIZES = {"normal": [2, 3, 5, 8, 13, 20, 32, 50, 80, 125, 200, 315, 500, 800, 1250, 2000]}
SIZES["tightened"] = [*SIZES["normal"], 3150]
SIZES["reduced"] = [2, 2, 2, 3, 5, 8, 13, 20, 32, 50, 80, 125, 200, 315, 500, 800]
AQLS = (0.010, 0.015, 0.025, 0.040, 0.065, 0.10, 0.15, 0.25, 0.40, 0.65, 1.0, 1.5, 2.5, 4.0, 6.5, 10, 15, 25, 40,
        65, 100, 150, 250, 400, 650, 1000)  # fmt: skip
LEVELS = ("S-1", "S-2", "S-3", "S-4", "I", "II", "III")

# Table 1: the upper end of each lot-size range, and the code letter for each inspection level.
_LOT_TOPS = (8, 15, 25, 50, 90, 150, 280, 500, 1200, 3200, 10_000, 35_000, 150_000, 500_000, None)
_TABLE_1 = (
    "AAAAAAB", "AAAAABC", "AABBBCD", "ABBCCDE", "BBCCCEF", "BBCDDFG", "BCDEEGH", "BCDEFHJ",
    "CCEFGJK", "CDEGHKL", "CDFGJLM", "CDFHKMN", "DEGJLNP", "DEGJMPQ", "DEHKNQR",
)  # fmt: skip

# The cells after each letter's 0/1 plan, as (Ac, Re), "^" (use the first plan above) or "v" (below).
_RUN = {
    "normal": ["^", "v", (1, 2), (2, 3), (3, 4), (5, 6), (7, 8), (10, 11), (14, 15), (21, 22), (30, 31), (44, 45)],
    "tightened": ["v", "v", (1, 2), (2, 3), (3, 4), (5, 6), (8, 9), (12, 13), (18, 19), (27, 28), (41, 42)],
    "reduced": ["^", "v", (0, 2), (1, 3), (1, 4), (2, 5), (3, 6), (5, 8), (7, 10), (10, 13), (14, 17), (21, 24)],
}
_ZERO_COLUMN = {"normal": 14, "tightened": 15, "reduced": 14}  # the AQL column of letter A's 0/1 plan
_LARGEST_FROM_F = {"normal": 21, "tightened": 18, "reduced": 10}  # from letter F on, larger Ac are arrows up


# Table 2-C's letters A and B share C's sample size of 2 and do not follow the diagonals.
_REDUCED_TOP = {
    0: ["v", "v", (0, 1), "v", "v", (1, 2), (2, 3), (3, 4), (5, 6), (7, 8), (10, 11), (14, 15), (21, 22), (30, 31)],
    1: ["v", (0, 1), "^", "v", (0, 2), (1, 3), (2, 4), (3, 5), "^", "^", "^", "^", "^", "^"],
}


def _cell(severity: str, row: int, col: int) -> tuple[int, int] | str:
    """One cell of a printed master table."""
    if severity == "reduced" and row in _REDUCED_TOP:
        return _REDUCED_TOP[row][col - 12] if col >= 12 else "v"
    if severity == "tightened" and row == 15 and col == 1:  # R at 0.015: up to Q's 0/1, not down to S
        return "^"
    j = col + row - _ZERO_COLUMN[severity]
    run = _RUN[severity]
    if severity == "tightened" and row == 16:  # S, below R, has one plan
        return (1, 2) if col == 2 else "^"
    if j < 0:
        return "v"
    if j == 0:
        return "v" if severity == "tightened" and row == 0 else (0, 1)
    if j > len(run):
        return "^"
    cell = run[j - 1]
    if isinstance(cell, tuple) and row >= 5 and cell[0] > _LARGEST_FROM_F[severity]:
        return "^"
    last = len(SIZES[severity]) - 1
    if cell == "^" and row == 0:  # nothing above the top row
        return "v"
    if cell == "v" and row == last and not (severity == "tightened" and col == 2):
        return "^"
    return cell


def master_table(severity: str = "normal") -> list[list[tuple[int, int] | str]]:
    """A master table as printed: one row per code letter, one cell per AQL."""
    _severity(severity)
    return [[_cell(severity, r, c) for c in range(len(AQLS))] for r in range(len(SIZES[severity]))]


@dataclass(frozen=True)
class Plan:
    """A single sampling plan: inspect `n` items; accept the lot with ≤ `ac` nonconforming, reject with ≥ `re`."""

    code_letter: str
    plan_letter: str  # the letter whose plan the arrows led to
    n: int
    ac: int
    re: int
    severity: str
    aql: float

    def accept_probability(self, p: float, *, nonconformities: bool = False) -> float:
        """P(accept) for a lot with fraction nonconforming p (binomial), or p nonconformities per
        item (Poisson) when `nonconformities`."""
        return oc_curve(self, [p], nonconformities=nonconformities)[0]

    def decide(self, nonconforming: int) -> str:
        """ "accept" or "reject" for the count found in the sample."""
        if nonconforming < 0:
            raise InvalidInput("a count of nonconforming items cannot be negative")
        return "accept" if nonconforming <= self.ac else "reject" if nonconforming >= self.re else "undecided"


def code_letter(lot_size: int, level: str = "II") -> str:
    """The sample-size code letter of ISO 2859-1 Table 1."""
    if isinstance(lot_size, bool) or not isinstance(lot_size, int) or lot_size < 2:
        raise InvalidInput(f"the lot size must be a whole number of at least 2, got {lot_size!r}")
    if level not in LEVELS:
        raise InvalidInput(f"unknown inspection level {level!r}", f"use one of {', '.join(LEVELS)}")
    row = next(i for i, top in enumerate(_LOT_TOPS) if top is None or lot_size <= top)
    return _TABLE_1[row][LEVELS.index(level)]


def sampling_plan(lot_size: int, level: str = "II", aql: float = 1.0, severity: str = "normal") -> Plan:
    """The single sampling plan for a lot: code letter from Table 1, then the master table for the
    severity, following its arrows to the first plan above or below."""
    letter = code_letter(lot_size, level)
    sizes = SIZES[_severity(severity)]
    col = next((i for i, a in enumerate(AQLS) if abs(a - aql) < 1e-9), None)
    if col is None:
        raise InvalidInput(
            f"AQL {aql!r} is not one of the standard's", "use one of " + ", ".join(f"{a:g}" for a in AQLS)
        )
    row = LETTERS.index(letter)
    cell = _cell(severity, row, col)
    while isinstance(cell, str):
        row += 1 if cell == "v" else -1
        cell = _cell(severity, row, col)
    return Plan(letter, LETTERS[row], sizes[row], cell[0], cell[1], severity, AQLS[col])


def _severity(severity: str) -> str:
    if severity not in SIZES:
        raise InvalidInput(f"unknown severity {severity!r}", "use normal, tightened or reduced")
    return severity


def oc_curve(plan: Plan, quality: list[float], *, nonconformities: bool = False) -> list[float]:
    """P(accept) at each quality level: fraction nonconforming (binomial, items are pass/fail) or,
    with `nonconformities`, mean nonconformities per item (Poisson)."""
    out = []
    for p in quality:
        if not 0 <= p <= (float("inf") if nonconformities else 1):
            raise InvalidInput(f"quality {p!r} is out of range: a fraction nonconforming lies in [0, 1]")
        from scipy import stats  # imported here: scipy.stats costs ~1 s, and only OC curves need it

        dist = stats.poisson(plan.n * p) if nonconformities else stats.binom(plan.n, p)
        out.append(float(dist.cdf(plan.ac)))
    return out


class Switching:
    """The switching rules of ISO 2859-1 clause 9 for a series of lots, as a state machine.

    normal → tightened: 2 of 5 or fewer consecutive lots not accepted. tightened → normal: 5
    consecutive lots accepted. normal → reduced (when the responsible authority allows reduced
    inspection at all, and production is steady): the switching score reaches 30 — with a plan of
    Ac ≥ 2, +3 for a lot that would have been accepted at the next tighter AQL, else back to 0; with
    Ac 0 or 1, +2 for an accepted lot, else 0. reduced → normal: a lot not accepted, or production
    irregular. Discontinued: 5 lots not accepted while on tightened inspection.
    """

    def __init__(self, lot_size: int, level: str = "II", aql: float = 1.0, *, reduced_allowed: bool = True) -> None:
        self.lot_size, self.level, self.aql = lot_size, level, aql
        self.reduced_allowed = reduced_allowed
        self.state = "normal"
        self.score = 0
        self._recent: list[bool] = []  # acceptances since the state last changed
        self._rejected_on_tightened = 0
        self.plan()  # refuse a bad lot size, level or AQL now

    def plan(self) -> Plan:
        """The plan the next lot is judged by."""
        if self.state == "discontinued":
            raise InvalidInput("inspection is discontinued: the supplier must improve quality before it resumes")
        return sampling_plan(self.lot_size, self.level, self.aql, self.state)

    def record(self, nonconforming: int, *, steady: bool = True) -> str:
        """Judge a lot by the current plan from its count of nonconforming items (or nonconformities);
        returns the state for the next lot: normal, tightened, reduced or discontinued."""
        plan = self.plan()
        accepted = plan.decide(nonconforming) == "accept"
        self._recent.append(accepted)
        if self.state == "normal":
            self._score(plan, nonconforming, accepted)
            if self._recent[-5:].count(False) >= 2:
                self._go("tightened")
            elif self.reduced_allowed and steady and self.score >= 30:
                self._go("reduced")
        elif self.state == "tightened":
            self._rejected_on_tightened += not accepted
            if self._rejected_on_tightened >= 5:
                self._go("discontinued")
            elif self._recent[-5:] == [True] * 5:
                self._go("normal")
        elif not accepted or not steady:  # reduced
            self._go("normal")
        return self.state

    def _score(self, plan: Plan, nonconforming: int, accepted: bool) -> None:
        if not accepted:
            self.score = 0
        elif plan.ac >= 2:
            col = AQLS.index(plan.aql)
            tighter = sampling_plan(self.lot_size, self.level, AQLS[col - 1]) if col else plan
            self.score = self.score + 3 if nonconforming <= tighter.ac else 0
        else:
            self.score += 2

    def _go(self, state: str) -> None:
        if state == "normal":
            self._rejected_on_tightened = 0
        self.state, self._recent, self.score = state, [], 0
