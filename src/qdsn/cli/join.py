"""`qdsn join URL`: a new member's home, made from what the log operator serves and the person joining checks."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from qdsn.cli.common import Home, console, err, passphrase, shown
from qdsn.errors import InvalidInput
from qdsn.ledger import tx
from qdsn.node import onboard


def join(
    url: Annotated[str, typer.Argument(help="The log operator's API, e.g. https://reg:8420.")],
    role: Annotated[str, typer.Option(help="enterprise (or manufacturer) or certifier.")],
    name: Annotated[str, typer.Option(help="The participant's display name, e.g. 杭州某某电缆有限公司.")],
    home: Home,
    ca: Annotated[Path | None, typer.Option(help="A CA certificate (PEM) to trust for the operator's TLS.")] = None,
    log_key: Annotated[
        str | None,
        typer.Option(help="The log key the regulator gave you (ORIGIN+KEYID+BASE64): pinned without asking."),
    ] = None,
) -> None:
    """Join a consortium: fetch the log's origin, log key and members from its operator, check them against
    each other, have you confirm the log key's fingerprint with the regulator (or pin --log-key), and create
    this node's home, ready to follow the log (node.toml names the operator). The regulator then admits the
    printed DID with `qdsn member add`. The passphrase is read from QDSN_PASSPHRASE or asked for."""
    if tx.role_named(role) == "regulator":
        raise InvalidInput("a regulator starts its own log", "use qdsn init --role regulator")
    if (home / "node.toml").exists():
        raise InvalidInput(f"{home} already holds a node", "choose another --home")
    c = onboard.fetch(url, ca)
    onboard.pin(c, log_key)
    # every word of it is the operator's: shown escaped, never as markup or terminal control, so that
    # nothing it sends can restyle, hide or imitate the fingerprint line the person checks
    table = Table(title=Text.assemble("consortium ", shown(c.origin),
                                      f": {len(c.members)} members besides the regulator"))  # fmt: skip
    for col in ("name", "role", "DID"):
        table.add_column(col, overflow="fold")
    for m in c.members:
        table.add_row(*(shown(str(m.get(k, ""))) for k in ("name", "role", "did")))
    console.print(table)
    console.print("  regulator   ", shown(c.regulator), sep="", highlight=False)
    console.print(f"  checkpoint  size {c.size}, signed by the log key", highlight=False)
    console.print(f"  log key     {c.log_key.text()}", highlight=False, soft_wrap=True)
    console.print(f"  fingerprint [bold]{onboard.key_fingerprint(c.log_key)}[/]", highlight=False)
    asked = "Is this the fingerprint the regulator gave you?"
    if log_key is None and not typer.confirm(asked, default=False, err=True):
        err.print("[bold red]not joined:[/] confirm the fingerprint with the regulator, or pass --log-key")
        raise typer.Exit(1)
    node = onboard.create_home(home, role, name, passphrase(confirm=True), c, ca)
    console.print(f"[green]✓[/] {node.role} [bold]{node.name}[/] at {node.path}, following {c.url}")
    console.print(f"  DID    {node.did}", highlight=False)
    admit = (f"qdsn member add {node.did} --role {node.role} --name {shlex.quote(node.name)} "
             "--credit-code CODE --region CODE --industry CODE --address ADDRESS --home REGULATOR-HOME")  # fmt: skip
    console.print("  Ask the regulator to admit it:", highlight=False)
    console.print(f"    {admit}", highlight=False, soft_wrap=True)
    console.print(f"  then start it: qdsn node start --home {shlex.quote(str(node.path))}", highlight=False)
