"""`qdsn model`: certification model packages — pack, hash, publish."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from qdsn.compute import package

console = Console(emoji=False)
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
