"""File ingestion: read rows, validate every one against the data model, then seal them in the vault
batch by batch and anchor each batch on the ledger.

A file is checked whole before anything is written. Bad rows refuse the file, naming file, row and
field — or, with a quarantine file, the good rows go in and the bad ones are written aside with
their reasons. A CSV file is read in its own encoding (UTF-8, or as detected: GBK/GB18030 from
Excel on Chinese Windows); a row that cannot be decoded or parsed is a bad row like any other.

Ingestion resumes: each batch remembers which file (by content) it came from and how far into it,
and batches a crash left between the vault and the ledger are settled first, so the same command
run again after a crash finishes the job with every record stored once.
"""

from __future__ import annotations

import bisect
import codecs
import csv
import hashlib
import io
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from qdsn.data.model import MODELS, Record
from qdsn.data.vault import AnchorLookup, Batch, Source, Vault
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
    unit: str = "row"  # what `row` counts: "row", "line" of JSON Lines, or "event" in an EPCIS document

    def place(self) -> str:
        """Where the row is, in the words of its file type."""
        return f"{self.unit} {self.row}, {self.where}" if self.where else f"{self.unit} {self.row}"


@dataclass(frozen=True)
class Unreadable:
    """A row or line that could not be read at all (undecodable bytes, broken JSON, an oversize field):
    it is refused, or quarantined, naming its field, like a row that does not validate."""

    field: str
    reason: str
    text: str = ""
    unit: str = "row"


Row = tuple[int, str, Any]  # (row, line or event number; where inside it; its fields, or an Unreadable)


@dataclass
class Summary:
    """What a file ingestion did."""

    file: str
    dataset: str
    rows: int = 0
    accepted: int = 0
    quarantined: int = 0
    already: int = 0  # records of this file that an earlier (interrupted) run had stored
    # parts of an EPCIS document that are not records of this kind: (event, where, why)
    skipped: list[tuple[int, str, str]] = field(default_factory=list)
    batches: list[tuple[Batch, str]] = field(default_factory=list)  # (batch, anchoring txid)


# The largest CSV field read (the csv module's own default limit): a longer one is refused by row and column.
FIELD_LIMIT = 131_072
csv.field_size_limit(2**31 - 1)  # read oversize fields whole, so they are refused by name, not by traceback
# Multi-byte East Asian encodings a detector may name for a short Chinese file; GB18030 reads them as
# Chinese plants write them (Excel on Chinese Windows saves CSV as GBK, which GB18030 extends).
_CJK = {"gb2312", "gbk", "gb18030", "hz", "big5", "big5hkscs", "cp950", "cp949", "euc_kr", "johab", "cp932",
        "shift_jis", "shift_jis_2004", "shift_jisx0213", "euc_jp", "euc_jis_2004", "euc_jisx0213", "iso2022_jp",
        "iso2022_kr", "cp936"}  # fmt: skip


def detect_encoding(data: bytes) -> str:
    """The encoding of a text file: UTF-8 (with or without BOM) if it is that (or nearly: a few damaged
    bytes), else what charset-normalizer finds, with GB18030 for any East Asian or undetermined guess."""
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        # UTF-8 with a few damaged bytes stays UTF-8, so the rows holding them are named, not misread
        text = data.decode("utf-8", "surrogateescape")
        damaged = sum(1 for ch in text if 0xDC80 <= ord(ch) <= 0xDCFF)
        if sum(1 for ch in text if ord(ch) > 0x7F) >= 10 * damaged:
            return "utf-8"
    import charset_normalizer

    best = charset_normalizer.from_bytes(data).best()
    guess = codecs.lookup(best.encoding).name.replace("-", "_") if best is not None else "gb18030"
    return "gb18030" if guess in _CJK else guess


def _decode(path: Path, data: bytes, encoding: str | None) -> tuple[str, str, bool]:
    """(text, encoding, clean): undecodable bytes are kept as surrogates (clean False) for the rows
    holding them to be named."""
    enc = encoding or detect_encoding(data)
    try:
        codecs.lookup(enc)
    except LookupError:
        raise InvalidInput(
            f"{path}: unknown encoding {enc!r}", "name one Python knows, e.g. utf-8 or gb18030"
        ) from None
    try:
        return data.decode(enc), enc, True
    except UnicodeDecodeError:
        return data.decode(enc, errors="surrogateescape"), enc, False


def _undecodable(value: str) -> int | None:
    """The first byte that could not be decoded, if `value` holds one (as a surrogate)."""
    for ch in value:
        if 0xDC80 <= ord(ch) <= 0xDCFF:
            return ord(ch) - 0xDC00
    return None


def _csv_rows(path: Path, data: bytes, encoding: str | None) -> Iterator[tuple[int, Any]]:
    text, enc, clean = _decode(path, data, encoding)
    check = not clean or len(text) > FIELD_LIMIT  # only then can a field be undecodable or too long
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            return
        for col, name in enumerate(header, start=1):
            if (b := _undecodable(name)) is not None:
                raise InvalidInput(
                    f"{path}: row 1 (the header), column {col}: byte 0x{b:02x} is not {enc}",
                    "give the file's encoding with --encoding",
                )
        names = [h.strip() for h in header]
        for i, row in enumerate(reader, start=2):
            if check and (bad := _bad_field(row, names, enc)) is not None:
                yield i, bad
                continue
            yield i, {k: v.strip() for k, v in zip(names, row, strict=False) if k and v.strip() != ""}
    except csv.Error as e:
        raise InvalidInput(f"{path}: row {reader.line_num} is not CSV: {e}") from None


def _bad_field(row: list[str], names: list[str], enc: str) -> Unreadable | None:
    for col, value in enumerate(row):
        name = names[col] if col < len(names) and names[col] else f"column {col + 1}"
        if (b := _undecodable(value)) is not None:
            return Unreadable(
                name, f"byte 0x{b:02x} cannot be read as {enc}", value.encode(enc, "surrogateescape").hex()
            )
        if len(value) > FIELD_LIMIT:
            return Unreadable(name, f"the field holds {len(value)} characters; at most {FIELD_LIMIT} are read")
    return None


def _json_error(e: orjson.JSONDecodeError, text: str) -> tuple[str, str]:
    """(field, reason) of a JSON syntax error: the field is the last key before the error."""
    keys = re.findall(r'"((?:[^"\\]|\\.)*)"\s*:', text[: e.pos])
    return (keys[-1] if keys else "*"), f"not valid JSON at column {e.colno}: {e.msg}"


def _jsonl_rows(data: bytes) -> Iterator[tuple[int, Any]]:
    for i, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield i, orjson.loads(line)
        except orjson.JSONDecodeError as e:
            text = line.decode("utf-8", "replace")
            yield i, Unreadable(*_json_error(e, text), text[:200], "line")


def read_rows(path: Path, encoding: str | None = None) -> Iterator[tuple[int, Any]]:
    """(row number, fields) of a CSV file (with a header) or a JSON array / JSON Lines file; a row
    that cannot be read is an `Unreadable` in place of its fields."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson", ".json"):
        raise InvalidInput(f"{path}: unknown file type {suffix!r}", "use .csv, .json or .jsonl")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InvalidInput(f"{path}: cannot be read: {e.strerror or e}") from None
    if suffix == ".csv":
        yield from _csv_rows(path, data, encoding)
    elif suffix in (".jsonl", ".ndjson"):
        yield from _jsonl_rows(data)
    else:
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError as e:
            text = data.decode("utf-8", "replace")
            name, why = _json_error(e, text)
            line = text.count("\n", 0, e.pos) + 1
            raise InvalidInput(f"{path}: line {line}, field {name!r}: {why}; nothing was written") from None
        if not isinstance(parsed, list):
            raise InvalidInput(f"{path}: a JSON file holds an array of records")
        yield from enumerate(parsed, start=1)


def file_rows(path: Path, encoding: str | None = None) -> Iterator[Row]:
    """The rows of a CSV or JSON file, as `validate` takes them."""
    return ((i, "", row) for i, row in read_rows(path, encoding))


def _unit_of(path: Path) -> str:
    return (
        "line"
        if path.suffix.lower() in (".jsonl", ".ndjson")
        else "record"
        if path.suffix.lower() == ".json"
        else "row"
    )


def _check(
    rows: Iterable[Row], kind: str, now: datetime | None, unit: str
) -> tuple[list[dict[str, Any]], list[int], list[tuple[int, BadRow]]]:
    """(good records, the position of each in `rows`, (position, bad row) each)."""
    model: type[Record] = MODELS[KIND_MODELS[kind]]
    context = {"now": now} if now else None
    good, at, bad = [], [], []
    for n, (i, where, row) in enumerate(rows):
        if isinstance(row, Unreadable):
            bad.append((n, BadRow(i, row.field, row.reason, {"text": row.text} if row.text else {}, where, row.unit)))
            continue
        if not isinstance(row, dict):
            bad.append((n, BadRow(i, "*", "a record must be an object", {"value": row}, where, unit)))
            continue
        try:
            good.append(model.model_validate(row, context=context).model_dump(mode="json", exclude_none=True))
            at.append(n)
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(p) for p in err["loc"]) or "*"
            bad.append((n, BadRow(i, loc, err["msg"], row, where, unit)))
    return good, at, bad


def validate(
    path_or_rows: Path | Iterable[Row],
    kind: str,
    *,
    now: datetime | None = None,
    unit: str = "row",
    encoding: str | None = None,
) -> tuple[list[dict[str, Any]], list[BadRow]]:
    """Every row (of a file, or given) checked against the model of a dataset `kind`: (good records, bad rows)."""
    if isinstance(path_or_rows, Path):
        unit = _unit_of(path_or_rows)
        path_or_rows = file_rows(path_or_rows, encoding)
    good, _, bad = _check(path_or_rows, kind, now, unit)
    return good, [b for _, b in bad]


def _digest(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            return hashlib.file_digest(f, "sha256").digest()
    except OSError as e:
        raise InvalidInput(f"{path}: cannot be read: {e.strerror or e}") from None


def _set_aside(quarantine: Path, path: Path, digest: bytes, bad: list[tuple[int, BadRow]]) -> int:
    """Append bad rows to the quarantine file (created 0600: it holds plant data), each once: rows
    an earlier run of the same file set aside are not written again. Synced before any batch."""
    source = digest.hex()
    done: set[str] = set()
    try:
        for line in quarantine.read_bytes().splitlines():
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # a line cut short by a crash
            if isinstance(entry, dict) and entry.get("source") == source:
                done.add(str(entry.get("at")))
    except FileNotFoundError:
        pass
    except OSError as e:
        raise InvalidInput(f"{quarantine}: cannot be read: {e.strerror or e}") from None
    new = [b for _, b in bad if b.place() not in done]
    if not new:
        return 0
    fd = os.open(quarantine, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "ab") as f:
        if f.tell() and not quarantine.read_bytes().endswith(b"\n"):
            f.write(b"\n")  # end a line a crash cut short
        for b in new:
            entry = {"file": str(path), "source": source, "at": b.place(), "row": b.row, "field": b.field}
            f.write(orjson.dumps(entry | {"reason": b.reason, "data": b.data}) + b"\n")
        f.flush()
        os.fsync(f.fileno())
    return len(new)


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
    unit: str | None = None,
    refused: Iterable[BadRow] = (),
    lookup: AnchorLookup | None = None,
    encoding: str | None = None,
) -> Summary:
    """Validate `path` (or the `rows` read from it), then seal its records in `dataset` in batches, each
    anchored through `anchor(batch) -> txid` before the next is committed. `refused` are rows a reader
    already found bad.

    Resumable: batches an interrupted run left unanchored are settled with the ledger first (`lookup`
    finds an anchor that reached it), and records of this file (by content) already stored are skipped,
    so running the same command again after a crash stores every record exactly once."""
    vault.settle(dataset, anchor, lookup)
    digest = _digest(path)
    if rows is None:
        rows, unit = file_rows(path, encoding), unit or _unit_of(path)
    good, at, bad = _check(rows, kind, now, unit or "row")
    bad = [(-1, b) for b in refused] + bad
    summary = Summary(str(path), dataset, rows=len(good) + len(bad))
    if bad and quarantine is None:
        shown = "; ".join(f"{b.place()}, field {b.field!r}: {b.reason}" for _, b in bad[:3])
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        raise InvalidInput(
            f"{path}: {len(bad)} bad rows — {shown}{more}; nothing was written",
            "fix the rows, or pass --quarantine FILE to keep the good ones and set the bad aside",
        )
    if bad and quarantine is not None:
        _set_aside(quarantine, path, digest, bad)
        summary.quarantined = len(bad)
    done = vault.source_done(dataset, digest)
    skip = bisect.bisect_left(at, done)
    summary.already = skip
    good, at = good[skip:], at[skip:]
    cuts = range(0, len(good), batch_size)
    source = Source(digest, [at[min(i + batch_size, len(good)) - 1] + 1 for i in cuts])
    for batch in vault.add_stream(dataset, (good[i : i + batch_size] for i in cuts), source):
        txid = vault.anchor_batch(batch, anchor, lookup)
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
