"""`qdsn spc`: control charts, capability and sampling plans from CSV files, as tables or JSON."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import orjson
import typer
from rich.console import Console
from rich.table import Table

from qdsn.errors import InvalidInput

console = Console(emoji=False)
spc_app = typer.Typer(
    help="Quality analytics on CSV files: control charts, capability, ISO 2859-1 sampling plans.\n\n"
    "A CSV may start with a header row. For X̄-R and X̄-S charts each row is one subgroup; for the other charts "
    "the values (or counts) are the first column, or the one named with --column; p and u charts read sample "
    "sizes from the second column or --size-column.",
    no_args_is_help=True,
)
CHARTS = ("xbar-r", "xbar-s", "imr", "p", "np", "c", "u", "ewma", "cusum")
Json = Annotated[bool, typer.Option("--json", help="Print exactly one JSON document instead of tables.")]


def _read(path: Path) -> tuple[list[str] | None, list[list[str]]]:
    """The header (None if the file has none) and the data rows, as strings."""
    with open_node(path) as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    if not rows:
        raise InvalidInput(f"{path} holds no data")
    header = _names(rows[0])
    return header, rows[1:] if header else rows


def _header(path: Path) -> list[str] | None:
    """The header row, or None if the file starts with numbers."""
    with open_node(path) as f:
        return _names(next(csv.reader(f), []))


def open_node(path: Path) -> Any:
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}")
    return path.open(newline="")


def _names(row: list[str]) -> list[str] | None:
    """A header's column names; None for a row of numbers."""
    try:
        [float(c) for c in row if c.strip()]
        return None
    except ValueError:
        return [c.strip() for c in row]


def _fast(path: Path, header: list[str] | None, column: int | None = None) -> np.ndarray | None:
    """The numbers (one column, or all as rows) through numpy's C parser — a million rows in a
    fraction of a second — or None when anything is unusual (blank or quoted cells, ragged rows,
    text), for the reader that names the line at fault."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "input contained no data" and the like
            return np.loadtxt(path, delimiter=",", skiprows=1 if header else 0, usecols=column,
                              ndmin=1 if column is not None else 2, comments=None, dtype=float)  # fmt: skip
    except (ValueError, UserWarning):
        return None


def _subgroups(path: Path) -> Any:
    """Every row's numbers: an array when the rows are all complete, else lists (blank cells left out)."""
    fast = _fast(path, _header(path))
    if fast is not None:
        return fast
    header, rows = _read(path)
    return [[_number(c, f"{path}, line {i}") for c in r if c.strip()] for i, r in enumerate(rows, 2 if header else 1)]


def _number(cell: str, where: str) -> float:
    try:
        return float(cell)
    except ValueError:
        raise InvalidInput(f"{where}: {cell!r} is not a number") from None


def _column(path: Path, name: str | None, default: int) -> Any:
    """One column of numbers: the one named in the header, else the default one."""
    header = _header(path)
    i = default
    if name is not None:
        if header is None or name not in header:
            raise InvalidInput(f"{path} has no column {name!r}", f"its columns: {', '.join(header or ['(no header)'])}")
        i = header.index(name)
    fast = _fast(path, header, i)
    if fast is not None:
        return fast
    header, rows = _read(path)
    out = []
    for n, r in enumerate(rows, start=2 if header else 1):
        if i >= len(r):
            raise InvalidInput(f"{path}, line {n}: no column {i + 1}")
        out.append(_number(r[i], f"{path}, line {n}"))
    return out


@spc_app.command("chart")
def chart(
    file: Annotated[Path, typer.Argument(help="CSV of subgroups (one per row) or of values/counts.")],
    type: Annotated[str, typer.Option("--type", "-t", help=f"One of: {', '.join(CHARTS)}.")] = "imr",
    column: Annotated[str | None, typer.Option(help="Column of values or counts (default: the first).")] = None,
    size_column: Annotated[str | None, typer.Option(help="Column of sample sizes for p and u charts.")] = None,
    size: Annotated[int | None, typer.Option(help="The one sample size for np charts (or p/u when constant).")] = None,
    rules: Annotated[str, typer.Option(help="Run rules: nelson, western-electric or none.")] = "nelson",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also draw the chart to this .png or .svg.")] = None,
    json_out: Json = False,
) -> None:
    """A control chart with its limits and every point that breaks a run rule."""
    from qdsn import quality  # here: scipy takes a third of a second to import

    if type not in CHARTS:
        raise InvalidInput(f"unknown chart type {type!r}", f"use one of {', '.join(CHARTS)}")
    if type in ("xbar-r", "xbar-s"):
        c = (quality.xbar_r if type == "xbar-r" else quality.xbar_s)(_subgroups(file), rules=rules)
    else:
        values = _column(file, column, 0)
        if type in ("p", "u"):
            sizes: Any = size if size is not None else _column(file, size_column, 1)
            c = (quality.p_chart if type == "p" else quality.u_chart)(values, sizes, rules=rules)
        elif type == "np":
            if size is None:
                raise InvalidInput("an np chart needs the sample size", "pass --size N")
            c = quality.np_chart(values, size, rules=rules)
        elif type == "c":
            c = quality.c_chart(values, rules=rules)
        elif type == "imr":
            c = quality.imr(values, rules=rules)
        else:
            c = quality.ewma(values) if type == "ewma" else quality.cusum(values)
    if out is not None:
        from qdsn.quality.render import save

        save(c, out, title=f"{type} chart of {file.name}")
    if json_out:
        print(orjson.dumps(c.to_json(), option=orjson.OPT_SERIALIZE_NUMPY).decode())
        return
    t = Table(title=f"{type} chart of {file.name}")
    for col in ("chart", "points", "center", "LCL", "UCL", "σ", "out of control"):
        t.add_column(col, justify="left" if col == "chart" else "right")
    for part in (c, c.companion):
        if part is not None:
            t.add_row(part.kind, str(part.statistic.size), _fmt(part.center), _fmt(part.lcl), _fmt(part.ucl),
                      f"{part.sigma:.4g}", str(len(part.out_of_control)))  # fmt: skip
    console.print(t)
    found = [*c.violations, *(c.companion.violations if c.companion else [])]
    if found:
        v = Table(title="rule violations (point numbers from 1)")
        for col in ("point", "rule", "side"):
            v.add_column(col)
        for x in found[:50]:
            v.add_row(str(x.index + 1), x.rule, x.side)
        console.print(v)
        if len(found) > 50:
            console.print(f"… and {len(found) - 50} more; --json lists them all")
    else:
        console.print("[green]in control[/]: no point breaks a rule")
    if out is not None:
        console.print(f"chart drawn to {out}")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.5g}"
    return f"{float(v.min()):.4g} … {float(v.max()):.4g}"


@spc_app.command("capability")
def capability(
    file: Annotated[Path, typer.Argument(help="CSV of values (one column) or of subgroups (one per row).")],
    lsl: Annotated[float | None, typer.Option(help="Lower specification limit.")] = None,
    usl: Annotated[float | None, typer.Option(help="Upper specification limit.")] = None,
    target: Annotated[float | None, typer.Option(help="Target (default: the middle of the limits).")] = None,
    sigma_method: Annotated[str | None, typer.Option(help="mrbar, pooled, rbar or sbar.")] = None,
    column: Annotated[str | None, typer.Option(help="Read individual values from this column.")] = None,
    json_out: Json = False,
) -> None:
    """Cp, Cpk, Cpm, Pp, Ppk with 95 % intervals, ppm beyond the limits and a normality check."""
    from qdsn import quality  # here: scipy takes a third of a second to import

    if column is not None:
        data: Any = _column(file, column, 0)
    else:
        data = _subgroups(file)
        if all(len(r) == 1 for r in data):
            data = [r[0] for r in data] if isinstance(data, list) else data[:, 0]
    res = quality.capability(data, lsl, usl, target, sigma_method=sigma_method)
    if json_out:
        print(orjson.dumps(res.to_json(), option=orjson.OPT_SERIALIZE_NUMPY).decode())
        return
    t = Table(title=f"capability of {file.name} (n = {res.n}, σ within {res.sigma_within:.4g} by {res.sigma_method}, "
              f"overall {res.sigma_overall:.4g})")  # fmt: skip
    for col in ("index", "value", "95 % interval"):
        t.add_column(col, justify="left" if col == "index" else "right")
    for name in ("cp", "cpl", "cpu", "cpk", "cpm", "pp", "ppl", "ppu", "ppk"):
        v = getattr(res, name)
        if v is not None:
            ci = res.intervals.get(name)
            t.add_row(name.capitalize(), f"{v:.3f}", f"{ci.low:.3f} – {ci.high:.3f}" if ci else "")
    console.print(t)
    p = Table(title="parts per million beyond the limits")
    for col in ("", "observed", "expected (within)", "expected (overall)"):
        p.add_column(col, justify="right")
    for side in ("below_lsl", "above_usl", "total"):
        if f"observed_{side}" in res.ppm:
            p.add_row(side.replace("_", " "), *(f"{res.ppm[f'{k}_{side}']:.1f}" for k in
                      ("observed", "expected_within", "expected_overall")))  # fmt: skip
    console.print(p)
    pv = res.normality["p_value"]
    verdict = (
        "[green]consistent with normal[/]"
        if pv >= 0.05
        else "[yellow]not normal[/]: see box_cox or the percentile method"
    )
    test = res.normality
    stat = f"A² = {test['a2']:.3f}" if test["test"] == "anderson-darling" else f"K² = {test['k2']:.3f}"
    name = "Anderson-Darling" if test["test"] == "anderson-darling" else "D'Agostino-Pearson"
    console.print(f"{name} {stat}, p = {pv:.3g}: {verdict}")


@spc_app.command("sampling")
def sampling(
    lot_size: Annotated[int, typer.Option(help="Number of items in the lot.")],
    aql: Annotated[float, typer.Option(help="Acceptance quality limit, in % nonconforming (or per 100 items).")] = 1.0,
    level: Annotated[str, typer.Option(help="Inspection level: S-1 … S-4, I, II, III.")] = "II",
    severity: Annotated[str, typer.Option(help="normal, tightened or reduced.")] = "normal",
    json_out: Json = False,
) -> None:
    """The ISO 2859-1 single sampling plan for a lot, and its operating characteristic."""
    from qdsn import quality

    plan = quality.sampling_plan(lot_size, level, aql, severity)
    quality_levels = [aql / 100 * f for f in (0.5, 1, 2, 4, 8)]
    oc = quality.oc_curve(plan, [min(q, 1.0) for q in quality_levels])
    if json_out:
        doc = plan.__dict__ | {"oc": [{"p": q, "accept": a} for q, a in zip(quality_levels, oc, strict=True)]}
        print(orjson.dumps(doc).decode())
        return
    t = Table(title=f"ISO 2859-1 single sampling, {severity} inspection, level {level}, AQL {aql:g}")
    for col in ("lot size", "code letter", "sample size", "accept if ≤", "reject if ≥"):
        t.add_column(col, justify="right")
    letter = plan.code_letter + ("" if plan.plan_letter == plan.code_letter else f" → {plan.plan_letter}")
    t.add_row(str(lot_size), letter, str(plan.n), str(plan.ac), str(plan.re))
    console.print(t)
    o = Table(title="operating characteristic")
    o.add_column("lot % nonconforming", justify="right")
    o.add_column("P(accept)", justify="right")
    for q, a in zip(quality_levels, oc, strict=True):
        o.add_row(f"{100 * q:.3g}", f"{a:.3f}")
    console.print(o)
    if plan.n > lot_size:
        console.print("[yellow]the sample is larger than the lot: inspect every item[/]")
