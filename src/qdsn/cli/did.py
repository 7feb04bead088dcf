"""`qdsn did`: this node's DID, and resolving others'."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from qdsn.cli.common import Home, Operator, OperatorCA, console, linked_node, logged
from qdsn.identity import did_document, public_key_from_did_key, resolve
from qdsn.node import NodeHome

did_app = typer.Typer(help="This node's DID, and resolving others'.", no_args_is_help=True)


@did_app.command("show")
def did_show(home: Home) -> None:
    """Print this node's DID document: its keys as the ledger records them, the same document its node
    serves at /.well-known/did.json. Needs no passphrase."""
    console.print_json(json.dumps(ledger_document(home, NodeHome.open(home, "").did)))


@did_app.command("resolve")
def did_resolve(did: str, home: Home) -> None:
    """Print a DID's document: from this node's replica of the ledger when the DID is a participant (its key
    history is the authority), else a did:key computed or a did:web fetched over HTTPS."""
    doc = ledger_document(home, did) if (home / "node.toml").exists() else None
    console.print_json(json.dumps(doc or resolve(did)))


def ledger_document(home: Path, did: str) -> dict:
    """`did`'s document as the replica in `home` knows it; for a did:key it does not know, the computed one."""
    node = NodeHome.open(home, "")  # read-only: the keystore stays sealed
    ledger = node.ledger()
    try:
        doc = ledger.did_document(did)
    finally:
        ledger.close()
    if doc is None and did == node.did:
        doc = did_document(did, public_key_from_did_key(did))
    return doc if doc is not None else resolve(did)


@did_app.command("rotate")
def did_rotate(home: Home, operator: Operator = None, operator_ca: OperatorCA = None) -> None:
    """Replace this node's signing key and record the change on the consortium's ledger (identity.rotate_key).
    Everything signed with the old key stays verifiable under the ledger's key history."""
    node = linked_node(home, operator, operator_ca)
    try:
        new = node.home.rotate_key(lambda env: node.submit([env]))
    finally:
        node.close()
    console.print(f"[green]✓[/] new key {new} recorded for {node.did} ({logged(node.receipts)})")
