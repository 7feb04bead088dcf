"""Charts as pictures (PNG or SVG, matplotlib); `Chart.to_json` gives the same chart as a JSON series."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from qdsn.errors import InvalidInput
from qdsn.quality.charts import Chart

TITLES = {
    "xbar": "X̄", "r": "R", "s": "S", "i": "Individuals", "mr": "Moving range", "p": "p (fraction nonconforming)",
    "np": "np (number nonconforming)", "c": "c (nonconformities)", "u": "u (nonconformities per unit)",
    "ewma": "EWMA", "cusum+": "CUSUM C⁺", "cusum-": "CUSUM C⁻",
}  # fmt: skip


def save(
    chart: Chart, path: str | Path, *, title: str = "", lsl: float | None = None, usl: float | None = None
) -> Path:
    """Draw the chart (and its companion below it) with center line, limits, spec lines and the
    points that break a rule marked, as PNG or SVG by the file's suffix."""
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg"):
        raise InvalidInput(f"cannot draw {path.name}: use a .png or .svg file name")
    panels = [c for c in (chart, chart.companion) if c is not None]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 3.2 * len(panels)), sharex=True, squeeze=False)
    for ax, c in zip(axes[:, 0], panels, strict=True):
        x = np.arange(1, c.statistic.size + 1)
        many = c.statistic.size > 2000  # past a few thousand points, markers only blot the line out
        style = {"marker": None, "linewidth": 0.4} if many else {"marker": "o", "markersize": 3, "linewidth": 1}
        ax.plot(x, c.statistic, color="#1f4e79", **style)
        for value, style, label in ((c.center, "-", "CL"), (c.ucl, "--", "UCL"), (c.lcl, "--", "LCL")):
            _line(ax, x, value, style, label)
        if c is chart:
            for limit, name in ((lsl, "LSL"), (usl, "USL")):
                if limit is not None:
                    ax.axhline(limit, color="#b8860b", linestyle=":", linewidth=1)
                    ax.annotate(name, (x[-1], limit), fontsize=8, color="#b8860b", ha="left", va="center")
        bad = c.violations.indices()
        if bad.size:
            ax.plot(x[bad], c.statistic[bad], "o", color="#c00000", markersize=1 if many else 6, label="out of control")
        for i in c.excluded:
            ax.plot(x[i], c.statistic[i], "x", color="#808080", markersize=7)
        ax.set_ylabel(TITLES.get(c.kind, c.kind))
        ax.grid(alpha=0.3)
    axes[0, 0].set_title(title or f"{TITLES.get(chart.kind, chart.kind)} chart")
    axes[-1, 0].set_xlabel("subgroup" if chart.sizes is not None else "point")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _line(ax: Any, x: np.ndarray, value: Any, style: str, label: str) -> None:
    color = "#2e7d32" if label == "CL" else "#c00000"
    if np.ndim(value) == 0:
        ax.axhline(float(value), color=color, linestyle=style, linewidth=1)
        ax.annotate(f"{label} {float(value):.4g}", (x[-1], float(value)), fontsize=8, color=color, ha="left")
    else:
        ax.step(x, value, where="mid", color=color, linestyle=style, linewidth=1)
