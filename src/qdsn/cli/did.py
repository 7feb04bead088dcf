"""`qdsn did`: this node's DID, and resolving others'."""

from __future__ import annotations

import json

import typer

from qdsn.cli.common import (
    Home,
    Operator,
    OperatorCA,
    console,
    linked_node,
    logged,
    open_node,
)
from qdsn.identity import did_document, public_key_from_did_key, resolve

did_app = typer.Typer(help="This node's DID, and resolving others'.", no_args_is_help=True)


@did_app.command("show")
def did_show(home: Home) -> None:
    """Print this node's DID and DID document."""
    node = open_node(home)
    console.print_json(json.dumps(did_document(node.did, public_key_from_did_key(node.did))))


@did_app.command("resolve")
def did_resolve(did: str) -> None:
    """Resolve a did:key (computed) or did:web (fetched over HTTPS) and print its document."""
    console.print_json(json.dumps(resolve(did)))


@did_app.command("rotate")
def did_rotate(home: Home, operator: Operator = None, operator_ca: OperatorCA = None) -> None:
    """Replace this node's signing key and record the change on the ledger (identity.rotate_key)."""
    node = linked_node(home, operator, operator_ca)
    try:
        key = node.home.rotate_key(lambda env: node.submit([env]))
    finally:
        node.close()
    console.print(f"[green]✓[/] new key {key} recorded for {node.did} ({logged(node.receipts)})")
