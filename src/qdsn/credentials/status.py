"""Token Status Lists (draft-ietf-oauth-status-list): the status of many credentials in one signed,
compressed bit array — 1, 2, 4 or 8 bits per credential, least significant bits first, DEFLATE in
the ZLIB format, base64url. A credential names its list's URI and its index; the index is drawn at
random from a list of at least 131,072 entries, so neither the list nor the index says who it is."""

from __future__ import annotations

import base64
import secrets
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any

import numpy as np
from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table, func, insert, select, update

from qdsn.crypto.jose import PrivateKey, PublicKey, sign_jws, verify_jws
from qdsn.errors import Conflict, IntegrityError, InvalidInput, NotFound

BITS = (1, 2, 4, 8)
VALID, INVALID, SUSPENDED = 0, 1, 2  # the draft's registered status values
MIN_SIZE = 131_072


def _check(bits: int) -> int:
    if bits not in BITS:
        raise InvalidInput(f"a status list has 1, 2, 4 or 8 bits per entry, not {bits!r}")
    return bits


def encode_status_list(statuses: Sequence[int] | np.ndarray, bits: int) -> str:
    """The `lst` value of a status list: the statuses packed LSB-first, zlib-compressed, base64url."""
    per = 8 // _check(bits)
    x = np.asarray(statuses, dtype=np.int64)
    if x.ndim != 1 or (x.size and (x.min() < 0 or x.max() >= 1 << bits)):
        raise InvalidInput(f"statuses are whole numbers below {1 << bits} for {bits} bit(s)")
    padded = np.zeros(-(-x.size // per) * per, dtype=np.uint8)
    padded[: x.size] = x
    shifts = np.arange(per, dtype=np.uint8) * bits  # entry i of a byte sits at bits [i·b, (i+1)·b)
    packed = np.bitwise_or.reduce(padded.reshape(-1, per) << shifts, axis=1).astype(np.uint8)
    return base64.urlsafe_b64encode(zlib.compress(packed.tobytes(), 9)).rstrip(b"=").decode()


def decode_status_list(lst: str, bits: int) -> list[int]:
    """Every status in a `lst` value (as many as its bytes hold)."""
    return _unpack(lst, bits).tolist()


def status_at(lst: str, bits: int, index: int) -> int:
    """One entry's status; a list is decoded once however many entries are asked of it."""
    x = _unpacked(lst, bits)
    if not 0 <= index < x.size:
        raise InvalidInput(f"index {index} is outside the status list of {x.size} entries")
    return int(x[index])


@lru_cache(maxsize=32)
def _unpacked(lst: str, bits: int) -> np.ndarray:
    x = _unpack(lst, bits)
    x.flags.writeable = False
    return x


def _unpack(lst: str, bits: int) -> np.ndarray:
    per = 8 // _check(bits)
    try:
        raw = zlib.decompress(base64.urlsafe_b64decode(lst + "=" * (-len(lst) % 4)))
    except (ValueError, zlib.error) as e:
        raise InvalidInput(f"not a status list (base64url of zlib data): {e}") from None
    b = np.frombuffer(raw, dtype=np.uint8)
    shifts = np.arange(per, dtype=np.uint8) * bits
    return ((b[:, None] >> shifts) & ((1 << bits) - 1)).reshape(-1)


# -- the issuer's lists ----------------------------------------------------------------------------

TOKEN_TYP = "statuslist+jwt"


class StatusLists:
    """An issuer's status lists, kept beside its other tables: entries are handed out at random, so
    a credential's index says nothing about when it was issued or to whom."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        _tables(engine)

    def create(self, uri: str, bits: int = 2, size: int = MIN_SIZE) -> None:
        """A new list at `uri` with every entry valid (2 bits: valid, invalid, suspended)."""
        if size < MIN_SIZE:
            raise InvalidInput(f"a status list has at least {MIN_SIZE} entries, so that it hides its holders")
        with self.engine.begin() as c:
            c.execute(insert(lists).values(uri=uri, bits=_check(bits), size=size, statuses=bytes(size)))

    def allocate(self, uri: str, credential: str) -> int:
        """A random unused index of the list for `credential`."""
        with self.engine.begin() as c:
            row = c.execute(select(lists.c.size).where(lists.c.uri == uri)).first()
            if row is None:
                raise NotFound(f"no status list {uri}", "create one first")
            used = c.execute(select(func.count()).select_from(entries).where(entries.c.uri == uri)).scalar_one()
            if used >= row.size:
                raise Conflict(f"status list {uri} is full", "create another")
            while True:
                idx = secrets.randbelow(row.size)
                taken = c.execute(select(entries.c.idx).where(entries.c.uri == uri, entries.c.idx == idx)).first()
                if taken is None:
                    c.execute(insert(entries).values(uri=uri, idx=idx, credential=credential))
                    return idx

    def set(self, uri: str, index: int, status: int) -> None:
        """Change one entry's status."""
        with self.engine.begin() as c:
            row = c.execute(select(lists).where(lists.c.uri == uri).with_for_update()).first()
            if row is None:
                raise NotFound(f"no status list {uri}")
            if not 0 <= status < 1 << row.bits or not 0 <= index < row.size:
                raise InvalidInput(f"status {status} at {index} does not fit {uri}")
            statuses = bytearray(row.statuses)
            statuses[index] = status
            c.execute(update(lists).where(lists.c.uri == uri).values(statuses=bytes(statuses)))

    def uris(self) -> list[str]:
        with self.engine.connect() as c:
            return [r.uri for r in c.execute(select(lists.c.uri))]

    def status(self, uri: str, index: int) -> int:
        return self._row(uri).statuses[index]

    def token(self, uri: str, key: PrivateKey, *, kid: str, ttl: int = 300, now: datetime | None = None) -> str:
        """The list as a signed Status List Token (typ statuslist+jwt)."""
        row = self._row(uri)
        iat = int((now or datetime.now(UTC)).timestamp())
        lst = encode_status_list(np.frombuffer(row.statuses, dtype=np.uint8), row.bits)
        claims = {"sub": uri, "iat": iat, "exp": iat + 24 * 3600, "ttl": ttl,
                  "status_list": {"bits": row.bits, "lst": lst}}  # fmt: skip
        return sign_jws(claims, key, typ=TOKEN_TYP, kid=kid)

    def _row(self, uri: str) -> Any:
        with self.engine.connect() as c:
            row = c.execute(select(lists).where(lists.c.uri == uri)).first()
        if row is None:
            raise NotFound(f"no status list {uri}")
        return row


def read_token(token: str, uri: str, key: PublicKey, *, now: datetime | None = None) -> tuple[int, str]:
    """(bits, lst) of a Status List Token for `uri` signed with `key`, still fresh."""
    _, c = verify_jws(token, key, typ=TOKEN_TYP)
    if c.get("sub") != uri:
        raise IntegrityError(f"the status list token is for {c.get('sub')!r}, not {uri}")
    t = int((now or datetime.now(UTC)).timestamp())
    if isinstance(c.get("exp"), int) and t > c["exp"]:
        raise IntegrityError("the status list token has expired")
    sl = c.get("status_list")
    if not isinstance(sl, dict) or "bits" not in sl or "lst" not in sl:
        raise InvalidInput("the status list token carries no status_list {bits, lst}")
    return sl["bits"], sl["lst"]


@cache
def _tables(engine: Any) -> None:
    """Create the tables once per database: a node makes a `StatusLists` for each request it serves."""
    metadata.create_all(engine)


metadata = MetaData()
lists = Table(
    "status_lists",
    metadata,
    Column("uri", String(500), primary_key=True),
    Column("bits", Integer, nullable=False),
    Column("size", Integer, nullable=False),
    Column("statuses", LargeBinary, nullable=False),  # one byte per entry; packed only when served
)
entries = Table(
    "status_entries",
    metadata,
    Column("uri", String(500), primary_key=True),
    Column("idx", Integer, primary_key=True, autoincrement=False),
    Column("credential", String(200), nullable=False),
)
