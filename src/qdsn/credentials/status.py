"""Token Status Lists (draft-ietf-oauth-status-list): the status of many credentials in one signed,
compressed bit array — 1, 2, 4 or 8 bits per credential, least significant bits first, DEFLATE in
the ZLIB format, base64url. A credential names its list's URI and its index; the index is drawn at
random from a list of at least 131,072 entries, so neither the list nor the index says who it is.

A verifier takes a Status List Token only signed by the credential's issuer, for the list's URI, with
its `iat`, not expired, and a list that inflates to no more than `MAX_LIST_BYTES` (decompressed in
bounded steps: a few kilobytes of zlib can claim gigabytes). `TokenCache` keeps a token for its
`ttl`, never past its `exp`, then fetches it again."""

from __future__ import annotations

import base64
import secrets
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any

import numpy as np
from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table, delete, func, insert, select, update

from qdsn.credentials.reasons import Code, Reason
from qdsn.crypto.encoding import b64url_decode
from qdsn.crypto.jose import PrivateKey, PublicKey, public_jwk, sign_jws, verify_jws
from qdsn.errors import Conflict, InvalidInput, NotFound

BITS = (1, 2, 4, 8)
VALID, INVALID, SUSPENDED = 0, 1, 2  # the draft's registered status values
MIN_SIZE = 131_072
MAX_LIST_BYTES = 1 << 20  # 1 MiB inflated: 8 million entries of 1 bit, 1 million of 8 — far above any issuer's
SKEW = 60  # seconds of clock difference tolerated on a token's iat
DEFAULT_TTL = 300  # seconds a token without its own (shorter) ttl is kept


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
    """One entry's status; a list is inflated once however many entries are asked of it, and read in
    place (a list's bytes are kept, never one byte per entry)."""
    raw = _inflated(lst)
    per = 8 // _check(bits)
    if type(index) is not int or not 0 <= index < len(raw) * per:
        raise InvalidInput(f"index {index!r} is outside the status list of {len(raw) * per} entries")
    return (raw[index // per] >> (index % per * bits)) & ((1 << bits) - 1)


def _unpack(lst: str, bits: int) -> np.ndarray:
    per = 8 // _check(bits)
    b = np.frombuffer(_inflated(lst), dtype=np.uint8)
    shifts = np.arange(per, dtype=np.uint8) * bits
    return ((b[:, None] >> shifts) & ((1 << bits) - 1)).reshape(-1)


@lru_cache(maxsize=32)
def _inflated(lst: str) -> bytes:
    return _inflate(lst)


def _inflate(lst: str) -> bytes:
    """The bytes of a `lst`, inflated in one bounded step: a list larger than MAX_LIST_BYTES is refused
    without ever being held whole."""
    if not isinstance(lst, str) or len(lst) > 2 * MAX_LIST_BYTES:
        raise InvalidInput("not a status list: lst is base64url text of at most a few megabytes")
    try:
        data = b64url_decode(lst)
    except InvalidInput as e:
        raise InvalidInput(f"not a status list (base64url of zlib data): {e.what}") from None
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(data, MAX_LIST_BYTES + 1)
    except zlib.error as e:
        raise InvalidInput(f"not a status list (base64url of zlib data): {e}") from None
    if len(raw) > MAX_LIST_BYTES:
        raise InvalidInput(f"the status list inflates to more than {MAX_LIST_BYTES:,} bytes, the most taken here")
    if not inflater.eof or inflater.unused_data:
        raise InvalidInput("not a status list: its zlib stream is truncated or followed by other data")
    return raw


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
        if size * _check(bits) > 8 * MAX_LIST_BYTES:
            raise InvalidInput(f"a status list of {size} entries of {bits} bits is larger than verifiers take",
                               f"use lists of at most {8 * MAX_LIST_BYTES // bits:,} entries")  # fmt: skip
        with self.engine.begin() as c:
            c.execute(insert(lists).values(uri=uri, bits=_check(bits), size=size, statuses=bytes(size)))

    def release(self, uri: str, idx: int) -> None:
        """Free an entry whose credential was never issued."""
        with self.engine.begin() as c:
            c.execute(delete(entries).where(entries.c.uri == uri, entries.c.idx == idx))

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


@dataclass(frozen=True)
class StatusListToken:
    """A Status List Token that was checked: its list, and how long it may be kept."""

    uri: str
    bits: int
    lst: str
    iat: float
    exp: float | None
    ttl: float | None


def open_token(token: str, uri: str, key: PublicKey, *, now: datetime | None = None) -> StatusListToken:
    """A Status List Token for `uri` signed with `key` (else BadSignature), of type statuslist+jwt, with
    its iat, not expired, whose list inflates within the bound; else `Reason` with a status-* code."""
    try:
        _, c = verify_jws(token, key, typ=TOKEN_TYP)
    except InvalidInput as e:
        raise Reason(Code.STATUS_TOKEN, e.what) from None
    if c.get("sub") != uri:
        raise Reason(Code.STATUS_TOKEN, f"the status list token is for {str(c.get('sub'))[:80]!r}, not {uri}")
    t = (now or datetime.now(UTC)).timestamp()
    iat, exp, ttl = c.get("iat"), c.get("exp"), c.get("ttl")
    if not _number(iat):
        raise Reason(Code.STATUS_IAT, "the status list token says not when it was issued (iat, a NumericDate)")
    if iat > t + SKEW:
        raise Reason(Code.STATUS_IAT, "the status list token was issued in the future")
    if (exp is not None and not _number(exp)) or (ttl is not None and (not _number(ttl) or ttl <= 0)):
        raise Reason(Code.STATUS_TOKEN, "exp is a NumericDate and ttl a positive number of seconds")
    if exp is not None and t > exp:
        raise Reason(Code.STATUS_EXPIRED, "the status list token has expired", "fetch a fresh one from its issuer")
    sl = c.get("status_list")
    if not isinstance(sl, dict) or sl.get("bits") not in BITS or type(sl["bits"]) is not int or not isinstance(
            sl.get("lst"), str):  # fmt: skip
        raise Reason(Code.STATUS_TOKEN, "the status list token carries no status_list {bits: 1, 2, 4 or 8, lst}")
    try:
        _inflated(sl["lst"])  # inflated once, bounded; status_at reads it from the cache
    except InvalidInput as e:
        raise Reason(Code.STATUS_LIST, e.what) from None
    return StatusListToken(uri, sl["bits"], sl["lst"], iat, exp, ttl)


def read_token(token: str, uri: str, key: PublicKey, *, now: datetime | None = None) -> tuple[int, str]:
    """(bits, lst) of a Status List Token for `uri` signed with `key`, checked as `open_token` does."""
    t = open_token(token, uri, key, now=now)
    return t.bits, t.lst


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


class TokenCache:
    """Status List Tokens by URI and issuer key, each kept for its ttl (at most `max_ttl`) and never
    past its exp, then fetched and checked again. `fetch(uri)` returns a token's text."""

    def __init__(self, fetch: Callable[[str], str], *, max_ttl: float = DEFAULT_TTL, size: int = 256) -> None:
        self.fetch, self.max_ttl, self.size = fetch, max_ttl, size
        self._tokens: OrderedDict[tuple[str, str], tuple[float, StatusListToken]] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, uri: str, key: PublicKey, *, now: datetime | None = None) -> tuple[int, str]:
        """(bits, lst) of the list at `uri`, from a token still fresh or one fetched now."""
        t = (now or datetime.now(UTC)).timestamp()
        k = (uri, repr(sorted(public_jwk(key).items())))
        with self._lock:
            held = self._tokens.get(k)
        if held is not None:
            fetched, token = held
            if t < fetched + min(token.ttl or self.max_ttl, self.max_ttl) and (token.exp is None or t <= token.exp):
                return token.bits, token.lst
        token = open_token(self.fetch(uri), uri, key, now=now)
        with self._lock:
            self._tokens[k] = (t, token)
            self._tokens.move_to_end(k)
            while len(self._tokens) > self.size:
                self._tokens.popitem(last=False)
        return token.bits, token.lst


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
