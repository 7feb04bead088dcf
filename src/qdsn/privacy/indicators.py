"""The regional indicators a manufacturer reports, each computed at its own node from data it attested
or anchored; only the measurement — never the data — is sharded and sent. Pure: the node's face
(`qdsn stats report --indicator`) hands in its attested runs, its anchored inspections, the ledger.

- `cpk` (Prio3Count): 1 when the latest attested process-capability run has Cpk ≥ 1.33 for every
  characteristic it measured (or the one named), else 0.
- `ppm` (Prio3Histogram, len(PPM_EDGES) + 1 buckets): the bucket of nonconforming ppm over the
  anchored inspections.
- `units` (Prio3SumVec, length 2): [units inspected, units nonconforming] over the anchored inspections.
- `certificates` (Prio3SumVec, length 3): this maker's certificates on the ledger: [valid, suspended,
  revoked].
- `footprints` (Prio3SumVec, length 2 × the task's product categories): per category, [grams CO2e of its
  declared PACT footprints per declared unit, summed; how many], from the maker's anchored footprints
  that are active and valid now; the regulator's totals and counts give the region's mean per category.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from qdsn.errors import InvalidInput, NotFound

CPK_TARGET = 1.33
PPM_EDGES = (10, 50, 100, 500, 1_000, 5_000, 10_000, 50_000, 100_000)  # bucket i: ppm in [edge[i-1], edge[i])
INDICATORS = {
    "cpk": "Prio3Count",
    "ppm": "Prio3Histogram",
    "units": "Prio3SumVec",
    "certificates": "Prio3SumVec",
    "footprints": "Prio3SumVec",
}


def cpk_capable(runs: Iterable[dict[str, Any]], characteristic: str | None = None) -> int:
    """From attested process-capability runs ({created, output}), the latest one's verdict: 1 when its Cpk
    is at least 1.33 for `characteristic` (or every characteristic it measured), else 0."""
    runs = list(runs)
    if not runs:
        raise NotFound("this node has no attested process-capability run", "run the model on its data first")
    out = max(runs, key=lambda r: r["created"])["output"]
    rows = [c for c in out.get("characteristics", []) if characteristic in (None, c.get("name"))]
    if not rows:
        raise NotFound(f"the latest attested run did not measure {characteristic!r}")
    return int(all(float(c.get("cpk", 0.0)) >= CPK_TARGET for c in rows))


def units(inspections: Iterable[dict[str, Any]]) -> list[int]:
    """[units inspected, units nonconforming] over inspection records."""
    rows = list(inspections)
    if not rows:
        raise NotFound("this node has no anchored inspections", "ingest and anchor its inspection records first")
    return [sum(int(r["sample_size"]) for r in rows), sum(int(r["defects"]) for r in rows)]


def ppm_bucket(inspections: Iterable[dict[str, Any]]) -> int:
    """The bucket (see PPM_EDGES) of the nonconforming ppm over inspection records."""
    inspected, bad = units(inspections)
    return bisect_right(PPM_EDGES, bad * 1_000_000 // inspected)


def certificates(statuses: Iterable[str]) -> list[int]:
    """Certificate statuses as the ledger has them, counted: [valid, suspended, revoked]."""
    mine = list(statuses)
    return [mine.count("valid"), mine.count("suspended"), mine.count("invalid")]


def footprints(pfs: Iterable[dict[str, Any]], categories: Sequence[str], at: datetime,
               unit: str = "kilogram") -> list[int]:  # fmt: skip
    """Declared PACT footprints by product category: for each of `categories` (productClassifications
    URNs, matched case-insensitively), [grams CO2e per declared unit summed, footprints counted] over
    the footprints Active and valid at `at` and declared per one `unit`. A footprint in two categories
    counts in both."""
    from qdsn.data.pact import validity

    if not categories:
        raise InvalidInput("the footprints indicator needs the task's product categories", "give them in order")
    wanted = [c.lower() for c in categories]
    out = [0] * (2 * len(wanted))
    for pf in pfs:
        pcf = pf["pcf"]
        start, end = validity(pf)
        if pf["status"] != "Active" or not start <= at < end or pcf["declaredUnitOfMeasurement"] != unit:
            continue
        grams = Decimal(pcf["pcfExcludingBiogenicUptake"]) / Decimal(pcf["declaredUnitAmount"]) * 1000
        if grams < 0:
            continue  # a net removal is not an emission to total; the task measures non-negative grams
        whole = int(grams.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
        mine = {c.lower() for c in pf.get("productClassifications", ())}
        for i, c in enumerate(wanted):
            if c in mine:
                out[2 * i] += whole
                out[2 * i + 1] += 1
    if not any(out[1::2]):
        raise NotFound(f"this node has no active footprint per {unit} in the categories {', '.join(categories)}",
                       "add footprints (qdsn footprint add) or report for other categories")  # fmt: skip
    return out
