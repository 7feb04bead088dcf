"""`qdsn policy` and `qdsn usage`: usage policies on datasets, and what was used under them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from qdsn.cli.common import (
    Home,
    Operator,
    OperatorCA,
    console,
    linked_node,
    logged,
    print_json,
)
from qdsn.errors import QDSNError

policy_app = typer.Typer(help="Usage policies (ODRL 2.2) on this node's datasets.", no_args_is_help=True)
usage_app = typer.Typer(help="Metering: what was used under which agreement, and what it costs.", no_args_is_help=True)


@policy_app.command("publish")
def policy_publish(
    dataset: Annotated[str, typer.Argument(help="One of this node's datasets.")],
    offer: Annotated[Path, typer.Argument(help="An ODRL 2.2 Offer in QDSN's profile (JSON).")],
    home: Home,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Offer a dataset under a usage policy: the offer is kept by this node, its hash goes on the ledger."""
    from qdsn.node.provider import publish

    try:
        doc = json.loads(offer.read_text())
    except (OSError, ValueError) as e:
        raise typer.BadParameter(f"{offer}: {e}") from None
    node = linked_node(home, operator, operator_ca)
    try:
        digest = publish(node, dataset, doc)
    finally:
        node.close()
    console.print(f"[green]✓[/] {doc.get('uid')} offered for {dataset}; its hash {digest[:16]}… is on the ledger "
                  f"({logged(node.receipts)})")  # fmt: skip


@policy_app.command("profile")
def policy_profile() -> None:
    """Print QDSN's ODRL 2.2 profile (JSON Schema): what a usage policy may say."""
    from qdsn.policy import profile_schema

    print_json(profile_schema())


@usage_app.command("report")
def usage_report(
    home: Home,
    agreement: Annotated[str | None, typer.Option(help="Only this agreement.")] = None,
    since: Annotated[str | None, typer.Option(help="Only decisions from this time on (RFC 3339).")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the meters and invoice as JSON (as GET /usage).")
    ] = False,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
    everyone: Annotated[
        bool, typer.Option("--all", help="A regulator: every agreement of the consortium, not only its own.")
    ] = False,
) -> None:
    """Meters per agreement — uses, denials, records touched, compute seconds, charges — read off this
    node's replica of the ledger (brought up to date from --operator first), and the invoice its
    price duties make. Owner and consumer see the same figures; each sees the agreements it is a party
    to (a regulator sees the whole consortium's with --all)."""
    from qdsn.clock import parse_time
    from qdsn.policy.meter import invoice, usage

    try:
        start = parse_time(since) if since else None
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    node = linked_node(home, operator, operator_ca, writes=False)
    try:
        node.catch_up()
        if everyone and node.home.role != "regulator":
            raise QDSNError("only a regulator sees every agreement of the consortium",
                            "leave --all out to see the agreements this node is a party to")  # fmt: skip
        ms = usage(node.ledger, node.did, agreement=agreement, since=start, party_only=not everyone)
        names = {d: i.name for d, i in node.ledger.state.identities.items()}
    finally:
        node.close()
    bill = invoice(ms)
    if as_json:
        print_json({"meters": [m.to_json() for m in ms], "invoice": bill})
        return
    if not ms:
        console.print("No access decisions involve this node yet.")
        return
    table = Table("agreement", "dataset", "consumer", "uses", "denied", "records", "compute s", "charges",
                  title="Usage, from the ledger")  # fmt: skip
    table.columns[2].overflow = "fold"
    for m in ms:
        charges = ", ".join(f"{v:g} {c}" for c, v in sorted(m.charges.items())) or "-"
        table.add_row(m.agreement or "(negotiation)", m.dataset, _who(names, m.requester), str(m.uses), str(m.denied),
                      f"{m.records:,}", f"{m.compute_seconds:.1f}", charges)  # fmt: skip
    console.print(table)
    if bill["lines"]:
        lines = Table("agreement", "dataset", "consumer", "uses", "amount", title="Invoice")
        lines.columns[2].overflow = "fold"
        for line in bill["lines"]:
            lines.add_row(line["agreement"], line["dataset"], _who(names, line["consumer"]), str(line["uses"]),
                          f"{line['amount']:,.2f} {line['currency']}")  # fmt: skip
        console.print(lines)
    for currency, total in sorted(bill["totals"].items()):
        console.print(f"  [bold]due: {total:,.2f} {currency}[/]")


def _who(names: dict[str, str], did: str) -> str:
    """A participant's name with its whole DID, which a user may copy into the next command."""
    return f"{names.get(did, '(not registered)')}\n{did}"
