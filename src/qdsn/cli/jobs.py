"""`qdsn model publish`, `qdsn attest`, `qdsn jobs`: models sent to the data, and their attested results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from qdsn.cli.common import (
    Home,
    Operator,
    OperatorCA,
    console,
    linked_node,
    logged,
    shown,
)
from qdsn.errors import QDSNError

attest_app = typer.Typer(
    help="Attestations of model runs: what ran, on what data, to what result.", no_args_is_help=True
)
jobs_app = typer.Typer(
    help="Certification jobs on this node's data: read the model a certification body sent, approve or deny.",
    no_args_is_help=True,
)


@attest_app.command("verify")
def attest_verify(
    file: Annotated[Path, typer.Argument(help="An attestation (compact JWS), or a job result JSON holding one.")],
    home: Home,
    nonce: Annotated[str | None, typer.Option(help="The nonce you sent with the job.")] = None,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Check an attestation against this node's replica of the ledger: the signature by the node's key, the
    model published with that code hash, every input batch anchored by its owner, the commitments and binding,
    and — in a result file — that the output shown is the one attested."""
    from qdsn.compute import attest

    text = file.read_text().strip()
    output = None
    if text.startswith("{"):
        doc = json.loads(text)
        text, output = doc["attestation"], doc.get("output")
    node = linked_node(home, operator, operator_ca, writes=False)
    try:
        node.catch_up()
        try:
            c = attest.verify(text, node.ledger, output=output, nonce=nonce)
        except QDSNError as e:
            console.print(f"[red]✗ {e.what}[/]")
            raise typer.Exit(1) from None
    finally:
        node.close()
    table = Table("claim", "value", title="[green]✓ attestation verified")
    m = c["measurements"]
    for k, v in [("node", c["iss"]), ("model", m["model"]), ("code hash", m["code_hash"]),
                 ("isolation", m["isolation"]), ("runner", m["runner"]),
                 ("inputs", "; ".join(f"{i['dataset']} [{i['first']}, {i['first'] + i['count']}) in "
                                      f"{len(i['batches'])} anchored batch(es)" for i in c["inputs"])),
                 ("output hash", c["output_hash"] + (" (matches the output shown)" if output is not None else "")),
                 ("ran", f"{c['start']} → {c['end']}"), ("binding", c["binding"][:32] + "…")]:  # fmt: skip
        table.add_row(k, v)
    console.print(table)


Isolation = Annotated[str, typer.Option(help="How models run: bwrap (the sandbox), or process (weaker; see the docs).")]


@jobs_app.command("list")
def jobs_list(home: Home, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The jobs asked of this node, newest last, with their state."""
    from qdsn.node import jobs

    node = linked_node(home, None, None, writes=False)
    try:
        found = jobs.visible(node, node.did)
    finally:
        node.close()
    if as_json:
        print(json.dumps([j.to_json() for j in found], indent=2, ensure_ascii=False))
        return
    table = Table("job", "state", "model", "requester", "records", "purpose", "created")
    for j in found:
        records = str(sum(r["count"] for r in j.ranges))
        row = (j.id, j.state, j.model, j.requester[:24] + "…", records, j.purpose or "-", j.created[:19])
        table.add_row(*map(shown, row))
    console.print(table if found else "No jobs yet.")


@jobs_app.command("show")
def jobs_show(job: Annotated[str, typer.Argument(help="The job's id.")], home: Home) -> None:
    """A job's request, its model's manifest and every source file — what the owner reads before approving."""
    from qdsn.node import jobs

    node = linked_node(home, None, None, writes=False)
    try:
        j = next((x for x in jobs.visible(node, node.did) if x.id == job), None)
        if j is None:
            raise QDSNError(f"no job {job!r}", "see the jobs: qdsn jobs list")
        files = jobs.source(node, job)
    finally:
        node.close()
    from qdsn.compute import review

    request = json.dumps(j.to_json() | {"result": j.result and {"output": j.result.get("output")}}, indent=2,
                         ensure_ascii=False)  # fmt: skip
    texts = [(path, data, data.decode("utf-8", "replace")) for path, data in files]
    hidden = [(name, found) for name, text in [("the request", request), *((p, t) for p, _, t in texts)]
              if (found := review.findings(text))]  # fmt: skip
    if hidden:  # said first, before the text that holds them scrolls by
        console.print(Text("! hidden characters: a terminal would act on them or not show them at all, so they are "
                           "shown escaped and highlighted below; read those lines with care before approving",
                           style="bold red"))  # fmt: skip
        for name, found in hidden:
            console.print(Text(f"  {name} holds {len(found)} hidden character{'s' * (len(found) > 1)}:"))
            for f in found[:10]:
                console.print(Text(f"    {f}"))
            if len(found) > 10:
                console.print(Text(f"    … and {len(found) - 10} more"))
    console.print(shown(request), soft_wrap=True)
    for path, data, text in texts:
        console.rule(shown(f"{path} ({len(data):,} bytes)"))
        console.print(shown(text), soft_wrap=True)


@jobs_app.command("approve")
def jobs_approve(
    job: Annotated[str, typer.Argument(help="The job's id.")],
    home: Home,
    isolation: Isolation = "bwrap",
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Run a pending job in the sandbox now; its use is metered and its attestation recorded on the ledger."""
    from qdsn.node import jobs

    node = linked_node(home, operator, operator_ca)
    node.isolation = isolation
    try:
        j = jobs.approve(node, job)
    finally:
        node.close()
    color = "green" if j.state == "done" else "red"
    console.print(Text(j.state, style=color) + shown(f" {j.id}" + (f": {j.reason}" if j.reason else "")))
    if node.receipts:
        console.print(f"on the ledger: {logged(node.receipts)}", highlight=False)
    if j.result and j.result.get("output") is not None:
        console.print(shown(json.dumps(j.result["output"], indent=2, ensure_ascii=False)), soft_wrap=True)
    if j.result and j.result.get("log"):  # what the model wrote beside its output: the owner's alone
        console.print(Text("the run's log (not sent to the requester):", style="dim"))
        console.print(shown(j.result["log"]), soft_wrap=True)
    if j.state != "done":
        raise typer.Exit(1)


@jobs_app.command("deny")
def jobs_deny(job: Annotated[str, typer.Argument(help="The job's id.")], reason: Annotated[str, typer.Option(
        help="Why; the requester reads it.")], home: Home) -> None:  # fmt: skip
    """Refuse a pending job, saying why."""
    from qdsn.node import jobs

    node = linked_node(home, None, None)
    try:
        j = jobs.deny(node, job, reason)
    finally:
        node.close()
    console.print(Text("denied", style="yellow") + shown(f" {j.id}: {j.reason}"))
