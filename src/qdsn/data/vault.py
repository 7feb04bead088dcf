"""The vault: a manufacturer's datasets, encrypted under its own keys, committed batch by batch.

Envelope encryption: each dataset has a random AES-256-GCM data key; the data key is stored only
wrapped by the owner's key-encryption key (derived from its keystore). Records are sealed CHUNK to a
row, with associated data naming the dataset and the row's first sequence number and count, so a
row moved, cut or spliced into another dataset fails to open. A batch of records gets an RFC 9162
root over salted leaves — the salt keeps a low-entropy reading from being guessed from its hash —
which the owner anchors on the ledger with `dataset.anchor`. Any record can then be proven part of an anchored batch.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import os
import struct
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
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
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError as DBIntegrityError

from qdsn.crypto import canonical_json, hkdf_sha256, new_key, offload, open_sealed, seal
from qdsn.crypto.aead import NONCE_SIZE
from qdsn.data.sequences import Stream, merge, numbered
from qdsn.errors import Conflict, IntegrityError, InvalidInput, NotFound, QDSNError
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

# Keys of ingested messages, so a redelivered one is dropped: a MAC under the dataset's dedup key
# (`Vault.message_key`), never the id as sent nor a plain digest that a guess could be checked against.
vault_messages = Table(
    "vault_messages",
    metadata,
    Column("dataset", String(128), primary_key=True),
    Column("message", String(128), primary_key=True),
    Column("seq", Integer, nullable=False),
)
# What each stored record is: its content key (`Vault.record_keys`), a batch to a row in record order,
# sealed with the dataset's key and written in the transaction that stores the batch, so the same
# records ingested again — from whatever file, in whatever order or encoding — are known and skipped.
# One row per batch, not per record: an index row per record would halve the ingest rate.
vault_keys = Table(
    "vault_keys",
    metadata,
    Column("dataset", String(128), primary_key=True),
    Column("first", Integer, primary_key=True, autoincrement=False),
    Column("count", Integer, nullable=False),
    Column("sealed", LargeBinary, nullable=False),
)
KEY_SIZE = 16  # bytes of a record's content key: 2^-64 odds of a collision even among 2^32 records
# No longer written (record keys replaced source digests); kept so that older vaults and backups open.
vault_sources = Table(
    "vault_sources",
    metadata,
    Column("dataset", String(128), primary_key=True),
    Column("first", Integer, primary_key=True, autoincrement=False),
    Column("source", String(64), nullable=False),
    Column("upto", Integer, nullable=False),
)
# Messages that arrived and were refused, kept with the reason; the payload is sealed with the
# dataset's key (a refused reading is still quality data).
vault_quarantine = Table(
    "vault_quarantine",
    metadata,
    Column("dataset", String(128), primary_key=True),
    Column("message", String(128), primary_key=True),  # its message key: a redelivery is set aside once
    Column("topic", Text, nullable=False),
    Column("received", String(40), nullable=False),
    Column("reason", Text, nullable=False),
    Column("sealed", LargeBinary, nullable=False),
)

# Which sequence numbers of each device's readings arrived (`qdsn.data.sequences`): one row per device
# (and boot), named by a MAC like a message, its ranges and the device's name sealed with the dataset's key.
vault_sequences = Table(
    "vault_sequences",
    metadata,
    Column("dataset", String(128), primary_key=True),
    Column("stream", String(128), primary_key=True),
    Column("sealed", LargeBinary, nullable=False),
)

KekSource = Callable[[str | None], tuple[str, bytes]]  # kek id (None: current) -> (kek id, 32-byte kek)
# (dataset, first) -> (anchoring txid, the anchored batch) if the ledger holds an anchor of the dataset at `first`
AnchorLookup = Callable[[str, int], "tuple[str, Batch] | None"]


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
    return canonical_leaf(dataset, seq, salt, canonical_json(record), sig)


def canonical_leaf(dataset: str, seq: int, salt: bytes, canonical: bytes, sig: str | None = None) -> bytes:
    """`leaf` of a record given as its canonical JSON (`canonical_records`), not canonicalized again."""
    tail = b',"sig":%b' % orjson.dumps(sig) if sig else b""
    return b'{"dataset":%b,"record":%b,"salt":"%b","seq":%d%b}' % (
        orjson.dumps(dataset),
        canonical,
        salt.hex().encode(),
        seq,
        tail,
    )


def canonical_records(records: Iterable[dict[str, Any]]) -> list[bytes]:
    """Each record's RFC 8785 canonical JSON, made once: its content key and its leaf are both made from it."""
    # Compact copies: a bytes object from orjson keeps the larger block it was written in, so holding a
    # file's worth of them took a fresh page from the system for each record (a page fault a record, as
    # much time as canonicalizing it); a copy from Python's small-object allocator does not.
    return [memoryview(canonical_json(r)).tobytes() for r in records]


def reading_message(record: dict[str, Any]) -> bytes:
    """What a device signs for one reading: the canonical JSON of the record."""
    return canonical_json(record)


def pack_chunk(leaves: Sequence[bytes]) -> bytes:
    """Length-prefixed leaves: the plaintext of one stored row."""
    # interleaved by iterators, not a concatenation per leaf: half the cost, on the path of every record sealed
    return b"".join(itertools.chain.from_iterable(zip(map(_LEN.pack, map(len, leaves)), leaves, strict=True)))


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


def _quarantine_aad(dataset: str, message: str) -> bytes:
    return f"qdsn/vault/quarantine/{dataset}/{message}".encode()


def _stream_aad(dataset: str, stream: str) -> bytes:
    return f"qdsn/vault/sequences/{dataset}/{stream}".encode()


def _keys_aad(dataset: str, first: int, count: int) -> bytes:
    return f"qdsn/vault/record-keys/{dataset}/{first}/{count}".encode()


def content_keys(data_key: bytes, records: Iterable[dict[str, Any]]) -> list[bytes]:
    """What identifies each record of the dataset whose data key this is: a keyed hash of its canonical
    JSON (RFC 8785), so the same record read from another file, encoding or format has the same key."""
    return canonical_keys(data_key, map(canonical_json, records))


def canonical_keys(data_key: bytes, canonical: Iterable[bytes]) -> list[bytes]:
    """`content_keys` of records given as their canonical JSON (`canonical_records`). Keyed BLAKE2b
    (RFC 7693's MAC mode) rather than HMAC: it runs for every record ingested, at half the cost; keyed
    by the dataset, so a guessed reading cannot be checked against the stored keys."""
    key, b2 = hkdf_sha256(data_key, b"qdsn record keys"), hashlib.blake2b
    return [b2(c, key=key, digest_size=KEY_SIZE).digest() for c in canonical]


def open_keys(data_key: bytes, dataset: str, first: int, count: int, sealed: bytes) -> list[bytes]:
    """The content keys of records [first, first + count) as stored; IntegrityError if altered or moved."""
    blob = open_sealed(data_key, sealed, _keys_aad(dataset, first, count))
    if len(blob) != KEY_SIZE * count:
        raise IntegrityError(f"the record keys of {dataset!r} at {first} are not {count} keys")
    return [blob[i : i + KEY_SIZE] for i in range(0, len(blob), KEY_SIZE)]


def seal_records(
    key: bytes, dataset: str, first: int, canonical: Sequence[bytes], sigs: Sequence[str | None] | None = None
) -> list[tuple[int, bytes, bytes]]:
    """Records `first`… of a dataset, given as their canonical JSON (`canonical_records`), as salted leaves,
    CHUNK to a sealed row: for each row (count, row, root of its leaves). Rows start CHUNK records apart,
    so each full row is a complete subtree of the batch's RFC 9162 tree, and the batch root is the root
    over the row roots."""
    encrypt = AESGCM(key).encrypt
    n = len(canonical)
    salts = os.urandom(16 * n)
    nonces = os.urandom(NONCE_SIZE * (n // CHUNK + 1))
    signed = sigs is not None and any(sigs)
    # `canonical_leaf` inlined for unsigned records (all of a file's): the wrapper's head and the
    # salts' hex are made once for the batch, not once a record
    head, hexed = b'{"dataset":%b,"record":' % orjson.dumps(dataset), salts.hex().encode()
    sha, out = hashlib.sha256, []
    for start in range(0, n, CHUNK):
        end = min(start + CHUNK, n)
        if signed:
            leaves = [
                canonical_leaf(dataset, first + i, salts[16 * i : 16 * i + 16], canonical[i], sigs[i])  # type: ignore[index]
                for i in range(start, end)
            ]
        else:
            leaves = [
                b'%b%b,"salt":"%b","seq":%d}' % (head, canonical[i], hexed[32 * i : 32 * i + 32], first + i)
                for i in range(start, end)
            ]
        k = start // CHUNK
        nonce = nonces[NONCE_SIZE * k : NONCE_SIZE * (k + 1)]
        row = nonce + encrypt(nonce, pack_chunk(leaves), _row_aad(dataset, first + start, end - start))
        out.append((end - start, row, merkle.root_from_hashes([sha(b"\x00" + x).digest() for x in leaves])))
    return out


_SEAL = struct.Struct(">32sQII")  # key, first seq, record count, length of [dataset, sigs]
_ROW = struct.Struct(">II32s")  # count, length, root
_TOOK = struct.Struct(">d")


def seal_frame(frame: bytes) -> bytes:
    """`seal_records` across a pipe: key ‖ first ‖ n ‖ length ‖ JSON [dataset, sigs or null] ‖ the n
    records' canonical JSON, one a line, in; the seconds it took, then each row as count ‖ length ‖
    root ‖ row, out."""
    t = time.perf_counter()
    key, first, n, size = _SEAL.unpack_from(frame)
    dataset, sigs = orjson.loads(frame[_SEAL.size : _SEAL.size + size])
    canonical = frame[_SEAL.size + size :].split(b"\n")
    if len(canonical) != n:
        raise IntegrityError(f"a sealing frame holds {len(canonical)} records where {n} belong")
    rows = b"".join(
        _ROW.pack(n, len(row), root) + row for n, row, root in seal_records(key, dataset, first, canonical, sigs)
    )
    return _TOOK.pack(time.perf_counter() - t) + rows


def _seal_frame_of(key: bytes, dataset: str, first: int, canonical: Sequence[bytes], sigs: Any) -> bytes | None:
    """The frame `seal_frame` takes, or None if it cannot carry these records. Canonical JSON as lines:
    RFC 8785 writes no whitespace and escapes every control character, so a record never holds a line
    break, and joining and splitting lines costs a fifth of length prefixes or a JSON array of records.
    Checked all the same (one pass in C), since a record cut in two would be sealed as two."""
    lines = b"\n".join(canonical)
    if lines.count(b"\n") != len(canonical) - 1:
        return None
    head = orjson.dumps([dataset, sigs])
    return _SEAL.pack(key, first, len(canonical), len(head)) + head + lines


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
    key: bytes, dataset: str, first: int, canonical: Sequence[bytes], sigs: Sequence[str | None] | None = None
) -> list[tuple[int, bytes, bytes]]:
    """`seal_records`, the tail of the batch done by a helper process while this one does the head."""
    n = len(canonical)
    cut = round(n * (1 - _Split.share) / CHUNK) * CHUNK  # whole rows on each side
    if n < 8 * CHUNK or not 0 < cut < n:  # small: cheaper here than through the pipe
        return seal_records(key, dataset, first, canonical, sigs)
    h = offload.helper("qdsn.data.vault:seal_frame")
    if not h.claim():
        return seal_records(key, dataset, first, canonical, sigs)
    try:
        t = time.perf_counter()  # this side's share of the work includes encoding the helper's
        frame = _seal_frame_of(key, dataset, first + cut, canonical[cut:], None if sigs is None else sigs[cut:])
        if frame is None:
            return seal_records(key, dataset, first, canonical, sigs)
        h.send(frame)
        rows = seal_records(key, dataset, first, canonical[:cut], None if sigs is None else sigs[:cut])
        here = time.perf_counter() - t
        there, more = _unseal_answer(h.receive())
        _Split.learn(here, cut, there, n - cut)
        return rows + more
    except (orjson.JSONEncodeError, OSError, EOFError):
        # a signature that is not a string (the one-process path names the problem), or the helper died
        # (never drop a record)
        return seal_records(key, dataset, first, canonical, sigs)
    finally:
        h.release()


def _sealed_batch(
    key: bytes, dataset: str, first: int, canonical: Sequence[bytes], sigs: Sequence[str | None] | None = None
) -> tuple[Batch, list[tuple[int, bytes, bytes]]]:
    rows = _seal_both_cores(key, dataset, first, canonical, sigs)
    return Batch(dataset, first, len(canonical), merkle.root_from_hashes([r[2] for r in rows])), rows


class Vault:
    """One node's encrypted datasets in SQL (SQLite file or PostgreSQL URL)."""

    def __init__(self, url: str, kek: KekSource) -> None:
        self.engine = open_engine(url)
        metadata.create_all(self.engine)
        self._kek = kek
        self._keys: dict[str, bytes] = {}
        self._dedup: dict[str, bytes] = {}

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

    def _dedup_key(self, dataset: str) -> bytes:
        if dataset not in self._dedup:
            self._dedup[dataset] = hkdf_sha256(self._data_key(dataset), b"qdsn dedup")
        return self._dedup[dataset]

    def message_key(self, dataset: str, message: bytes) -> str:
        """The key a message is remembered by: HMAC-SHA256 under the dataset's dedup key, so neither
        an id as sent nor a reading guessed from its digest can be read from the table."""
        return hmac.new(self._dedup_key(dataset), message, hashlib.sha256).hexdigest()

    def record_keys(self, dataset: str, records: Iterable[dict[str, Any]]) -> list[bytes]:
        """Each record's content key in `dataset` (see `content_keys`)."""
        return content_keys(self._data_key(dataset), records)

    def canonical_keys(self, dataset: str, canonical: Iterable[bytes]) -> list[bytes]:
        """`record_keys` of records given as their canonical JSON (`canonical_records`)."""
        return canonical_keys(self._data_key(dataset), canonical)

    def held(self, dataset: str, keys: Collection[bytes]) -> tuple[Counter[bytes], int]:
        """How many records of each of these content keys the dataset holds, and how many records it
        holds in all: the size those counts are of (`add_stream(..., at=size)` writes only after it).
        Batches stored before record keys existed get theirs first, from their records."""
        self._index(dataset)
        wanted, found, covered = set(keys), Counter[bytes](), 0
        t = vault_keys.c
        with self.engine.connect() as c:
            size = c.execute(select(vault_datasets.c.next_seq).where(vault_datasets.c.id == dataset)).scalar_one()
            rows = c.execute(
                select(t.first, t.count, t.sealed).where(and_(t.dataset == dataset, t.first < size)).order_by(t.first)
            ).all()
        sealed_with = self._data_key(dataset) if rows else b""
        for first, count, sealed in rows:
            if first != covered:
                raise IntegrityError(f"the record keys of {dataset!r} jump from record {covered} to {first}")
            found.update(k for k in open_keys(sealed_with, dataset, first, count, sealed) if k in wanted)
            covered += count
        if covered != size:
            raise IntegrityError(f"the record keys of {dataset!r} cover {covered} of its {size} records")
        return found, size

    def _index(self, dataset: str) -> int:
        """Give each batch stored without record keys (by a version before them) its keys, from its
        records; returns the batches indexed."""
        b, k = vault_batches.c, vault_keys.c
        with self.engine.connect() as c:
            bare = c.execute(
                select(b.first, b.count, b.root)
                .select_from(vault_batches.outerjoin(vault_keys, and_(k.dataset == b.dataset, k.first == b.first)))
                .where(and_(b.dataset == dataset, k.first.is_(None)))
                .order_by(b.first)
            ).all()
        for first, count, root in bare:
            leaves = self._leaves(dataset, first, first + count)
            keys = self.record_keys(dataset, (orjson.loads(x)["record"] for x in leaves))
            sealed = self._seal_keys(dataset, first, keys)
            with contextlib.suppress(DBIntegrityError), self.engine.begin() as c:  # or another process did first
                same = and_(b.dataset == dataset, b.first == first, b.count == count, b.root == root)
                if c.execute(select(b.first).where(same)).first() is not None:  # not discarded meanwhile
                    c.execute(insert(vault_keys).values(dataset=dataset, first=first, count=count, sealed=sealed))
        return len(bare)

    def _seal_keys(self, dataset: str, first: int, keys: Sequence[bytes]) -> bytes:
        return seal(self._data_key(dataset), b"".join(keys), _keys_aad(dataset, first, len(keys)))

    def add_batch(
        self,
        dataset: str,
        records: Sequence[dict[str, Any]],
        message_ids: Sequence[bytes] | None = None,
        signatures: Sequence[str | None] | None = None,
    ) -> Batch | None:
        """Seal and store a batch of records in one transaction; returns the batch to anchor.

        With `message_ids` (one per record, what identifies the message), records whose message was
        already stored are dropped and the rest are remembered, by keyed hash, in the same transaction:
        a redelivery after a crash lands once. Returns None when nothing was new."""
        if not records:
            raise InvalidInput("an empty batch has nothing to commit")
        key = self._data_key(dataset)
        keys = None if message_ids is None else [self.message_key(dataset, m) for m in message_ids]
        with self.engine.begin() as c:
            sigs = list(signatures) if signatures is not None else [None] * len(records)
            if keys is not None:
                records, keys, sigs = self._new_only(c, dataset, records, keys, sigs)
                if not records:
                    return None
            first = c.execute(select(vault_datasets.c.next_seq).where(vault_datasets.c.id == dataset)).scalar_one()
            canonical = canonical_records(records)  # once, for the leaves and the record keys both
            batch, rows = _sealed_batch(key, dataset, first, canonical, sigs)
            self._write(c, batch, rows, self._seal_keys(dataset, first, canonical_keys(key, canonical)), keys)
            self._note_sequences(c, dataset, records)
        return batch

    def add_stream(
        self,
        dataset: str,
        batches: Iterable[Sequence[dict[str, Any]]],
        keys: Iterable[Sequence[bytes]] | None = None,
        *,
        at: int | None = None,
        canonical: Iterable[Sequence[bytes]] | None = None,
    ) -> Iterator[Batch]:
        """`add_batch` for many batches in a row, each in its own transaction: batch k+1 is sealed while
        batch k is written. Yields each batch once it is committed; the next is written only after the
        caller asks for it (anchor the batch first), so at most one batch waits for its anchor. `keys`
        are the batches' record keys and `canonical` their records' canonical JSON if the caller has them
        (`canonical_keys`, `canonical_records`), so neither is made again; with `at`, the first batch is
        written only if the dataset still holds that many records (as when `held` counted them)."""
        key = self._data_key(dataset)
        first = self._row(dataset).next_seq if at is None else at
        given = iter(keys) if keys is not None else None
        made = iter(canonical) if canonical is not None else None
        with ThreadPoolExecutor(1, thread_name_prefix="vault-writer") as writer:
            writing: Future[Batch] | None = None
            for records in batches:
                if not records:
                    raise InvalidInput("an empty batch has nothing to commit")
                canon = next(made) if made is not None else canonical_records(records)
                these = next(given) if given is not None else canonical_keys(key, canon)
                if len(these) != len(records) or len(canon) != len(records):
                    raise InvalidInput("one record key and one canonical form per record")
                sealed = _sealed_batch(key, dataset, first, canon)
                if writing is not None:
                    yield writing.result()
                writing = writer.submit(self._commit, *sealed, self._seal_keys(dataset, first, these), records)
                first += len(records)
            if writing is not None:
                yield writing.result()

    def _commit(
        self, batch: Batch, rows: list[tuple[int, bytes, bytes]], sealed_keys: bytes, records: Sequence[dict[str, Any]]
    ) -> Batch:
        with self.engine.begin() as c:
            self._write(c, batch, rows, sealed_keys)
            self._note_sequences(c, batch.dataset, records)
        return batch

    @staticmethod
    def _write(c, batch: Batch, rows: list[tuple[int, bytes, bytes]], sealed_keys: bytes, message_keys=None) -> None:  # type: ignore[no-untyped-def]
        """Store a sealed batch and its record keys where the dataset ends now, or refuse if it grew meanwhile."""
        dataset, first, count = batch.dataset, batch.first, batch.count
        grown = c.execute(
            update(vault_datasets)
            .where(and_(vault_datasets.c.id == dataset, vault_datasets.c.next_seq == first))
            .values(next_seq=first + count)
        )
        if grown.rowcount != 1:
            raise Conflict(
                f"dataset {dataset!r} grew while records {first}… were sealed; they were not written",
                "run the same ingest again: the records stored meanwhile are skipped",
            )
        insert_many(c, vault_chunks, [(dataset, first + i * CHUNK, n, row) for i, (n, row, _) in enumerate(rows)])
        if message_keys is not None:
            c.execute(
                insert(vault_messages),
                [{"dataset": dataset, "message": m, "seq": first + i} for i, m in enumerate(message_keys)],
            )
        c.execute(insert(vault_keys).values(dataset=dataset, first=first, count=count, sealed=sealed_keys))
        c.execute(
            insert(vault_batches).values(dataset=dataset, first=first, count=count, root=batch.root, anchored=False)
        )

    @staticmethod
    def _known(c, table: Table, dataset: str, keys: Sequence[str]) -> set[str]:  # type: ignore[no-untyped-def]
        seen: set[str] = set()
        for i in range(0, len(keys), 900):
            q = select(table.c.message).where(and_(table.c.dataset == dataset, table.c.message.in_(keys[i : i + 900])))
            seen.update(m for (m,) in c.execute(q))
        return seen

    @classmethod
    def _new_only(cls, c, dataset: str, records, keys, sigs):  # type: ignore[no-untyped-def]
        if len(keys) != len(records):
            raise InvalidInput("one message id per record")
        seen = cls._known(c, vault_messages, dataset, keys)
        keep = []
        for r, m, sig in zip(records, keys, sigs, strict=True):
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

    def discard(self, dataset: str, first: int) -> None:
        """Remove the records of a dataset from `first` on, which the ledger never anchored: their
        rows, batches, message and record keys, and `next_seq` goes back to `first`."""
        with self.engine.begin() as c:
            b = vault_batches.c
            if c.execute(
                select(b.first).where(and_(b.dataset == dataset, b.first >= first, b.anchored.is_(True)))
            ).first():
                raise IntegrityError(f"records of {dataset!r} from {first} on are anchored; they are not discarded")
            c.execute(
                delete(vault_chunks).where(and_(vault_chunks.c.dataset == dataset, vault_chunks.c.first >= first))
            )
            c.execute(
                delete(vault_messages).where(and_(vault_messages.c.dataset == dataset, vault_messages.c.seq >= first))
            )
            c.execute(
                delete(vault_sources).where(and_(vault_sources.c.dataset == dataset, vault_sources.c.first >= first))
            )
            c.execute(delete(vault_keys).where(and_(vault_keys.c.dataset == dataset, vault_keys.c.first >= first)))
            c.execute(delete(vault_batches).where(and_(b.dataset == dataset, b.first >= first)))
            c.execute(
                update(vault_datasets)
                .where(and_(vault_datasets.c.id == dataset, vault_datasets.c.next_seq > first))
                .values(next_seq=first)
            )
        self._renumber(dataset)

    def _renumber(self, dataset: str) -> None:
        """Rebuild the device streams from the records the dataset holds (after some were discarded)."""
        t = vault_sequences.c
        with self.engine.connect() as c:
            if c.execute(select(t.stream).where(t.dataset == dataset)).first() is None:
                return
        records = self.records(dataset)
        with self.engine.begin() as c:
            c.execute(delete(vault_sequences).where(t.dataset == dataset))
            self._note_sequences(c, dataset, records)

    def anchor_batch(
        self,
        batch: Batch,
        anchor: Callable[[Batch], str],
        lookup: AnchorLookup | None = None,
        *,
        ask_first: bool = False,
    ) -> str:
        """Anchor a committed batch and mark it; returns the anchoring txid. An anchor that already
        reached the ledger (looked up first with `ask_first`, or after a refusal) is only marked; a
        batch the ledger refused, and does not hold, is discarded, so the vault never grows by records
        it will not anchor. Without `lookup` a refused batch stays unanchored."""
        found = lookup(batch.dataset, batch.first) if lookup is not None and ask_first else None
        if found is None:
            try:
                txid = anchor(batch)
            except QDSNError:
                if lookup is None:  # whether it reached the ledger is unknown: left for `settle`
                    raise
                found = lookup(batch.dataset, batch.first)
                if found is None:
                    self.discard(batch.dataset, batch.first)
                    raise
            else:
                self.mark_anchored(batch, txid)
                return txid
        txid, on_ledger = found
        if on_ledger != batch:
            raise IntegrityError(
                f"the ledger anchors other records at {batch.first} of {batch.dataset!r} than the vault holds",
                "restore the vault from a backup that matches the ledger",
            )
        self.mark_anchored(batch, txid)
        return txid

    def settle(self, dataset: str, anchor: Callable[[Batch], str], lookup: AnchorLookup | None) -> int:
        """Bring the dataset in line with the ledger after a crash: each batch committed but not marked
        anchored is marked if its anchor reached the ledger, else anchored now (or discarded if the
        ledger refuses it). Returns the batches settled. Run before ingesting more."""
        pending = self.unanchored(dataset)
        for batch in pending:
            self.anchor_batch(batch, anchor, lookup, ask_first=True)
        return len(pending)

    def quarantine(self, dataset: str, refused: Sequence[tuple[bytes, str, bytes, str]], received: str) -> int:
        """Set refused messages aside durably: (message id, topic, payload, reason) each, the payload
        sealed with the dataset's key; one already set aside is not added again. Returns those added."""
        key = self._data_key(dataset)
        rows = {self.message_key(dataset, m): (topic, payload, reason) for m, topic, payload, reason in refused}
        with self.engine.begin() as c:
            new = [k for k in rows if k not in self._known(c, vault_quarantine, dataset, list(rows))]
            if new:
                c.execute(
                    insert(vault_quarantine),
                    [
                        {"dataset": dataset, "message": k, "topic": rows[k][0], "received": received,
                         "reason": rows[k][2], "sealed": seal(key, rows[k][1], _quarantine_aad(dataset, k))}
                        for k in new
                    ],
                )  # fmt: skip
        return len(new)

    def _note_sequences(self, c, dataset: str, records: Sequence[dict[str, Any]]) -> None:  # type: ignore[no-untyped-def]
        """Add the sequence numbers that stored `records` carry to their devices' streams, in the
        transaction `c` that stores them: a stream never claims a reading the vault does not hold."""
        key, t = self._data_key(dataset), vault_sequences.c
        for (device, boot), numbers in numbered(records).items():
            name = self.message_key(dataset, b"stream\0" + orjson.dumps([device, boot]))
            where = and_(t.dataset == dataset, t.stream == name)
            row = c.execute(select(t.sealed).where(where)).first()
            kept = orjson.loads(open_sealed(key, row[0], _stream_aad(dataset, name)))["seen"] if row else []
            seen = [(lo, hi) for lo, hi in kept]
            merged = merge(seen, numbers)
            if merged == seen:
                continue
            doc = orjson.dumps({"device": device, "boot": boot, "seen": merged})
            blob = seal(key, doc, _stream_aad(dataset, name))
            if row:
                c.execute(update(vault_sequences).where(where).values(sealed=blob))
            else:
                c.execute(insert(vault_sequences).values(dataset=dataset, stream=name, sealed=blob))

    def streams(self, dataset: str) -> list[Stream]:
        """Each device's numbered readings stored in `dataset`: what arrived, and the gaps."""
        self._row(dataset)  # NotFound for a dataset the vault does not hold
        t = vault_sequences.c
        with self.engine.connect() as c:
            rows = c.execute(select(t.stream, t.sealed).where(t.dataset == dataset)).all()
        key = self._data_key(dataset) if rows else b""
        found = []
        for name, blob in rows:
            doc = orjson.loads(open_sealed(key, blob, _stream_aad(dataset, name)))
            found.append(Stream(doc["device"], doc["boot"], [(lo, hi) for lo, hi in doc["seen"]]))
        return sorted(found, key=lambda s: (s.device, s.boot or ""))

    def quarantined(self, dataset: str) -> list[dict[str, Any]]:
        """The messages set aside for a dataset, oldest first: topic, received, reason and payload."""
        key, t = self._data_key(dataset), vault_quarantine.c
        with self.engine.connect() as c:
            rows = c.execute(select(vault_quarantine).where(t.dataset == dataset).order_by(t.received)).all()
        return [
            {"topic": r.topic, "received": r.received, "reason": r.reason,
             "payload": open_sealed(key, r.sealed, _quarantine_aad(dataset, r.message))}
            for r in rows
        ]  # fmt: skip

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
        self._dedup.pop(dataset, None)
