"""`qdsn stats`: private statistics with Prio3 (draft-irtf-cfrg-vdaf); `vector` checks the implementation
against the draft's published test vectors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qdsn.cli.common import console, err

stats_app = typer.Typer(
    help="Private statistics: Prio3 reports secret-shared between two aggregators, each checked by a "
    "validity proof before it is counted.",
    no_args_is_help=True,
)


@stats_app.command("vector")
def vector_cmd(
    files: Annotated[list[Path], typer.Argument(help="Test vectors in the draft's JSON form (e.g. Prio3Sum_0.json).")],
    vdaf: Annotated[
        str | None,
        typer.Option(help="The Prio3 variant (e.g. Prio3Sum), for a file whose name does not start with it."),
    ] = None,
) -> None:
    """Run each test vector through Prio3: every operation it lists, with its expected success or failure,
    every byte it gives. Exit 0 only when all of it matches; otherwise name the first difference.

    Exit codes: 0 every file matches; 1 a difference (the first is named); 2 a file that is not a test vector."""
    from qdsn.privacy.vectors import run_vector_file

    code = 0
    for path in files:
        result = run_vector_file(path, vdaf)
        if result.ok:
            console.print(f"[green]✓[/] {path}: {result.summary}", highlight=False)
        else:
            code = max(code, 1 if result.readable else 2)
            err.print(f"[bold red]✗[/] {path}: {result.summary}", highlight=False)
    if code:
        raise typer.Exit(code)
