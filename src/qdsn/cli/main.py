"""`qdsn`: run a QDSN node, inspect its identity and its ledger, and watch the demo consortium."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from qdsn.cli import (
    ai,
    cert,
    certify,
    dataset,
    did,
    footprint,
    graph,
    indicators,
    ingest,
    jobs,
    join,
    ledger,
    member,
    model,
    notify,
    policy,
    schema,
    service,
    spc,
    staff,
    stats,
    supervise,
    vault,
)
from qdsn.cli.common import Home, console, err, passphrase, shown
from qdsn.node import NodeHome, default_home

app = typer.Typer(
    help="QDSN, the Quality Data Service Network: quality data usable but not visible.\n\n"
    "Start with `qdsn demo` to watch a whole consortium on this machine, or `qdsn init` to create a node.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def run(args: list[str] | None = None) -> None:
    """Entry point: a failure comes out as one line saying what was wrong and what to do next, with a
    non-zero exit; never as a traceback (an unforeseen one is written to a crash file, or shown with --debug)."""
    import os

    from qdsn.cli.failures import DEBUG_ENV, crash_file, explain

    try:
        app(args)  # click reports usage errors itself; every other failure comes out here
    except Exception as e:  # the one place where every failure is turned into words
        failure = explain(e)
        if not failure.unforeseen:
            said = shown(f"{failure.what}. {failure.fix}")  # its text may be another node's words
            err.print(Text.assemble(("error:", "bold red"), " ", said), soft_wrap=True)
            raise SystemExit(1) from None
        if os.environ.get(DEBUG_ENV):
            raise
        try:
            where = f"the details are in {crash_file(e, default_home())}"
        except OSError:
            where = f"run again with --debug (or {DEBUG_ENV}=1) to see the details"
        err.print(Text.assemble(("error:", "bold red"), f" an unexpected error in QDSN ({failure.what}); {where}; "
                                "please report it with that file"), soft_wrap=True)  # fmt: skip
        raise SystemExit(70) from None  # EX_SOFTWARE: a fault in QDSN, not in the input


@app.callback()
def options(
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an unexpected error.")] = False,
) -> None:
    """QDSN, the Quality Data Service Network: quality data usable but not visible."""
    import os

    from qdsn.cli.failures import DEBUG_ENV

    if debug:
        os.environ[DEBUG_ENV] = "1"


@app.command()
def init(
    role: Annotated[str, typer.Option(help="enterprise (or manufacturer), certifier or regulator.")],
    name: Annotated[str, typer.Option(help="The participant's display name.")],
    home: Home,
    origin: Annotated[
        str | None, typer.Option(help="The log's origin line (regulators; default qdsn.local/NAME).")
    ] = None,
    ledger: Annotated[
        str | None,
        typer.Option(
            help="Keep the ledger replica in this database (e.g. postgresql+psycopg://qdsn@db/qdsn) "
            "instead of HOME/ledger.db; give its password through PGPASSWORD or ~/.pgpass."
        ),
    ] = None,
) -> None:
    """Create a node: a new Ed25519 key sealed under your passphrase, its did:key, and node.toml.

    A regulator also starts the consortium log with its own registration as the first entry.
    The passphrase is read from QDSN_PASSPHRASE or asked for.
    """
    node = NodeHome.init(home, role, name, passphrase(confirm=True), origin=origin, ledger_url=ledger or "")
    console.print(f"[green]✓[/] {node.role} [bold]{node.name}[/] at {node.path}")
    console.print(f"  DID    {node.did}")
    if role == "regulator":
        console.print(f"  log    {node.origin} (entry 0: its own registration)")
    elif origin is None and ledger is None:
        console.print(f"[yellow]![/] this node names its own log {node.origin}: to follow a consortium's log, "
                      "create the home with `qdsn join URL` instead")  # fmt: skip


@app.command()
def demo(
    manufacturers: Annotated[int, typer.Option(help="How many manufacturers join.")] = 3,
    keep: Annotated[Path | None, typer.Option(help="Keep the consortium's nodes in this folder.")] = None,
) -> None:
    """Run a whole consortium on this machine and tell its story end to end."""
    from qdsn.demo.consortium import run_demo

    run_demo(console, manufacturers=manufacturers, keep=keep)


for sub, name in (
    (service.node_app, "node"),
    (policy.policy_app, "policy"),
    (policy.usage_app, "usage"),
    (dataset.dataset_app, "dataset"),
    (ingest.ingest_app, "ingest"),
    (vault.vault_app, "vault"),
    (did.did_app, "did"),
    (schema.schema_app, "schema"),
    (ledger.ledger_app, "ledger"),
    (spc.spc_app, "spc"),
    (model.model_app, "model"),
    (jobs.attest_app, "attest"),
    (jobs.jobs_app, "jobs"),
    (cert.cert_app, "cert"),
    (cert.trust_app, "trust"),
    (stats.stats_app, "stats"),
    (ai.ai_app, "ai"),
    (member.member_app, "member"),
    (notify.notify_app, "notify"),
    (supervise.supervise_app, "supervise"),
    (indicators.indicators_app, "indicators"),
    (graph.graph_app, "graph"),
    (footprint.footprint_app, "footprint"),
    (staff.staff_app, "staff"),
):
    app.add_typer(sub, name=name)
app.command()(ingest.simulate)
app.command("device")(ingest.device_register)
app.command("verify")(cert.verify_cmd)
app.command("join")(join.join)
app.command("bundle")(cert.bundle_cmd)
for cmd, name in ((certify.catalog_cmd, "catalog"), (certify.negotiate_cmd, "negotiate"),
                  (certify.transfer_cmd, "transfer"), (certify.fetch_cmd, "fetch")):  # fmt: skip
    app.command(name)(cmd)
