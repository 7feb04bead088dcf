"""SPC benchmark: an I-MR chart with all eight Nelson rules (through the indices of the points out of
control) plus capability (indices, intervals, ppm, normality test) on 1,000,000 measurements — of
the values themselves, and of the chart, whose sums capability reuses —
beside numpy's plain mean and standard deviation of the same array in the same run. Each is timed
as the best of 20 calls after two warm-up calls, as a running node would make them; the calls take
turns (the baseline, then each measure, then the baseline again, …) so that a slow spell of the
machine falls on all of them alike. "Both" is timed as one call, chart and capability together.
`--numpy` times the numpy code that stands in for the C kernels where they were not built.

    python benchmarks/spc.py [--n 1000000] [--numpy]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from qdsn import quality
from qdsn.quality import passes


def best(*fs, repeat: int = 20) -> list[float]:
    """The shortest of `repeat` timed calls of each function, the functions called in turn."""
    for f in fs:
        f(), f()
    times = [[] for _ in fs]
    for _ in range(repeat):
        for f, spent in zip(fs, times, strict=True):
            t = time.perf_counter()
            f()
            spent.append(time.perf_counter() - t)
    return [min(spent) for spent in times]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--numpy", action="store_true", help="without the C kernels")
    args = ap.parse_args()
    if args.numpy:
        passes.kernels = None
    hot = "numpy" if passes.kernels is None else "C kernels"
    x = np.random.default_rng(1).normal(17.6, 0.12, args.n)
    quality.imr(x[:100])  # constants computed once, as in a running node

    def chart():
        c = quality.imr(x, rules="nelson")
        c.violations.indices()
        return c

    measures = {
        "I-MR + Nelson 1–8": chart,
        "capability of the values": lambda: quality.capability(x, lsl=17.0, usl=18.1),
        "capability of the chart": lambda: quality.capability(charted, lsl=17.0, usl=18.1),
        "both, each on the values": lambda: (chart(), quality.capability(x, lsl=17.0, usl=18.1)),
        "both, capability of the chart": lambda: quality.capability(chart(), lsl=17.0, usl=18.1),
    }
    charted = chart()
    baseline, *times = best(lambda: (x.mean(), x.std(ddof=1)), *measures.values())
    table = Table(title=f"SPC on {args.n:,} measurements, hot loops in {hot} (best of 20)")
    for col in ("measure", "time", "baseline: numpy mean + std", "ratio"):
        table.add_column(col, justify="left" if col == "measure" else "right")
    for name, t in zip(measures, times, strict=True):
        table.add_row(name, f"{t * 1e3:.1f} ms", f"{baseline * 1e3:.2f} ms", f"{t / baseline:.1f}×")
    Console().print(table)


if __name__ == "__main__":
    main()
