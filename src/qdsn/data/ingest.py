"""File ingestion: read rows, validate every one against the data model, then seal them in the vault
batch by batch and anchor each batch on the ledger.

A file is checked whole before anything is written. Bad rows refuse the file, naming file, row and
field — or, with a quarantine file, the good rows go in and the bad ones are written aside with
their reasons.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from qdsn.data.model import MODELS, Record
from qdsn.data.vault import Batch, Vault
from qdsn.errors import InvalidInput

KIND_MODELS = {
    "measurements": "Measurement",
    "inspections": "Inspection",
    "nonconformances": "NonConformance",
    "corrective_actions": "CorrectiveAction",
    "compliance": "ComplianceRecord",
}


@dataclass
class BadRow:
    """A row refused by validation, and why."""

    row: int  # 1-based: the header of a CSV file is row 1; in an EPCIS document, the event's position
    field: str
    reason: str
    data: dict[str, Any]
    where: str = ""  # inside an EPCIS event, e.g. "sensorElementList[0].sensorReport[2]"
    unit: str = "row"  # what `row` counts: "row", or "event" in an EPCIS document

    def place(self) -> str:
        """Where the row is, in the words of its file type."""
        return f"{self.unit} {self.row}, {self.where}" if self.where else f"{self.unit} {self.row}"


Row = tuple[int, str, dict[str, Any]]  # (row or event number, where inside it, fields)


@dataclass
class Summary:
    """What a file ingestion did."""

    file: str
    dataset: str
    rows: int = 0
    accepted: int = 0
    quarantined: int = 0
    # parts of an EPCIS document that are not records of this kind: (event, where, why)
    skipped: list[tuple[int, str, str]] = field(default_factory=list)
    batches: list[tuple[Batch, str]] = field(default_factory=list)  # (batch, anchoring txid)


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, fields) of a CSV file (with a header) or a JSON array / JSON Lines file."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with path.open(newline="", encoding="utf-8-sig") as f:
                for i, row in enumerate(csv.DictReader(f), start=2):
                    yield i, {k.strip(): v.strip() for k, v in row.items() if k and v is not None and v.strip() != ""}
        elif suffix in (".jsonl", ".ndjson"):
            with path.open("rb") as f:
                for i, line in enumerate(f, start=1):
                    if line.strip():
                        yield i, orjson.loads(line)
        elif suffix == ".json":
            data = orjson.loads(path.read_bytes())
            if not isinstance(data, list):
                raise InvalidInput(f"{path}: a JSON file holds an array of records")
            yield from enumerate(data, start=1)
        else:
            raise InvalidInput(f"{path}: unknown file type {suffix!r}", "use .csv, .json or .jsonl")
    except (OSError, UnicodeDecodeError, orjson.JSONDecodeError) as e:
        raise InvalidInput(f"{path}: cannot be read: {e}") from None


def file_rows(path: Path) -> Iterator[Row]:
    """The rows of a CSV or JSON file, as `validate` takes them."""
    return ((i, "", row) for i, row in read_rows(path))


def validate(
    path_or_rows: Path | Iterable[Row], kind: str, *, now: datetime | None = None, unit: str = "row"
) -> tuple[list[dict[str, Any]], list[BadRow]]:
    """Every row (of a file, or given) checked against the model of a dataset `kind`: (good records, bad rows)."""
    model: type[Record] = MODELS[KIND_MODELS[kind]]
    context = {"now": now} if now else None
    rows = file_rows(path_or_rows) if isinstance(path_or_rows, Path) else path_or_rows
    good, bad = [], []
    for i, where, row in rows:
        if not isinstance(row, dict):
            bad.append(BadRow(i, "*", "a record must be an object", {"value": row}, where, unit))
            continue
        try:
            good.append(model.model_validate(row, context=context).model_dump(mode="json", exclude_none=True))
        except ValidationError as e:
            err = e.errors()[0]
            at = ".".join(str(p) for p in err["loc"]) or "*"
            bad.append(BadRow(i, at, err["msg"], row, where, unit))
    return good, bad


def ingest(
    path: Path,
    vault: Vault,
    dataset: str,
    kind: str,
    anchor: Callable[[Batch], str],
    *,
    batch_size: int = 10_000,
    quarantine: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    now: datetime | None = None,
    rows: Iterable[Row] | None = None,
    unit: str = "row",
    refused: Iterable[BadRow] = (),
) -> Summary:
    """Validate `path` (or the `rows` read from it), then seal its records in `dataset` in batches, each
    anchored through `anchor(batch) -> txid` before the next is committed. `refused` are rows a reader
    already found bad."""
    good, bad = validate(path if rows is None else rows, kind, now=now, unit=unit)
    bad = [*refused, *bad]
    summary = Summary(str(path), dataset, rows=len(good) + len(bad))
    if bad and quarantine is None:
        shown = "; ".join(f"{b.place()}, field {b.field!r}: {b.reason}" for b in bad[:3])
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        raise InvalidInput(
            f"{path}: {len(bad)} bad rows — {shown}{more}; nothing was written",
            "fix the rows, or pass --quarantine FILE to keep the good ones and set the bad aside",
        )
    if bad and quarantine is not None:
        with quarantine.open("ab") as f:
            for b in bad:
                f.write(
                    orjson.dumps(
                        {"file": str(path), "at": b.place(), "row": b.row, "field": b.field, "reason": b.reason}
                        | {"data": b.data}
                    )
                    + b"\n"
                )
        summary.quarantined = len(bad)
    for batch in vault.add_stream(dataset, (good[i : i + batch_size] for i in range(0, len(good), batch_size))):
        txid = anchor(batch)
        vault.mark_anchored(batch, txid)
        summary.batches.append((batch, txid))
        summary.accepted += batch.count
        if progress:
            progress(summary.accepted, len(good))
    return summary


def ingest_epcis(
    path: Path,
    vault: Vault,
    dataset: str,
    kind: str,
    anchor: Callable[[Batch], str],
    *,
    units: dict[str, str] | None = None,
    **options: Any,
) -> Summary:
    """`ingest` for the records of `kind` in an EPCIS 2.0 document (see `qdsn.data.epcis`); `units` are the
    dataset's declared characteristic units."""
    from qdsn.data import epcis

    found = epcis.extract(epcis.load(path), kind, units)
    summary = ingest(
        path, vault, dataset, kind, anchor, rows=found.rows, unit="event", refused=found.refused, **options
    )
    summary.skipped = found.skipped
    return summary
