"""How a verification ends, and the checks a stored database gets before its contents are believed.

Every verification (`qdsn ledger verify`, `qdsn vault verify`) ends in exactly one `Verdict`:
verified, damaged at a named place, or incomplete (something that belongs is missing). A store is
opened read-only and never created; on SQLite, the engine's own `PRAGMA integrity_check` and a
comparison of the stored schema with the one QDSN creates run before any row is read.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import MetaData, create_engine, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DatabaseError, SQLAlchemyError

from qdsn.errors import IntegrityError, QDSNError


class Outcome(IntEnum):
    """The three ends of a verification; the value is the command's exit code."""

    VERIFIED = 0
    DAMAGED = 1
    INCOMPLETE = 2


@dataclass(frozen=True)
class Verdict:
    """What a verification found: `message` says what was verified or what is wrong, `where` names
    the damaged place, `notes` what is pending but not wrong (a batch not yet anchored)."""

    outcome: Outcome
    message: str
    where: str | None = None
    checked: int = 0
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.VERIFIED


class Damaged(IntegrityError):
    """Stored data that is altered or unreadable, at `where`."""

    def __init__(self, where: str, what: str) -> None:
        self.where = where
        super().__init__(f"{where}: {what}")


class Incomplete(IntegrityError):
    """Data the reference says must be here and is not."""


# Reading a damaged file can fail in the driver or in the decoding of any field; every such failure
# is a finding about the file, never a reason to stop with a traceback.
READ_ERRORS = (SQLAlchemyError, ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError,
               UnicodeError, struct.error, RecursionError)  # fmt: skip


def judge(run: Callable[[], Verdict], where: str) -> Verdict:
    """Run a verification and turn whatever it raises into a verdict: nothing escapes as a traceback."""
    try:
        return run()
    except Incomplete as e:
        return Verdict(Outcome.INCOMPLETE, str(e))
    except Damaged as e:
        return Verdict(Outcome.DAMAGED, str(e), e.where)
    except QDSNError as e:
        return Verdict(Outcome.DAMAGED, f"{where}: {e}", where)
    except READ_ERRORS as e:
        return Verdict(Outcome.DAMAGED, f"{where} is unreadable: {_short(e)}", where)


def _short(e: BaseException) -> str:
    orig = getattr(e, "orig", None)
    return f"{type(orig or e).__name__}: {orig or e}".splitlines()[0][:300]


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite location (a bare path or a sqlite:/// URL), None for a server database."""
    if "://" not in url:
        return Path(url)
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///").split("?", 1)[0])
    return None


def present(url: str, tables: MetaData) -> bool:
    """Whether a store holds anything at all: False for a missing or empty SQLite file (which is
    never created here), or a server database without any of `tables`."""
    path = sqlite_path(url)
    if path is None:
        engine = create_engine(url)
        try:
            found = set(inspect(engine).get_table_names())
        finally:
            engine.dispose()
        return bool(found & set(tables.tables))
    return path.is_file() and path.stat().st_size > 0


def absent_reason(url: str, what: str) -> str:
    path = sqlite_path(url)
    if path is None:
        return f"{what} at {make_url(url).render_as_string(hide_password=True)} holds none of QDSN's tables"
    if not path.exists():
        return f"{what} {path} does not exist"
    return f"{what} {path} is empty ({path.stat().st_size} bytes)"


def read_only_url(url: str) -> str:
    """A URL that opens the store without the power to change or create it."""
    path = sqlite_path(url)
    if path is None:
        return url
    return f"sqlite:///file:{quote(str(path.resolve()))}?mode=ro&uri=true"


def check_database(engine: Engine, tables: MetaData, what: str) -> None:
    """The database engine's own integrity check, then the stored schema against QDSN's: raises
    Damaged naming what is wrong."""
    try:
        if engine.dialect.name == "sqlite":
            _check_sqlite(engine, tables, what)
        else:
            _check_server(engine, tables, what)
    except DatabaseError as e:
        raise Damaged(what, f"the database cannot be read ({_short(e)})") from None


def _check_sqlite(engine: Engine, tables: MetaData, what: str) -> None:
    with engine.connect() as c:
        found = [str(r[0]) for r in c.exec_driver_sql("PRAGMA integrity_check(20)")]
        if found != ["ok"]:
            raise Damaged(what, "SQLite's integrity check fails: " + "; ".join(found[:3]))
        stored = {(r[0], r[1]): (r[2], r[3]) for r in c.exec_driver_sql(SCHEMA)}
    for key, sql in _expected_sqlite_schema(tables).items():
        if key not in stored:
            raise Damaged(what, f"{key[0]} {key[1]!r} is missing from the schema")
        if stored[key] != sql:
            raise Damaged(what, f"the definition of {key[0]} {key[1]!r} was altered")


SCHEMA = "SELECT type, name, tbl_name, sql FROM sqlite_master"
_SCHEMAS: dict[int, dict[tuple[str, str], tuple[str, str | None]]] = {}


def _expected_sqlite_schema(tables: MetaData) -> dict[tuple[str, str], tuple[str, str | None]]:
    """The schema QDSN creates, as SQLite records it: made once in memory from the same tables."""
    if id(tables) not in _SCHEMAS:
        mem = create_engine("sqlite://")
        tables.create_all(mem)
        with mem.connect() as c:
            _SCHEMAS[id(tables)] = {(r[0], r[1]): (r[2], r[3]) for r in c.exec_driver_sql(SCHEMA)}
        mem.dispose()
    return _SCHEMAS[id(tables)]


def _check_server(engine: Engine, tables: MetaData, what: str) -> None:
    """PostgreSQL verifies page checksums as rows are read (when the cluster has them); amcheck, where
    the database has it installed, checks every B-tree index of QDSN's tables against the heap."""
    found = inspect(engine)
    for t in tables.sorted_tables:
        if not found.has_table(t.name):
            raise Damaged(what, f"table {t.name!r} is missing")
        cols = {c["name"] for c in found.get_columns(t.name)}
        if cols != {c.name for c in t.columns}:
            raise Damaged(what, f"the columns of table {t.name!r} were altered")
    with engine.connect() as c:
        if c.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'")).first() is None:
            return
        for t in tables.sorted_tables:
            indexes = text("SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = CAST(:t AS regclass)")
            for idx in c.execute(indexes, {"t": t.name}).scalars():
                try:
                    c.execute(text("SELECT bt_index_check(CAST(:i AS regclass), true)"), {"i": idx})
                except DatabaseError as e:
                    raise Damaged(f"{what}, index {idx}", _short(e)) from None
