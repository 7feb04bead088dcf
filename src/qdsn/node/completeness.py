"""`qdsn vault verify`: the vault checked against the ledger, which is the reference.

Consistency alone believes a vault that lost its last batch, a whole dataset, or went back to an
older copy: what is left still adds up. So every `dataset.declare` and `dataset.anchor` of this owner
on the ledger must be matched by the vault, batch for batch and record for record, and every vault
dataset, batch and row by the ledger. Each row is opened and each batch root recomputed. The vault
file is opened read-only (never created), SQLite's integrity check runs first, and every field is
read as the type it must have. A batch sealed but not yet anchored, or anchored but not yet marked,
is reported as pending, neither as damage nor silently.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection

from qdsn.data.vault import CHUNK, KekSource, content_keys, open_data_key, open_keys, open_row
from qdsn.data.vault import metadata as vault_tables
from qdsn.errors import QDSNError
from qdsn.ledger import merkle, tx
from qdsn.ledger.integrity import (
    READ_ERRORS,
    Damaged,
    Incomplete,
    Outcome,
    Verdict,
    absent_reason,
    check_database,
    judge,
    present,
    read_only_url,
)
from qdsn.ledger.store import Store

VAULT = "the vault database"
RESTORE = "restore the vault from its backup (qdsn vault restore)"
BATCH = (int, int, bytes, (str, type(None)), (bool, int), (str, type(None)))  # first, count, root, txid, anchored, note


@dataclass(frozen=True)
class Anchor:
    first: int
    count: int
    root: bytes
    txid: str


@dataclass
class Declared:
    """What the ledger says of one of this owner's datasets."""

    kind: str
    shredded: bool
    anchors: list[Anchor] = field(default_factory=list)

    @property
    def anchored(self) -> int:
        return self.anchors[-1].first + self.anchors[-1].count if self.anchors else 0


@dataclass(frozen=True)
class DatasetResult:
    dataset: str
    records: int
    verdict: Verdict


@dataclass(frozen=True)
class VaultReport:
    """The whole vault's verdict and each dataset's."""

    verdict: Verdict
    datasets: list[DatasetResult]


def declared(ledger: Store, owner: str) -> dict[str, Declared]:
    """Every dataset `owner` declared on the ledger, with its anchors in order."""
    out = {d.id: Declared(d.kind, d.shredded) for d in ledger.datasets().values() if d.owner == owner}
    for row in ledger.rows_of_type("dataset.anchor"):
        if row.submitter != owner:
            continue
        p = tx.from_leaf(row.leaf).payload
        if p["dataset"] in out:
            out[p["dataset"]].anchors.append(Anchor(p["first"], p["count"], bytes.fromhex(p["root"]), row.txid))
    return out


def verify_vault(url: str, kek: KekSource, ledger: Store, owner: str) -> VaultReport:
    """Verify the vault at `url` (opened read-only) against `owner`'s datasets on `ledger`."""
    results: list[DatasetResult] = []
    verdict = judge(lambda: _verify(url, kek, ledger, owner, results), VAULT)
    return VaultReport(verdict, results)


def _verify(url: str, kek: KekSource, ledger: Store, owner: str, results: list[DatasetResult]) -> Verdict:
    try:
        expected = declared(ledger, owner)
    except (QDSNError, *READ_ERRORS) as e:
        raise Damaged("the ledger", f"its dataset records are unreadable ({e}); run `qdsn ledger verify`") from None
    if not present(url, vault_tables):
        if not expected:
            nothing = f"{absent_reason(url, VAULT)}, and the ledger declares no dataset of this node"
            return Verdict(Outcome.VERIFIED, nothing)
        for d, e in sorted(expected.items()):
            results.append(DatasetResult(d, 0, Verdict(Outcome.INCOMPLETE, f"{e.anchored} anchored records missing")))
        total = sum(e.anchored for e in expected.values())
        raise Incomplete(
            f"{absent_reason(url, VAULT)}: the ledger holds {len(expected)} datasets of this node with {total} "
            f"anchored records ({', '.join(f'{d}: {e.anchored}' for d, e in sorted(expected.items()))})",
            RESTORE,
        )
    engine = create_engine(read_only_url(url))
    try:
        check_database(engine, vault_tables, VAULT)
        with engine.connect() as c:
            return _compare(c, kek, expected, results)
    finally:
        engine.dispose()


def _rows(c: Connection, sql: str, params: tuple = ()) -> Iterator[tuple]:
    mark = "?" if c.dialect.paramstyle == "qmark" else "%s"
    yield from c.exec_driver_sql(sql.replace("?", mark), params)


def _typed(where: str, values: tuple, types: tuple) -> tuple:
    """`values` checked against `types` (bytes from memoryview too): a damaged field is named."""
    out = []
    for v, t in zip(values, types, strict=True):
        if isinstance(v, memoryview):
            v = bytes(v)
        if not isinstance(v, t) or (isinstance(v, bool) and bool not in (t if isinstance(t, tuple) else (t,))):
            raise Damaged(where, f"a field holds {type(v).__name__} {v!r:.40} where {t} belongs")
        if isinstance(v, int) and not isinstance(v, bool) and v < 0:
            raise Damaged(where, f"a field holds the negative number {v}")
        out.append(v)
    return tuple(out)


def _compare(c: Connection, kek: KekSource, expected: dict[str, Declared], results: list[DatasetResult]) -> Verdict:
    stored = {}
    for r in _rows(c, "SELECT id, kind, wrapped_key, kek_id, next_seq FROM vault_datasets ORDER BY id"):
        row = _typed(f"a dataset record ({r[0]!r:.40})", tuple(r), (str, str, (bytes, type(None)), str, int))
        stored[row[0]] = row
    for table in ("vault_chunks", "vault_batches", "vault_messages"):
        for (d,) in _rows(c, f"SELECT DISTINCT dataset FROM {table}"):
            if d not in stored:
                raise Damaged(table, f"it holds rows of {d!r:.60}, a dataset the vault does not hold")
    for (d,) in _rows(c, "SELECT DISTINCT dataset FROM vault_keys"):
        if d not in stored and d not in expected:  # a declared dataset gone from the vault is reported below
            raise Damaged("vault_keys", f"it holds rows of {d!r:.60}, a dataset neither the vault nor the ledger has")
    for d in sorted(set(stored) | set(expected)):
        try:
            n, v = _dataset(c, kek, d, stored.get(d), expected.get(d))
        except Damaged as e:
            n, v = 0, Verdict(Outcome.DAMAGED, str(e), e.where)
        except Incomplete as e:
            n, v = 0, Verdict(Outcome.INCOMPLETE, str(e))
        results.append(DatasetResult(d, n, v))
    worst = max((r.verdict for r in results), key=lambda v: (v.outcome == Outcome.DAMAGED, v.outcome), default=None)
    notes = tuple(n for r in results for n in r.verdict.notes)
    if worst is None or worst.ok:
        total = sum(r.records for r in results)
        return Verdict(Outcome.VERIFIED, f"verified {total} records in {len(results)} datasets against the ledger",
                       checked=total, notes=notes)  # fmt: skip
    bad = [r for r in results if r.verdict.outcome == worst.outcome]
    return Verdict(worst.outcome, "; ".join(r.verdict.message for r in bad), worst.where, notes=notes)


def _dataset(c: Connection, kek: KekSource, d: str, row: tuple | None, e: Declared | None) -> tuple[int, Verdict]:
    name = f"dataset {d!r}"
    if row is None:
        assert e is not None
        raise Incomplete(f"{name} is declared on the ledger ({e.anchored} anchored records in {len(e.anchors)} "
                         "batches) but missing from the vault", RESTORE)  # fmt: skip
    _, kind, wrapped, kek_id, next_seq = row
    batches = [
        _typed(f"{name}, batch record {i}", tuple(b), BATCH)
        for i, b in enumerate(_rows(c, 'SELECT "first", "count", root, anchor_txid, anchored, note FROM vault_batches '
                                       "WHERE dataset = ? ORDER BY \"first\"", (d,)))
    ]  # fmt: skip
    if e is None:
        if next_seq == 0 and not batches:
            return 0, Verdict(Outcome.VERIFIED, "created",
                              notes=(f"{name} is created but not yet declared on the ledger",))  # fmt: skip
        raise Damaged(name, "it is in the vault but this node never declared it on the ledger")
    if kind != e.kind:
        raise Damaged(name, f"its stored kind {kind!r} is not the kind {e.kind!r} declared on the ledger")
    if e.shredded and wrapped is not None:
        raise Damaged(name, "it is shredded on the ledger but its key is still in the vault")
    notes, end = _batches(name, batches, e)
    if wrapped is None and not e.shredded:  # `qdsn vault shred` destroys the key first, then records it
        notes.append(f"{name}: key destroyed, the shredding not yet on the ledger (run `qdsn vault shred` again)")
    if next_seq != end:
        raise Damaged(name, f"it says its next record is {next_seq}, but its batches end at {end}")
    key = None
    if wrapped is not None:
        try:
            _, kk = kek(kek_id)
            key = open_data_key(kk, d, wrapped)
        except QDSNError as x:
            raise Damaged(f"{name}, data key", f"it does not open ({x.what})") from None
    keys = {}
    for r in _rows(c, 'SELECT "first", "count", sealed FROM vault_keys WHERE dataset = ?', (d,)):
        first, count, sealed = _typed(f"{name}, record keys at {r[0]!r:.20}", tuple(r), (int, int, bytes))
        keys[first] = (count, sealed)
    _chunks(c, name, d, key, batches, end, keys)
    taken: set[int] = set()  # one message per record
    for i, (seq,) in enumerate(_rows(c, "SELECT seq FROM vault_messages WHERE dataset = ?", (d,))):
        if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < end or seq in taken:
            raise Damaged(f"{name}, message record {i}",
                          f"it names record {seq!r:.20}, which the dataset does not hold or another "
                          "message names")  # fmt: skip
        taken.add(seq)
    return end, Verdict(Outcome.VERIFIED, "shredded" if key is None else "verified", notes=tuple(notes))


def _batches(name: str, batches: list[tuple], e: Declared) -> tuple[list[str], int]:
    """Match the vault's batches with the ledger's anchors; returns the pending notes and where the batches end."""
    by_first = {b[0]: b for b in batches}
    missing = [a for a in e.anchors if a.first not in by_first]
    if missing:
        gone = sum(a.count for a in missing)
        spans = ", ".join(f"{a.first}–{a.first + a.count - 1}" for a in missing[:5])
        spans += "…" if len(missing) > 5 else ""
        raise Incomplete(f"{name}: {gone} records anchored on the ledger are missing from the vault "
                         f"({len(missing)} of {len(e.anchors)} batches: records {spans})",
                         RESTORE)  # fmt: skip
    notes, end = [], 0
    anchors = {a.first: a for a in e.anchors}
    for first, count, root, txid, anchored, _ in batches:
        if anchored not in (0, 1) or len(root) != 32 or bool(anchored) != (txid is not None):
            # marking sets the flag and the anchor's id together: one without the other is damage
            raise Damaged(f"{name}, batch at record {first}", "its root, anchored flag or anchor id is malformed")
        if first != end or count == 0:
            raise Damaged(f"{name}, batch at record {first}",
                          f"batches must follow each other: the last ended at {end}")  # fmt: skip
        a = anchors.get(first)
        if a is None:
            if anchored:
                raise Damaged(f"{name}, batch at record {first}", "it is marked anchored, but the ledger holds no "
                              "anchor for it (was the ledger rolled back? run `qdsn ledger verify`)")  # fmt: skip
            notes.append(f"{name}: records {first}–{first + count - 1} pending anchor (sealed, not yet on the "
                         "ledger)")  # fmt: skip
        elif (count, root) != (a.count, a.root):
            raise Damaged(f"{name}, batch at record {first}", "it is not the one anchored on the ledger")
        elif not anchored:
            notes.append(f"{name}: records {first}–{first + count - 1} anchored on the ledger, not yet marked in "
                         "the vault")  # fmt: skip
        elif txid != a.txid:
            raise Damaged(f"{name}, batch at record {first}", f"it names anchor {txid!r:.70}, the ledger's is {a.txid}")
        end = first + count
    if end < e.anchored:  # a batch record beyond the anchors was cut: caught as missing above
        raise Incomplete(f"{name}: records {end}–{e.anchored - 1} anchored on the ledger are missing from the vault")
    return notes, end


def _chunks(
    c: Connection, name: str, d: str, key: bytes | None, batches: list[tuple], end: int, keys: dict[int, tuple]
) -> None:
    """Every row, in order, tiling [0, end) within batch boundaries; each opened and every batch root
    recomputed; each batch's stored record keys (`keys`: first -> (count, sealed)) those of its records."""
    rows = _rows(c, 'SELECT "first", "count", sealed FROM vault_chunks WHERE dataset = ? ORDER BY "first"', (d,))
    pos = 0
    for first, count, root, *_ in batches:
        leaves: list[bytes] = []
        while pos < first + count:
            r = next(rows, None)
            if r is None:
                raise Incomplete(f"{name}: the stored rows of records {pos}–{end - 1} are missing from the vault")
            start, n, sealed = _typed(f"{name}, row at record {r[0]!r:.20}", tuple(r), (int, int, bytes))
            if start != pos or n == 0 or n > CHUNK or start + n > first + count or (start - first) % CHUNK:
                raise Damaged(f"{name}, row at record {start}", f"rows must tile the batch at {first}; expected {pos}")
            if key is not None:
                try:
                    leaves += open_row(key, d, start, n, sealed)
                except QDSNError as x:
                    raise Damaged(f"{name}, row at record {start}", x.what) from None
            pos = start + n
        if key is not None and merkle.root_hash(leaves) != root:
            raise Damaged(f"{name}, batch at record {first}", "its records do not add up to its root")
        if first in keys:  # a batch stored before record keys existed has none until its next ingest
            _record_keys(name, d, key, first, count, keys.pop(first), leaves)
    if keys:
        raise Damaged(f"{name}, record keys at {min(keys)}", "they belong to no batch of the dataset")
    extra = next(rows, None)
    if extra is not None:
        raise Damaged(f"{name}, row at record {extra[0]!r:.20}",
                      f"it lies beyond the dataset's last batch (ending at {end})")  # fmt: skip


def _record_keys(name: str, d: str, key: bytes | None, first: int, count: int, stored: tuple, leaves: list) -> None:
    where = f"{name}, record keys of the batch at {first}"
    if stored[0] != count:
        raise Damaged(where, f"they are {stored[0]} keys for {count} records")
    if key is None:
        return  # shredded: nothing opens any more
    try:
        held = open_keys(key, d, first, count, stored[1])
    except QDSNError as x:
        raise Damaged(where, x.what) from None
    if held != content_keys(key, (orjson.loads(x)["record"] for x in leaves)):
        raise Damaged(where, "they are not the keys of the batch's records")
