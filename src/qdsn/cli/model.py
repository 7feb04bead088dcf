"""`qdsn model`: certification model packages — pack, hash, publish."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qdsn.cli.common import Home, Operator, OperatorCA, console, linked_node, logged
from qdsn.compute import package

model_app = typer.Typer(
    help="Certification model packages: a folder with manifest.json and the model's Python source, identified by "
    "the SHA-256 of its canonical archive (sorted paths, no timestamps), the same on every machine.",
    no_args_is_help=True,
)
Source = Annotated[Path, typer.Argument(help="A model folder, or an archive made by `qdsn model pack`.")]


def _load(source: Path) -> tuple[bytes, package.Manifest]:
    if not source.exists() and "/" not in str(source):
        source = package.builtin(str(source))  # a built-in model by name
    return package.load(source)


@model_app.command("pack")
def model_pack(
    source: Source,
    out: Annotated[Path | None, typer.Option(help="Where to write the archive (default ID-VERSION.tar).")] = None,
) -> None:
    """Write the package's canonical archive and print its code hash."""
    blob, m = _load(source)
    out = out or Path(f"{m.id}-{m.version}.tar")
    out.write_bytes(blob)
    console.print(f"[green]✓[/] {m.id} {m.version} → {out} ({len(blob):,} bytes), code hash {package.code_hash(blob)}")


@model_app.command("hash")
def model_hash(source: Source) -> None:
    """Print the package's code hash (SHA-256 of its canonical archive)."""
    blob, _ = _load(source)
    print(package.code_hash(blob))


@model_app.command("publish")
def model_publish(
    source: Annotated[Path, typer.Argument(help="A model folder or archive, or a built-in model's name.")],
    home: Home,
    operator: Operator = None,
    operator_ca: OperatorCA = None,
) -> None:
    """Publish a certification model on the ledger (certification bodies only): id, version, code hash and
    manifest, so that manufacturers can approve jobs by its hash."""
    from qdsn.compute.package import code_hash

    blob, m = _load(source)
    node = linked_node(home, operator, operator_ca)
    try:
        payload = {"model": m.id, "version": m.version, "hash": code_hash(blob), "manifest": m.model_dump(mode="json")}
        receipts = node.submit([node.home.sign("model.publish", payload)])
    finally:
        node.close()
    console.print(f"[green]✓[/] {m.id} {m.version} published ({logged(receipts)}), code hash {payload['hash'][:16]}…")
