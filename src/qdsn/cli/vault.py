"""`qdsn vault`: verify, back up, restore and shred this node's encrypted vault."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from qdsn.cli.common import (
    VERDICT_CODES,
    Home,
    Operator,
    OperatorCA,
    console,
    linked_node,
    logged,
    open_node,
    peer_client,
    render_verdict,
)
from qdsn.errors import QDSNError
from qdsn.ledger.integrity import Outcome, Verdict
from qdsn.ledger.store import Store
from qdsn.node import NodeHome

vault_app = typer.Typer(help="This node's encrypted vault.", no_args_is_help=True)


@vault_app.command("verify", help="Check the vault against the ledger: every dataset this node declared and "
                   "every batch it anchored must be in the vault, record for record, and every dataset, batch and "
                   "record in the vault must be on the ledger; every record is opened and every batch root "
                   "recomputed. Batches not yet anchored are listed as pending. " + VERDICT_CODES)  # fmt: skip
def vault_verify(home: Home) -> None:
    from qdsn.ledger.integrity import judge
    from qdsn.node.completeness import verify_vault

    node = open_node(home)
    node.key()  # a wrong passphrase is said as such, not taken for a damaged data key
    url = node.ledger_location()
    opened: list[Store] = []
    reference = judge(lambda: _reference(node, opened), "the ledger database")
    try:
        if not reference.ok:  # a missing, damaged or rolled-back ledger is no reference for the vault
            render_verdict(reference)
        report = verify_vault(url if "://" in url else str(node.path / "vault.db"), node.kek, opened[0], node.did)
    finally:
        for store in opened:
            store.close()
    table = Table("dataset", "records", "result")
    for r in report.datasets:
        mark = {Outcome.VERIFIED: "[green]✓", Outcome.DAMAGED: "[red]✗ damaged:",
                Outcome.INCOMPLETE: "[red]✗ incomplete:"}  # fmt: skip
        text = r.verdict.message if not r.verdict.ok else r.verdict.message + "".join(f"; {n}" for n in r.verdict.notes)
        table.add_row(r.dataset, str(r.records), f"{mark[r.verdict.outcome]} {text}[/]")
    if report.datasets:
        console.print(table)
    render_verdict(report.verdict)


def _reference(node: NodeHome, opened: list[Store]) -> Verdict:
    """The node's ledger, opened read-only as the vault's reference, after checking that it is not
    missing and not behind the newest checkpoint this node saw."""
    from qdsn.ledger.integrity import Incomplete, absent_reason, present, read_only_url
    from qdsn.ledger.store import metadata as ledger_tables
    from qdsn.node import seen

    url = node.ledger_location()
    if not present(url, ledger_tables):
        raise Incomplete(absent_reason(url, "the ledger database") + ", and it is the reference the vault is checked "
                         "against", "restore the replica first (qdsn ledger import, or follow a peer)")  # fmt: skip
    store = Store(read_only_url(url))
    opened.append(store)
    remembered = seen.load(node.path)
    if remembered is not None:
        seen.check(remembered, store.size, store.root_at)
    return Verdict(Outcome.VERIFIED, "")


@vault_app.command("backup")
def vault_backup(
    home: Home,
    out: Annotated[Path | None, typer.Argument(help="The backup file to write.")] = None,
    to: Annotated[str | None, typer.Option(help="Hand it to the member node at this URL to keep.")] = None,
    ca: Annotated[Path | None, typer.Option(help="A CA certificate (PEM) to trust for --to.")] = None,
) -> None:
    """Seal this node's vault into a backup that another node can keep for it without being able to
    read anything in it, not even dataset names; only this node's keystore opens it. Write it to a
    file, or hand it to a keeper node with --to (`qdsn node start --backup-to` does so as it changes)."""
    from qdsn.clock import format_time, system_clock
    from qdsn.data import backup

    if out is None and to is None:
        raise QDSNError("nowhere to put the backup", "give a file, or --to URL of a node that keeps it")
    node = open_node(home)
    vault = node.vault()
    sealed = backup.seal(vault.engine, node.kek(), node.did, format_time(system_clock()))
    n = len(vault.datasets())
    vault.close()
    if out is not None:
        part = out.with_name(out.name + ".partial")
        part.write_bytes(sealed)
        part.replace(out)
        console.print(f"[green]✓[/] {n} datasets sealed into {out} ({len(sealed):,} bytes)")
    if to is not None:
        got = peer_client(node, to, ca).call("PUT", f"/backups/{node.did}", raw=sealed)
        console.print(f"[green]✓[/] {n} datasets sealed and kept by {to} (SHA-256 {got['sha256'][:16]}…)")


@vault_app.command("restore")
def vault_restore(
    home: Home,
    source: Annotated[Path | None, typer.Argument(help="A file from `qdsn vault backup`.")] = None,
    from_: Annotated[str | None, typer.Option("--from", help="Fetch it from the node that keeps it.")] = None,
    ca: Annotated[Path | None, typer.Option(help="A CA certificate (PEM) to trust for --from.")] = None,
) -> None:
    """Restore this node's vault from its sealed backup (into an empty vault), then check every batch
    against the ledger with `qdsn vault verify`."""
    from qdsn.data import backup

    node = open_node(home)
    if source is None and from_ is None:
        raise QDSNError("no backup to restore", "give its file, or --from URL of the node that keeps it")
    sealed = source.read_bytes() if source is not None else peer_client(node, str(from_), ca).call(
        "GET", f"/backups/{node.did}")  # fmt: skip
    owner = backup.parse_header(sealed).get("owner")
    if owner != node.did:
        raise QDSNError(f"the backup belongs to {owner}, not to this node ({node.did})",
                        "restore it with the owner's home")  # fmt: skip
    vault = node.vault()
    rows = backup.restore(sealed, vault.engine, node.kek)
    console.print(f"[green]✓[/] restored {rows} rows into {len(vault.datasets())} datasets; "
                  "check them: qdsn vault verify")  # fmt: skip
    vault.close()


@vault_app.command("shred")
def vault_shred(dataset: Annotated[str, typer.Argument(help="The dataset whose key to destroy.")], home: Home,
                operator: Operator = None, operator_ca: OperatorCA = None) -> None:  # fmt: skip
    """Destroy a dataset's key (crypto-shredding) and record it on the ledger. This cannot be undone."""
    node = linked_node(home, operator, operator_ca)
    try:
        node.vault.shred(dataset)
        receipts = node.submit([node.home.sign("dataset.shred", {"dataset": dataset})])
    finally:
        node.close()
    console.print(f"[green]✓[/] {dataset}: key destroyed, records unreadable, shredding on the ledger "
                  f"({logged(receipts)})")  # fmt: skip
