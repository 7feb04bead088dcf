"""`qdsn spc`: control charts, capability, sampling plans and Pareto charts from CSV files or vault
datasets, as tables, JSON, pictures or a self-contained HTML report. Points and subgroups are
numbered from 1 everywhere a person reads them (tables, JSON, pictures, --exclude)."""

from __future__ import annotations

import math
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import orjson
import typer
from rich.console import Console
from rich.table import Table as Grid

from qdsn.cli.spc_data import Table, at_least, instants, order, stack
from qdsn.errors import InvalidInput, NotFound
from qdsn.node import default_home

console = Console(emoji=False)
spc_app = typer.Typer(
    help="Quality analytics on CSV files or vault datasets: control charts, capability, ISO 2859-1 sampling "
    "plans, Pareto charts.\n\n"
    "A CSV may start with a header row. Wide files: for X̄-R and X̄-S charts each row is one subgroup; for the "
    "other charts the values (or counts) are the first column, or the one named with --column; p and u charts "
    "read sample sizes from the second column or --size-column. Stacked files (one reading a row) name their "
    "columns: --value COL --subgroup COL --time COL. --dataset NAME reads a dataset in this node's vault "
    "(the passphrase is asked for, or read from QDSN_PASSPHRASE).",
    no_args_is_help=True,
)
CHARTS = ("xbar-r", "xbar-s", "imr", "p", "np", "c", "u", "ewma", "cusum")
ATTRIBUTES = ("p", "np", "c", "u")
METHODS = ("normal", "box-cox", "percentile")
Json = Annotated[bool, typer.Option("--json", help="Print exactly one JSON document instead of tables.")]
File = Annotated[Path | None, typer.Argument(help="A CSV file (or give --dataset).", show_default=False)]
DatasetOpt = Annotated[str | None, typer.Option("--dataset", help="Read this dataset from the node's vault instead.")]
Characteristic = Annotated[
    str | None, typer.Option(help="Only the readings of this characteristic (a column 'characteristic').")
]
HomeOpt = Annotated[
    Path | None, typer.Option("--home", help="The node's home folder, for --dataset (env QDSN_HOME; default ~/.qdsn).")
]
ValueCol = Annotated[str | None, typer.Option("--value", help="Stacked data: the column of readings.")]
SubgroupCol = Annotated[
    str | None, typer.Option("--subgroup", help="Stacked data: the column naming each reading's subgroup.")
]
TimeCol = Annotated[
    str | None, typer.Option("--time", help="Put the rows in the order of this column (ISO 8601 times or numbers).")
]
Html = Annotated[Path | None, typer.Option("--html", help="Also write the study as a self-contained HTML report.")]


def grouped(data: Any) -> bool:
    """Whether data are subgroups rather than single values (`quality.charts.grouped`)."""
    from qdsn.quality.charts import grouped as subgroups  # here: importing quality brings scipy

    return subgroups(data)


# ---- input ----------------------------------------------------------------------------------------


def _table(file: Path | None, dataset: str | None, characteristic: str | None, home: Path | None) -> Table:
    """The rows to work on: the CSV file or the vault dataset, only the characteristic's if one is named."""
    if (file is None) == (dataset is None):
        raise InvalidInput("give either a CSV file or --dataset NAME", "e.g. qdsn spc chart readings.csv")
    if dataset is not None:
        table = Table.records(dataset, _vault_records(dataset, home))
    else:
        assert file is not None
        table = Table.csv(file)
    names = table.header or []
    if characteristic is not None:
        table = table.keep("characteristic", characteristic)
    elif dataset is not None and "characteristic" in names:
        found = sorted(set(table.texts("characteristic")))
        if len(found) > 1:
            raise InvalidInput(
                f"dataset {dataset} holds {len(found)} characteristics",
                f"name one with --characteristic: {', '.join(found)}",
            )
    return table


_homes: dict[Path, Any] = {}  # each node opened once a command: its passphrase is asked for once


def _node(home: Path | None) -> Any:
    from qdsn.cli.common import open_node

    path = home or default_home()
    if path not in _homes:
        _homes[path] = open_node(path)
    return _homes[path]


def _vault_records(dataset: str, home: Path | None) -> list[dict[str, Any]]:
    """A dataset's records, decrypted in this node's vault (as `qdsn dataset export` reads them)."""
    vault = _node(home).vault()
    try:
        if dataset not in vault.datasets():
            raise NotFound(
                f"no dataset {dataset!r} in this node's vault",
                f"its datasets: {', '.join(vault.datasets()) or '(none)'}",
            )
        return vault.records(dataset)
    finally:
        vault.close()


def _defaults(table: Table, value: str | None, subgroup: str | None, time: str | None, grouped: bool) -> tuple:
    """A vault dataset's own column names where none are given: value, subgroup (for X̄ charts), time."""
    if table.path is not None:
        return value, subgroup, time
    names = table.header or []
    value = value or ("value" if "value" in names else None)
    subgroup = subgroup or ("subgroup" if grouped and "subgroup" in names else None)
    time = time or ("time" if "time" in names else None)
    return value, subgroup, time


class Series:
    """The numbers a chart or a study reads, in time order: subgroups or single values, with the
    subgroups' names where the data named them."""

    def __init__(self, data: Any, labels: list[str] | None = None, sizes: Any = None) -> None:
        self.data, self.labels, self.sizes = data, labels, sizes


def _series(
    table: Table, *, grouped: bool, value: str | None, subgroup: str | None, time: str | None, least: int = 2
) -> Series:
    """Subgroups (wide rows, or stacked readings grouped by --subgroup) or one column of values."""
    times = instants(table, time) if time else None
    if subgroup is not None:
        if value is None:
            raise InvalidInput("stacked readings need the column of values too", "add --value COL")
        names, groups = stack(_list(table.numbers(value)), table.texts(subgroup), times)
        at_least(names, groups, 2)
        return Series(groups, names)
    if grouped and value is not None:
        raise InvalidInput(
            "subgroups of stacked readings need the column that names each reading's subgroup", "add --subgroup COL"
        )
    if grouped:
        if time is not None:
            raise InvalidInput(
                "--time orders stacked readings", "name the subgroup and value columns: --subgroup COL --value COL"
            )
        return Series(table.wide(least))
    values = table.numbers(value, 0)
    if times is not None:
        values = [values[i] for i in order(len(values), times)]
    return Series(values)


def _list(x: Any) -> list[float]:
    return x.tolist() if isinstance(x, np.ndarray) else list(x)


def _points(text: str | None, what: str = "--exclude") -> list[int]:
    """'3,17' → [2, 16]: numbers people count from 1, as positions from 0."""
    if not text:
        return []
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < 1:
            raise InvalidInput(
                f"{what}: {part!r} is not a point number", "give numbers from 1, separated by commas, e.g. 3,17"
            )
        out.append(int(part) - 1)
    return out


# ---- output files ---------------------------------------------------------------------------------


def _picture_path(path: Path | None, what: str) -> None:
    if path is not None and path.suffix.lower() not in (".png", ".svg"):
        raise InvalidInput(f"{what} {path.name}: a picture is written as .png or .svg", "name the file e.g. chart.png")


def _html_path(path: Path | None) -> None:
    if path is not None and path.suffix.lower() not in (".html", ".htm"):
        raise InvalidInput(f"--html {path.name}: the report is an .html file", "name it e.g. study.html")


def _write(path: Path, data: bytes) -> None:
    """Write whole or not at all: a temporary file beside it, renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _save(figure: Any, path: Path) -> None:
    """A picture, written whole (see `_write`)."""
    from qdsn.quality import render

    fd, tmp = tempfile.mkstemp(dir=path.parent if path.parent.exists() else None, suffix=path.suffix)
    os.close(fd)
    try:
        render.save(figure, tmp)
        _write(path, Path(tmp).read_bytes())
    finally:
        Path(tmp).unlink(missing_ok=True)


def _dump(doc: Any) -> None:
    print(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY).decode())


def _g(v: Any, digits: int = 5) -> str:
    if v is None:
        return "–"
    if isinstance(v, float | int | np.floating):
        return f"{float(v):.{digits}g}"
    return f"{float(np.min(v)):.4g} … {float(np.max(v)):.4g}"


# ---- control charts -------------------------------------------------------------------------------


LIMITS_FORMAT = "qdsn-spc-limits/1"


def _load_limits(path: Path, type: str) -> dict[str, Any]:
    """A phase I run's frozen limits, as `--save-limits` wrote them."""
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}", "write one first with a phase I run: --save-limits FILE")
    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict) or doc.get("format") != LIMITS_FORMAT:
        raise InvalidInput(
            f"{path} is not a limits file", "write one with a phase I run: qdsn spc chart … --save-limits FILE"
        )
    if doc.get("type") != type:
        raise InvalidInput(
            f"{path} holds the limits of an {doc.get('type')} chart, not of this {type} chart",
            f"use --type {doc.get('type')}",
        )
    if not isinstance(doc.get("kind"), str):
        raise InvalidInput(f"{path}: the chart's kind is missing", "write the file again with --save-limits")
    for key in ("center", "sigma", "nsigma", "lambda", "L", "k", "h"):
        v = doc.get(key)
        if v is None and key not in ("center", "sigma", "nsigma"):
            continue
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise InvalidInput(f"{path}: {key} must be a finite number ≥ 0, got {v!r}")
    return doc


def _attribute_sigma(type: str, center: float) -> float:
    """σ of one item for an attributes chart with a standard (given) center."""
    if type in ("p", "np"):
        if not 0 < center < 1:
            raise InvalidInput(
                f"the standard fraction nonconforming must lie between 0 and 1, got {center:g}",
                "give --target as a fraction, e.g. 0.02",
            )
        return math.sqrt(center * (1 - center))
    if center <= 0:
        raise InvalidInput(f"the standard nonconformities per unit must be positive, got {center:g}")
    return math.sqrt(center)


@spc_app.command("chart")
def chart(
    file: File = None,
    type: Annotated[str, typer.Option("--type", "-t", help=f"One of: {', '.join(CHARTS)}.")] = "imr",
    column: Annotated[str | None, typer.Option(help="Column of values or counts (default: the first).")] = None,
    size_column: Annotated[str | None, typer.Option(help="Column of sample sizes for p and u charts.")] = None,
    size: Annotated[int | None, typer.Option(help="The one sample size for np charts (or p/u when constant).")] = None,
    rules: Annotated[str, typer.Option(help="Run rules: nelson, western-electric or none.")] = "nelson",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also draw the chart to this .png or .svg.")] = None,
    dataset: DatasetOpt = None,
    characteristic: Characteristic = None,
    home: HomeOpt = None,
    value: ValueCol = None,
    subgroup: SubgroupCol = None,
    time: TimeCol = None,
    exclude: Annotated[
        str | None, typer.Option(help="Phase I: leave these points/subgroups (from 1) out of the limits, e.g. 3,17.")
    ] = None,
    save_limits: Annotated[
        Path | None, typer.Option(help="Phase I: write the limits to this file, for --limits-from.")
    ] = None,
    limits_from: Annotated[
        Path | None, typer.Option(help="Phase II: chart against the limits a phase I run saved.")
    ] = None,
    nsigma: Annotated[float | None, typer.Option(help="Control limits at ± this many σ (default 3).")] = None,
    target: Annotated[
        float | None,
        typer.Option(
            help="A standard center line (for p and np the fraction, for c and u per unit) instead of the data's."
        ),
    ] = None,
    sigma: Annotated[float | None, typer.Option(help="A historical process σ instead of the data's.")] = None,
    lam: Annotated[float | None, typer.Option("--lambda", help="EWMA: the weight λ of each new point (0.2).")] = None,
    ewma_l: Annotated[float | None, typer.Option("--L", help="EWMA: limits at ± L σ of the statistic (3).")] = None,
    k: Annotated[float | None, typer.Option("--k", help="CUSUM: the allowance k, in σ (0.5).")] = None,
    h: Annotated[float | None, typer.Option("--h", help="CUSUM: the decision interval h, in σ (5).")] = None,
    html: Html = None,
    json_out: Json = False,
) -> None:
    """A control chart with its limits and every point that breaks a run rule (tests numbered as
    Western Electric and Nelson number them)."""
    from qdsn import quality  # here: scipy takes a third of a second to import
    from qdsn.quality.charts import Limits

    if type not in CHARTS:
        raise InvalidInput(f"unknown chart type {type!r}", f"use one of {', '.join(CHARTS)}")
    if value is not None and column is not None and value != column:
        raise InvalidInput("--value and --column name the same thing", "give one of them")
    _picture_path(out, "--out")
    _html_path(html)
    timeweighted = type in ("ewma", "cusum")
    if timeweighted and (nsigma is not None or exclude):
        raise InvalidInput(
            f"an {type} chart takes no --nsigma or --exclude", "set its limits with --L (EWMA) or --h (CUSUM)"
        )
    if not timeweighted and any(v is not None for v in (lam, ewma_l, k, h)):
        raise InvalidInput(
            "--lambda and --L are for EWMA charts, --k and --h for CUSUM charts",
            f"drop them, or use --type {'ewma' if lam or ewma_l else 'cusum'}",
        )
    if (type == "ewma" and (k is not None or h is not None)) or (
        type == "cusum" and (lam is not None or ewma_l is not None)
    ):
        raise InvalidInput("--lambda and --L are for EWMA charts, --k and --h for CUSUM charts")
    if type in ATTRIBUTES and sigma is not None:
        raise InvalidInput(
            f"a {type} chart's σ follows from its center", "give the standard center with --target instead of --sigma"
        )
    if limits_from is not None and (target is not None or sigma is not None or exclude):
        raise InvalidInput(
            "--limits-from freezes the center and σ of a phase I run", "drop --target, --sigma and --exclude"
        )
    if ewma_l is not None and ewma_l <= 0:
        raise InvalidInput(f"--L must be positive, got {ewma_l:g}")

    frozen = _load_limits(limits_from, type) if limits_from is not None else None
    if frozen is not None:
        nsigma = nsigma if nsigma is not None else float(frozen["nsigma"])
        lam = lam if lam is not None else frozen.get("lambda")
        ewma_l = ewma_l if ewma_l is not None else frozen.get("L")
        k = k if k is not None else frozen.get("k")
        h = h if h is not None else frozen.get("h")
    nsigma = 3.0 if nsigma is None else nsigma
    lam, ewma_l, k, h = (
        0.2 if lam is None else lam,
        3.0 if ewma_l is None else ewma_l,
        0.5 if k is None else k,
        5.0 if h is None else h,
    )

    table = _table(file, dataset, characteristic, home)
    grouped = type in ("xbar-r", "xbar-s")
    value, subgroup, time = _defaults(table, value or column, subgroup, time, grouped)
    if type == "imr" and subgroup is not None:
        raise InvalidInput(
            "an individuals chart plots single readings, not subgroups", "drop --subgroup, or use --type xbar-r"
        )
    series = _series(
        table, grouped=grouped or (timeweighted and subgroup is not None), value=value, subgroup=subgroup, time=time
    )
    excluded = _points(exclude)
    n = len(series.data)
    if any(i >= n for i in excluded):
        raise InvalidInput(
            f"--exclude {exclude}: there are only {n} {'subgroups' if grouped else 'points'}",
            f"give numbers from 1 to {n}",
        )
    opts: dict[str, Any] = {"rules": rules, "nsigma": nsigma, "exclude": excluded}

    def make(limits: Limits | None) -> Any:
        if timeweighted:
            frozen_limits = limits
            if type == "ewma":
                return quality.ewma(series.data, lam=lam, L=ewma_l, target=target, sigma=sigma, limits=frozen_limits)
            return quality.cusum(series.data, k=k, h=h, target=target, sigma=sigma, limits=frozen_limits)
        o = opts | {"limits": limits}
        if grouped:
            return (quality.xbar_r if type == "xbar-r" else quality.xbar_s)(series.data, **o)
        if type == "imr":
            return quality.imr(series.data, **o)
        if type in ("p", "u"):
            sizes: Any = size if size is not None else table.numbers(size_column, 1)
            if time is not None and size is None:
                sizes = [sizes[i] for i in order(len(sizes), instants(table, time))]
            return (quality.p_chart if type == "p" else quality.u_chart)(series.data, sizes, **o)
        if type == "np":
            if size is None:
                raise InvalidInput("an np chart needs the sample size", "pass --size N")
            return quality.np_chart(series.data, size, **o)
        return quality.c_chart(series.data, **o)

    if frozen is not None:
        c = make(Limits(frozen["kind"], float(frozen["center"]), float(frozen["sigma"])))
        center_from = sigma_from = f"frozen in {limits_from.name} (phase II)"  # type: ignore[union-attr]
    elif not timeweighted and (target is not None or sigma is not None):
        estimated = make(None)
        center = float(target) if target is not None else estimated.limits.center
        if type in ATTRIBUTES:
            s = _attribute_sigma(type, center) if target is not None else estimated.limits.sigma
        elif sigma is not None:
            if not math.isfinite(sigma) or sigma <= 0:
                raise InvalidInput(f"--sigma must be a positive number, got {sigma:g}")
            s = float(sigma)
        else:
            s = estimated.limits.sigma
        c = make(Limits(estimated.limits.kind, center, s))
        c.excluded = estimated.excluded
        center_from = "given (--target)" if target is not None else "estimated from the data"
        sigma_from = (
            "given (--sigma)"
            if sigma is not None
            else ("from the center" if type in ATTRIBUTES else "estimated from the data")
        )
    else:
        c = make(None)
        center_from = "given (--target)" if target is not None else "estimated from the data"
        sigma_from = "given (--sigma)" if sigma is not None else "estimated from the data"
    if type in ATTRIBUTES and frozen is None and target is None:
        sigma_from = "from the center"

    title = f"{type} chart of {table.name}"
    settings = {"source": table.name, "chart": type, "rules": rules, "control limits": f"± {nsigma:g} σ"}
    if timeweighted:
        settings |= {"λ": lam, "L": ewma_l} if type == "ewma" else {"k": k, "h": h}
        settings.pop("control limits")
    for name, v in (
        ("characteristic", characteristic),
        ("values", value),
        ("subgroups", subgroup),
        ("time order", time),
        ("excluded (phase I)", exclude),
        ("limits from (phase II)", limits_from),
    ):
        if v:
            settings[name] = str(v)
    settings |= {"center line": f"{c.limits.center:.6g} ({center_from})", "σ": f"{c.limits.sigma:.6g} ({sigma_from})"}
    found = _violations(c, series.labels, nsigma)

    if save_limits is not None:
        doc = {
            "format": LIMITS_FORMAT,
            "type": type,
            "kind": c.limits.kind,
            "center": c.limits.center,
            "sigma": c.limits.sigma,
            "nsigma": nsigma,
            "rules": rules,
            "source": table.name,
            "points": int(c.statistic.size),
            "excluded": [i + 1 for i in c.excluded],
            "saved": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if timeweighted:
            doc |= {"lambda": lam, "L": ewma_l} if type == "ewma" else {"k": k, "h": h}
        _write(save_limits, orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    if out is not None or html is not None:
        from qdsn.quality import render

        if out is not None:
            _save(render.draw_chart(c, title=title, nsigma=nsigma), out)
        if html is not None:
            _chart_report(c, found, title, settings, render.svg(render.draw_chart(c, title=title, nsigma=nsigma)), html)
    if json_out:
        doc = _chart_json(c, series.labels, found) | {
            "type": type,
            "source": table.name,
            "target": c.limits.center,
            "target_from": center_from,
            "process_sigma": c.limits.sigma,
            "sigma_from": sigma_from,
            "nsigma": nsigma,
            "rules": rules,
            "rule_violations": found,
        }
        if timeweighted:
            doc |= {"lambda": lam, "L": ewma_l} if type == "ewma" else {"k": k, "h": h}
        _dump(doc)
        return
    t = Grid(title=title)
    for col in ("chart", "points", "center", "LCL", "UCL", "σ", "out of control"):
        t.add_column(col, justify="left" if col == "chart" else "right")
    for part in (c, c.companion):
        if part is not None:
            t.add_row(
                part.kind,
                str(part.statistic.size),
                _g(part.center),
                _g(part.lcl),
                _g(part.ucl),
                f"{part.sigma:.4g}",
                str(len(part.out_of_control)),
            )
    console.print(t)
    console.print(
        f"center line {c.limits.center:.6g} ({center_from}); σ {c.limits.sigma:.6g} ({sigma_from})", highlight=False
    )
    if c.excluded:
        console.print(f"left out of the limits (phase I): {', '.join(str(i + 1) for i in c.excluded)}", highlight=False)
    if found:
        v = Grid(title="rule violations (points numbered from 1)")
        cols = ["chart", "point", *(["subgroup"] if series.labels else []), "test", "what it found", "side"]
        for col in cols:
            v.add_column(col)
        for x in found[:50]:
            v.add_row(
                x["chart"],
                str(x["point"]),
                *([x["subgroup"]] if series.labels else []),
                x["label"],
                x["description"],
                x["side"],
            )
        console.print(v)
        if len(found) > 50:
            console.print(f"… and {len(found) - 50} more; --json lists them all")
    else:
        console.print("[green]in control[/]: no point breaks a rule")
    for path, what in ((out, "chart drawn to"), (html, "report written to"), (save_limits, "limits saved to")):
        if path is not None:
            console.print(f"{what} {path}", highlight=False)


def _violations(c: Any, labels: list[str] | None, nsigma: float = 3.0) -> list[dict[str, Any]]:
    """Every violation of the chart and its companion, as people read them: the chart, the point
    from 1 (and its subgroup's name), the test's number and what it looks for."""
    from qdsn.quality.rules import test_of

    out = []
    for part in (c, c.companion):
        if part is None:
            continue
        for v in part.violations:
            t = test_of(v.rule, nsigma)
            row = {
                "chart": part.kind,
                "point": v.index + 1,
                "rule": v.rule,
                "test": t["number"],
                "family": t["family"],
                "label": t["label"],
                "description": t["description"],
                "description_zh": t["description_zh"],
                "side": v.side,
            }
            if labels:
                row["subgroup"] = labels[v.index]
            out.append(row)
    return out


def _chart_json(c: Any, labels: list[str] | None, found: list[dict[str, Any]]) -> dict[str, Any]:
    """`Chart.to_json` with points numbered from 1, as in the tables."""
    doc = c.to_json()
    doc["violations"] = [v for v in found if v["chart"] == c.kind]
    doc["excluded"] = [i + 1 for i in c.excluded]
    if c.companion is not None:
        doc["companion"]["violations"] = [v for v in found if v["chart"] == c.companion.kind]
        doc["companion"]["excluded"] = doc["excluded"]
    if labels:
        doc["subgroups"] = labels
    return doc


def _chart_report(c: Any, found: list[dict], title: str, settings: dict, picture: str, path: Path) -> None:
    from qdsn.quality.report import Report

    r = Report(title, settings)
    r.heading("Control chart")
    r.figure(picture, title)
    r.heading("Limits")
    rows = [
        [p.kind, p.statistic.size, _g(p.center), _g(p.lcl), _g(p.ucl), f"{p.sigma:.4g}"] for p in (c, c.companion) if p
    ]
    r.table(["Chart", "points", "center", "LCL", "UCL", "σ"], rows)
    r.heading("Rule violations")
    if found:
        r.table(
            ["Chart", "point", "test", "what it found", "side"],
            [
                [v["chart"], v["point"], v["label"], f"{v['description']} · {v['description_zh']}", v["side"]]
                for v in found
            ],
        )
    else:
        r.text("In control: no point breaks a rule. 受控：无判异点。")
    _write(path, r.html().encode())


# ---- capability -----------------------------------------------------------------------------------


@spc_app.command("capability")
def capability(
    file: File = None,
    lsl: Annotated[
        float | None, typer.Option(help="Lower specification limit (a dataset's declared one by default).")
    ] = None,
    usl: Annotated[
        float | None, typer.Option(help="Upper specification limit (a dataset's declared one by default).")
    ] = None,
    target: Annotated[float | None, typer.Option(help="Target (default: the middle of the limits).")] = None,
    sigma_method: Annotated[str | None, typer.Option(help="mrbar, pooled, rbar or sbar.")] = None,
    column: Annotated[str | None, typer.Option(help="Read individual values from this column.")] = None,
    dataset: DatasetOpt = None,
    characteristic: Characteristic = None,
    home: HomeOpt = None,
    value: ValueCol = None,
    subgroup: SubgroupCol = None,
    time: TimeCol = None,
    method: Annotated[
        str, typer.Option(help="normal; box-cox or percentile (ISO 22514-2) for data that are not normal.")
    ] = "normal",
    lam: Annotated[
        float | None, typer.Option("--lambda", help="Box-Cox: this λ instead of the maximum-likelihood one.")
    ] = None,
    distribution: Annotated[
        str, typer.Option(help="Percentile method: empirical, lognorm, weibull_min, gamma or norm.")
    ] = "empirical",
    sixpack: Annotated[Path | None, typer.Option(help="Also draw the capability sixpack to this .png or .svg.")] = None,
    html: Html = None,
    json_out: Json = False,
) -> None:
    """Cp, Cpk, Cpm, Pp, Ppk with 95 % intervals, ppm beyond the limits and a normality check; Box-Cox or
    the ISO 22514-2 percentile method for data that are not normal."""
    from qdsn import quality  # here: scipy takes a third of a second to import

    if method not in METHODS:
        raise InvalidInput(f"unknown method {method!r}", f"use one of {', '.join(METHODS)}")
    if lam is not None and method != "box-cox":
        raise InvalidInput("--lambda is the Box-Cox transformation's λ", "add --method box-cox")
    if value is not None and column is not None and value != column:
        raise InvalidInput("--value and --column name the same thing", "give one of them")
    _picture_path(sixpack, "--sixpack")
    _html_path(html)
    table = _table(file, dataset, characteristic, home)
    value, subgroup, time = _defaults(table, value or column, subgroup, time, False)
    if dataset is not None and lsl is None and usl is None:
        lsl, usl = _declared_limits(dataset, characteristic or _only(table), home)
    series = _series(table, grouped=value is None, value=value, subgroup=subgroup, time=time, least=1)
    data = series.data
    if subgroup is None and grouped(data):
        if all(len(r) == 1 for r in data):  # a file of one column
            data = np.asarray(data)[:, 0] if isinstance(data, np.ndarray) else [r[0] for r in data]
        elif any(len(r) < 2 for r in data):
            table.wide(2)  # refuses the first short row, by its line
    res = quality.capability(data, lsl, usl, target, sigma_method=sigma_method)
    used = target if target is not None else (lsl + usl) / 2 if lsl is not None and usl is not None else None
    target_from = "given (--target)" if target is not None else "the middle of the limits" if used is not None else None
    flat = (
        np.concatenate([np.atleast_1d(np.asarray(r, dtype=float)) for r in data])
        if grouped(data)
        else np.asarray(data, dtype=float)
    )
    flat = flat[np.isfinite(flat)]
    other: dict[str, Any] | None = None
    if method == "box-cox":
        transformed, lam_used = quality.box_cox(flat, lsl, usl, target, lam=lam)
        other = {
            "method": "box-cox",
            "lambda": lam_used,
            "lambda_from": "given (--lambda)" if lam is not None else "maximum likelihood",
            "transformed_lsl": transformed.lsl,
            "transformed_usl": transformed.usl,
            "capability": transformed.to_json(),
        }
    elif method == "percentile":
        other = {"method": "percentile", "distribution": distribution} | quality.percentile_capability(
            flat, lsl, usl, distribution=distribution
        )
    title = f"capability of {table.name}"
    settings = {
        "source": table.name,
        "LSL": _g(lsl),
        "USL": _g(usl),
        "target": f"{_g(used)} ({target_from})" if used is not None else "–",
        "σ within": f"{res.sigma_within:.5g} ({res.sigma_method})",
        "method": method,
    }
    for name, v in (
        ("characteristic", characteristic),
        ("values", value),
        ("subgroups", subgroup),
        ("time order", time),
    ):
        if v:
            settings[name] = v
    if sixpack is not None or html is not None:
        from dataclasses import replace

        from qdsn.quality import render

        shown = replace(res, target=used)
        chart = _capability_chart(quality, data)
        if sixpack is not None:
            _save(render.draw_sixpack(chart, data, shown, title=title), sixpack)
        if html is not None:
            picture = render.svg(render.draw_sixpack(chart, data, shown, title=title))
            _capability_report(res, other, title, settings, picture, html)
    if json_out:
        doc = res.to_json() | {"target_used": used, "target_from": target_from, "source": table.name}
        if other is not None:
            doc["non_normal"] = other
        _dump(doc)
        return
    t = Grid(
        title=f"capability of {table.name} (n = {res.n}, σ within {res.sigma_within:.4g} by {res.sigma_method}, "
        f"overall {res.sigma_overall:.4g})"
    )
    for col in ("index", "value", "95 % interval"):
        t.add_column(col, justify="left" if col == "index" else "right")
    for name, v, ci in _index_rows(res):
        t.add_row(name, v, ci)
    console.print(t)
    console.print(
        f"specification {_g(lsl)} … {_g(usl)}; target {_g(used)}" + (f" ({target_from})" if target_from else ""),
        highlight=False,
    )
    if target is not None and used is not None and (lsl is None or usl is None):
        console.print("the target is not used: Cpm needs both specification limits")
    p = Grid(title="parts per million beyond the limits")
    for col in ("", "observed", "expected (within)", "expected (overall)"):
        p.add_column(col, justify="right")
    for row in _ppm_rows(res):
        p.add_row(*row)
    console.print(p)
    console.print(_normality_line(res))
    if other is not None:
        console.print(_non_normal_table(other))
    for path, what in ((sixpack, "sixpack drawn to"), (html, "report written to")):
        if path is not None:
            console.print(f"{what} {path}", highlight=False)


def _only(table: Table) -> str | None:
    if table.header and "characteristic" in table.header:
        found = set(table.texts("characteristic"))
        return found.pop() if len(found) == 1 else None
    return None


def _declared_limits(dataset: str, characteristic: str | None, home: Path | None) -> tuple[float | None, float | None]:
    """The specification limits the dataset's declaration on the ledger gives the characteristic."""
    ledger = _node(home).ledger()
    try:
        specs = ledger.declaration(dataset).get("characteristics", ())
    finally:
        ledger.close()
    spec = next((s for s in specs if s.get("name") == characteristic), None)
    if spec is None or (spec.get("lsl") is None and spec.get("usl") is None):
        raise InvalidInput(
            f"dataset {dataset} declares no specification limits for {characteristic!r}", "give --lsl, --usl or both"
        )
    return spec.get("lsl"), spec.get("usl")


def _capability_chart(quality: Any, data: Any) -> Any:
    """The chart the sixpack shows: I-MR for single values, X̄-R for subgroups of up to 8, else X̄-S."""
    if not grouped(data):
        return quality.imr(data)
    sizes = [len(r) for r in data]
    return (quality.xbar_r if max(sizes) <= 8 else quality.xbar_s)(data)


def _index_rows(res: Any) -> list[tuple[str, str, str]]:
    rows = []
    for name in ("cp", "cpl", "cpu", "cpk", "cpm", "pp", "ppl", "ppu", "ppk"):
        v = getattr(res, name)
        if v is not None:
            ci = res.intervals.get(name)
            rows.append((name.capitalize(), f"{v:.3f}", f"{ci.low:.3f} – {ci.high:.3f}" if ci else ""))
    return rows


def _ppm_rows(res: Any) -> list[tuple[str, ...]]:
    return [
        (
            side.replace("_", " "),
            *(f"{res.ppm[f'{k}_{side}']:.1f}" for k in ("observed", "expected_within", "expected_overall")),
        )
        for side in ("below_lsl", "above_usl", "total")
        if f"observed_{side}" in res.ppm
    ]


def _normality_line(res: Any) -> str:
    test = res.normality
    pv = test["p_value"]
    verdict = (
        "[green]consistent with normal[/]"
        if pv >= 0.05
        else "[yellow]not normal[/]: see --method box-cox or percentile"
    )
    stat = f"A² = {test['a2']:.3f}" if test["test"] == "anderson-darling" else f"K² = {test['k2']:.3f}"
    name = "Anderson-Darling" if test["test"] == "anderson-darling" else "D'Agostino-Pearson"
    return f"{name} {stat}, p = {pv:.3g}: {verdict}"


def _non_normal_rows(other: dict[str, Any]) -> list[tuple[str, str]]:
    if other["method"] == "box-cox":
        cap = other["capability"]
        rows = [
            ("λ", f"{other['lambda']:.4g} ({other['lambda_from']})"),
            ("transformed LSL", _g(other["transformed_lsl"])),
            ("transformed USL", _g(other["transformed_usl"])),
        ]
        return rows + [(n.capitalize(), f"{cap[n]:.3f}") for n in ("pp", "ppl", "ppu", "ppk") if cap.get(n) is not None]
    rows = [
        ("0.135 % point", _g(other["p0135"])),
        ("median", _g(other["p50"])),
        ("99.865 % point", _g(other["p99865"])),
    ]
    return rows + [(n.capitalize(), f"{other[n]:.3f}") for n in ("pp", "ppl", "ppu", "ppk") if other.get(n) is not None]


def _non_normal_table(other: dict[str, Any]) -> Grid:
    what = (
        "Box-Cox transformation"
        if other["method"] == "box-cox"
        else f"percentile method (ISO 22514-2, {other['distribution']})"
    )
    t = Grid(title=f"capability by the {what}")
    t.add_column("")
    t.add_column("value", justify="right")
    for row in _non_normal_rows(other):
        t.add_row(*row)
    return t


def _capability_report(res: Any, other: dict | None, title: str, settings: dict, picture: str, path: Path) -> None:
    from qdsn.quality.report import Report

    r = Report(title, settings)
    r.heading("Capability sixpack")
    r.figure(picture, title)
    r.heading("Indices")
    r.table(["index", "value", "95 % interval"], [list(x) for x in _index_rows(res)])
    r.heading("Parts per million beyond the limits")
    r.table(["", "observed", "expected (within)", "expected (overall)"], [list(x) for x in _ppm_rows(res)])
    r.heading("Normality")
    r.text(_normality_line(res).replace("[green]", "").replace("[yellow]", "").replace("[/]", ""))
    if other is not None:
        r.heading("Non-normal capability")
        r.table(["", "value"], [list(x) for x in _non_normal_rows(other)])
    _write(path, r.html().encode())


# ---- sampling and Pareto --------------------------------------------------------------------------


@spc_app.command("sampling")
def sampling(
    lot_size: Annotated[int, typer.Option(help="Number of items in the lot.")],
    aql: Annotated[float, typer.Option(help="Acceptance quality limit, in % nonconforming (or per 100 items).")] = 1.0,
    level: Annotated[str, typer.Option(help="Inspection level: S-1 … S-4, I, II, III.")] = "II",
    severity: Annotated[str, typer.Option(help="normal, tightened or reduced.")] = "normal",
    oc: Annotated[Path | None, typer.Option("--oc", help="Also draw the OC curve to this .png or .svg.")] = None,
    html: Html = None,
    json_out: Json = False,
) -> None:
    """The ISO 2859-1 single sampling plan for a lot, and its operating characteristic."""
    from qdsn import quality

    _picture_path(oc, "--oc")
    _html_path(html)
    plan = quality.sampling_plan(lot_size, level, aql, severity)
    quality_levels = [aql / 100 * f for f in (0.5, 1, 2, 4, 8)]
    per_item = aql > 10  # ISO 2859-1: AQLs above 10 are nonconformities per 100 items (Poisson)
    accept = quality.oc_curve(plan, [q if per_item else min(q, 1.0) for q in quality_levels], nonconformities=per_item)
    quality_axis = "nonconformities per 100 items" if per_item else "lot % nonconforming"
    title = f"ISO 2859-1 single sampling, {severity} inspection, level {level}, AQL {aql:g}"
    letter = plan.code_letter + ("" if plan.plan_letter == plan.code_letter else f" → {plan.plan_letter}")
    oc_rows = [[f"{100 * q:.3g}", f"{a:.3f}"] for q, a in zip(quality_levels, accept, strict=True)]
    if oc is not None or html is not None:
        from qdsn.quality import render
        from qdsn.quality.report import Report

        if oc is not None:
            _save(render.draw_oc(plan), oc)
        if html is not None:
            r = Report(
                title, {"lot size": lot_size, "AQL": f"{aql:g} %", "inspection level": level, "severity": severity}
            )
            r.heading("Sampling plan")
            r.table(
                ["lot size", "code letter", "sample size", "accept if ≤", "reject if ≥"],
                [[lot_size, letter, plan.n, plan.ac, plan.re]],
            )
            r.heading("Operating characteristic")
            r.figure(render.svg(render.draw_oc(plan)), f"OC curve: n = {plan.n}, Ac = {plan.ac}")
            r.table([quality_axis, "P(accept)"], oc_rows)
            _write(html, r.html().encode())
    if json_out:
        doc = plan.__dict__ | {"oc": [{"p": q, "accept": a} for q, a in zip(quality_levels, accept, strict=True)]}
        print(orjson.dumps(doc).decode())
        return
    t = Grid(title=title)
    for col in ("lot size", "code letter", "sample size", "accept if ≤", "reject if ≥"):
        t.add_column(col, justify="right")
    t.add_row(str(lot_size), letter, str(plan.n), str(plan.ac), str(plan.re))
    console.print(t)
    o = Grid(title="operating characteristic")
    o.add_column(quality_axis, justify="right")
    o.add_column("P(accept)", justify="right")
    for row in oc_rows:
        o.add_row(*row)
    console.print(o)
    if plan.n > lot_size:
        console.print("[yellow]the sample is larger than the lot: inspect every item[/]")
    for path, what in ((oc, "OC curve drawn to"), (html, "report written to")):
        if path is not None:
            console.print(f"{what} {path}", highlight=False)


@spc_app.command("pareto")
def pareto(
    file: File = None,
    column: Annotated[str | None, typer.Option(help="The column of defect categories (default: the first).")] = None,
    count: Annotated[
        str | None, typer.Option(help="A column of counts, when each row stands for several defects.")
    ] = None,
    dataset: DatasetOpt = None,
    home: HomeOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Also draw the Pareto chart to this .png or .svg.")
    ] = None,
    html: Html = None,
    json_out: Json = False,
) -> None:
    """A Pareto analysis of defect categories: counts, largest first, with their share and cumulative %."""
    from qdsn import quality

    _picture_path(out, "--out")
    _html_path(html)
    table = _table(file, dataset, None, home)
    if column is None and table.header is None:
        raise InvalidInput(
            f"{table.name} has no header row", "a Pareto chart reads a named column: add a header and --column NAME"
        )
    name = column or (table.header or [""])[0]
    categories = table.texts(name)
    weights = _list(table.numbers(count)) if count is not None else [1.0] * len(categories)
    totals: dict[str, float] = {}
    for cat, w in zip(categories, weights, strict=True):
        totals[cat or "(blank)"] = totals.get(cat or "(blank)", 0.0) + w
    rows = quality.pareto(totals)
    title = f"Pareto chart of {name} in {table.name}"
    if out is not None or html is not None:
        from qdsn.quality import render
        from qdsn.quality.report import Report

        if out is not None:
            _save(render.draw_pareto(rows, title=title), out)
        if html is not None:
            r = Report(title, {"source": table.name, "categories": name, "counts": count or "one a row"})
            r.heading("Pareto chart")
            r.figure(render.svg(render.draw_pareto(rows, title=title)), title)
            r.table(
                ["Categories", "count", "%", "cumulative %"],
                [[x["category"], _g(x["count"]), f"{x['percent']:.1f}", f"{x['cumulative']:.1f}"] for x in rows],
            )
            _write(html, r.html().encode())
    if json_out:
        _dump({"source": table.name, "column": name, "categories": rows})
        return
    t = Grid(title=title)
    for col in ("category", "count", "%", "cumulative %"):
        t.add_column(col, justify="left" if col == "category" else "right")
    for x in rows:
        t.add_row(str(x["category"]), _g(x["count"]), f"{x['percent']:.1f}", f"{x['cumulative']:.1f}")
    console.print(t)
    for path, what in ((out, "Pareto chart drawn to"), (html, "report written to")):
        if path is not None:
            console.print(f"{what} {path}", highlight=False)
