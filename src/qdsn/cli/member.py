"""`qdsn member`: the regulator admits organisations to the consortium, with what it records of them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from qdsn.cli.common import Home, Operator, OperatorCA, console, linked_node, optional_path, print_json, shown
from qdsn.errors import InvalidInput, PermissionDenied
from qdsn.identity import organization
from qdsn.ledger import Ledger, registry, tx
from qdsn.node import NodeHome

member_app = typer.Typer(help="The consortium's members: admit one (regulator), list them.", no_args_is_help=True)

ATTRIBUTES = ("credit_code", "region", "industry", "address")


@member_app.command("add")
def member_add(
    did: Annotated[str, typer.Argument(help="The member's DID, as `qdsn join` printed it (did:key:z6Mk…).")],
    role: Annotated[str, typer.Option(help="enterprise (or manufacturer), certifier or regulator.")],
    name: Annotated[str, typer.Option(help="The display name, e.g. 杭州某某电缆有限公司.")],
    home: Home,
    credit_code: Annotated[
        str | None, typer.Option(help="Unified social credit code (统一社会信用代码), 18 characters.")
    ] = None,
    region: Annotated[
        str | None, typer.Option(help="GB/T 2260 administrative division code, e.g. 330106 (杭州市西湖区).")
    ] = None,
    industry: Annotated[str | None, typer.Option(help="GB/T 4754-2017 industry code, e.g. C3831.")] = None,
    address: Annotated[str | None, typer.Option(help="The registered address.")] = None,
    key: Annotated[str | None, typer.Option(help="The member's Ed25519 key (Multikey z6Mk…); for a did:web.")] = None,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Admit an organisation (regulator only): `identity.register` with its DID, role, name and key, and the
    credit code, region, industry and address the regulator records, each checked before it is signed."""
    payload = registration(did, tx.role_named(role), name, key, credit_code, region, industry, address)
    env = _as_regulator(home, operator, operator_ca, "identity.register", payload, "admits members")
    place = f", {organization.region(region).name}" if region else ""
    console.print(f"[green]✓[/] admitted {payload['role']} ", shown(name), f"{place} ({did})", sep="")
    console.print(f"  identity.register {tx.txid(env.leaf())}", highlight=False)


def _as_regulator(
    home: Path, operator: str | None, operator_ca: Path | None, kind: str, payload: dict, what: str
) -> tx.Envelope:
    """Sign `payload` as this node and submit it, refused unless this node is the regulator (who `what`)."""
    node = linked_node(home, operator, optional_path(operator_ca))
    try:
        if node.home.role != "regulator":
            raise PermissionDenied(f"this node is a {node.home.role}: only the regulator {what}",
                                   "run it on the regulator's node (--home)")  # fmt: skip
        env = node.home.sign(kind, payload)
        node.submit([env])
        return env
    finally:
        node.close()


@member_app.command("endpoint")
def member_endpoint(
    did: Annotated[str, typer.Argument(help="The member's DID.")],
    url: Annotated[str, typer.Argument(help="Where its node serves its API, e.g. https://maker.example:8420.")],
    home: Home,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Record where a member's node serves its API (regulator only): `identity.endpoint`. Other nodes send
    to it there and nowhere else (PACT answers and publications)."""
    payload = {"did": did.strip(), "url": url.strip().rstrip("/")}
    tx.check_payload("identity.endpoint", payload)
    env = _as_regulator(home, operator, operator_ca, "identity.endpoint", payload, "records members' nodes")
    console.print(f"[green]✓[/] {payload['did']} serves at ", shown(payload["url"]), sep="")
    console.print(f"  identity.endpoint {tx.txid(env.leaf())}", highlight=False)


def registration(did: str, role: str, name: str, key: str | None, credit_code: str | None, region: str | None,
                 industry: str | None, address: str | None) -> dict[str, Any]:  # fmt: skip
    """The `identity.register` payload, every field checked (the console's form checks the same)."""
    return registry.registration(did, role, name, key, credit_code, region, industry, address)


def registered(payload: dict[str, Any]) -> Text:
    """One line of what an `identity.register` records: name, role, credit code, region, industry, address."""
    out = shown(str(payload.get("name", "")))
    out.append(f" ({payload.get('role')})")
    for k in ATTRIBUTES:
        if k in payload:
            out.append(" · ")
            out.append_text(shown(str(payload[k])))
    return out


def members(ledger: Ledger) -> list[dict[str, Any]]:
    """Every participant on the ledger with what its registration records and its current key, in log order."""
    out = []
    for ident in sorted(ledger.state.identities.values(), key=lambda i: i.registered):
        reg = ledger.registration(ident.did)
        row = {"did": ident.did, "role": ident.role, "name": ident.name} | {k: reg[k] for k in ATTRIBUTES if k in reg}
        if "region" in row:
            try:
                row["region_name"] = organization.region(row["region"]).name
            except InvalidInput:
                row["region_name"] = None  # recorded when in use; since retired from the list this node has
        history = ledger.key_history(ident.did)
        row |= {"registered": ident.registered, "key": ledger.did_document(ident.did)["verificationMethod"][0][
            "publicKeyMultibase"], "rotations": len(history) - 1}  # fmt: skip
        out.append(row)
    return out


@member_app.command("list")
def member_list(
    home: Home,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, with every field whole.")] = False,
) -> None:
    """The consortium's members on this node's replica, with their credit code, region, industry and address.
    Needs no passphrase."""
    ledger = NodeHome.open(home, "").ledger()  # read-only: the keystore stays sealed
    try:
        rows = members(ledger)
    finally:
        ledger.close()
    if as_json:
        print_json(rows, indent=1)
        return
    table = Table(title=f"{len(rows)} members")
    for col in ("name", "role", "credit code", "region", "industry", "DID"):
        table.add_column(col, overflow="fold")
    for r in rows:
        region = f"{r['region']} {r.get('region_name') or ''}".strip() if "region" in r else ""
        table.add_row(shown(r["name"]), r["role"], r.get("credit_code", ""), region, r.get("industry", ""), r["did"])
    console.print(table)
