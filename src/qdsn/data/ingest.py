"""File ingestion: read rows, validate every one against the data model, then seal them in the vault
batch by batch and anchor each batch on the ledger.

A file is checked whole before anything is written. A file that does not fit at all — empty, a column
the model does not have, a required one missing — is refused with one message naming it. Bad rows
refuse the file, naming file, row and field — or, with a quarantine file, the good rows go in and the
bad ones are written aside with their reasons. A CSV file is read as plants write it: in its own
encoding (UTF-8 with or without a byte-order mark, or as detected: GBK/GB18030 from Excel on Chinese
Windows), `,` or `;` between cells (decimal commas read in numbers), `NA` for an empty cell; its row
numbers are the file's line numbers, blank lines skipped. Columns may be mapped to the model's fields
(`Layout.columns`), and times written without an offset read in a named zone (`Layout.tz`). A
measurement of a characteristic the dataset does not declare is a bad row.

Ingestion is idempotent: every stored record is known by its content key, so the same records ingested
again — the same file after a crash or twice, a part of it, re-saved in another encoding or order, or
grown since — are skipped and reported as already stored, and only records the dataset does not hold
are added; batches a crash left between the vault and the ledger are settled first.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
import re
import types
import typing
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from pydantic import ValidationError

from qdsn.data import epcis
from qdsn.data.model import MODELS, Record
from qdsn.data.rows import BadRow, Row, Unreadable
from qdsn.data.vault import AnchorLookup, Batch, Vault, canonical_records
from qdsn.errors import InvalidInput

__all__ = ["KIND_MODELS", "BadRow", "Layout", "Row", "Summary", "Unreadable", "ingest", "ingest_epcis", "validate"]

KIND_MODELS = {
    "measurements": "Measurement",
    "inspections": "Inspection",
    "nonconformances": "NonConformance",
    "corrective_actions": "CorrectiveAction",
    "compliance": "ComplianceRecord",
    "activity": "Activity",
}


@dataclass(frozen=True)
class Layout:
    """How a plant's file says what the model says: its column names mapped to fields (file column →
    field), the IANA zone of times written without an offset, and whether columns the model does not
    have are left out rather than refusing the file."""

    columns: Mapping[str, str] = field(default_factory=dict)
    tz: str | None = None
    ignore_extra: bool = False

    def zone(self) -> ZoneInfo | None:
        if self.tz is None:
            return None
        try:
            return ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidInput(
                f"unknown time zone {self.tz!r}", "give an IANA zone name, e.g. Asia/Shanghai or Europe/Berlin"
            ) from None


@dataclass
class Summary:
    """What a file ingestion did."""

    file: str
    dataset: str
    rows: int = 0
    accepted: int = 0
    quarantined: int = 0
    already: int = 0  # records the dataset already held (an earlier run of the same records): not stored again
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


def _delimiter(text: str) -> str:
    """`,` or `;` (or a tab) between cells: whichever the header line holds most of, outside quotes."""
    first = re.sub(r'"[^"]*"', "", text.lstrip("\r\n").split("\n", 1)[0])
    counts = {d: first.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _csv_rows(
    path: Path, data: bytes, encoding: str | None, on_header: Callable[[list[str]], None] | None = None
) -> Iterator[tuple[int, Any]]:
    text, enc, clean = _decode(path, data, encoding)
    text = text.removeprefix("\ufeff")  # a byte-order mark, even when the encoding was given as utf-8
    check = not clean or len(text) > FIELD_LIMIT  # only then can a field be undecodable or too long
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    try:
        header = None
        while header is None:
            header = next(reader, None)
            if header is None:
                return
            if not any(h.strip() for h in header):
                header = None  # blank lines before the header
        for col, name in enumerate(header, start=1):
            if (b := _undecodable(name)) is not None:
                raise InvalidInput(
                    f"{path}: the header, column {col}: byte 0x{b:02x} is not {enc}",
                    "give the file's encoding with --encoding",
                )
        names = [h.strip() for h in header]
        if on_header is not None:
            on_header([n for n in names if n])
        line = reader.line_num  # the file's line a row starts on: blank lines and quoted line breaks counted
        for row in reader:
            at, line = line + 1, reader.line_num
            if not any(v.strip() for v in row):
                continue  # a blank line, or one of empty cells (Excel leaves them at the end)
            if check and (bad := _bad_field(row, names, enc)) is not None:
                yield at, bad
                continue
            if len(row) > len(names) and any(v.strip() for v in row[len(names) :]):
                yield at, Unreadable("*", f"the row has {len(row)} cells, the header names {len(names)}")
                continue
            yield at, {k: v.strip() for k, v in zip(names, row, strict=False) if k and v.strip() not in _EMPTY}
    except csv.Error as e:
        raise InvalidInput(f"{path}: line {reader.line_num} is not CSV: {e}") from None


# What spreadsheets and R write in a cell that holds nothing.
_EMPTY = frozenset(("", "NA", "N/A", "#N/A", "n/a", "na", "NULL", "null"))


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


def read_rows(
    path: Path, encoding: str | None = None, on_header: Callable[[list[str]], None] | None = None
) -> Iterator[tuple[int, Any]]:
    """(row number, fields) of a CSV file (with a header, given to `on_header` first) or a JSON array /
    JSON Lines file; a row that cannot be read is an `Unreadable` in place of its fields."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson", ".json"):
        raise InvalidInput(f"{path}: unknown file type {suffix!r}", "use .csv, .json or .jsonl")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InvalidInput(f"{path}: cannot be read: {e.strerror or e}") from None
    if suffix == ".csv":
        yield from _csv_rows(path, data, encoding, on_header)
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


def _types(model: type[Record]) -> tuple[set[str], set[str], set[str]]:
    """(every field, the fractional-number fields, the time fields) of a model."""

    def kinds(annotation: Any) -> set[Any]:
        args = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else ()
        return set(args) if args else {annotation}

    fields = model.model_fields
    return (
        set(fields),
        {n for n, f in fields.items() if float in kinds(f.annotation)},
        {n for n, f in fields.items() if datetime in kinds(f.annotation)},
    )


_DECIMAL_COMMA = re.compile(r"^[+-]?\d*,\d+(?:[eE][+-]?\d+)?$")
_SLASHED = re.compile(r"^(\d{4})/(\d{1,2})/(\d{1,2})(.*)$")  # 2026/3/1 8:00, as Excel on Chinese Windows writes it


def _local_time(value: str, zone: ZoneInfo | None) -> str:
    """`value` in ISO 8601 (from 2026/3/1 8:00 too), with the zone's offset if it was written without one."""
    if m := _SLASHED.match(value):
        y, mo, d, rest = m.groups()
        clock = rest.strip()
        if clock:
            h, _, ms = clock.partition(":")
            clock = "T" + h.zfill(2) + ":" + ms
        value = f"{y}-{int(mo):02d}-{int(d):02d}{clock}"
    if zone is None:
        return value
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return value  # not a time: the model says so
    return t.replace(tzinfo=zone).isoformat() if t.tzinfo is None else value


class _Shape:
    """Rows as read, made into the model's fields: columns mapped, extra columns refused whole (or left
    out), empty cells dropped, decimal commas read, times without an offset put in the zone given."""

    def __init__(self, path: Path, model: type[Record], layout: Layout) -> None:
        self.path, self.model, self.layout, self.zone = path, model, layout, layout.zone()
        self.fields, self.fractional, self.times = _types(model)
        for column, name in layout.columns.items():
            if name not in self.fields:
                raise InvalidInput(
                    f"--map {column}={name}: a {model.__name__} has no field {name!r}",
                    f"map to one of: {', '.join(sorted(self.fields))}",
                )

    def header(self, names: Iterable[str], where: str) -> None:
        """Refuse a file whose columns (keys) the model does not have, in one message."""
        extra = [n for n in dict.fromkeys(names) if self.layout.columns.get(n, n) not in self.fields]
        if extra and not self.layout.ignore_extra:
            many = len(extra) > 1
            raise InvalidInput(
                f"{self.path}: {where}{'s' if many else ''} {', '.join(map(repr, extra))} "
                f"{'are not fields' if many else 'is not a field'} of a {self.model.__name__} "
                f"({', '.join(sorted(self.fields))}); nothing was written",
                f"map a {where} to a field with --map {where.upper()}=FIELD, "
                f"or leave such {where}s out with --ignore-extra",
            )

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for key, value in row.items():
            name = self.layout.columns.get(key, key)
            if name not in self.fields:
                continue  # left out: the header check refused them unless asked to ignore them
            if value is None:
                continue
            if isinstance(value, str):
                if name in self.fractional and _DECIMAL_COMMA.match(value):
                    value = value.replace(",", ".")
                elif name in self.times:
                    value = _local_time(value, self.zone)
            out[name] = value
        return out


def file_rows(path: Path, kind: str, *, encoding: str | None = None, layout: Layout = Layout()) -> Iterator[Row]:
    """The rows of a CSV or JSON file in the model's fields, as `validate` takes them; a file that has
    no records, or columns the model does not have, is refused whole."""
    shape = _Shape(path, MODELS[KIND_MODELS[kind]], layout)
    count = 0
    if _unit_of(path) == "row":  # CSV: the header says it all, once, before the first row
        rows: Iterable[tuple[int, Any]] = read_rows(path, encoding, lambda names: shape.header(names, "column"))
    else:
        rows = list(read_rows(path, encoding))
        keys: dict[str, int] = {}
        for i, r in rows:
            if isinstance(r, dict):
                for k in r:
                    keys.setdefault(k, i)
        shape.header(keys, "key")
    for i, row in rows:
        count += 1
        yield i, "", shape(row) if isinstance(row, dict) else row
    if count == 0:
        raise InvalidInput(f"{path}: the file holds no records; nothing was written", "check that it is the right file")


def _unit_of(path: Path) -> str:
    return (
        "line"
        if path.suffix.lower() in (".jsonl", ".ndjson")
        else "record"
        if path.suffix.lower() == ".json"
        else "row"
    )


def _check(
    rows: Iterable[Row], kind: str, now: datetime | None, unit: str, characteristics: Collection[str] | None = None
) -> tuple[list[dict[str, Any]], list[int], list[tuple[int, BadRow]]]:
    """(good records, the position of each in `rows`, (position, bad row) each). With `characteristics`,
    a measurement of any other is a bad row."""
    model: type[Record] = MODELS[KIND_MODELS[kind]]
    context = {"now": now} if now else None
    declared = set(characteristics) if characteristics and kind == "measurements" else None
    good, at, bad = [], [], []
    for n, (i, where, row) in enumerate(rows):
        if isinstance(row, Unreadable):
            bad.append((n, BadRow(i, row.field, row.reason, {"text": row.text} if row.text else {}, where, row.unit)))
            continue
        if not isinstance(row, dict):
            bad.append((n, BadRow(i, "*", "a record must be an object", {"value": row}, where, unit)))
            continue
        try:
            record = model.model_validate(row, context=context).model_dump(mode="json", exclude_none=True)
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(p) for p in err["loc"]) or "*"
            bad.append((n, BadRow(i, loc, err["msg"], row, where, unit)))
            continue
        if declared is not None and record["characteristic"] not in declared:
            named = ", ".join(sorted(declared))
            why = f"{record['characteristic']!r} is not a characteristic the dataset declares ({named})"
            bad.append((n, BadRow(i, "characteristic", why, row, where, unit)))
            continue
        good.append(record)
        at.append(n)
    return good, at, bad


def validate(
    path_or_rows: Path | Iterable[Row],
    kind: str,
    *,
    now: datetime | None = None,
    unit: str = "row",
    encoding: str | None = None,
    layout: Layout = Layout(),
    characteristics: Collection[str] | None = None,
) -> tuple[list[dict[str, Any]], list[BadRow]]:
    """Every row (of a file, or given) checked against the model of a dataset `kind`: (good records, bad rows)."""
    if isinstance(path_or_rows, Path):
        unit = _unit_of(path_or_rows)
        path_or_rows = file_rows(path_or_rows, kind, encoding=encoding, layout=layout)
    good, _, bad = _check(path_or_rows, kind, now, unit, characteristics)
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
    layout: Layout = Layout(),
    characteristics: Collection[str] | None = None,
) -> Summary:
    """Validate `path` (or the `rows` read from it), then seal its records in `dataset` in batches, each
    anchored through `anchor(batch) -> txid` before the next is committed. `refused` are rows a reader
    already found bad; `characteristics`, those the dataset declares (measurements of others are bad rows).

    Idempotent: batches an interrupted run left unanchored are settled with the ledger first (`lookup`
    finds an anchor that reached it), and the records the dataset already holds (by content, from whatever
    file or run) are skipped and counted as `already` (see `unheld`)."""
    vault.settle(dataset, anchor, lookup)
    digest = _digest(path)
    if rows is None:
        rows, unit = file_rows(path, kind, encoding=encoding, layout=layout), unit or _unit_of(path)
    good, _, bad = _check(rows, kind, now, unit or "row", characteristics)
    bad = [(-1, b) for b in refused] + bad
    summary = Summary(str(path), dataset, rows=len(good) + len(bad))
    if bad and quarantine is None:
        shown = "; ".join(f"{b.place()}, field {b.field!r}: {b.reason}" for _, b in bad[:3])
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        hint = "fix the rows, or pass --quarantine FILE to keep the good ones and set the bad aside"
        if any("zone offset" in b.reason for _, b in bad):
            hint = "give the zone the times were written in, e.g. --tz Asia/Shanghai; or " + hint
        raise InvalidInput(f"{path}: {len(bad)} bad rows — {shown}{more}; nothing was written", hint)
    if bad and quarantine is not None:
        _set_aside(quarantine, path, digest, bad)
        summary.quarantined = len(bad)
    new = unheld(vault, dataset, good)
    summary.already = len(good) - len(new.records)
    batches = new.stream(vault, dataset, batch_size)
    for batch in batches:
        txid = vault.anchor_batch(batch, anchor, lookup)
        summary.batches.append((batch, txid))
        summary.accepted += batch.count
        if progress:
            progress(summary.accepted, len(new.records))
    return summary


@dataclass(frozen=True)
class Unheld:
    """The records a dataset does not hold yet, in their order, with their canonical JSON and content
    keys (each made once, for the key and then the leaf), and the dataset's size they were counted at."""

    records: list[dict[str, Any]]
    canonical: list[bytes]
    keys: list[bytes]
    size: int

    def stream(self, vault: Vault, dataset: str, batch_size: int) -> Iterator[Batch]:
        """`Vault.add_stream` of these records in batches of `batch_size`, written only at `size`."""
        cuts = range(0, len(self.records), batch_size)
        return vault.add_stream(
            dataset,
            (self.records[i : i + batch_size] for i in cuts),
            (self.keys[i : i + batch_size] for i in cuts),
            at=self.size,
            canonical=(self.canonical[i : i + batch_size] for i in cuts),
        )


def unheld(vault: Vault, dataset: str, records: Sequence[dict[str, Any]]) -> Unheld:
    """The records the dataset does not hold yet. A record is what it says — its content key — not where
    it was read from, and is stored as many times as a source holds it: a source holding one record
    twice stores it twice, once."""
    canonical = canonical_records(records)
    keys = vault.canonical_keys(dataset, canonical)
    held, size = vault.held(dataset, keys)
    if not held:  # none of them (a new file): all of them, without asking for each
        return Unheld(list(records), canonical, keys, size)
    new, made, fresh = [], [], []
    for record, canon, key in zip(records, canonical, keys, strict=True):
        if held.get(key):
            held[key] -= 1
        else:
            new.append(record)
            made.append(canon)
            fresh.append(key)
    return Unheld(new, made, fresh, size)


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
    found = epcis.extract(epcis.load(path), kind, units)
    summary = ingest(
        path, vault, dataset, kind, anchor, rows=found.rows, unit="event", refused=found.refused, **options
    )
    summary.skipped = found.skipped
    return summary
