"""`qdsn schema`: the quality data model's JSON Schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qdsn.cli.common import (
    console,
)

schema_app = typer.Typer(help="The quality data model's JSON Schemas.", no_args_is_help=True)


@schema_app.command("export")
def schema_export(
    folder: Annotated[Path, typer.Argument(help="Where to write one NAME.schema.json per model.")],
) -> None:
    """Write the JSON Schema (draft 2020-12) of every quality data model: Enterprise, Lot, Measurement, …"""
    from qdsn.data.model import export_schemas

    for path in export_schemas(folder):
        console.print(f"[green]✓[/] {path}")
