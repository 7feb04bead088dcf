"""`qdsn ai`: multivariate quality models on a CSV file (train, score with the T² chart) and Hotelling's
T² fitted across makers through the private statistics (task, report, collect)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from qdsn.cli.common import Home, Operator, OperatorCA, console, linked_node, peer_client
from qdsn.errors import InvalidInput, NotFound

ai_app = typer.Typer(
    help="AI quality models: Hotelling T² (and its robust MCD variant), an isolation forest and a predictive "
    "ridge model; T² fitted across makers without their rows leaving them.",
    no_args_is_help=True,
)
METHODS = ("t2", "mcd", "isolation-forest", "predictive")
Columns = Annotated[str | None, typer.Option(help="The columns to use, comma-separated (default: every column).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
LeaderCA = Annotated[Path | None, typer.Option("--ca", help="A CA certificate (PEM) to trust for the leader's URL.")]


def _table(path: Path, columns: str | None) -> tuple[list[str], Any]:
    """The named columns of a CSV file (a header row, one row per observation) as rows × columns."""
    import numpy as np

    from qdsn.cli.spc_data import Table

    if not path.is_file():
        raise NotFound(f"no such file: {path}", "give a CSV file with a header row and one row per observation")
    table = Table.csv(path)
    if table.header is None:
        raise InvalidInput(f"{path} has no header row", "name the columns in the first row")
    names = [c.strip() for c in columns.split(",")] if columns else list(table.header)
    return names, np.column_stack([np.asarray(table.numbers(n), dtype=float) for n in names])


def _write(path: Path, data: bytes) -> None:
    """Whole or not at all: a temporary file beside it, synced, renamed into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _summary(method: str, names: list[str], model: Any, blob: bytes, x: Any) -> dict[str, Any]:
    from qdsn.compute import params

    doc: dict[str, Any] = {"method": method, "variables": names, "rows": int(x.shape[0]), "sha256": params.digest(blob),
                           "format": "skops" if method == "isolation-forest" else "npz"}  # fmt: skip
    # what an attestation of the same fit names: a forest's canonical digest (its skops bytes differ on
    # every dump), otherwise the file's SHA-256
    doc["parameters_sha256"] = params.forest_digest(model) if method == "isolation-forest" else doc["sha256"]
    if method in ("t2", "mcd"):
        doc |= {"ucl": model.ucl, "ucl_phase1": model.ucl_phase1, "alpha": model.alpha, "excluded": len(model.excluded)}
    elif method == "predictive":
        doc |= {"target": names[0], "cv_rmse": model.cv_rmse, "cv_r2": model.cv_r2, "penalty": model.penalty}
    return doc


@ai_app.command("train")
def train(
    csv: Annotated[Path, typer.Argument(help="A CSV file: a header row, one row per observation.")],
    out: Annotated[Path, typer.Option(help="Where to write the parameters (.npz; .skops for a forest).")],
    method: Annotated[str, typer.Option(help="t2 (phase I), mcd, isolation-forest or predictive.")] = "t2",
    columns: Columns = None,
    target: Annotated[str | None, typer.Option(help="predictive: the characteristic to predict.")] = None,
    alpha: Annotated[float, typer.Option(help="The false-alarm rate of the control limit.")] = 0.0027,
    seed: Annotated[int, typer.Option(help="Seed of the MCD's and the forest's random draws.")] = 0,
    as_json: AsJson = False,
) -> None:
    """Fit a model on the rows of a CSV file and save its parameters in a safe file (plain arrays, or skops
    with trusted types only — never pickle); print the file's SHA-256, which `score` asks for."""
    from qdsn.compute import params
    from qdsn.quality import learn
    from qdsn.quality import multivariate as mv

    if method not in METHODS:
        raise InvalidInput(f"--method is one of {', '.join(METHODS)}, not {method!r}")
    names, x = _table(csv, columns)
    if method == "t2":
        model = mv.phase1(x, alpha=alpha, names=tuple(names))
        blob = params.dump_arrays(model.arrays())
    elif method == "mcd":
        model = mv.fit_mcd(x, alpha=alpha, names=tuple(names), seed=seed)
        blob = params.dump_arrays(model.arrays())
    elif method == "isolation-forest":
        model = learn.fit_isolation_forest(x, seed=seed)
        blob = params.dump_estimator(model)
    else:
        if target is None or target not in names:
            raise InvalidInput("the predictive model needs --target, one of the columns used")
        i = names.index(target)
        names = [target, *(n for n in names if n != target)]
        model = learn.fit_predictive(x[:, [j for j in range(x.shape[1]) if j != i]], x[:, i], seed=seed)
        blob = params.dump_arrays(model.arrays() | {"names": __import__("numpy").array(names, dtype=str)})
    _write(out, blob)
    doc = _summary(method, names, model, blob, x) | {"file": str(out)}
    if as_json:
        console.print_json(json.dumps(doc))
        return
    console.print(f"[green]✓[/] {method} on {doc['rows']} rows of {', '.join(names)} → {out}", highlight=False)
    for k in ("ucl", "ucl_phase1", "excluded", "cv_rmse", "cv_r2"):
        if k in doc:
            console.print(f"  {k}: {doc[k]:.6g}" if isinstance(doc[k], float) else f"  {k}: {doc[k]}", highlight=False)
    console.print(f"  sha256 {doc['sha256']}", highlight=False)
    if doc["parameters_sha256"] != doc["sha256"]:
        console.print(f"  forest digest {doc['parameters_sha256']} (the parameters_sha256 an attestation names)",
                      highlight=False)  # fmt: skip


@ai_app.command("score")
def score(
    csv: Annotated[Path, typer.Argument(help="A CSV file of new rows, with the model's columns.")],
    model: Annotated[Path, typer.Option(help="The parameters file `qdsn ai train` wrote.")],
    sha256: Annotated[
        str, typer.Option(help="Its SHA-256, or a forest's digest, as training or an attestation names it.")
    ],
    chart: Annotated[
        Path | None, typer.Option(help="Draw the chart with its limit: .png, .svg, or .html (a report page).")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Score new rows against a saved model (phase II): T² and its limit from the F distribution, the MCD's
    robust distance (χ² limit), the forest's anomaly score (limit 0.5), or the predictive model's residual in
    units of its cross-validated error. Rows above the limit are listed, numbered from 1."""
    import numpy as np

    from qdsn.compute import monitor
    from qdsn.quality import render

    if not model.is_file():
        raise NotFound(f"no such file: {model}", "give the parameters file `qdsn ai train` wrote")
    saved = monitor.open_model(model.read_bytes(), sha256)
    method = saved.method
    cols, x = _table(csv, ",".join(saved.names) if saved.names else None)
    scores, limit, label = monitor.score(saved, x)
    above = [int(i) + 1 for i in np.flatnonzero(scores > limit)]
    if chart is not None and chart.suffix.lower() == ".html":
        from qdsn.quality.report import Report

        page = Report(f"{label} chart — {csv.name}", {"model": f"{model} ({method})", "sha256": sha256,
                                                      "rows": len(scores), "limit": f"{limit:.6g}"})  # fmt: skip
        page.figure(render.svg(render.draw_t2(scores, limit, label=label)), f"{label} of each row and its limit")
        page.table(["row", label], [[i, f"{scores[i - 1]:.6g}"] for i in above], caption="rows above the limit")
        _write(chart, page.html().encode())
    elif chart is not None:
        render.save(render.draw_t2(scores, limit, label=label), chart)
    doc = {"method": method, "rows": len(scores), "limit": limit, "signals": above, "parameters_sha256": saved.digest,
           "scores": [round(float(s), 6) for s in scores]}  # fmt: skip
    if as_json:
        console.print_json(json.dumps(doc))
        return
    console.print(f"{method}: {len(scores)} rows of {', '.join(cols)}, limit {limit:.6g}", highlight=False)
    console.print(f"  parameters {saved.digest}", highlight=False)
    if above:
        shown = ", ".join(map(str, above[:50])) + (" …" if len(above) > 50 else "")
        console.print(f"[red]✗[/] {len(above)} rows above the limit: {shown}", highlight=False)
    else:
        console.print("[green]✓[/] no row above the limit", highlight=False)
    if chart is not None:
        console.print(f"  chart: {chart}", highlight=False)


# ---- T² across makers: the private statistics -----------------------------------------------------


@ai_app.command("task")
def task_create(
    task: Annotated[str, typer.Argument(help="The task's id, e.g. cable-t2-2026.")],
    columns: Annotated[str, typer.Option(help="The variables, comma-separated, in the makers' CSV headers.")],
    low: Annotated[str, typer.Option(help="Each variable's lowest possible value, comma-separated.")],
    high: Annotated[str, typer.Option(help="Each variable's highest possible value, comma-separated.")],
    leader_url: Annotated[str, typer.Option(help="The leader's API, e.g. https://cqc:8420.")],
    helper_url: Annotated[str, typer.Option(help="The helper's API (by default the helper is this node).")],
    reporter: Annotated[list[str], typer.Option(help="A maker's DID (repeat).")],
    home: Home,
    title: Annotated[str, typer.Option(help="What the model is, for people.")] = "Hotelling T² across makers",
    bits: Annotated[int, typer.Option(help="Quantisation bits per value (the grid's resolution).")] = 48,
    leader: Annotated[str | None, typer.Option(help="The leader's DID (default: the certification body).")] = None,
    collector: Annotated[str | None, typer.Option(help="The collector's DID (default: this node).")] = None,
    min_batch: Annotated[int, typer.Option(help="The fewest makers the model may rest on.")] = 3,
    period: Annotated[int, typer.Option(help="Seconds in a period; one report per maker each.")] = 30 * 86400,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Create the task (regulator only): a Prio3SumVec of T²'s sufficient statistics on the grid named here,
    recorded on the ledger with the task, added without noise so the model is exact."""
    from datetime import UTC, datetime

    from qdsn.clock import format_time
    from qdsn.privacy import federated

    names = [c.strip() for c in columns.split(",")]

    def numbers(text: str, what: str) -> list[float]:
        try:
            v = [float(t) for t in text.split(",")]
        except ValueError:
            raise InvalidInput(f"--{what} is numbers separated by commas, not {text!r}") from None
        if len(v) != len(names):
            raise InvalidInput(f"--{what} gives {len(v)} values for {len(names)} columns")
        return v

    enc = federated.encoding(names, numbers(low, "low"), numbers(high, "high"), bits=bits)
    node = linked_node(home, operator, operator_ca)
    try:
        if leader is None:
            node.catch_up()
            bodies = [i.did for i in node.ledger.state.identities.values() if i.role == "certifier"]
            if len(bodies) != 1:
                raise InvalidInput(f"the ledger has {len(bodies)} certification bodies",
                                   "name the leader with --leader")  # fmt: skip
            leader = bodies[0]
        spec = {"task": task, "title": title, "vdaf": "Prio3SumVec", "params": federated.task_params(enc),
                "leader": leader, "leader_url": leader_url.rstrip("/"), "helper": node.did,
                "helper_url": helper_url.rstrip("/"), "collector": collector or node.did, "reporters": reporter,
                "attributes": {}, "start": format_time(datetime.now(UTC).replace(microsecond=0)), "period": period,
                "min_batch": min_batch, "epsilon": 1.0, "budget": 1.0, "noise": "none", "encoding": enc}  # fmt: skip
        node.submit([node.home.sign("aggregate.task", spec)])
    finally:
        node.close()
    console.print(f"[green]✓[/] task {task} on the ledger: T² sums of {', '.join(names)} on a {bits}-bit grid, "
                  f"{len(reporter)} makers, at least {min_batch}", highlight=False)  # fmt: skip


@ai_app.command("send")
def send(
    task: Annotated[str, typer.Argument(help="The T² task to report to.")],
    csv: Annotated[Path, typer.Argument(help="This maker's rows: a CSV file with the task's columns.")],
    home: Home,
    ca: LeaderCA = None,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Send this maker's T² statistics (n, Σx, Σxxᵀ of its rows on the task's grid), secret-shared between
    the two aggregators: no row, and no statistic of this maker alone, leaves in the clear."""
    from qdsn.privacy import aggregator, federated, reporter

    node = linked_node(home, operator, operator_ca, writes=False)
    node.catch_up()
    store = aggregator.open_store(node.home)
    try:
        t = aggregator.task_of(node, task)
        _, names, _ = federated.grid_of(t)
        _, x = _table(csv, ",".join(names))
        got = reporter.send(node, store, task, federated.measurement(t, x), peer_client(node.home, t.leader_url, ca))
    finally:
        store.close()
        node.close()
    console.print(f"[green]✓[/] {x.shape[0]} rows' statistics accepted as report {got['id']} of task {task}",
                  highlight=False)  # fmt: skip


@ai_app.command("collect")
def collect_cmd(
    task: Annotated[str, typer.Argument(help="The T² task to collect.")],
    period: Annotated[int, typer.Option(help="The period to collect (0 is the task's first).")],
    out: Annotated[Path, typer.Option(help="Where to write the model's parameters (.npz).")],
    home: Home,
    ca: LeaderCA = None,
    as_json: AsJson = False,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Collect the pooled statistics (the task's collector only) and save the T² model they give — exactly
    the model of every maker's rows together on the task's grid."""
    from qdsn.compute import params
    from qdsn.privacy import aggregator, collect, federated

    node = linked_node(home, operator, operator_ca, writes=False)
    node.catch_up()
    try:
        t = aggregator.task_of(node, task)
        fig = collect.collect(node, task, period, peer_client(node.home, t.leader_url, ca))
    finally:
        node.close()
    model = federated.model(t, list(fig.result))  # type: ignore[arg-type]
    blob = params.dump_arrays(model.arrays())
    _write(out, blob)
    doc = {"task": task, "period": period, "makers": fig.count, "rows": model.n, "variables": list(model.names),
           "ucl": model.ucl, "ucl_phase1": model.ucl_phase1, "sha256": params.digest(blob),
           "file": str(out)}  # fmt: skip
    if as_json:
        console.print_json(json.dumps(doc))
        return
    console.print(f"[green]✓[/] T² of {model.n} rows from {fig.count} makers → {out}; UCL {model.ucl:.6g}",
                  highlight=False)  # fmt: skip
    console.print(f"  sha256 {doc['sha256']}", highlight=False)
