"""SQL persistence of one ledger replica: the leaves, every complete-subtree hash, the state.

A batch is one database transaction: entries, new tree nodes and state changes commit together
or not at all. SQLite runs in WAL mode with synchronous=FULL, so an acknowledged batch survives a
crash. Node ids pack (level, index) as index·64 + level, an INTEGER PRIMARY KEY, so a proof's
O(log n) nodes come back in one indexed query.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy.exc
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError

from qdsn.crypto import canonical_json
from qdsn.errors import Conflict, IntegrityError, NotFound
from qdsn.ledger import tx
from qdsn.ledger.merkle import Frontier, NodeId, fold, subtree_ids
from qdsn.ledger.state import (
    AggregateTask,
    Cosignature,
    Credential,
    Dataset,
    Device,
    Identity,
    InspectionPlan,
    Model,
    Notice,
    Standing,
    State,
    Supply,
)

log = logging.getLogger(__name__)
metadata = MetaData()

meta = Table("meta", metadata, Column("key", String(64), primary_key=True), Column("value", Text, nullable=False))
entries = Table(
    "entries",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("txid", LargeBinary(32), nullable=False, unique=True),
    Column("type", String(64), nullable=False),
    Column("submitter", String(512), nullable=False),
    Column("nonce", LargeBinary(16), nullable=False),
    Column("leaf", LargeBinary, nullable=False),
    # A nonce is 16 random bytes and never appears twice in the log, whoever signed it.
    UniqueConstraint("nonce", name="uq_nonce"),
)
nodes = Table(
    "nodes",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
)
identities = Table(
    "identities",
    metadata,
    Column("did", String(512), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("name", Text, nullable=False),
    Column("key", LargeBinary(32), nullable=False),
    Column("registered", BigInteger, nullable=False),
    Column("updated", BigInteger, nullable=False),
)
datasets = Table(
    "datasets",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("owner", String(512), nullable=False),
    Column("title", Text, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("anchored", BigInteger, nullable=False),
    Column("batches", BigInteger, nullable=False),
    Column("shredded", Boolean, nullable=False),
    Column("declared", BigInteger, nullable=False),
    Column("updated", BigInteger, nullable=False),
)
devices = Table(
    "devices",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("owner", String(512), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("key", LargeBinary(32), nullable=False),
    Column("registered", BigInteger, nullable=False),
)
models = Table(
    "models",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("publisher", String(512), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("published", BigInteger, nullable=False),
)
credentials = Table(
    "credentials",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("issuer", String(512), nullable=False),
    Column("subject", String(512), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("status_list", String(500), nullable=False),
    Column("idx", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("issued", BigInteger, nullable=False),
    Column("updated", BigInteger, nullable=False),
)
aggregate_tasks = Table(
    "aggregate_tasks",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("doc", Text, nullable=False),  # canonical JSON of `state.AggregateTask.to_json()`
)
retired_keys = Table(
    "retired_keys",
    metadata,
    Column("key", LargeBinary(32), primary_key=True),
    Column("did", String(512), nullable=False),
    Column("seq", BigInteger, nullable=False),  # the identity.rotate_key that retired it
)
notices = Table(
    "notices",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("sender", String(512), nullable=False),
    Column("recipient", String(512), nullable=False),
    Column("classification", String(16), nullable=False),
    Column("severity", String(20), nullable=False),
    Column("content", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("updated", BigInteger, nullable=False),
)
standings = Table(
    "standings",
    metadata,
    Column("id", String(600), primary_key=True),  # `state.standing_key`: scope and subject
    Column("doc", Text, nullable=False),  # canonical JSON of `state.Standing.to_json()`
)
inspection_plans = Table(
    "inspection_plans",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("doc", Text, nullable=False),  # canonical JSON of `state.InspectionPlan.to_json()`
)
supplies = Table(
    "supplies",
    metadata,
    Column("id", String(64), primary_key=True),  # the id of the relation's supply.relation entry
    Column("doc", Text, nullable=False),  # canonical JSON of `state.Supply.to_json()`
)
cosignatures = Table(
    "cosignatures",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("origin", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("cosigner", String(512), nullable=False),
    Column("timestamp", BigInteger, nullable=False),
)
checkpoints = Table(
    "checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("note", Text, nullable=False),
)
# What the console and its JSON API page through: each page is one index range, whatever the log holds.
Index("ix_entries_type_seq", entries.c.type, entries.c.seq)
Index("ix_entries_submitter_seq", entries.c.submitter, entries.c.seq)
Index("ix_cosignatures_cosigner_size", cosignatures.c.cosigner, cosignatures.c.size)
Index("ix_cosignatures_size", cosignatures.c.size)
# What each `identity.register` records of an organisation, written with its entry, so the member registry
# is searched by region and industry without reading leaves (`ledger.registry`).
members = Table(
    "members",
    metadata,
    Column("did", String(512), primary_key=True),
    Column("seq", BigInteger, nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("name", Text, nullable=False),
    Column("credit_code", String(18)),
    Column("region", String(6)),
    Column("industry", String(5)),
    Column("address", Text),
    Index("ix_members_region_seq", "region", "seq"),
    Index("ix_members_industry_seq", "industry", "seq"),
)
witnessed = Table(
    "witnessed",
    metadata,
    Column("origin", Text, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("note", Text, nullable=False),
)


_HEX32 = re.compile(r"^[0-9a-f]{32}$")


def insert_many(conn, table: Table, rows: list[tuple], upsert: str | None = None) -> None:  # type: ignore[no-untyped-def]
    """executemany straight to the driver — SQLAlchemy's per-row parameter processing costs more than
    the database's own work on hot inserts. `upsert` names the key column to update on conflict (the
    ON CONFLICT form SQLite and PostgreSQL share)."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    names = [c.name for c in table.columns]
    sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join([mark] * len(names))})"
    if upsert:
        sets = ", ".join(f"{n} = excluded.{n}" for n in names if n != upsert)
        sql += f" ON CONFLICT ({upsert}) DO UPDATE SET {sets}"
    conn.exec_driver_sql(sql, rows)


def member_row(seq: int, leaf: bytes) -> tuple:
    """The `members` row of an `identity.register` leaf (already validated by the fold)."""
    p = orjson.loads(leaf)["payload"]
    return (p["did"], seq, p["role"], p["name"], *(p.get(k) for k in ("credit_code", "region", "industry", "address")))


def node_key(level: int, index: int) -> int:
    return (index << 6) | level


@dataclass(frozen=True, slots=True)
class Row:
    """One entry to write: its position, id, indexed fields and leaf bytes."""

    seq: int
    txid: str
    type: str
    submitter: str
    nonce: str
    leaf: bytes


def _row(r) -> Row:  # type: ignore[no-untyped-def]
    return Row(r.seq, r.txid.hex(), r.type, r.submitter, r.nonce.hex(), r.leaf)


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA cache_size=-65536")
    cur.close()


def _private_file(path: str) -> None:
    """Create a SQLite file 0600 before SQLite does (its -wal and -shm files take the database
    file's mode), and take group and other access from one that has it, like the keystore."""
    with suppress(OSError):  # a path that cannot be made here: SQLite's own open says what is wrong
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for p in (path, f"{path}-wal", f"{path}-shm"):
        try:
            if os.stat(p).st_mode & 0o077:
                os.chmod(p, 0o600)
        except FileNotFoundError:
            continue
        except OSError as e:  # another user's file: it opens, but the owner is told it is not private
            log.warning("%s stays readable by others (%s): chmod 600 it", p, e.strerror)


def open_engine(url: str) -> Engine:
    """An engine for `url` (a SQLite path or any SQLAlchemy URL), tuned for the ledger."""
    if "://" not in url:
        Path(url).parent.mkdir(parents=True, exist_ok=True)
        _private_file(url)
        url = f"sqlite:///{url}"
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _supplies(c: Any) -> list[tuple[str, str]]:
    """The `supplies` rows of the supply relations in the log, withdrawals applied: as the fold made them."""
    q = select(entries.c.seq, entries.c.type, entries.c.leaf).where(
        entries.c.type.in_(("supply.relation", "supply.withdraw"))).order_by(entries.c.seq)  # fmt: skip
    found: dict[str, Supply] = {}
    for seq, type_, leaf in c.execute(q):
        env = tx.from_leaf(leaf)
        p = env.payload
        if type_ == "supply.relation":
            found[tx.txid(leaf)] = Supply(tx.txid(leaf), p["supplier"], p["customer"], p.get("product"),
                                          env.submitter, seq)  # fmt: skip
        elif p["relation"] in found:
            found[p["relation"]] = replace(found[p["relation"]], withdrawn=seq, withdrawn_by=env.submitter)
    return [(k, canonical_json(r.to_json()).decode()) for k, r in found.items()]


class DuplicateEntry(Conflict):
    """A batch holds a transaction id or nonce the log already has; nothing was written."""


class Store:
    """One replica's tables. Reads are plain; `commit` writes a whole batch atomically."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = open_engine(url)
        self._mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        self._local = threading.local()
        self._readers: list = []
        try:
            metadata.create_all(self.engine)
            with self.engine.connect() as c:
                last = c.execute(select(func.max(entries.c.seq))).scalar()
            if "mode=ro" not in url:  # a verifier's read-only look changes nothing, and reports what is off
                self._add_indexes(last)
        except DatabaseError as e:
            raise IntegrityError(
                f"ledger database {url} is unreadable: {e.orig}", "restore it from a backup or `qdsn ledger import`"
            ) from e
        self.size = 0 if last is None else last + 1
        self.frontier = Frontier(self.size, self.nodes(subtree_ids(0, self.size)))

    def _add_indexes(self, last: int | None) -> None:
        """Indexes and the member registry added after a replica was made are built once, on first open
        (create_all makes the indexes only of tables it creates)."""
        if last is None:
            return
        with self.engine.connect() as c:
            built = {ix["name"] for t in ("entries", "cosignatures") for ix in sqlalchemy.inspect(c).get_indexes(t)}
        for ix in (*entries.indexes, *cosignatures.indexes):
            if ix.name not in built:
                ix.create(self.engine)
        with self.engine.begin() as c:
            n = c.execute(select(func.count()).select_from(members)).scalar_one()
            if n != c.execute(select(func.count()).select_from(identities)).scalar_one():
                q = select(entries.c.seq, entries.c.leaf).where(entries.c.type == "identity.register")
                rows = [member_row(seq, leaf) for seq, leaf in c.execute(q)]
                c.execute(members.delete())
                insert_many(c, members, rows)
            declared = select(func.count()).select_from(entries).where(entries.c.type == "supply.relation")
            if c.execute(select(func.count()).select_from(supplies)).scalar_one() != c.execute(declared).scalar_one():
                c.execute(supplies.delete())  # a replica made before supply relations were kept in the state
                insert_many(c, supplies, _supplies(c))

    def reload(self) -> bool:
        """Read the log's size and edge again after another process appended (a running node, for
        a command that sent its transactions through it); returns whether it grew."""
        with self.engine.connect() as c:
            last = c.execute(select(func.max(entries.c.seq))).scalar()
        size = 0 if last is None else last + 1
        if size == self.size:
            return False
        self.frontier = Frontier(size, self.nodes(subtree_ids(0, size)))
        self.size = size
        return True

    def _reader(self):  # type: ignore[no-untyped-def]
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cargs, cparams = self.engine.dialect.create_connect_args(self.engine.url)
            conn = self._local.conn = self.engine.dialect.connect(*cargs, **cparams)  # outside the pool
            self._readers.append(conn)
        return conn

    def close(self) -> None:
        for conn in self._readers:
            conn.close()
        self._readers.clear()
        self.engine.dispose()

    # -- reads ---------------------------------------------------------------------------------

    def nodes(self, ids: Sequence[NodeId]) -> list[bytes]:
        """Hashes of complete subtrees, in the order asked (a merkle.NodeSource)."""
        if not ids:
            return []
        keys = [node_key(lv, ix) for lv, ix in ids]
        unique = list(set(keys))
        # Proofs are the hot read: plain driver SQL skips SQLAlchemy's statement building, and on
        # SQLite a per-thread driver connection skips the pool (a bare SELECT there holds no snapshot).
        sql = f"SELECT id, hash FROM nodes WHERE id IN ({', '.join([self._mark] * len(unique))})"
        if self.engine.dialect.name == "sqlite":
            got = dict(self._reader().execute(sql, unique).fetchall())
        else:
            with self.engine.connect() as c:
                got = dict(c.exec_driver_sql(sql, tuple(unique)).all())
        missing = [ids[i] for i, k in enumerate(keys) if k not in got]
        if missing:
            raise IntegrityError(f"tree nodes {missing[:3]} are missing from {self.url}", "run `qdsn ledger verify`")
        return [got[k] for k in keys]

    def root_at(self, size: int) -> bytes:
        """The tree root of the first `size` entries."""
        if size > self.size:
            raise NotFound(f"the log has {self.size} entries, not {size}")
        return fold(self.nodes(subtree_ids(0, size)))

    def leaves(self, start: int, end: int) -> list[bytes]:
        """The leaves [start, end)."""
        with self.engine.connect() as c:
            rows = c.execute(
                select(entries.c.leaf).where(entries.c.seq >= start, entries.c.seq < end).order_by(entries.c.seq)
            ).all()
        return [r[0] for r in rows]

    def rows_of_type(self, type: str, start: int = 0) -> list[Row]:
        """Every entry of one transaction type from `start` on, in log order."""
        q = select(entries).where(entries.c.seq >= start, entries.c.type == type).order_by(entries.c.seq)
        with self.engine.connect() as c:
            return [_row(r) for r in c.execute(q)]

    def entry(self, seq: int | None = None, txid: str | None = None) -> Row:
        """One entry by position or by transaction id."""
        where = entries.c.seq == seq if txid is None else entries.c.txid == bytes.fromhex(txid)
        with self.engine.connect() as c:
            r = c.execute(select(entries).where(where)).first()
        if r is None:
            raise NotFound(f"no entry {seq if txid is None else txid} in the log")
        return _row(r)

    def rows(self, start: int, end: int) -> list[Row]:
        with self.engine.connect() as c:
            rs = c.execute(select(entries).where(entries.c.seq >= start, entries.c.seq < end).order_by(entries.c.seq))
            return [_row(r) for r in rs]

    def used_nonces(self, nonces: Iterable[str]) -> set[str]:
        """Which of these nonces the log already holds."""
        wanted = sorted({bytes.fromhex(n) for n in nonces if _HEX32.match(n)})  # others fail validation
        found: set[str] = set()
        with self.engine.connect() as c:
            for i in range(0, len(wanted), 900):
                q = select(entries.c.nonce).where(entries.c.nonce.in_(wanted[i : i + 900]))
                found.update(n.hex() for (n,) in c.execute(q))
        return found

    def datasets(self) -> dict[str, Dataset]:
        with self.engine.connect() as c:
            return {r.id: Dataset(*r) for r in c.execute(select(datasets))}

    def load_state(self, origin: str = "") -> State:
        """The world state as persisted with the last committed batch."""
        with self.engine.connect() as c:
            devs = {r.id: Device(*r) for r in c.execute(select(devices))}
            mods = {r.key: Model(*r) for r in c.execute(select(models))}
            creds = {r.id: Credential(*r) for r in c.execute(select(credentials))}
            rows = c.execute(select(aggregate_tasks))
            tasks = {r.id: AggregateTask.from_json(r.id, orjson.loads(r.doc)) for r in rows}
            retired = {r.key: r.did for r in c.execute(select(retired_keys))}
            notes = {r.id: Notice(*r) for r in c.execute(select(notices))}
            held = {r.id: Standing.from_json(orjson.loads(r.doc)) for r in c.execute(select(standings))}
            rows = c.execute(select(inspection_plans))
            plans = {r.id: InspectionPlan.from_json(r.id, orjson.loads(r.doc)) for r in rows}
            sups = {r.id: Supply.from_json(r.id, orjson.loads(r.doc)) for r in c.execute(select(supplies))}
        return State(self.identities(), origin, self.datasets(), devs, mods, creds, tasks, retired=retired,
                     notices=notes, standings=held, plans=plans, supplies=sups)  # fmt: skip

    def identities(self) -> dict[str, Identity]:
        with self.engine.connect() as c:
            return {r.did: Identity(*r) for r in c.execute(select(identities))}

    def cosignatures(self, size: int | None = None) -> list[Cosignature]:
        q = select(cosignatures).order_by(cosignatures.c.seq)
        if size is not None:
            q = q.where(cosignatures.c.size == size)
        with self.engine.connect() as c:
            return [Cosignature(*r) for r in c.execute(q)]

    def cosigned(self, cosigners: set[str], quorum: int) -> tuple[int, list[str]] | None:
        """The largest size that `quorum` distinct ones of `cosigners` cosigned, with them; asked of
        the database, which groups the cosignatures instead of handing every one of them over."""
        if not cosigners:
            return None
        mine = cosignatures.c.cosigner.in_(sorted(cosigners))
        largest = (
            select(cosignatures.c.size)
            .where(mine)
            .group_by(cosignatures.c.size)
            .having(func.count(cosignatures.c.cosigner.distinct()) >= quorum)
            .order_by(cosignatures.c.size.desc())
            .limit(1)
        )
        with self.engine.connect() as c:
            size = c.execute(largest).scalar()
            if size is None:
                return None
            who = c.execute(select(cosignatures.c.cosigner).where(mine, cosignatures.c.size == size).distinct())
            return int(size), sorted(who.scalars())

    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as c:
            return c.execute(select(meta.c.value).where(meta.c.key == key)).scalar()

    def set_meta(self, key: str, value: str) -> None:
        with self.engine.begin() as c:
            c.execute(meta.delete().where(meta.c.key == key))
            c.execute(insert(meta).values(key=key, value=value))

    def checkpoint_notes(self) -> list[tuple[int, str]]:
        with self.engine.connect() as c:
            return [tuple(r) for r in c.execute(select(checkpoints).order_by(checkpoints.c.size))]  # type: ignore[misc]

    def last_checkpoint(self) -> tuple[int, str] | None:
        """The (size, note) of the largest checkpoint this replica signed, or None."""
        with self.engine.connect() as c:
            r = c.execute(select(checkpoints).order_by(checkpoints.c.size.desc()).limit(1)).first()
        return None if r is None else (r[0], r[1])

    def save_checkpoint(self, size: int, note: str) -> None:
        with self.engine.begin() as c:
            c.execute(checkpoints.delete().where(checkpoints.c.size == size))
            c.execute(insert(checkpoints).values(size=size, note=note))

    def witnessed(self, origin: str) -> tuple[int, bytes, str] | None:
        with self.engine.connect() as c:
            r = c.execute(
                select(witnessed.c.size, witnessed.c.root, witnessed.c.note).where(witnessed.c.origin == origin)
            ).first()
        return None if r is None else (r[0], r[1], r[2])

    def save_witnessed(self, origin: str, size: int, root: bytes, note: str) -> None:
        with self.engine.begin() as c:
            c.execute(witnessed.delete().where(witnessed.c.origin == origin))
            c.execute(insert(witnessed).values(origin=origin, size=size, root=root, note=note))

    # -- the one write path ----------------------------------------------------------------------

    @contextmanager
    def batch(
        self,
        rows: Sequence[Row],
        frontier: Frontier,
        new_nodes: Sequence[tuple[int, int, bytes]],
        state: State | None = None,
        meta_values: dict[str, str] | None = None,
    ) -> Iterator[None]:
        """Write one batch and what it changed in `state` in one transaction, committed when the
        block exits cleanly and rolled back if it raises; then adopt `frontier` as the tree's new
        edge. The caller's last checks run inside the block, overlapping the writes."""
        if rows and rows[0].seq != self.size:
            raise IntegrityError(f"batch starts at {rows[0].seq}, the log at {self.size}")
        with self.engine.begin() as c:
            if rows:
                try:
                    insert_many(
                        c,
                        entries,
                        [
                            (r.seq, bytes.fromhex(r.txid), r.type, r.submitter, bytes.fromhex(r.nonce), r.leaf)
                            for r in rows
                        ],
                    )
                except sqlalchemy.exc.IntegrityError as e:
                    raise DuplicateEntry(f"a transaction or nonce of this batch is already in the log: {e.orig}") from e
                insert_many(c, nodes, [(node_key(lv, ix), h) for lv, ix, h in new_nodes])
                admitted = [member_row(r.seq, r.leaf) for r in rows if r.type == "identity.register"]
                if admitted:
                    insert_many(c, members, admitted)
            if state is not None:
                self._write_state(c, state)
            for key, value in (meta_values or {}).items():
                c.execute(meta.delete().where(meta.c.key == key))
                c.execute(insert(meta).values(key=key, value=value))
            yield
        self.size += len(rows)
        self.frontier = frontier

    def _write_state(self, c, state: State) -> None:  # type: ignore[no-untyped-def]
        if state.dirty:
            changed = [state.identities[d] for d in state.dirty]
            rows = [(i.did, i.role, i.name, i.key, i.registered, i.updated) for i in changed]
            insert_many(c, identities, rows, upsert="did")
        if state.dirty_datasets:
            changed_sets = [state.datasets[d] for d in state.dirty_datasets]
            rows = [
                (d.id, d.owner, d.title, d.kind, d.anchored, d.batches, d.shredded, d.declared, d.updated)
                for d in changed_sets
            ]
            insert_many(c, datasets, rows, upsert="id")
        if state.dirty_devices:
            rows = [
                (d.id, d.owner, d.kind, d.key, d.registered) for d in (state.devices[i] for i in state.dirty_devices)
            ]
            insert_many(c, devices, rows)
        if state.dirty_models:
            rows = [(m.key, m.publisher, m.hash, m.published) for m in (state.models[k] for k in state.dirty_models)]
            insert_many(c, models, rows)
        if state.dirty_credentials:
            rows = [
                (x.id, x.issuer, x.subject, x.hash, x.status_list, x.index, x.status, x.issued, x.updated)
                for x in (state.credentials[k] for k in state.dirty_credentials)
            ]
            insert_many(c, credentials, rows, upsert="id")
        if state.dirty_tasks:
            rows = [(k, canonical_json(state.tasks[k].to_json()).decode()) for k in state.dirty_tasks]
            insert_many(c, aggregate_tasks, rows, upsert="id")
        if state.new_retired:
            insert_many(c, retired_keys, state.new_retired)
        if state.dirty_notices:
            rows = [
                (n.id, n.sender, n.recipient, n.classification, n.severity, n.content, n.state, n.created, n.updated)
                for n in (state.notices[k] for k in state.dirty_notices)
            ]
            insert_many(c, notices, rows, upsert="id")
        if state.dirty_standings:
            rows = [(k, canonical_json(state.standings[k].to_json()).decode()) for k in state.dirty_standings]
            insert_many(c, standings, rows, upsert="id")
        if state.dirty_plans:
            rows = [(k, canonical_json(state.plans[k].to_json()).decode()) for k in state.dirty_plans]
            insert_many(c, inspection_plans, rows, upsert="id")
        if state.dirty_supplies:
            rows = [(k, canonical_json(state.supplies[k].to_json()).decode()) for k in state.dirty_supplies]
            insert_many(c, supplies, rows, upsert="id")
        if state.new_cosignatures:
            rows = [(s.seq, s.origin, s.size, s.root, s.cosigner, s.timestamp) for s in state.new_cosignatures]
            insert_many(c, cosignatures, rows)

    def commit(
        self,
        rows: Sequence[Row],
        frontier: Frontier,
        new_nodes: Sequence[tuple[int, int, bytes]],
        state: State | None = None,
    ) -> None:
        """Write one batch in one transaction."""
        with self.batch(rows, frontier, new_nodes, state):
            pass
