"""`qdsn stats`: private statistics with Prio3 (draft-irtf-cfrg-vdaf); `vector` checks the implementation
against the draft's published test vectors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qdsn.cli.common import Home, Operator, OperatorCA, console, err, linked_node, peer_client
from qdsn.errors import NotFound
from qdsn.privacy.task import VDAF_NAMES, _chunk  # noqa: F401 (their home was here)

stats_app = typer.Typer(
    help="Private statistics: Prio3 reports secret-shared between two aggregators, each checked by a "
    "validity proof before it is counted.",
    no_args_is_help=True,
)


@stats_app.command("vector")
def vector_cmd(
    files: Annotated[list[Path], typer.Argument(help="Test vectors in the draft's JSON form (e.g. Prio3Sum_0.json).")],
    vdaf: Annotated[
        str | None,
        typer.Option(help="The Prio3 variant (e.g. Prio3Sum), for a file whose name does not start with it."),
    ] = None,
) -> None:
    """Run each test vector through Prio3: every operation it lists, with its expected success or failure,
    every byte it gives. Exit 0 only when all of it matches; otherwise name the first difference.

    Exit codes: 0 every file matches; 1 a difference (the first is named); 2 a file that is not a test vector."""
    from qdsn.privacy.vectors import run_vector_file

    for path in files:
        if not path.is_file():
            raise NotFound(f"{path}: no such file", "give the path of a test vector, e.g. "
                           "../shared/standards/vdaf/test_vec/Prio3Sum_0.json")  # fmt: skip
    code = 0
    for path in files:
        result = run_vector_file(path, vdaf)
        if result.ok:
            console.print(f"[green]✓[/] {path}: {result.summary}", highlight=False, soft_wrap=True)
        else:
            code = max(code, 1 if result.readable else 2)
            err.print(f"[bold red]✗[/] {path}: {result.summary}", highlight=False, soft_wrap=True)
    if code:
        raise typer.Exit(code)


task_app = typer.Typer(help="Aggregation tasks on the ledger (the regulator creates them).", no_args_is_help=True)
stats_app.add_typer(task_app, name="task")
LeaderCA = Annotated[Path | None, typer.Option("--ca", help="A CA certificate (PEM) to trust for the leader's URL.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@task_app.command("create")
def task_create(
    task: Annotated[str, typer.Argument(help="The task's id, e.g. zj-cable-units-2026.")],
    title: Annotated[str, typer.Option(help="What the figure is, for people.")],
    vdaf: Annotated[str, typer.Option(help="count, sum, sumvec, histogram or multihot.")],
    leader_url: Annotated[str, typer.Option(help="The leader's API, e.g. https://cqc:8420.")],
    helper_url: Annotated[str, typer.Option(help="The helper's API (by default the helper is this node).")],
    home: Home,
    leader: Annotated[
        str | None, typer.Option(help="The leader's DID (default: the certification body, when the ledger has one).")
    ] = None,
    helper: Annotated[str | None, typer.Option(help="The helper's DID (default: this node).")] = None,
    collector: Annotated[str | None, typer.Option(help="The collector's DID (default: this node).")] = None,
    max_measurement: Annotated[int | None, typer.Option("--max", help="sum, sumvec: the largest value.")] = None,
    length: Annotated[int | None, typer.Option(help="sumvec, histogram, multihot: the vector's length.")] = None,
    max_weight: Annotated[int | None, typer.Option(help="multihot: most entries that may be true.")] = None,
    reporter: Annotated[list[str] | None, typer.Option(help="An eligible reporter's DID (repeat).")] = None,
    region: Annotated[str | None, typer.Option(help="Eligible: members registered in this region.")] = None,
    industry: Annotated[str | None, typer.Option(help="Eligible: members registered in this industry.")] = None,
    start: Annotated[str | None, typer.Option(help="RFC 3339 start of period 0 (default: now).")] = None,
    period: Annotated[int, typer.Option(help="Seconds in a period; one report per reporter each.")] = 30 * 86400,
    min_batch: Annotated[int, typer.Option(help="The fewest reports a released figure may rest on.")] = 5,
    epsilon: Annotated[float, typer.Option(help="Differential privacy spent by each collection.")] = 1.0,
    budget: Annotated[float, typer.Option(help="The most epsilon all collections of the task may spend.")] = 4.0,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Create an aggregation task on the ledger (regulator only): what is measured, by whom, who
    aggregates and collects, the minimum batch and the privacy budget."""
    from datetime import UTC, datetime

    from qdsn.clock import format_time
    from qdsn.privacy.task import default_leader, new_spec

    node = linked_node(home, operator, operator_ca)
    try:
        if leader is None:
            node.catch_up()
            leader = default_leader(node.ledger.state)
        spec = new_spec(task, title, vdaf, leader=leader, leader_url=leader_url, helper=helper or node.did,
                        helper_url=helper_url, collector=collector or node.did,
                        start=start or format_time(datetime.now(UTC).replace(microsecond=0)),
                        max_measurement=max_measurement, length=length, max_weight=max_weight,
                        reporters=reporter, region=region, industry=industry, period=period, min_batch=min_batch,
                        epsilon=epsilon, budget=budget)  # fmt: skip
        node.submit([node.home.sign("aggregate.task", spec)])
    finally:
        node.close()
    console.print(f"[green]✓[/] task {task} on the ledger: {spec['vdaf']} {spec['params']}, min batch {min_batch}, "
                  f"epsilon {epsilon:g} per collection of {budget:g}", highlight=False)  # fmt: skip


@stats_app.command("report")
def stats_report(
    task: Annotated[str, typer.Argument(help="The task to report to.")],
    home: Home,
    value: Annotated[str | None, typer.Option(help="The measurement: a number, or a JSON list.")] = None,
    indicator: Annotated[
        str | None, typer.Option(help="Compute it here: cpk, ppm, units, certificates or footprints.")
    ] = None,
    characteristic: Annotated[str | None, typer.Option(help="cpk: only this characteristic.")] = None,
    category: Annotated[
        list[str] | None, typer.Option(help="footprints: the task's product categories, in order (repeat).")
    ] = None,
    ca: LeaderCA = None,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Send this manufacturer's report for the task's current period: sharded, each share sealed to its
    aggregator, signed, and verified by both aggregators (who never see the value)."""
    import json

    from qdsn.errors import InvalidInput
    from qdsn.privacy import aggregator, reporter

    if (value is None) == (indicator is None):
        raise InvalidInput("give the measurement with --value, or --indicator to compute it from this node's data")
    node = linked_node(home, operator, operator_ca, writes=False)
    node.catch_up()  # decisions on the log as it stands
    store = aggregator.open_store(node.home)
    try:
        if value is not None:
            try:
                measurement = json.loads(value)
            except ValueError:
                raise InvalidInput(f"--value {value!r} is neither a number nor a JSON list") from None
        else:
            measurement = _indicator(node, str(indicator), characteristic, category or [])
        t = aggregator.task_of(node, task)
        leader = peer_client(node.home, t.leader_url, ca)
        got = reporter.send(node, store, task, measurement, leader)
    finally:
        store.close()
        node.close()
    console.print(f"[green]✓[/] report {got['id']} accepted for period {got['period']} of task {task}", highlight=False)


def _indicator(node, name: str, characteristic: str | None, categories: list[str] | None = None):  # type: ignore[no-untyped-def]
    """An indicator's measurement from this node's attested runs, anchored inspections and the ledger."""
    from qdsn.errors import NotFound
    from qdsn.node import jobs
    from qdsn.privacy import indicators

    if name == "cpk":
        runs = [{"created": j.created, "output": j.result["output"]} for j in jobs.visible(node, node.did)
                if j.state == "done" and j.model.startswith("process-capability@") and j.result
                and j.result.get("attestation")]  # fmt: skip
        return indicators.cpk_capable(runs, characteristic)
    if name in ("ppm", "units"):
        rows = []
        for ds in node.ledger.state.datasets.values():
            if ds.owner == node.did and ds.kind == "inspections" and ds.anchored and not ds.shredded:
                rows += node.vault.records(ds.id, 0, ds.anchored)
        return indicators.ppm_bucket(rows) if name == "ppm" else indicators.units(rows)
    if name == "footprints":
        from datetime import UTC, datetime

        from qdsn.node import pact

        pfs = [pf for d in pact.footprint_datasets(node) for pf in pact.stored(node, d)]
        return indicators.footprints(pfs, categories or [], datetime.now(UTC))
    if name == "certificates":
        return indicators.certificates(c.status for c in node.ledger.state.credentials.values()
                                       if c.subject == node.did)  # fmt: skip
    raise NotFound(f"no indicator {name!r}", f"known: {', '.join(indicators.INDICATORS)}")


@stats_app.command("collect")
def stats_collect(
    task: Annotated[str, typer.Argument(help="The task to collect.")],
    period: Annotated[int, typer.Option(help="The period to collect (0 is the task's first).")],
    home: Home,
    ca: LeaderCA = None,
    as_json: AsJson = False,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Collect a period's figure (the task's collector only): refused below the minimum batch and past the
    privacy budget; the batch is recorded on the ledger before anything is released."""
    import json

    from qdsn.privacy import aggregator, collect, figures

    node = linked_node(home, operator, operator_ca, writes=False)
    node.catch_up()  # decisions on the log as it stands
    try:
        t = aggregator.task_of(node, task)
        fig = collect.collect(node, task, period, peer_client(node.home, t.leader_url, ca))
        figures.keep(node.home.path, fig)
    finally:
        node.close()
    if as_json:
        console.print_json(json.dumps(fig.to_json()))
        return
    console.print(f"[green]✓[/] {t.title} — period {period}: {fig.result}", highlight=False)
    console.print(f"  rests on {fig.count} reports (root {fig.root[:16]}… on the ledger); noised with epsilon "
                  f"{fig.epsilon:g}, {fig.spent:g} of {fig.budget:g} spent", highlight=False)  # fmt: skip


@stats_app.command("show")
def stats_show(
    home: Home,
    task: Annotated[str | None, typer.Argument(help="One task (default: list them all).")] = None,
    period: Annotated[int | None, typer.Option(help="With a task: the reports a released period rests on.")] = None,
    ca: LeaderCA = None,
    as_json: AsJson = False,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """The aggregation tasks on the ledger, the budget each spent and the periods released; with
    --period, which reporters a released figure rests on."""
    import json

    from qdsn.privacy import aggregator, reporter
    from qdsn.privacy.task import tasks

    node = linked_node(home, operator, operator_ca, writes=False)
    try:
        node.catch_up()
        if task is not None and period is not None:
            t = aggregator.task_of(node, task)
            listed = peer_client(node.home, t.leader_url, ca).call("GET", f"/stats/tasks/{task}/periods/{period}")
            reporter.check_leaves(node, task, period, listed)
            if as_json:
                console.print_json(json.dumps(listed))
                return
            console.print(f"[green]✓[/] period {period} of {task}: {listed['count']} reports, matching the root "
                          f"{listed['root'][:16]}… on the ledger", highlight=False)  # fmt: skip
            for r in listed["reports"]:
                console.print(f"  {r['id']}  {r['reporter']}", highlight=False)
            return
        shown = [t for t in tasks(node.ledger.state) if task in (None, t.id)]
        if task is not None and not shown:
            aggregator.task_of(node, task)  # raises NotFound with the fix
    finally:
        node.close()
    if as_json:
        console.print_json(json.dumps([{**t.spec, "spent": t.spent, "released": sorted(t.batches)} for t in shown]))
        return
    for t in shown:
        console.print(f"{t.id}: {t.title} — {t.vdaf} {t.params}; leader {t.leader_url}, helper {t.helper_url}; "
                      f"min batch {t.min_batch}; epsilon {t.spent:g} of {t.budget:g} spent; "
                      f"released periods {sorted(t.batches) or 'none'}", highlight=False)  # fmt: skip


@stats_app.command("proof")
def stats_proof(
    task: Annotated[str, typer.Argument(help="The task this node reported to.")],
    period: Annotated[int, typer.Option(help="The released period.")],
    home: Home,
    ca: LeaderCA = None,
    as_json: AsJson = False,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Prove that this node's report was counted in a released figure: its inclusion proof in the batch
    whose root the leader recorded on the ledger, verified here against this node's replica."""
    import json

    from qdsn.privacy import aggregator, reporter

    node = linked_node(home, operator, operator_ca, writes=False)
    node.catch_up()  # decisions on the log as it stands
    store = aggregator.open_store(node.home)
    try:
        t = aggregator.task_of(node, task)
        inc = reporter.prove(node, store, task, period, peer_client(node.home, t.leader_url, ca))
    finally:
        store.close()
        node.close()
    if as_json:
        console.print_json(json.dumps(inc.__dict__))
        return
    console.print(f"[green]✓[/] report {inc.report} is leaf {inc.index} of the {inc.count} that period {period} "
                  f"of {task} rests on (root {inc.root[:16]}… on the ledger)", highlight=False)  # fmt: skip
