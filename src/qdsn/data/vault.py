"""The vault: a manufacturer's datasets, encrypted under its own keys, committed batch by batch.

Envelope encryption: each dataset has a random AES-256-GCM data key; the data key is stored only
wrapped by the owner's key-encryption key (derived from its keystore). Records are sealed CHUNK to a
row, with associated data naming the dataset and the row's first sequence number and count, so a
row moved, cut or spliced into another dataset fails to open. A batch of records gets an RFC 9162
root over salted leaves — the salt keeps a low-entropy reading from being guessed from its hash —
which the owner anchors on the ledger with `dataset.anchor`. Any record can then be proven part of an anchored batch.
"""

from __future__ import annotations

import hashlib
import os
import struct
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    and_,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError as DBIntegrityError

from qdsn.crypto import canonical_json, new_key, offload, open_sealed, seal
from qdsn.crypto.aead import NONCE_SIZE
from qdsn.errors import Conflict, IntegrityError, InvalidInput, NotFound
from qdsn.ledger import merkle
from qdsn.ledger.store import insert_many, open_engine

metadata = MetaData()
vault_datasets = Table(
    "vault_datasets",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("wrapped_key", LargeBinary, nullable=True),  # NULL once shredded
    Column("kek_id", String(128), nullable=False),
    Column("next_seq", Integer, nullable=False),
)
# Records are sealed and stored CHUNK to a row: one row (or one AES-GCM message) per record would make
# the SQL insert and the per-call overhead, not the cryptography, the cost of ingestion. Reads decrypt
# whole rows anyway, and fewer messages per key keep random nonces far from GCM's collision bound.
vault_chunks = Table(
    "vault_chunks",
    metadata,
    Column("dataset", String(128), primary_key=True),
    Column("first", Integer, primary_key=True, autoincrement=False),
    Column("count", Integer, nullable=False),
    Column("sealed", LargeBinary, nullable=False),
)
CHUNK = 256
_LEN = struct.Struct(">I")
vault_batches = Table(
    "vault_batches",
    metadata,
    Column("dataset", String(128), primary_key=True),
    Column("first", Integer, primary_key=True, autoincrement=False),
    Column("count", Integer, nullable=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("anchor_txid", String(64), nullable=True),
    Column("anchored", Boolean, nullable=False, default=False),
    Column("note", Text, nullable=True),
)

vault_messages = Table(  # ids of ingested messages, so a redelivered one is dropped
    "vault_messages",
    metadata,
    Column("dataset", String(128), primary_key=True),
    Column("message", String(128), primary_key=True),
    Column("seq", Integer, nullable=False),
)

KekSource = Callable[[str | None], tuple[str, bytes]]  # kek id (None: current) -> (kek id, 32-byte kek)


@dataclass(frozen=True)
class Batch:
    """A committed batch, ready to anchor: sequence numbers [first, first + count) and their root."""

    dataset: str
    first: int
    count: int
    root: bytes

    def anchor_payload(self) -> dict[str, Any]:
        """The `dataset.anchor` payload that commits to this batch."""
        return {"dataset": self.dataset, "first": self.first, "count": self.count, "root": self.root.hex()}


@dataclass(frozen=True)
class RecordProof:
    """Everything a verifier needs to check one record against an anchored batch root."""

    dataset: str
    seq: int
    leaf: bytes  # canonical JSON {dataset, seq, salt, record}
    first: int
    count: int
    proof: list[bytes]
    root: bytes

    def record(self) -> dict[str, Any]:
        return orjson.loads(self.leaf)["record"]


def verify_record_proof(p: RecordProof, anchored_root: bytes) -> dict[str, Any]:
    """The record, once its leaf is shown to be in the batch whose root was anchored."""
    obj = orjson.loads(p.leaf)
    if (obj.get("dataset"), obj.get("seq")) != (p.dataset, p.seq) or not p.first <= p.seq < p.first + p.count:
        raise IntegrityError(f"the leaf is not record {p.seq} of {p.dataset}")
    if p.root != anchored_root:
        raise IntegrityError("the proof's root is not the anchored root")
    merkle.verify_inclusion(merkle.leaf_hash(p.leaf), p.seq - p.first, p.count, p.proof, anchored_root)
    return obj["record"]


def leaf(dataset: str, seq: int, salt: bytes, record: dict[str, Any], sig: str | None = None) -> bytes:
    """The salted, canonical leaf of one record: JCS of {dataset, record, salt, seq[, sig]}, written
    directly since the wrapper's keys and values are known to be plain (a canonical record nested
    in it keeps the whole canonical). `sig`, the device's signature of the reading, stays with it so
    that provenance reaches back to the instrument."""
    tail = b',"sig":%b' % orjson.dumps(sig) if sig else b""
    return b'{"dataset":%b,"record":%b,"salt":"%b","seq":%d%b}' % (
        orjson.dumps(dataset),
        canonical_json(record),
        salt.hex().encode(),
        seq,
        tail,
    )


def reading_message(record: dict[str, Any]) -> bytes:
    """What a device signs for one reading: the canonical JSON of the record."""
    return canonical_json(record)


def pack_chunk(leaves: Sequence[bytes]) -> bytes:
    """Length-prefixed leaves: the plaintext of one stored row."""
    return b"".join(_LEN.pack(len(x)) + x for x in leaves)


def unpack_chunk(blob: bytes, count: int) -> list[bytes]:
    """Inverse of `pack_chunk`; raises IntegrityError if it does not hold `count` leaves."""
    out, pos = [], 0
    while pos + 4 <= len(blob):
        (n,) = _LEN.unpack_from(blob, pos)
        out.append(blob[pos + 4 : pos + 4 + n])
        pos += 4 + n
    if pos != len(blob) or len(out) != count:
        raise IntegrityError(f"a stored chunk is malformed: {len(out)} records where {count} belong")
    return out


def open_data_key(kek: bytes, dataset: str, wrapped: bytes) -> bytes:
    """A dataset's data key, unwrapped; raises IntegrityError if it was altered or is not this dataset's."""
    return open_sealed(kek, wrapped, _key_aad(dataset))


def open_row(key: bytes, dataset: str, first: int, count: int, sealed: bytes) -> list[bytes]:
    """The leaves of one stored row; raises IntegrityError if the row was altered, moved or cut."""
    return unpack_chunk(open_sealed(key, sealed, _row_aad(dataset, first, count)), count)


def _row_aad(dataset: str, first: int, count: int) -> bytes:
    return f"qdsn/vault/records/{dataset}/{first}/{count}".encode()


def _key_aad(dataset: str) -> bytes:
    return f"qdsn/vault/data-key/{dataset}".encode()


def seal_records(
    key: bytes, dataset: str, first: int, records: Sequence[dict[str, Any]], sigs: Sequence[str | None]
) -> list[tuple[int, bytes, bytes]]:
    """Records `first`… of a dataset as salted leaves, CHUNK to a sealed row: for each row (count, row,
    root of its leaves). Rows start CHUNK records apart, so each full row is a complete subtree of the
    batch's RFC 9162 tree, and the batch root is the root over the row roots."""
    encrypt = AESGCM(key).encrypt
    salts = os.urandom(16 * len(records))
    nonces = os.urandom(NONCE_SIZE * (len(records) // CHUNK + 1))
    sha, out = hashlib.sha256, []
    for start in range(0, len(records), CHUNK):
        end = min(start + CHUNK, len(records))
        leaves = [leaf(dataset, first + i, salts[16 * i : 16 * i + 16], records[i], sigs[i]) for i in range(start, end)]
        k = start // CHUNK
        nonce = nonces[NONCE_SIZE * k : NONCE_SIZE * (k + 1)]
        row = nonce + encrypt(nonce, pack_chunk(leaves), _row_aad(dataset, first + start, end - start))
        out.append((end - start, row, merkle.root_from_hashes([sha(b"\x00" + x).digest() for x in leaves])))
    return out


_SEAL = struct.Struct(">32sQI")  # key, first seq, record count
_ROW = struct.Struct(">II32s")  # count, length, root
_TOOK = struct.Struct(">d")


def seal_frame(frame: bytes) -> bytes:
    """`seal_records` across a pipe: key ‖ first ‖ n ‖ JSON [dataset, records, sigs] in; the seconds it
    took, then each row as count ‖ length ‖ root ‖ row, out."""
    t = time.perf_counter()
    key, first, _ = _SEAL.unpack_from(frame)
    dataset, records, sigs = orjson.loads(frame[_SEAL.size :])
    rows = b"".join(
        _ROW.pack(n, len(row), root) + row for n, row, root in seal_records(key, dataset, first, records, sigs)
    )
    return _TOOK.pack(time.perf_counter() - t) + rows


def _unseal_answer(answer: bytes) -> tuple[float, list[tuple[int, bytes, bytes]]]:
    rows, pos = [], _TOOK.size
    while pos < len(answer):
        count, size, root = _ROW.unpack_from(answer, pos)
        pos += _ROW.size
        rows.append((count, answer[pos : pos + size], root))
        pos += size
    return _TOOK.unpack_from(answer)[0], rows


class _Split:
    """The share of a batch the helper takes, moved toward the one at which both processes would
    have finished together last time, so neither waits for the other."""

    share = 0.5

    @classmethod
    def learn(cls, here: float, n_here: int, there: float, n_there: int) -> None:
        if here > 0 and there > 0:
            rate_here, rate_there = n_here / here, n_there / there
            cls.share = min(0.7, max(0.3, 0.5 * cls.share + 0.5 * rate_there / (rate_here + rate_there)))


def _seal_both_cores(
    key: bytes, dataset: str, first: int, records: Sequence[dict[str, Any]], sigs: Sequence[str | None]
) -> list[tuple[int, bytes, bytes]]:
    """`seal_records`, the tail of the batch done by a helper process while this one does the head."""
    cut = round(len(records) * (1 - _Split.share) / CHUNK) * CHUNK  # whole rows on each side
    if len(records) < 8 * CHUNK or not 0 < cut < len(records):  # small: cheaper here than through the pipe
        return seal_records(key, dataset, first, records, sigs)
    h = offload.helper("qdsn.data.vault:seal_frame")
    if not h.claim():
        return seal_records(key, dataset, first, records, sigs)
    try:
        t = time.perf_counter()  # this side's share of the work includes encoding the helper's
        h.send(_SEAL.pack(key, first + cut, len(records) - cut) + orjson.dumps([dataset, records[cut:], sigs[cut:]]))
        rows = seal_records(key, dataset, first, records[:cut], sigs[:cut])
        here = time.perf_counter() - t
        there, more = _unseal_answer(h.receive())
        _Split.learn(here, cut, there, len(records) - cut)
        return rows + more
    except (orjson.JSONEncodeError, OSError, EOFError):
        # not plain JSON (the one-process path names the problem), or the helper died (never drop a record)
        return seal_records(key, dataset, first, records, sigs)
    finally:
        h.release()


def _sealed_batch(
    key: bytes, dataset: str, first: int, records: Sequence[dict[str, Any]], sigs: Sequence[str | None]
) -> tuple[Batch, list[tuple[int, bytes, bytes]]]:
    rows = _seal_both_cores(key, dataset, first, records, sigs)
    return Batch(dataset, first, len(records), merkle.root_from_hashes([r[2] for r in rows])), rows


class Vault:
    """One node's encrypted datasets in SQL (SQLite file or PostgreSQL URL)."""

    def __init__(self, url: str, kek: KekSource) -> None:
        self.engine = open_engine(url)
        metadata.create_all(self.engine)
        self._kek = kek
        self._keys: dict[str, bytes] = {}

    def close(self) -> None:
        self.engine.dispose()

    def fingerprint(self) -> str:
        """A digest that changes whenever a dataset is created, grows, is re-keyed or shredded."""
        cols = (vault_datasets.c.id, vault_datasets.c.next_seq, vault_datasets.c.kek_id, vault_datasets.c.wrapped_key)
        with self.engine.connect() as c:
            rows = [(i, n, k, w is None) for i, n, k, w in c.execute(select(*cols).order_by(vault_datasets.c.id))]
        return hashlib.sha256(orjson.dumps(rows)).hexdigest()

    def datasets(self) -> list[str]:
        """The ids of the datasets in this vault."""
        with self.engine.connect() as c:
            return [r[0] for r in c.execute(select(vault_datasets.c.id).order_by(vault_datasets.c.id))]

    def kind(self, dataset: str) -> str:
        """What a dataset holds: measurements, inspections, …"""
        return self._row(dataset).kind

    def create(self, dataset: str, kind: str) -> None:
        """A new dataset with a fresh data key, wrapped by the owner's current key-encryption key."""
        kek_id, kek = self._kek(None)
        data_key = new_key()
        try:
            with self.engine.begin() as c:
                c.execute(
                    insert(vault_datasets).values(
                        id=dataset,
                        kind=kind,
                        kek_id=kek_id,
                        next_seq=0,
                        wrapped_key=seal(kek, data_key, _key_aad(dataset)),
                    )
                )
        except DBIntegrityError:
            raise Conflict(f"the vault already holds a dataset {dataset!r}") from None
        self._keys[dataset] = data_key

    def _row(self, dataset: str) -> Any:
        with self.engine.connect() as c:
            row = c.execute(select(vault_datasets).where(vault_datasets.c.id == dataset)).first()
        if row is None:
            raise NotFound(f"the vault holds no dataset {dataset!r}", "create it with `qdsn dataset create`")
        return row

    def _data_key(self, dataset: str) -> bytes:
        if dataset not in self._keys:
            row = self._row(dataset)
            if row.wrapped_key is None:
                raise NotFound(f"dataset {dataset!r} was shredded: its key is destroyed and its records unreadable")
            _, kek = self._kek(row.kek_id)
            self._keys[dataset] = open_sealed(kek, row.wrapped_key, _key_aad(dataset))
        return self._keys[dataset]

    def add_batch(
        self,
        dataset: str,
        records: Sequence[dict[str, Any]],
        message_ids: Sequence[str] | None = None,
        signatures: Sequence[str | None] | None = None,
    ) -> Batch | None:
        """Seal and store a batch of records in one transaction; returns the batch to anchor.

        With `message_ids` (one per record), records whose message was already stored are dropped
        and the rest are remembered in the same transaction: a redelivery after a crash lands
        once. Returns None when nothing was new."""
        if not records:
            raise InvalidInput("an empty batch has nothing to commit")
        key = self._data_key(dataset)
        with self.engine.begin() as c:
            sigs = list(signatures) if signatures is not None else [None] * len(records)
            if message_ids is not None:
                records, message_ids, sigs = self._new_only(c, dataset, records, message_ids, sigs)
                if not records:
                    return None
            first = c.execute(select(vault_datasets.c.next_seq).where(vault_datasets.c.id == dataset)).scalar_one()
            batch, rows = _sealed_batch(key, dataset, first, records, sigs)
            self._write(c, batch, rows, message_ids)
        return batch

    def add_stream(self, dataset: str, batches: Iterable[Sequence[dict[str, Any]]]) -> Iterator[Batch]:
        """`add_batch` for many batches in a row, each in its own transaction: batch k+1 is sealed while
        batch k is written. Yields each batch once it is committed; the next is written only after the
        caller asks for it (anchor the batch first), so at most one batch waits for its anchor."""
        key = self._data_key(dataset)
        first = self._row(dataset).next_seq
        with ThreadPoolExecutor(1, thread_name_prefix="vault-writer") as writer:
            writing: Future[Batch] | None = None
            for records in batches:
                if not records:
                    raise InvalidInput("an empty batch has nothing to commit")
                sealed = _sealed_batch(key, dataset, first, records, [None] * len(records))
                if writing is not None:
                    yield writing.result()
                writing = writer.submit(self._commit, *sealed)
                first += len(records)
            if writing is not None:
                yield writing.result()

    def _commit(self, batch: Batch, rows: list[tuple[int, bytes, bytes]]) -> Batch:
        with self.engine.begin() as c:
            self._write(c, batch, rows)
        return batch

    @staticmethod
    def _write(c, batch: Batch, rows: list[tuple[int, bytes, bytes]], message_ids=None) -> None:  # type: ignore[no-untyped-def]
        """Store a sealed batch where the dataset ends now, or refuse if it grew meanwhile."""
        dataset, first, count = batch.dataset, batch.first, batch.count
        grown = c.execute(
            update(vault_datasets)
            .where(and_(vault_datasets.c.id == dataset, vault_datasets.c.next_seq == first))
            .values(next_seq=first + count)
        )
        if grown.rowcount != 1:
            raise Conflict(f"dataset {dataset!r} grew while records {first}… were sealed; they were not written")
        insert_many(c, vault_chunks, [(dataset, first + i * CHUNK, n, row) for i, (n, row, _) in enumerate(rows)])
        if message_ids is not None:
            c.execute(
                insert(vault_messages),
                [{"dataset": dataset, "message": m, "seq": first + i} for i, m in enumerate(message_ids)],
            )
        c.execute(
            insert(vault_batches).values(dataset=dataset, first=first, count=count, root=batch.root, anchored=False)
        )

    @staticmethod
    def _new_only(c, dataset: str, records, ids, sigs):  # type: ignore[no-untyped-def]
        if len(ids) != len(records):
            raise InvalidInput("one message id per record")
        seen: set[str] = set()
        for i in range(0, len(ids), 900):
            q = select(vault_messages.c.message).where(
                and_(vault_messages.c.dataset == dataset, vault_messages.c.message.in_(ids[i : i + 900]))
            )
            seen.update(m for (m,) in c.execute(q))
        keep = []
        for r, m, sig in zip(records, ids, sigs, strict=True):
            if m not in seen:
                seen.add(m)  # also drops a duplicate within the batch
                keep.append((r, m, sig))
        return [k[0] for k in keep], [k[1] for k in keep], [k[2] for k in keep]

    def mark_anchored(self, batch: Batch, txid: str) -> None:
        """Record that `batch` is anchored on the ledger by transaction `txid`."""
        with self.engine.begin() as c:
            c.execute(
                update(vault_batches)
                .where(and_(vault_batches.c.dataset == batch.dataset, vault_batches.c.first == batch.first))
                .values(anchored=True, anchor_txid=txid)
            )

    def unanchored(self, dataset: str) -> list[Batch]:
        """Batches committed here but not yet anchored (after a crash between the two), in order."""
        with self.engine.connect() as c:
            rows = c.execute(
                select(vault_batches)
                .where(and_(vault_batches.c.dataset == dataset, vault_batches.c.anchored.is_(False)))
                .order_by(vault_batches.c.first)
            ).all()
        return [Batch(r.dataset, r.first, r.count, r.root) for r in rows]

    def _leaves(self, dataset: str, start: int, end: int) -> list[bytes]:
        key = self._data_key(dataset)
        t = vault_chunks.c
        with self.engine.connect() as c:
            rows = c.execute(
                select(t.first, t.count, t.sealed)
                .where(and_(t.dataset == dataset, t.first < end, t.first + t.count > start))
                .order_by(t.first)
            ).all()
        out, seq = [], start
        for r in rows:
            if r.first > seq:
                break
            leaves = unpack_chunk(open_sealed(key, r.sealed, _row_aad(dataset, r.first, r.count)), r.count)
            out += leaves[max(start - r.first, 0) : end - r.first]
            seq = r.first + r.count
        if seq < end and seq < self._row(dataset).next_seq:  # ask the database only when short
            raise IntegrityError(f"records of {dataset!r} from {seq} on (below {end}) are missing")
        return out

    def records(self, dataset: str, start: int = 0, end: int | None = None) -> list[dict[str, Any]]:
        """Decrypt records [start, end) of a dataset — only inside the owner's node."""
        end = self._row(dataset).next_seq if end is None else end
        return [orjson.loads(x)["record"] for x in self._leaves(dataset, start, end)]

    def _batch_of(self, dataset: str, seq: int) -> Any:
        with self.engine.connect() as c:
            row = c.execute(
                select(vault_batches)
                .where(and_(vault_batches.c.dataset == dataset, vault_batches.c.first <= seq))
                .order_by(vault_batches.c.first.desc())
                .limit(1)
            ).first()
        if row is None or seq >= row.first + row.count:
            raise NotFound(f"record {seq} of {dataset!r} is in no committed batch")
        return row

    def prove(self, dataset: str, seq: int) -> RecordProof:
        """The record's leaf and its inclusion proof in its batch."""
        b = self._batch_of(dataset, seq)
        leaves = self._leaves(dataset, b.first, b.first + b.count)
        proof = merkle.inclusion_proof(seq - b.first, b.count, merkle.MemoryTree(leaves))
        return RecordProof(dataset, seq, leaves[seq - b.first], b.first, b.count, proof, b.root)

    def covering(self, dataset: str, start: int, end: int) -> list[tuple[Batch, str | None, list[bytes]]]:
        """The committed batches that hold records [start, end), each with its anchor transaction id
        (None while unanchored) and all of its leaves."""
        t = vault_batches.c
        with self.engine.connect() as c:
            rows = c.execute(
                select(vault_batches)
                .where(and_(t.dataset == dataset, t.first < end, t.first + t.count > start))
                .order_by(t.first)
            ).all()
        if not rows or rows[0].first > start or rows[-1].first + rows[-1].count < end:
            raise NotFound(f"records {start}–{end - 1} of {dataset!r} are not all in committed batches")
        return [
            (Batch(dataset, b.first, b.count, b.root), b.anchor_txid if b.anchored else None,
             self._leaves(dataset, b.first, b.first + b.count))
            for b in rows
        ]  # fmt: skip

    def verify(self, dataset: str, anchored: Callable[[int], bytes] | None = None) -> int:
        """Open every record and recompute every batch root (and compare with the ledger's anchored
        roots, given `anchored(first) -> root`); returns the records checked or raises IntegrityError."""
        with self.engine.connect() as c:
            batches = c.execute(
                select(vault_batches).where(vault_batches.c.dataset == dataset).order_by(vault_batches.c.first)
            ).all()
        expected = 0
        for b in batches:
            if b.first != expected:
                raise IntegrityError(f"batches of {dataset!r} jump from record {expected} to {b.first}")
            leaves = self._leaves(dataset, b.first, b.first + b.count)
            if len(leaves) != b.count or merkle.root_hash(leaves) != b.root:
                raise IntegrityError(f"batch at record {b.first} of {dataset!r} does not match its root")
            if anchored is not None and anchored(b.first) != b.root:
                raise IntegrityError(f"batch at record {b.first} of {dataset!r} is not the one anchored on the ledger")
            expected += b.count
        return expected

    def shred(self, dataset: str) -> None:
        """Destroy the dataset's key (crypto-shredding): its records can never be read again."""
        self._row(dataset)
        with self.engine.begin() as c:
            c.execute(update(vault_datasets).where(vault_datasets.c.id == dataset).values(wrapped_key=None))
        self._keys.pop(dataset, None)
