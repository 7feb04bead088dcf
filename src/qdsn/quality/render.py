"""Charts as pictures (PNG or SVG, matplotlib): control charts with their run-rule tests marked, the
capability sixpack, a sampling plan's OC curve and Pareto charts. `Chart.to_json` gives the same
chart as a JSON series. Each `draw_*` returns a figure; `save` writes it by the file's suffix and
`svg` gives it as SVG text to put in a page."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from qdsn.errors import InvalidInput
from qdsn.quality.charts import Chart, grouped
from qdsn.quality.rules import test_of

TITLES = {
    "xbar": "X̄", "r": "R", "s": "S", "i": "Individuals", "mr": "Moving range", "p": "p (fraction nonconforming)",
    "np": "np (number nonconforming)", "c": "c (nonconformities)", "u": "u (nonconformities per unit)",
    "ewma": "EWMA", "cusum+": "CUSUM C⁺", "cusum-": "CUSUM C⁻",
}  # fmt: skip
# Fonts with the CJK glyphs of labels and of names people give (categories, files), most common first
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei",
             "Droid Sans Fallback", "SimHei", "Microsoft YaHei", "PingFang SC")  # fmt: skip
LABELS = 200  # test numbers written beside at most this many points; past that they hide the chart


CJK_FILES = re.compile(
    r"(NotoSans(Mono)?CJK|NotoSansSC|SourceHanSans|wqy|DroidSansFallback|simhei|msyh|PingFang)", re.I
)
_cjk: list[str | None] = []  # the answer, once looked for


def cjk_font() -> str | None:
    """The first CJK font matplotlib finds on this machine, or None (install fonts-noto-cjk)."""
    from matplotlib import font_manager

    if _cjk:
        return _cjk[0]
    fm = font_manager.fontManager
    found = next((f for f in CJK_FONTS if f in {x.name for x in fm.ttflist}), None)
    if found is None:  # matplotlib's font list is cached: fonts installed after it was made are not in it
        for path in font_manager.findSystemFonts():
            if CJK_FILES.search(Path(path).name):
                fm.addfont(path)
        names = [x.name for x in fm.ttflist]
        found = next((f for f in CJK_FONTS if f in names), None) or next((n for n in names if "CJK" in n), None)
    _cjk.append(found)
    return found


def zh(english: str, chinese: str) -> str:
    """A label in English with its Chinese beside it, where a font can show it."""
    return f"{english} {chinese}" if cjk_font() else english


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    cjk = cjk_font()
    # DejaVu first for Latin, math and ⁺; matplotlib falls back glyph by glyph to the CJK font
    plt.rcParams["font.family"] = ["DejaVu Sans", *([cjk] if cjk else [])]
    plt.rcParams["svg.fonttype"] = "path"  # glyphs as outlines: the SVG shows alike where no font is installed
    return plt


def needs_cjk(*texts: str) -> None:
    """Refuse to draw CJK text no font can show (it would come out as empty boxes)."""
    if any(re.search(r"[\u2e80-\u9fff\uac00-\ud7af\uff00-\uffef]", t) for t in texts) and cjk_font() is None:
        raise InvalidInput("no CJK font is installed, so Chinese text would be drawn as empty boxes",
                           "install one, e.g. apt-get install fonts-noto-cjk")  # fmt: skip


def save(figure: Any, path: str | Path, *, title: str = "", lsl: float | None = None, usl: float | None = None) -> Path:
    """Write a figure (or draw a chart first) as PNG or SVG by the file's suffix."""
    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg"):
        raise InvalidInput(f"cannot draw {path.name}: use a .png or .svg file name")
    if isinstance(figure, Chart):
        figure = draw_chart(figure, title=title, lsl=lsl, usl=usl)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    _pyplot().close(figure)
    return path


def svg(figure: Any) -> str:
    """The figure as an <svg> element to put inside an HTML page: no XML prolog, doctype, metadata
    or namespace URLs, ids made unique to this figure so that several can share a page."""
    plt = _pyplot()
    buf = io.StringIO()
    with plt.rc_context({"svg.hashsalt": f"f{id(figure)}"}):
        figure.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    plt.close(figure)
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    text = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text)
    return text.replace("xlink:href=", "href=")  # SVG 2's own href: no xlink namespace to declare


# ---- control charts -----------------------------------------------------------------------------


def draw_chart(
    chart: Chart, *, title: str = "", lsl: float | None = None, usl: float | None = None, nsigma: float = 3.0
) -> Any:
    """The chart (and its companion below it) with center line, limits, spec lines and the points that
    break a rule marked with the number of each test they break, the tests described beneath (their
    zones scaled to limits at ± nsigma σ)."""
    plt = _pyplot()
    needs_cjk(title)
    panels = [c for c in (chart, chart.companion) if c is not None]
    found = _tests_found(panels, nsigma)
    height = 3.2 * len(panels) + 0.17 * len(found)
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, height), sharex=True, squeeze=False)
    for ax, c in zip(axes[:, 0], panels, strict=True):
        _panel(ax, c, lsl if c is chart else None, usl if c is chart else None)
    axes[0, 0].set_title(title or f"{TITLES.get(chart.kind, chart.kind)} chart")
    axes[-1, 0].set_xlabel(zh("subgroup", "子组") if chart.sizes is not None else zh("point", "点"))
    if found:
        notes = [f"{t['label']}: {t['description']}" for t in found]
        fig.text(0.01, 0.005, "\n".join(notes), fontsize=8, color="#c00000", va="bottom")
    fig.tight_layout(rect=(0, (0.17 * len(found) + 0.1) / height if found else 0, 1, 1))
    return fig


def _tests_found(panels: list[Chart], nsigma: float) -> list[dict[str, Any]]:
    names = sorted({v.rule for c in panels for v in c.violations}, key=lambda n: (n != "limits", n))
    return [test_of(n, nsigma) for n in names]


def _panel(ax: Any, c: Chart, lsl: float | None, usl: float | None, last: int | None = None) -> None:
    """One chart on one set of axes; `last`: only the last points."""
    start = 0 if last is None else max(0, c.statistic.size - last)
    x = np.arange(start + 1, c.statistic.size + 1)
    y = c.statistic[start:]
    many = y.size > 2000  # past a few thousand points, markers only blot the line out
    style = {"marker": None, "linewidth": 0.4} if many else {"marker": "o", "markersize": 3, "linewidth": 1}
    ax.plot(x, y, color="#1f4e79", **style)
    for value, line, label in ((c.center, "-", "CL"), (c.ucl, "--", "UCL"), (c.lcl, "--", "LCL")):
        _line(ax, x, value if np.ndim(value) == 0 else np.asarray(value)[start:], line, label)
    for limit, name in ((lsl, "LSL"), (usl, "USL")):
        if limit is not None:
            ax.axhline(limit, color="#b8860b", linestyle=":", linewidth=1)
            ax.annotate(name, (x[-1], limit), fontsize=8, color="#b8860b", ha="left", va="center")
    bad = c.violations.indices()
    bad = bad[bad >= start]
    if bad.size:
        ax.plot(bad + 1, c.statistic[bad], "o", color="#c00000", markersize=1 if many else 6, label="out of control")
    if 0 < bad.size <= LABELS:
        tests: dict[int, list[str]] = {}
        for v in c.violations:
            if v.index >= start:
                tests.setdefault(v.index, []).append(str(test_of(v.rule)["number"]))
        for i, numbers in tests.items():
            ax.annotate(",".join(dict.fromkeys(numbers)), (i + 1, c.statistic[i]), textcoords="offset points",
                        xytext=(0, 5), ha="center", fontsize=7, color="#c00000")  # fmt: skip
    for i in c.excluded:
        if i >= start:
            ax.plot(i + 1, c.statistic[i], "x", color="#808080", markersize=7)
    ax.set_ylabel(TITLES.get(c.kind, c.kind))
    ax.grid(alpha=0.3)


def _line(ax: Any, x: np.ndarray, value: Any, style: str, label: str) -> None:
    color = "#2e7d32" if label == "CL" else "#c00000"
    if np.ndim(value) == 0:
        ax.axhline(float(value), color=color, linestyle=style, linewidth=1)
        ax.annotate(f"{label} {float(value):.4g}", (x[-1], float(value)), fontsize=8, color=color, ha="left")
    else:
        ax.step(x, value, where="mid", color=color, linestyle=style, linewidth=1)


# ---- capability sixpack -------------------------------------------------------------------------


def draw_sixpack(chart: Chart, data: Any, cap: Any, *, title: str = "", last: int = 25) -> Any:
    """Minitab's capability sixpack: the I or X̄ chart, the MR or R (S) chart, the last subgroups'
    values, a histogram with the specification limits and fitted normal curves (within and overall),
    a normal probability plot, and the capability figures."""
    from scipy import stats  # probability plot and normal density; only pictures need them

    plt = _pyplot()
    needs_cjk(title)
    fig = plt.figure(figsize=(12, 9))
    grid = fig.add_gridspec(3, 2, width_ratios=(1.4, 1))
    top, middle, bottom = (fig.add_subplot(grid[i, 0]) for i in range(3))
    hist, prob, summary = (fig.add_subplot(grid[i, 1]) for i in range(3))
    _panel(top, chart, None, None)
    top.set_title(f"{TITLES.get(chart.kind, chart.kind)} chart", fontsize=10)
    if chart.companion is not None:
        _panel(middle, chart.companion, None, None)
        middle.set_title(f"{TITLES.get(chart.companion.kind, chart.companion.kind)} chart", fontsize=10)
    rows = [np.atleast_1d(np.asarray(r, dtype=float)) for r in (data if grouped(data) else [[v] for v in data])]
    first = max(0, len(rows) - last)
    for i, r in enumerate(rows[first:], start=first + 1):
        r = r[np.isfinite(r)]
        bottom.plot(np.full(r.size, i), r, "+", color="#1f4e79")
    bottom.axhline(cap.mean, color="#2e7d32", linewidth=1)
    bottom.set_title(f"Last {len(rows) - first} {'subgroups' if grouped(data) else 'observations'}", fontsize=10)
    bottom.set_xlabel("subgroup" if grouped(data) else "observation")
    values = np.concatenate(rows)
    values = values[np.isfinite(values)]
    hist.hist(values, bins=min(40, max(8, int(math.sqrt(values.size)))), density=True, color="#9dc3e6",
              edgecolor="#1f4e79")  # fmt: skip
    span = [v for v in (values.min(), values.max(), cap.lsl, cap.usl) if v is not None]
    grid_x = np.linspace(min(span) - 0.05 * np.ptp(span), max(span) + 0.05 * np.ptp(span), 300)
    hist.plot(grid_x, stats.norm.pdf(grid_x, cap.mean, cap.sigma_within), color="#c00000", label="within")
    hist.plot(grid_x, stats.norm.pdf(grid_x, cap.mean, cap.sigma_overall), "--", color="#404040", label="overall")
    for limit, name in ((cap.lsl, "LSL"), (cap.usl, "USL"), (cap.target, "Target")):
        if limit is not None:
            hist.axvline(limit, color="#b8860b" if name != "Target" else "#2e7d32", linestyle=":")
            hist.annotate(name, (limit, hist.get_ylim()[1]), fontsize=8, ha="center", va="bottom")
    hist.legend(fontsize=8)
    hist.set_title(zh("Capability histogram", "能力直方图"), fontsize=10, pad=14)
    (osm, osr), (slope, intercept, r) = stats.probplot(values, dist="norm")
    prob.plot(osr, osm, ".", color="#1f4e79", markersize=3)
    prob.plot(slope * osm + intercept, osm, color="#c00000", linewidth=1)
    prob.set_xlabel("value")
    prob.set_ylabel("normal quantile")
    test = cap.normality
    stat = f"A² = {test['a2']:.3f}" if "a2" in test else f"K² = {test.get('k2', math.nan):.3f}"
    prob.set_title(f"Normal probability plot ({stat}, p = {test['p_value']:.3g})", fontsize=10)
    summary.axis("off")
    lines = [f"n = {cap.n}   mean = {cap.mean:.5g}", f"σ within = {cap.sigma_within:.4g} ({cap.sigma_method})",
             f"σ overall = {cap.sigma_overall:.4g}",
             f"LSL = {_g(cap.lsl)}   USL = {_g(cap.usl)}   target = {_g(cap.target)}", ""]  # fmt: skip
    for name in ("cp", "cpk", "cpm", "pp", "ppk"):
        v = getattr(cap, name)
        if v is not None:
            lines.append(f"{name.capitalize():4} {v:.3f}")
    if "expected_overall_total" in cap.ppm:
        lines.append(f"ppm expected (overall) {cap.ppm['expected_overall_total']:.1f}")
    summary.text(0.02, 0.98, "\n".join(lines), va="top", family="monospace", fontsize=9)
    summary.set_title(zh("Capability", "过程能力"), fontsize=10)
    fig.suptitle(title or zh("Process capability sixpack", "过程能力六合图"))
    fig.tight_layout()
    return fig


def _g(v: float | None) -> str:
    return "–" if v is None else f"{v:.5g}"


# ---- sampling and Pareto ------------------------------------------------------------------------


def draw_oc(plan: Any, *, title: str = "") -> Any:
    """The operating characteristic of a single sampling plan: P(accept) against the lot's
    % nonconforming (binomial) — or, for AQLs above 10, its nonconformities per 100 items (Poisson),
    as ISO 2859-1 reads those AQLs — with the AQL and the 95 % and 10 % acceptance points marked."""
    from qdsn.quality.sampling import oc_curve

    plt = _pyplot()
    needs_cjk(title)
    per_item = plan.aql > 10
    top = _fraction_where(plan, 0.01)
    p = np.linspace(0, top, 200)
    pa = np.array(oc_curve(plan, p.tolist(), nonconformities=per_item))
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.plot(100 * p, pa, color="#1f4e79")
    ax.axvline(plan.aql, color="#2e7d32", linestyle=":")
    ax.annotate(f"AQL {plan.aql:g} %", (plan.aql, 0.5), fontsize=8, color="#2e7d32", ha="right", va="center",
                rotation=90)  # fmt: skip
    for level in (0.95, 0.10):
        at = _fraction_where(plan, level)
        ax.plot([100 * at], [level], "o", color="#c00000", markersize=4)
        ax.annotate(f"{100 * at:.3g}{'' if per_item else ' %'} → P(accept) {level:g}", (100 * at, level), fontsize=8,
                    textcoords="offset points", xytext=(6, 4))  # fmt: skip
    if per_item:
        ax.set_xlabel(zh("nonconformities per 100 items", "每百单位不合格数"))
    else:
        ax.set_xlabel(zh("lot % nonconforming", "批不合格品百分数"))
    ax.set_ylabel(zh("probability of acceptance", "接收概率"))
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title or f"OC curve: n = {plan.n}, Ac = {plan.ac}, Re = {plan.re}")
    fig.tight_layout()
    return fig


def _fraction_where(plan: Any, pa: float) -> float:
    """The fraction nonconforming (or nonconformities per item) at which the plan accepts with
    probability `pa` (bisection: P(accept) falls steadily as the fraction grows)."""
    per_item = plan.aql > 10
    lo, hi = 0.0, 1.0
    while per_item and plan.accept_probability(hi, nonconformities=True) > pa:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if plan.accept_probability(mid, nonconformities=per_item) > pa else (lo, mid)
    return (lo + hi) / 2


def draw_pareto(rows: list[dict[str, Any]], *, title: str = "") -> Any:
    """A Pareto chart: the categories' counts as bars, largest first, and the cumulative % as a line."""
    plt = _pyplot()
    needs_cjk(title, *(str(r["category"]) for r in rows))
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(rows) + 3), 5))
    names = [str(r["category"]) for r in rows]
    ax.bar(range(len(rows)), [r["count"] for r in rows], color="#9dc3e6", edgecolor="#1f4e79")
    ax.set_xticks(
        range(len(rows)), names, rotation=30 if len(rows) > 6 else 0, ha="right" if len(rows) > 6 else "center"
    )
    ax.set_ylabel(zh("count", "频数"))
    cum = ax.twinx()
    cum.plot(range(len(rows)), [r["cumulative"] for r in rows], "o-", color="#c00000", markersize=4)
    cum.set_ylim(0, 105)
    cum.set_ylabel(zh("cumulative %", "累计百分比"))
    cum.axhline(80, color="#808080", linestyle=":", linewidth=1)
    ax.set_title(title or "Pareto chart")
    fig.tight_layout()
    return fig


# ---- multivariate (Hotelling T²) ----------------------------------------------------------------


def draw_t2(scores: Any, ucl: float, *, title: str = "", excluded: Any = (), label: str = "T²", first: int = 1,
            ucl_phase1: float | None = None, phase1: int = 0) -> Any:  # fmt: skip
    """A T² chart: each row's statistic, its upper control limit, the rows above it marked in red and
    the rows phase I left out of the estimates crossed in grey. `first` numbers the first row shown (a
    window of a longer series; `excluded` counts from row 1); with `ucl_phase1`, rows up to `phase1`
    are judged against that limit and the rest against `ucl`, each limit drawn over its own rows."""
    plt = _pyplot()
    needs_cjk(title)
    y = np.asarray(scores, dtype=float)
    x = np.arange(first, first + y.size)
    fig, ax = plt.subplots(figsize=(10, 3.6))
    many = y.size > 2000
    style = {"marker": None, "linewidth": 0.4} if many else {"marker": "o", "markersize": 3, "linewidth": 1}
    ax.plot(x, y, color="#1f4e79", **style)
    limit = np.full(y.size, float(ucl))
    if ucl_phase1 is None:
        _line(ax, x, ucl, "--", "UCL")
    else:
        limit[x <= phase1] = ucl_phase1
        for part, value, name in ((x <= phase1, ucl_phase1, "phase I UCL"), (x > phase1, ucl, "UCL")):
            if part.any():
                ax.hlines(value, x[part][0] - 0.5, x[part][-1] + 0.5, colors="#c00000", linestyles="--", linewidth=1)
                ax.annotate(f"{name} {value:.4g}", (x[part][-1], value), fontsize=8, color="#c00000", ha="right",
                            va="bottom")  # fmt: skip
        if x[0] <= phase1 < x[-1]:
            ax.axvline(phase1 + 0.5, color="#808080", linestyle=":", linewidth=1)
    above = np.flatnonzero(y > limit)
    if above.size:
        ax.plot(x[above], y[above], "o", color="#c00000", markersize=1 if many else 6, label="out of control")
    gone = np.asarray(excluded, dtype=int) - (first - 1)
    gone = gone[(gone >= 0) & (gone < y.size)]
    if gone.size:
        ax.plot(x[gone], y[gone], "x", color="#808080", markersize=7)
    ax.set_ylabel(label)
    ax.set_xlabel(zh("row", "行"))
    ax.set_title(title or zh(f"Hotelling {label} chart", "多元控制图"))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
