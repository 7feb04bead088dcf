"""What every `qdsn` command group shares: the consoles, the home option, opening a node, progress, verdicts."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from qdsn.errors import QDSNError
from qdsn.ledger.integrity import Outcome, Verdict
from qdsn.node import NodeHome, default_home

console = Console(emoji=False)
err = Console(stderr=True, emoji=False)

Home = Annotated[
    Path,
    typer.Option(
        "--home",
        help="The node's home folder (env QDSN_HOME; default ~/.qdsn).",
        default_factory=default_home,
        show_default=False,
    ),
]


def passphrase(confirm: bool = False) -> str:
    value = os.environ.get("QDSN_PASSPHRASE")
    if value:
        return value
    try:
        return typer.prompt("Keystore passphrase", hide_input=True, confirmation_prompt=confirm)
    except typer.Abort:  # end of input: no terminal to ask on, or Ctrl-D
        raise QDSNError("this command needs the keystore passphrase, and none was given",
                        "type it when asked, or set QDSN_PASSPHRASE") from None  # fmt: skip


def open_node(home: Path) -> NodeHome:
    """The node at `home`; the passphrase is asked only when a command first needs a private key, so
    reading the public parts (the ledger, the DID, the catalog) asks for none."""
    return NodeHome.open(home, passphrase)


VERDICT_CODES = "Exit codes: 0 verified; 1 damaged (the place is named); 2 incomplete (what is missing is named)."


def render_verdict(verdict: Verdict) -> None:
    """Print a verdict and leave with its exit code: 0 verified, 1 damaged, 2 incomplete."""
    for note in verdict.notes:
        console.print(f"[yellow]… {note}[/]", highlight=False)
    if verdict.outcome is Outcome.VERIFIED:
        console.print(f"[green]✓[/] {verdict.message}", highlight=False)
        return
    word = "damaged" if verdict.outcome is Outcome.DAMAGED else "incomplete"
    err.print(f"[bold red]✗ {word}:[/] {verdict.message}", highlight=False)
    raise typer.Exit(int(verdict.outcome))


def progress_bar(what: str) -> Progress:
    return Progress(TextColumn(what), BarColumn(), TextColumn("{task.completed}/{task.total}"), TimeRemainingColumn(),
                    console=err, transient=True)  # fmt: skip


def linked_node(home: Path, operator: str | None, operator_ca: Path | None, *, writes: bool = True,
                serving: bool = False, ordering: str | None = None, quorum: int | None = None,
                retain: int | None = None):  # type: ignore[no-untyped-def]  # fmt: skip
    """This node for one command, on the one write path: when a node runs on this home, every
    transaction goes through it (its admin socket) and this process only reads the replica; otherwise
    the command holds the home's lock and puts its transactions on the consortium's log itself — through
    the operator at `operator` (or node.toml's), through etcd (`ordering`), or, only where this home's
    database is the log, by appending to it. `serving`: for `qdsn node start`, which holds the lock
    while it runs and is refused while another process holds it. `writes`: the command puts
    transactions on the log, so a member that knows no way to the log is refused before it starts.
    Ordering, quorum and retain fall back to QDSN_ORDERING, QDSN_QUORUM, QDSN_RETAIN and node.toml's
    [service] table; operator and its CA to node.toml's."""
    import sys

    from qdsn.errors import Conflict, NotFound
    from qdsn.node import Node
    from qdsn.node.lock import HomeLock
    from qdsn.node.node import RETAIN

    node_home = open_node(home)
    cfg = node_home.service()
    doing = "qdsn node start" if serving else "qdsn " + " ".join(a for a in sys.argv[1:3] if not a.startswith("-"))
    got = HomeLock.take(node_home.path, doing, wait=10.0 if serving else 60.0 if writes else 0.0)
    if not isinstance(got, HomeLock) and not got.is_node and not writes and not serving:
        err.print(f"[dim]… {got.what} (pid {got.pid}) is writing {home}: the replica is read as it stands[/]",
                  highlight=False)  # fmt: skip
        return Node(node_home, operator=False)  # reads only: follows nothing, writes nothing
    if not isinstance(got, HomeLock):
        if got.is_node and not serving:
            from qdsn.api.admin import AdminClient

            err.print(f"[dim]… the node is running on {home} (pid {got.pid}{', ' + got.url if got.url else ''}); "
                      "the command is sent through it[/]", highlight=False)  # fmt: skip
            return Node(node_home, relay=AdminClient(str(got.socket), got.url))
        if got.is_node:
            raise Conflict(f"a node is already running on {home} (pid {got.pid}{', at ' + got.url if got.url else ''})",
                           "stop it first; commands given meanwhile are sent through it")  # fmt: skip
        raise Conflict(f"{got.what} (pid {got.pid}) is writing {home}",
                       "wait for it to finish, then try again")  # fmt: skip
    try:
        ordering = ordering or os.environ.get("QDSN_ORDERING") or cfg.get("ordering")
        quorum = quorum if quorum is not None else int(os.environ.get("QDSN_QUORUM") or cfg.get("quorum", 1))
        retain = retain if retain is not None else int(os.environ.get("QDSN_RETAIN") or cfg.get("retain", RETAIN))
        operator = operator or cfg.get("operator")
        operator_ca = operator_ca or optional_path(cfg.get("operator_ca"))
        link = peer_client(node_home, str(operator), operator_ca) if operator else None
        operates = False if operator or ordering else operates_log(node_home)
        if writes and not (operates or link or ordering):
            raise NotFound(f"{home} is a member of the log {node_home.origin} and knows no way to it: its replica "
                           "is written only by following the log",
                           "give --operator URL (the log operator's API), or set operator = URL in the service table "
                           "of node.toml; or start the node and run the command again")  # fmt: skip
        return Node(node_home, operator=operates, link=link, ordering=ordering, quorum=quorum, retain=retain,
                    lock=got)  # fmt: skip
    except BaseException:
        got.release()
        raise


def operates_log(home: NodeHome) -> bool:
    """Whether this home's database is the consortium's log itself (it was started here by an embedded
    orderer, or this node registered itself first in it), rather than a member's replica of it;
    QDSN_OPERATOR=1|0 says so instead."""
    from qdsn.ledger import tx
    from qdsn.ledger.ordering.embedded import is_the_log

    env = os.environ.get("QDSN_OPERATOR")
    if env in ("0", "1"):
        return env == "1"
    ledger = home.ledger()
    try:
        if ledger.size == 0:
            return home.role == "regulator"
        return is_the_log(ledger) or tx.from_leaf(ledger.store.leaves(0, 1)[0]).submitter == home.did
    finally:
        ledger.close()


def logged(receipts: list) -> str:  # type: ignore[type-arg]
    """Where transactions landed in the log, for a success message: "entry 12", "entries 12–15"."""
    seqs = sorted(r.seq for r in receipts)
    if not seqs:
        return "no new entry"
    return f"entry {seqs[0]}" if len(seqs) == 1 else f"entries {seqs[0]}–{seqs[-1]}"


def peer_client(home: NodeHome, url: str, ca: Path | None):  # type: ignore[no-untyped-def]
    """A signed-request client from this node to the node at `url`, trusting `ca` if given."""
    import ssl

    from qdsn.api.client import NodeClient

    verify = ssl.create_default_context(cafile=str(ca)) if ca else True
    return NodeClient(url, home.key, home.did, verify=verify)  # its current key at each request: rotations


Operator = Annotated[
    str | None,
    typer.Option("--operator", help="The log operator's API, e.g. https://regulator:8420, if not this node."),
]
OperatorCA = Annotated[Path | None, typer.Option(help="A CA certificate (PEM) to trust for --operator.")]


def optional_path(value: object) -> Path | None:
    return Path(str(value)) if value else None


def shown(text: str) -> Text:
    """Text another party wrote, for the owner's terminal: never read as markup, every control,
    bidirectional or invisible character escaped and highlighted (`qdsn.compute.review`)."""
    from qdsn.compute import review

    out = Text()
    for part, escaped in review.segments(text):
        out.append(part, style="bold white on red" if escaped else None)
    return out


def print_json(doc: Any, indent: int | None = 2) -> None:
    """Print `doc` as JSON with names in their own script, but every character `shown` would escape
    written as a JSON `\\u` escape: the same value once parsed, and another party's text in it cannot act
    on the terminal that reads it."""
    from qdsn.compute import review

    def escaped(line: str) -> str:
        if line.isprintable():
            return line
        out = []
        for ch in line:
            if not review.hidden(ch):
                out.append(ch)
            elif ord(ch) > 0xFFFF:  # JSON writes an astral character as its UTF-16 surrogate pair
                high, low = divmod(ord(ch) - 0x10000, 0x400)
                out.append(f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04x}")
            else:
                out.append(f"\\u{ord(ch):04x}")
        return "".join(out)

    print("\n".join(escaped(line) for line in json.dumps(doc, indent=indent, ensure_ascii=False).split("\n")))


def replica(node: NodeHome):  # type: ignore[no-untyped-def]
    """The node's ledger replica, for reading: an error, not a new empty database, when it is missing."""
    from qdsn.errors import NotFound
    from qdsn.ledger.integrity import absent_reason, present
    from qdsn.ledger.store import metadata

    url = node.ledger_location()
    if not present(url, metadata):
        raise NotFound(absent_reason(url, "the ledger replica"),
                       "restore it (qdsn ledger import) or let the node follow the log (qdsn node start)")  # fmt: skip
    return node.ledger()


def party(state, did: str) -> Text:  # type: ignore[no-untyped-def]
    """A participant for a table: its registered name, with its DID whole below (never cut: it is
    what a user copies into the next command)."""
    ident = state.identities.get(did)
    out = Text(ident.name if ident else "(not registered)", style=None if ident else "dim")
    out.append("\n" + did, style="dim")
    return out


def id_column(table, *names: str) -> None:  # type: ignore[no-untyped-def]
    """Columns of ids a user copies: folded onto more lines when narrow, never cut with an ellipsis."""
    for name in names:
        table.add_column(name, overflow="fold")
