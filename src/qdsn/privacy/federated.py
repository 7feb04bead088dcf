"""Hotelling's T² fitted across enterprises without their rows leaving them: each reporter sends the
sufficient statistics of its own rows (n, Σq, Σqqᵀ of its quantised rows) as a Prio3SumVec report; the
collector's total is the statistics of all rows together, and `model` turns it into exactly the T²
model one party holding every quantised row would fit — and, on the default 48-bit grid, the T² model of
the raw rows within 1e-9 (`BITS`).

The task on the ledger says what the vector means (`encoding`: the variables, the grid, the digits), so
every party reads the same grid from the log. Quantisation: q = round((x − low)·(2^bits − 1)/(high − low))
per variable; Prio3 bounds each entry below 2^32, so each integer sum goes as `limbs` base-2^32 digits,
summed digit by digit in Field128 and carried back by the collector. The task adds no noise
(`noise: none`): the figure is the reporters' own model, owed to them exact. What each party learns is
the pooled statistics; no aggregator learns any reporter's."""

from __future__ import annotations

import math
from typing import Any

from qdsn.errors import InvalidInput
from qdsn.privacy.task import Task
from qdsn.quality import multivariate as mv

# The grid's default resolution. A value moves by at most half a step h = range/(2^bits − 1) on the grid,
# so the mean moves by at most h/2 and a covariance by at most about rangeᵢ·rangeⱼ·2^−bits (each
# deviation, at most its range, times the other's rounding, twice). At 48 bits that is 3.6e-15·rangeᵢ·rangeⱼ:
# below 1e-9 while rangeᵢ·rangeⱼ ≤ 2.8e5 (ranges up to about 500), so the federated model is the raw
# rows' own. 48 is the most a float64 quantises exactly (< 2^53) with one reporter's Σq² of 2^32 rows in
# four 32-bit digits (2^32·2^96 = 2^128) — the ledger's bound; Field128 then sums the digits of up to
# 2^90 reporters without wrapping. Beyond it (wider ranges), the model is that of the rows on the grid.
BITS = 48
MAX_LIMBS = 4  # the ledger's bound on an encoding's digits


def encoding(names: list[str], low: list[float], high: list[float], *, bits: int = BITS,
             rows: int = 2**32) -> dict[str, Any]:  # fmt: skip
    """A task's `encoding` for these variables and bounds, with enough digits for `rows` rows per reporter."""
    mv.FixedPoint(tuple(low), tuple(high), bits)  # refuses bad bounds with the reason
    biggest = rows * (2**bits - 1) ** 2  # Σq² of one reporter
    if math.ceil(biggest.bit_length() / 32) > MAX_LIMBS:
        raise InvalidInput(f"{rows} rows on a {bits}-bit grid need sums past {32 * MAX_LIMBS} bits",
                           "use fewer bits, or fewer rows per reporter")  # fmt: skip
    return {"kind": "t2-sums", "names": list(names), "low": [float(v) for v in low], "high": [float(v) for v in high],
            "bits": bits, "limbs": max(1, math.ceil(biggest.bit_length() / 32))}  # fmt: skip


def task_params(enc: dict[str, Any]) -> dict[str, int]:
    """The Prio3SumVec parameters a task with this encoding must have."""
    size = mv.length(len(enc["names"])) * enc["limbs"]
    return {"length": size, "max_measurement": 2**32 - 1, "chunk_length": max(1, math.isqrt(size * 32))}


def grid_of(task: Task) -> tuple[mv.FixedPoint, tuple[str, ...], int]:
    """The task's grid, variable names and digits; InvalidInput when the task carries no T² encoding."""
    enc = task.spec.get("encoding")
    if not enc or enc.get("kind") != "t2-sums":
        raise InvalidInput(f"task {task.id} does not aggregate T² statistics", "use a task created with an encoding")
    return mv.FixedPoint(tuple(enc["low"]), tuple(enc["high"]), enc["bits"]), tuple(enc["names"]), enc["limbs"]


def measurement(task: Task, rows: Any) -> list[int]:
    """This reporter's report: the digits of its rows' sums on the task's grid. Rows outside the grid's
    bounds, with missing values or of the wrong width are refused, naming the first."""
    grid, _, limbs = grid_of(task)
    return mv.to_limbs(mv.Sums.of(grid.quantise(rows)).vector(), limbs)


def sums(task: Task, result: list[int]) -> mv.Sums:
    """The pooled sums a collected figure holds."""
    _, names, limbs = grid_of(task)
    return mv.Sums.from_vector(mv.from_limbs(list(result), limbs), len(names))


def model(task: Task, result: list[int], *, alpha: float = mv.ALPHA) -> mv.T2Model:
    """The T² model of every reporter's rows, from a collected figure."""
    grid, names, _ = grid_of(task)
    return sums(task, result).model(grid, alpha=alpha, names=names)
