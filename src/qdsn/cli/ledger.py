"""`qdsn ledger`: entries, proofs, checkpoints, audits, export and import."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.table import Table

from qdsn.cli.common import (
    VERDICT_CODES,
    Home,
    Operator,
    OperatorCA,
    console,
    err,
    id_column,
    linked_node,
    logged,
    open_node,
    party,
    print_json,
    progress_bar,
    render_verdict,
    replica,
)
from qdsn.cli.member import registered
from qdsn.errors import NotFound, QDSNError
from qdsn.ledger import merkle, tx
from qdsn.ledger.checkpoint import parse_verifier
from qdsn.ledger.store import Store
from qdsn.node import NodeHome

ledger_app = typer.Typer(help="The consortium ledger: entries, proofs, checkpoints, audits.", no_args_is_help=True)


@ledger_app.command("show")
def ledger_show(
    home: Home,
    last: Annotated[int, typer.Option(help="How many of the newest entries.")] = 20,
    type: Annotated[str | None, typer.Option("--type", help="Only entries of this transaction type.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, payloads included.")] = False,
) -> None:
    """List the newest entries of this node's ledger replica (one in full: qdsn ledger entry N)."""
    if type is not None and type not in tx.REGISTRY:
        raise QDSNError(f"no transaction type {type!r}", f"use one of: {', '.join(sorted(tx.REGISTRY))}")
    ledger = replica(open_node(home))
    try:
        rows = ledger.store.rows_of_type(type)[-last:] if type else ledger.store.rows(max(0, ledger.size - last),
                                                                                          ledger.size)  # fmt: skip
        if as_json:
            print_json([_entry_json(ledger, row) for row in rows])
            return
        title = f"{ledger.origin} — {ledger.size} entries, root {ledger.root().hex()}"
        table = Table("seq", "type", title=title + (f"; the last {len(rows)} of type {type}" if type else ""))
        table.add_column("submitter", overflow="fold")
        id_column(table, "txid")
        table.add_column("about")
        for row in rows:
            about = registered(tx.from_leaf(row.leaf).payload) if row.type == "identity.register" else ""
            table.add_row(str(row.seq), row.type, party(ledger.state, row.submitter), row.txid, about)
    finally:
        ledger.close()
    console.print(table)


@ledger_app.command("entry")
def ledger_entry(
    entry: Annotated[str, typer.Argument(help="The entry's position (from 0) or its transaction id.")],
    home: Home,
) -> None:
    """One entry of this node's ledger replica in full, as JSON: position, id, submitter and the payload."""
    ledger = replica(open_node(home))
    try:
        if entry.isdigit():
            row = ledger.store.entry(seq=int(entry))
        elif len(entry) == 64 and all(c in "0123456789abcdef" for c in entry.lower()):
            row = ledger.store.entry(txid=entry.lower())
        else:
            raise QDSNError(f"{entry!r} is neither an entry's position nor a transaction id",
                            "give a number from 0, or a 64-hex txid as `qdsn ledger show` lists them")  # fmt: skip
        doc = _entry_json(ledger, row)
    except NotFound as e:
        raise NotFound(
            e.what, f"the replica holds entries 0 to {ledger.size - 1}; see them with qdsn ledger show"
        ) from None
    finally:
        ledger.close()
    print_json(doc)


def _entry_json(ledger, row) -> dict:  # type: ignore[no-untyped-def]
    env = tx.from_leaf(row.leaf)
    ident = ledger.state.identities.get(row.submitter)
    return {"seq": row.seq, "txid": row.txid, "type": row.type, "submitter": row.submitter,
            "submitter_name": ident.name if ident else None, "created": env.created, "nonce": env.nonce,
            "payload": env.payload}  # fmt: skip


@ledger_app.command("append")
def ledger_append(
    type: Annotated[str, typer.Argument(help=f"One of: {', '.join(sorted(tx.REGISTRY))}.")],
    payload: Annotated[str, typer.Argument(help="The payload as JSON, or @FILE.")],
    home: Home,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Sign a transaction with this node's key and put it on the consortium's log."""
    raw = Path(payload[1:]).read_bytes() if payload.startswith("@") else payload.encode()
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise QDSNError(f"payload is not JSON: {e}", "pass a JSON object or @file.json") from None
    if not isinstance(obj, dict):
        raise QDSNError("the payload is not a JSON object", "pass a JSON object or @file.json")
    node = linked_node(home, operator, operator_ca)
    try:
        receipts = node.submit([node.home.sign(type, obj)])
    finally:
        node.close()
    console.print(f"[green]✓[/] appended {type} as {receipts[0].txid} ({logged(receipts)})")


@ledger_app.command("prove")
def ledger_prove(
    home: Home,
    index: Annotated[int | None, typer.Option(help="Prove inclusion of this entry (0-based).")] = None,
    old_size: Annotated[int | None, typer.Option(help="Prove consistency from this size.")] = None,
    size: Annotated[int | None, typer.Option(help="The tree size to prove against (default: now).")] = None,
) -> None:
    """Print and check an inclusion proof (--index) or a consistency proof (--old-size)."""
    ledger = replica(open_node(home))
    size = ledger.size if size is None else size
    if index is not None:
        proof = ledger.inclusion_proof(index, size)
        leaf = merkle.leaf_hash(ledger.store.leaves(index, index + 1)[0])
        merkle.verify_inclusion(leaf, index, size, proof, ledger.root_at(size))
        out = {"index": index, "size": size, "leaf_hash": leaf.hex(), "root": ledger.root_at(size).hex()}
    elif old_size is not None:
        proof = ledger.consistency_proof(old_size, size)
        merkle.verify_consistency(old_size, size, ledger.root_at(old_size), ledger.root_at(size), proof)
        out = {
            "old_size": old_size,
            "size": size,
            "old_root": ledger.root_at(old_size).hex(),
            "root": ledger.root_at(size).hex(),
        }
    else:
        raise QDSNError("nothing to prove", "pass --index N or --old-size N")
    console.print_json(json.dumps({**out, "proof": [p.hex() for p in proof], "verified": True}))


@ledger_app.command("checkpoint")
def ledger_checkpoint(home: Home) -> None:
    """Sign a C2SP checkpoint of the log as it is now and print the signed note."""
    from qdsn.node import seen
    from qdsn.node.onboard import key_fingerprint

    node = open_node(home)
    ledger = replica(node)
    note = ledger.sign_checkpoint(node.log_signer())
    seen.remember(node.path, note, node.log_signer().verifier(), ledger.store)
    sys.stdout.write(note)
    console.print(f"[dim]log key: {node.log_signer().verifier().text()}[/]", highlight=False)
    console.print(f"[dim]its fingerprint, for members who join: {key_fingerprint(node.log_signer().verifier())}[/]",
                  highlight=False)  # fmt: skip


def _peer_checkpoint(url: str, ca: str | None = None) -> str:
    import ssl

    import httpx

    try:
        r = httpx.get(url.rstrip("/") + "/ledger/checkpoint", timeout=10,
                      verify=ssl.create_default_context(cafile=ca) if ca else True)  # fmt: skip
        r.raise_for_status()
    except httpx.HTTPError as e:
        raise NotFound(f"peer {url} did not give its checkpoint ({e})", "check the URL, or verify offline") from None
    return r.text


@ledger_app.command("verify", help="Audit a whole ledger: every hash, signature, state change and checkpoint, "
                    "after the database's own integrity check; a node's replica is also checked against the "
                    "newest checkpoint the node has seen and the peers' (--peer), so a rolled-back copy is "
                    "reported. " + VERDICT_CODES)  # fmt: skip
def ledger_verify(
    home: Home,
    db: Annotated[Path | None, typer.Option(help="Audit this ledger database instead of the node's.")] = None,
    log_key: Annotated[str | None, typer.Option(help="The log's verifier key (name+id+base64).")] = None,
    allow_empty: Annotated[
        bool, typer.Option("--allow-empty", help="An empty or missing ledger is verified (0 entries), not an error.")
    ] = False,
    peer: Annotated[
        list[str] | None, typer.Option(help="A peer's API URL whose current checkpoint the replica must not be behind.")
    ] = None,
) -> None:
    from qdsn.ledger.audit import verify_ledger
    from qdsn.node import seen

    node = None if db else NodeHome.open(home, passphrase="")
    url = str(db) if db else node.ledger_location()  # type: ignore[union-attr]
    key = parse_verifier(log_key) if log_key else None
    notes = [_peer_checkpoint(u) for u in peer or []]
    service = node.service() if node is not None and not peer else {}
    if service.get("operator"):  # the node's own log operator, when it can be reached
        try:
            notes.append(_peer_checkpoint(str(service["operator"]), service.get("operator_ca")))
        except NotFound as e:
            err.print(f"[yellow]… {e.what}; the replica is checked against what this node saw[/]", highlight=False)

    def guard(store: Store) -> None:
        seen.guard(node.path if node else None, store, key, notes)

    with progress_bar("auditing") as bar:
        task = bar.add_task("audit")
        verdict = verify_ledger(url, log_key=key, origin=node.origin if node else None, allow_empty=allow_empty,
                                seen=guard, progress=lambda n: bar.update(task, completed=n))  # fmt: skip
    render_verdict(verdict)


@ledger_app.command("export")
def ledger_export(
    out: Annotated[Path, typer.Argument(help="The backup file to write (gzip'd JSON lines).")], home: Home
) -> None:
    """Write a self-verifying backup of this node's replica: every entry, its root and signed checkpoints."""
    from qdsn.ledger import backup

    ledger = replica(NodeHome.open(home, passphrase=""))
    with progress_bar("exporting") as bar:
        task = bar.add_task("export", total=ledger.size)
        n = backup.export(ledger, out, progress=lambda k: bar.update(task, completed=k))
    console.print(f"[green]✓[/] {n} entries of {ledger.origin}, root {ledger.root().hex()[:16]}…, in {out}")
    ledger.close()


@ledger_app.command("import")
def ledger_import(
    source: Annotated[Path, typer.Argument(help="A backup written by `qdsn ledger export`.")], home: Home
) -> None:
    """Restore this node's replica from a backup. Every entry is validated again as it is replayed, the
    root and every checkpoint are checked, and the replica appears only when all of it holds."""
    from qdsn.ledger import backup
    from qdsn.node.follow import log_key
    from qdsn.node.lock import HomeLock

    node_home = NodeHome.open(home, passphrase="")
    target = node_home.ledger_location()
    if "://" in target:
        raise QDSNError("a replica in a database server is restored by replaying from a peer",
                        "import into a home with a SQLite replica, or follow the log")  # fmt: skip
    lock = HomeLock.take(node_home.path, "qdsn ledger import")
    if not isinstance(lock, HomeLock):  # the replica is replaced whole: nobody may be writing it
        raise QDSNError(f"{lock.what} (pid {lock.pid}) is using {home}", "stop it first, then import")
    try:
        with progress_bar("replaying") as bar:
            task = bar.add_task("import", total=None)
            ledger = backup.restore(source, target, log_key, progress=lambda k: bar.update(task, completed=k),
                                    origin=node_home.origin)  # fmt: skip
    finally:
        lock.release()
    notes = ledger.store.checkpoint_notes()
    console.print(f"[green]✓ restored[/] {ledger.size} entries, every one validated; root "
                  f"{ledger.root().hex()[:16]}… matches; {len(notes)} checkpoints consistent")  # fmt: skip
    ledger.close()


@ledger_app.command("status")
def ledger_status(
    home: Home,
    quorum: Annotated[int | None, typer.Option(help="Cosignatures that make a checkpoint trusted.")] = None,
) -> None:
    """This replica at a glance: size and root, the etcd position it has applied, the latest checkpoint
    a quorum has cosigned, and every split-view alert on the ledger."""
    from qdsn.ledger.ordering.etcd import POSITION
    from qdsn.node import witness

    node_home = open_node(home)
    quorum = quorum if quorum is not None else int(node_home.service().get("quorum", 1))
    ledger = replica(node_home)
    size, position = ledger.mark(POSITION)
    table = Table(show_header=False, title=f"{ledger.origin}")
    table.add_row("entries", str(size))
    table.add_row("root", ledger.root().hex())
    table.add_row("ordering", f"etcd, position {position}" if position else "embedded")
    trusted = witness.trusted(ledger, quorum)
    seen = f"size {trusted[0]}, cosigned by {len(trusted[1])}" if trusted else "[yellow]none yet[/]"
    table.add_row(f"trusted (quorum {quorum})", seen)
    alerts = ledger.store.rows_of_type("alert.raise")
    table.add_row("alerts", f"[red]{len(alerts)}[/]" if alerts else "[green]none[/]")
    console.print(table)
    for row in alerts:
        p = tx.from_leaf(row.leaf).payload
        a, b = p["claims"]
        console.print(f"[red]✗ split view[/] at size {p['size']} (entry {row.seq}): {a['signer'][:28]}… claims "
                      f"{a['root'][:12]}…, {b['signer'][:28]}… claims {b['root'][:12]}…")  # fmt: skip
    ledger.close()
