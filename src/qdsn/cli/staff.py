"""`qdsn staff`: the web console's staff accounts of this node (viewer, engineer, approver)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from qdsn.cli.common import Home, console
from qdsn.errors import NotFound, QDSNError

staff_app = typer.Typer(
    help="Staff accounts of this node's web console (/console/): viewer reads, engineer uploads data and "
    "presents certificates, approver also approves jobs.",
    no_args_is_help=True,
)
PASSWORD_ENV = "QDSN_STAFF_PASSWORD"
Role = Annotated[str, typer.Option(help="viewer, engineer or approver (administrator).")]


def _store(home):  # type: ignore[no-untyped-def]
    from qdsn.web.staff import StaffStore

    if not (home / "node.toml").exists():
        raise NotFound(f"no node at {home}", "create one with `qdsn init` or `qdsn join`, or give --home")
    return StaffStore(home)


def _password() -> str:
    value = os.environ.get(PASSWORD_ENV)
    if value:
        return value
    try:
        return typer.prompt("Staff password", hide_input=True, confirmation_prompt=True)
    except typer.Abort:
        raise QDSNError("a staff account needs a password, and none was given",
                        f"type it when asked, or set {PASSWORD_ENV}") from None  # fmt: skip


@staff_app.command("add")
def staff_add(name: str, role: Role, home: Home) -> None:
    """Make a staff account; the password is asked for (or read from QDSN_STAFF_PASSWORD)."""
    from qdsn.web.staff import role_named

    store = _store(home)
    try:
        store.add(name, role_named(role), _password())
    finally:
        store.close()
    console.print(f"[green]✓[/] staff account [bold]{name}[/] ({role}) can sign in at /console/ of this node",
                  highlight=False)  # fmt: skip


@staff_app.command("list")
def staff_list(home: Home, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The staff accounts and their roles."""
    store = _store(home)
    try:
        rows = store.list()
    finally:
        store.close()
    if as_json:
        print(json.dumps({"staff": rows}, indent=2))
        return
    if not rows:
        console.print("No staff account yet: qdsn staff add NAME --role approver")
        return
    table = Table("account", "role", "created")
    for r in rows:
        table.add_row(r["name"], r["role"], datetime.fromtimestamp(r["created"], UTC).isoformat(timespec="seconds"))
    console.print(table)


NewRole = Annotated[str | None, typer.Option(help="A new role too.")]


@staff_app.command("passwd")
def staff_passwd(name: str, home: Home, role: NewRole = None) -> None:
    """Set a new password (and role); the account's open sessions end."""
    store = _store(home)
    try:
        store.passwd(name, _password(), role)
    finally:
        store.close()
    console.print(f"[green]✓[/] new password for {name}; its sessions were ended", highlight=False)


@staff_app.command("remove")
def staff_remove(name: str, home: Home) -> None:
    """Delete a staff account; its sessions end."""
    store = _store(home)
    try:
        store.remove(name)
    finally:
        store.close()
    console.print(f"[green]✓[/] staff account {name} removed", highlight=False)
