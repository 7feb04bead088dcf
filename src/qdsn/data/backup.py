"""An encrypted backup of a manufacturer's vault that another node can keep without reading it.

The vault's rows are already ciphertext (records sealed under data keys, data keys wrapped by the
owner's key); the backup seals the whole dump once more, so even dataset names, record counts and
batch roots stay hidden from whoever keeps it. Only the owner's keystore opens it.

Sealing is STREAM (Hoang, Reyhanitabar, Rogaway, Vizár 2015) over AES-256-GCM in 1 MiB chunks:
nonce = 7-byte random prefix ‖ 4-byte chunk counter ‖ 1-byte last-chunk flag, and the header is
associated data of every chunk, so chunks cannot be dropped, reordered, cut off or moved between
backups. `cryptography` offers AES-GCM but no streaming construction, hence these few lines.

File: `QDSN-VAULT-BACKUP/1\\n`, a JSON header line {owner, kid, created, prefix, tables}, then
chunks of [4-byte length ‖ ciphertext]. The plaintext is JSON lines {"t": table, "r": row}.
"""

from __future__ import annotations

import base64
import io
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Engine, LargeBinary, func, insert, select

from qdsn.crypto import hkdf_sha256
from qdsn.data.vault import metadata
from qdsn.errors import Conflict, IntegrityError, InvalidInput

MAGIC = b"QDSN-VAULT-BACKUP/1\n"
CHUNK = 1 << 20
TAG = 16


def backup_key(kek: bytes) -> bytes:
    """The key a backup is sealed under, derived from the vault's key-encryption key."""
    return hkdf_sha256(kek, b"qdsn/vault/backup/v1")


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + struct.pack(">I", counter) + (b"\x01" if last else b"\x00")


def _rows(engine: Engine) -> Iterator[bytes]:
    with engine.connect() as c:
        for table in metadata.sorted_tables:
            names = [str(col.name) for col in table.columns]
            binary = {col.name for col in table.columns if isinstance(col.type, LargeBinary)}
            for row in c.execute(select(table)):
                r = {k: (base64.b64encode(v).decode() if k in binary and v is not None else v)
                     for k, v in zip(names, row, strict=True)}  # fmt: skip
                yield orjson.dumps({"t": str(table.name), "r": r}) + b"\n"


def write(engine: Engine, out: Path, kek: tuple[str, bytes], owner: str, created: str) -> int:
    """Seal every vault row into `out` (written whole or not at all); returns the bytes of plaintext."""
    part = out.with_name(out.name + ".partial")
    with open(part, "wb") as f:
        total = _write(f, engine, kek, owner, created)
        f.flush()
        os.fsync(f.fileno())
    os.replace(part, out)
    return total


def seal(engine: Engine, kek: tuple[str, bytes], owner: str, created: str) -> bytes:
    """The sealed backup as bytes, to hand to a keeper."""
    f = io.BytesIO()
    _write(f, engine, kek, owner, created)
    return f.getvalue()


def _write(f: IO[bytes], engine: Engine, kek: tuple[str, bytes], owner: str, created: str) -> int:
    kid, secret = kek
    prefix = os.urandom(7)
    header = MAGIC + orjson.dumps({"owner": owner, "kid": kid, "created": created,
                                   "prefix": base64.b64encode(prefix).decode()}) + b"\n"  # fmt: skip
    aead = AESGCM(backup_key(secret))
    f.write(header)
    buf, counter, total = bytearray(), 0, 0
    for line in _rows(engine):
        buf += line
        total += len(line)
        while len(buf) > CHUNK:
            _seal(f, aead, _nonce(prefix, counter, False), bytes(buf[:CHUNK]), header)
            del buf[:CHUNK]
            counter += 1
    _seal(f, aead, _nonce(prefix, counter, True), bytes(buf), header)
    return total


def _seal(f: IO[bytes], aead: AESGCM, nonce: bytes, chunk: bytes, header: bytes) -> None:
    ct = aead.encrypt(nonce, chunk, header)
    f.write(struct.pack(">I", len(ct)) + ct)


def parse_header(sealed: bytes) -> dict[str, Any]:
    """The clear header of a backup: whose it is, which key sealed it, when."""
    return _header(io.BytesIO(sealed))[0]


def _header(f: IO[bytes]) -> tuple[dict[str, Any], bytes]:
    if f.read(len(MAGIC)) != MAGIC:
        raise InvalidInput("not a QDSN vault backup", "give the file `qdsn vault backup` wrote")
    line = f.readline()
    try:
        header = orjson.loads(line)
        if not all(isinstance(header.get(k), str) for k in ("owner", "kid", "created", "prefix")):
            raise ValueError("a field is missing")
        if len(base64.b64decode(header["prefix"], validate=True)) != 7:
            raise ValueError("the nonce prefix is not 7 bytes")
    except (ValueError, AttributeError) as e:  # orjson's and base64's errors are ValueErrors
        raise InvalidInput(f"the backup's header is damaged: {e}") from None
    return header, MAGIC + line


def restore(path: Path | bytes, engine: Engine, kek: Callable[[str], tuple[str, bytes]]) -> int:
    """Open the backup (a file, or its bytes) with the owner's key and write its rows into the empty
    vault at `engine`, in one transaction; returns how many rows. Nothing is written unless every chunk
    opens."""
    with io.BufferedReader(io.BytesIO(path)) if isinstance(path, bytes) else open(path, "rb") as f:
        header, aad = _header(f)
        prefix = base64.b64decode(header["prefix"])
        aead = AESGCM(backup_key(kek(header["kid"])[1]))
        plain, counter = bytearray(), 0
        while True:
            size = f.read(4)
            if len(size) < 4:
                raise IntegrityError("the backup is cut short: its last chunk is missing")
            ct = f.read(struct.unpack(">I", size)[0])
            last = not f.peek(1)
            try:
                plain += aead.decrypt(_nonce(prefix, counter, last), ct, aad)
            except InvalidTag:
                raise IntegrityError(f"chunk {counter} of the backup does not open: another owner's key, "
                                     "or the file was changed") from None  # fmt: skip
            if last:
                break
            counter += 1
    tables = {t.name: t for t in metadata.sorted_tables}
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in tables}
    for line in bytes(plain).splitlines():
        doc = orjson.loads(line)
        table = tables[doc["t"]]
        binary = {col.name for col in table.columns if isinstance(col.type, LargeBinary)}
        rows[doc["t"]].append({k: (base64.b64decode(v) if k in binary and v is not None else v)
                               for k, v in doc["r"].items()})  # fmt: skip
    with engine.begin() as c:
        for table in metadata.sorted_tables:
            if c.execute(select(func.count()).select_from(table)).scalar():
                raise Conflict("the vault to restore into is not empty", "restore into a new node's home")
            if rows[table.name]:
                c.execute(insert(table), rows[table.name])
    return sum(map(len, rows.values()))
