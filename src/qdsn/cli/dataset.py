"""`qdsn dataset`: datasets this node owns."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.table import Table

from qdsn.cli.common import (
    Home,
    Operator,
    OperatorCA,
    console,
    id_column,
    linked_node,
    logged,
    open_node,
    party,
    print_json,
    replica,
)
from qdsn.errors import QDSNError
from qdsn.ledger import Ledger
from qdsn.node import NodeHome

dataset_app = typer.Typer(
    help="Datasets this node owns: declared on the ledger, kept in its vault.", no_args_is_help=True
)


@dataset_app.command("create")
def dataset_create(
    dataset: Annotated[str, typer.Argument(help="The dataset's id, e.g. line-1-resistance.")],
    title: Annotated[str, typer.Option(help="What the dataset holds.")],
    home: Home,
    kind: Annotated[
        str, typer.Option(help="measurements, inspections, nonconformances, corrective_actions or compliance.")
    ] = "measurements",
    characteristic: Annotated[
        list[str] | None,
        typer.Option(help="NAME:UNIT:LSL:USL[:critical], repeatable; leave a limit empty if there is none."),
    ] = None,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Create a dataset in this node's vault (a fresh data key) and declare it on the ledger (never its data)."""
    from qdsn.data.ingest import KIND_MODELS
    from qdsn.data.model import Characteristic

    if kind not in KIND_MODELS:
        raise QDSNError(f"unknown kind {kind!r}", f"use one of: {', '.join(KIND_MODELS)}")
    specs = []
    for text in characteristic or []:
        name, unit, lsl, usl, *flag = (text.split(":") + [""] * 4)[:5]
        try:
            spec = Characteristic(
                name=name,
                unit=unit,
                lsl=float(lsl) if lsl else None,
                usl=float(usl) if usl else None,
                critical=flag == ["critical"],
            )
        except ValueError as e:  # pydantic's ValidationError included: say only what was wrong
            why = "; ".join(err["msg"] for err in e.errors()) if hasattr(e, "errors") else str(e)
            raise QDSNError(f"characteristic {text!r}: {why}", "write it as NAME:UNIT:LSL:USL[:critical]") from None
        specs.append(spec.model_dump(exclude_none=True))
    node = linked_node(home, operator, operator_ca)
    try:
        node.vault.create(dataset, kind)
        declare = {"dataset": dataset, "title": title, "kind": kind, "characteristics": specs}
        receipts = node.submit([node.home.sign("dataset.declare", declare)])
    finally:
        node.close()
    console.print(f"[green]✓[/] dataset {dataset} ({kind}) created and declared on the ledger ({logged(receipts)})")


@dataset_app.command("list")
def dataset_list(
    home: Home,
    mine: Annotated[bool, typer.Option("--mine", help="Only this node's own datasets.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The datasets declared on this node's replica of the ledger: id, owner, kind, title, records anchored
    (their data stays in each owner's vault)."""
    node = open_node(home)
    ledger = replica(node)
    try:
        state = ledger.state
        found = sorted((d for d in state.datasets.values() if not mine or d.owner == node.did),
                       key=lambda d: (d.owner, d.id))  # fmt: skip
        if as_json:
            print_json([{"dataset": d.id, "owner": d.owner, "owner_name": getattr(
                state.identities.get(d.owner), "name", None), "kind": d.kind, "title": d.title,
                "records": d.anchored, "batches": d.batches, "shredded": d.shredded, "declared_entry": d.declared}
                for d in found])  # fmt: skip
            return
        table = Table()
        id_column(table, "dataset")
        table.add_column("owner", overflow="fold")
        for col in ("kind", "title", "records"):
            table.add_column(col, justify="right" if col == "records" else "left")
        for d in found:
            records = "shredded" if d.shredded else f"{d.anchored:,} in {d.batches} batches"
            table.add_row(d.id, party(state, d.owner), d.kind, d.title, records)
    finally:
        ledger.close()
    console.print(table if found else "No datasets declared yet: qdsn dataset create")


@dataset_app.command("export")
def dataset_export(
    dataset: Annotated[str, typer.Argument(help="The dataset to export (it must be this node's own).")],
    out: Annotated[Path, typer.Option(help="The file to write.")],
    home: Home,
    format: Annotated[str, typer.Option(help="epcis (GS1 EPCIS 2.0 JSON-LD) or jsonl (one record a line).")] = "epcis",
) -> None:
    """Decrypt one of this node's datasets and write it out, as GS1 EPCIS 2.0 events or as JSON Lines.

    The data leaves the vault: export only for your own use or for a partner your policy allows.
    """
    from qdsn.data import epcis

    node = open_node(home)
    vault = node.vault()
    records = vault.records(dataset)
    if format == "epcis":
        doc = epcis.export(records, vault.kind(dataset), dataset, units=_units(node, dataset), sender=node.did)
        out.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        shown = f"{len(doc['epcisBody']['eventList'])} EPCIS events"
    elif format == "jsonl":
        out.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
        shown = "JSON Lines"
    else:
        raise QDSNError(f"unknown format {format!r}", "use epcis or jsonl")
    console.print(f"[green]✓[/] {len(records)} records of {dataset} written to {out} as {shown}")


def units_of(ledger: Ledger, dataset: str) -> dict[str, str]:
    """The unit of each characteristic the dataset declared on the ledger."""
    return {c["name"]: c["unit"] for c in ledger.declaration(dataset).get("characteristics", ())}


def _units(node: NodeHome, dataset: str) -> dict[str, str]:
    ledger = node.ledger()
    try:
        return units_of(ledger, dataset)
    finally:
        ledger.close()
