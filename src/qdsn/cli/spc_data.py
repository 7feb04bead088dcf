"""Where `qdsn spc` reads its numbers: a CSV file (wide, one subgroup a row, or stacked, one reading
a row) or a dataset in this node's vault, as columns named by the user."""

from __future__ import annotations

import csv
import math
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from qdsn.errors import InvalidInput


def _open(path: Path) -> Any:
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}", "check the path, or chart a vault dataset with --dataset NAME")
    return path.open(newline="", encoding="utf-8-sig")  # Excel's byte-order mark is not part of the first name


def _names(row: list[str]) -> list[str] | None:
    """A header's column names; None for a row of numbers."""
    try:
        [float(c) for c in row if c.strip()]
        return None
    except ValueError:
        return [c.strip() for c in row]


def _number(cell: Any, where: str) -> float:
    try:
        v = float(cell)
    except (TypeError, ValueError):
        raise InvalidInput(f"{where}: {cell!r} is not a number") from None
    if not math.isfinite(v):
        raise InvalidInput(f"{where}: {cell!r} is not a finite number")
    return v


@dataclass
class Table:
    """Named columns of text cells: a CSV file (read lazily; numbers go through numpy's C parser
    when the file is plain) or a vault dataset's records."""

    name: str
    header: list[str] | None
    path: Path | None = None
    _rows: list[list[str]] | None = field(default=None, repr=False)
    where: str = "line"  # what a row is called in messages: a file's line, a dataset's record

    @classmethod
    def csv(cls, path: Path) -> Table:
        with _open(path) as f:
            first = next((r for r in csv.reader(f) if r and any(c.strip() for c in r)), None)
        if first is None:
            raise InvalidInput(f"{path} holds no data", "give a CSV file with a header row and numbers")
        return cls(path.name, _names(first), path)

    @classmethod
    def records(cls, name: str, records: list[dict[str, Any]]) -> Table:
        """A vault dataset's records as a table: one column per field any record has."""
        if not records:
            raise InvalidInput(
                f"dataset {name} holds no records", f"ingest readings first: qdsn ingest csv FILE --dataset {name}"
            )
        header = list(dict.fromkeys(k for r in records for k in r))
        rows = [["" if r.get(k) is None else str(r.get(k)) for k in header] for r in records]
        return cls(f"dataset {name}", header, None, rows, "record")

    @property
    def rows(self) -> list[list[str]]:
        """The data rows, blank lines left out."""
        if self._rows is None:
            assert self.path is not None
            with _open(self.path) as f:
                rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
            self._rows = rows[1:] if self.header else rows
        return self._rows

    def _line(self, i: int) -> str:
        """Row i (from 0) as a person finds it: the file's line number, or the record's number from 1."""
        if self.path is None:
            return f"{self.name}, record {i + 1}"
        return f"{self.path}, line {i + (2 if self.header else 1)}"

    def index(self, name: str | None, default: int | None = None) -> int:
        """The position of column `name` (or the default position when no name is given)."""
        if name is None:
            if default is None:
                raise InvalidInput("no column named")
            return default
        if self.header is None or name not in self.header:
            raise InvalidInput(
                f"{self.name} has no column {name!r}", f"its columns: {', '.join(self.header or ['(no header)'])}"
            )
        return self.header.index(name)

    def _fast(self, column: int | None = None) -> np.ndarray | None:
        """The numbers (one column, or all as rows) through numpy's C parser — a million rows in a
        fraction of a second — or None when anything is unusual (blank or quoted cells, ragged rows,
        text), for the reader that names the line at fault."""
        if self.path is None or self._rows is not None:
            return None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # "input contained no data" and the like
                x = np.loadtxt(
                    self.path,
                    delimiter=",",
                    skiprows=1 if self.header else 0,
                    usecols=column,
                    ndmin=1 if column is not None else 2,
                    comments=None,
                    dtype=float,
                    encoding="utf-8-sig",
                )
        except (ValueError, UserWarning, UnicodeDecodeError):
            return None
        return x if np.isfinite(x).all() else None  # "nan", "inf": the reader that names the line refuses them

    def numbers(self, name: str | None, default: int = 0) -> Any:
        """One column of numbers: the one named, else the one at `default`."""
        i = self.index(name, default)
        fast = self._fast(i)
        if fast is not None:
            return fast
        return [_number(self._cell(r, i, n), self._line(n)) for n, r in enumerate(self.rows)]

    def texts(self, name: str) -> list[str]:
        """One column's cells as text, stripped."""
        i = self.index(name)
        return [self._cell(r, i, n).strip() for n, r in enumerate(self.rows)]

    def _cell(self, row: list[str], i: int, n: int) -> str:
        if i >= len(row):
            raise InvalidInput(f"{self._line(n)}: no column {i + 1}", "every row needs a cell in each column used")
        return row[i]

    def wide(self, least: int = 1) -> Any:
        """Every row's numbers (a subgroup a row), at least `least` in each: an array when the rows are
        all complete, else lists (blank cells left out)."""
        fast = self._fast()
        if fast is not None and fast.shape[1] >= least:
            return fast
        out = []
        for n, r in enumerate(self.rows):
            row = [_number(c, self._line(n)) for c in r if c.strip()]
            if len(row) < least:
                plural = "s" * (len(row) != 1)
                raise InvalidInput(
                    f"{self._line(n)}: a subgroup of {len(row)} value{plural}; each needs at least {least}",
                    "a file of single values takes --column NAME, or an individuals chart (-t imr)",
                )
            out.append(row)
        return out

    def keep(self, column: str, value: str) -> Table:
        """Only the rows whose `column` holds `value`."""
        i = self.index(column)
        rows = [r for r in self.rows if i < len(r) and r[i].strip() == value]
        if not rows:
            found = sorted({r[i].strip() for r in self.rows if i < len(r)})
            raise InvalidInput(f"{self.name} has no rows with {column} {value!r}", f"it has: {', '.join(found)}")
        return Table(self.name, self.header, None, rows, self.where)


def instants(table: Table, column: str) -> list[Any]:
    """A time column as sortable values: ISO 8601 times (all with an offset or all without) or numbers."""
    out: list[Any] = []
    for n, cell in enumerate(table.texts(column)):
        try:
            out.append(float(cell))
            continue
        except ValueError:
            pass
        try:
            out.append(datetime.fromisoformat(cell))
        except ValueError:
            raise InvalidInput(f"{table._line(n)}: time {cell!r} is neither an ISO 8601 time nor a number") from None
    kinds = {type(v) is datetime and v.tzinfo is not None for v in out if isinstance(v, datetime)}
    if len(kinds) > 1 or (kinds and any(not isinstance(v, datetime) for v in out)):
        raise InvalidInput(
            f"column {column!r} mixes times with and without an offset (or with numbers)",
            "give every time with its offset, e.g. 2026-03-01T08:00:00+08:00",
        )
    return out


def order(n: int, times: list[Any] | None) -> list[int]:
    """Row positions in time order (stable: rows of one time keep the file's order)."""
    return list(range(n)) if times is None else sorted(range(n), key=lambda i: times[i])


def stack(values: list[float], keys: list[str], times: list[Any] | None = None) -> tuple[list[str], list[list[float]]]:
    """Stacked readings (one a row) grouped into subgroups by key, the subgroups in the order of their
    first reading's time (or first appearance); returns the subgroup names and their values."""
    groups: dict[str, list[float]] = {}
    for i in order(len(values), times):
        groups.setdefault(keys[i], []).append(values[i])
    return list(groups), list(groups.values())


def at_least(names: list[str], groups: list[list[float]], least: int) -> None:
    """Refuse a subgroup of fewer than `least` readings, by its name."""
    for name, g in zip(names, groups, strict=True):
        if len(g) < least:
            raise InvalidInput(
                f"subgroup {name!r} has {len(g)} reading{'s' * (len(g) != 1)}; each needs at least {least}",
                "check the --subgroup column, or chart single readings (-t imr)",
            )
