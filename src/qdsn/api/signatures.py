"""Requests between nodes, signed with HTTP Message Signatures (RFC 9421, Ed25519).

The signature covers the method, the target URI and the body's `content-digest` (RFC 9530), with
`created`, a random `nonce`, `keyid` = the sender's DID and the application `tag` "qdsn". A
verifier checks the signature's form before anything else, takes the sender's key from the ledger
(its current key, so a rotated key stops working at once; see `Resolver` for strangers), rebuilds
the target URI from its own public URL (so a request signed for another node never holds here),
refuses signatures older than `max_age` or from the future, and refuses a nonce it has seen. The
RFC 9421 engine is the `http-message-signatures` package; this module adapts it to our messages
and keys."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import http_sf
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    algorithms,
)

from qdsn.crypto import SigningKey
from qdsn.errors import BadSignature, PermissionDenied, RateLimited

COVERED = ("@method", "@target-uri", "content-digest")
LABEL = "qdsn"
ALGORITHM = "ed25519"
PARAMETERS = {"alg", "created", "expires", "keyid", "nonce", "tag"}
MAX_AGE = timedelta(minutes=5)
SKEW = timedelta(seconds=5)  # the RFC 9421 engine's allowance for clocks on either side
SIGNATURE_BYTES = 64
MAX_FIELD = 2048  # one Signature-Input or Signature field line
MAX_KEYID = 512
NONCE = re.compile(r"[A-Za-z0-9._~-]{16,128}")
MAX_TRACKED = 10_000  # client addresses and unknown keyids remembered


class Headers:
    """A header view the RFC 9421 engine can read and write: field lines in order, repeats kept."""

    def __init__(self, lines: Iterable[tuple[str, str]] = ()) -> None:
        self.lines = [(k, v) for k, v in lines]

    def items(self) -> list[tuple[str, str]]:
        return self.lines

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(k for k, _ in self.lines))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(k.lower() == name.lower() for k, _ in self.lines)

    def __setitem__(self, name: str, value: str) -> None:
        del self[name]
        self.lines.append((name, value))

    def __delitem__(self, name: str) -> None:
        self.lines = [(k, v) for k, v in self.lines if k.lower() != name.lower()]

    def get(self, name: str) -> str | None:
        return next((v for k, v in self.lines if k.lower() == name.lower()), None)


@dataclass
class Message:
    """A request as the signature sees it."""

    method: str
    url: str
    headers: Headers


class _Keys(HTTPSignatureKeyResolver):
    def __init__(self, private: SigningKey | None = None, public: Callable[[str], bytes | None] | None = None) -> None:
        self.private, self.public = private, public

    def resolve_private_key(self, key_id: str) -> Ed25519PrivateKey:
        assert self.private is not None
        return Ed25519PrivateKey.from_private_bytes(self.private.seed())

    def resolve_public_key(self, key_id: str) -> Ed25519PublicKey | None:
        raw = self.public(key_id) if self.public else None
        return Ed25519PublicKey.from_public_bytes(raw) if raw is not None else None


def sign(method: str, url: str, headers: Iterable[tuple[str, str]], body: bytes, key: SigningKey, did: str,
         *, now: datetime | None = None) -> list[tuple[str, str]]:  # fmt: skip
    """The header lines to send: the given ones plus Content-Digest, Signature-Input and Signature."""
    msg = Message(method.upper(), url, Headers(headers))
    signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=_Keys(private=key))
    signer.sign(
        msg, key_id=did, label=LABEL, tag=LABEL, created=now or datetime.now(UTC), nonce=os.urandom(16).hex(),
        covered_component_ids=COVERED, body=body,
    )  # fmt: skip
    return msg.headers.items()


class Nonces:
    """Nonces seen, each kept until its signature could no longer be accepted; a second use by the same
    signer is a replay. Keyed by (signer, nonce): a signer who saw another's nonce cannot use it up.
    In memory and thread-safe: for one process (a node keeps its nonces durably, see `api.nonces`)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def use(self, nonce: str, created: int, until: float, signer: str = "") -> bool:
        """True the first time `signer` uses `nonce` (of a signature `created` then); it is remembered
        until `until` (Unix time)."""
        with self._lock:
            now = time.time()
            if len(self._seen) > 10_000:
                self._seen = {n: t for n, t in self._seen.items() if t >= now}
            if self._seen.get((signer, nonce), -1.0) >= now:
                return False
            self._seen[(signer, nonce)] = until
            return True


class NonceLog(Protocol):
    def use(self, nonce: str, created: int, until: float, signer: str = "") -> bool: ...


@dataclass(frozen=True)
class Signed:
    """What a request's signature claims, checked for form only: no key looked up, no body read."""

    keyid: str
    created: int
    nonce: str

    def until(self, max_age: timedelta = MAX_AGE) -> float:
        """When the signature can no longer be accepted, so its nonce can be forgotten (Unix time)."""
        return self.created + max_age.total_seconds() + SKEW.total_seconds() + 1


def _field(headers: Headers, name: str) -> str:
    lines = [v for k, v in headers.items() if k.lower() == name]
    if len(lines) != 1 or len(lines[0]) > MAX_FIELD:
        raise BadSignature(f"the request carries {len(lines)} {name} fields, or one of over {MAX_FIELD} characters",
                           f"send one signature, labelled {LABEL!r}, as qdsn.api.client does")  # fmt: skip
    return lines[0]


def _member(headers: Headers, name: str) -> tuple[Any, dict[str, Any]]:
    try:
        parsed = http_sf.parse(_field(headers, name).encode("latin-1"), tltype="dictionary")
    except ValueError as e:
        raise BadSignature(f"the {name} field is not a structured dictionary (RFC 8941): {e}") from None
    if not isinstance(parsed, dict) or list(parsed) != [LABEL]:
        labels = ", ".join(map(repr, parsed)) if isinstance(parsed, dict) else "none"
        raise BadSignature(f"the {name} field must hold one signature labelled {LABEL!r}, not {labels}")
    return parsed[LABEL]  # type: ignore[no-any-return]


def inspect(headers: Iterable[tuple[str, str]], *, max_age: timedelta = MAX_AGE, now: datetime | None = None) -> Signed:
    """The claims of a request's signature, after checking its form (labels, components, algorithm,
    time window, keyid, nonce, signature length) — all that can be refused before a key is looked up
    or a byte of the body read. Raises BadSignature saying what is wrong."""
    h = Headers(headers)
    if "signature" not in h or "signature-input" not in h:
        raise BadSignature("the request is not signed", "sign it with RFC 9421 (qdsn.api.client does)")
    components, params = _member(h, "signature-input")
    value, _ = _member(h, "signature")
    if not isinstance(value, bytes) or len(value) != SIGNATURE_BYTES:
        raise BadSignature(f"the signature is not {SIGNATURE_BYTES} bytes of Ed25519")
    if not isinstance(components, list) or [c for c, _ in components] != list(COVERED) or any(p for _, p in components):
        raise BadSignature(f"the signature must cover exactly {' '.join(COVERED)}, in that order")
    if unknown := set(params) - PARAMETERS:
        raise BadSignature(f"the signature has unknown parameters: {', '.join(sorted(unknown))}")
    if params.get("alg", ALGORITHM) != ALGORITHM or params.get("tag") != LABEL:
        raise BadSignature(f"the signature must be alg {ALGORITHM!r} with tag {LABEL!r}")
    keyid, nonce, created = params.get("keyid"), params.get("nonce"), params.get("created")
    if not isinstance(keyid, str) or not keyid.startswith("did:") or len(keyid) > MAX_KEYID:
        raise BadSignature(f"the signature's keyid must be the sender's DID (at most {MAX_KEYID} characters)")
    if not isinstance(nonce, str) or not NONCE.fullmatch(nonce):
        raise BadSignature("the signature needs a nonce of 16 to 128 letters, digits or -._~")
    if type(created) is not int or any(type(params.get(k, 0)) is not int for k in ("expires",)):
        raise BadSignature("the signature's created (and expires) must be whole seconds")
    at = (now or datetime.now(UTC)).timestamp()
    if created > at + SKEW.total_seconds():
        raise BadSignature("the signature was created in the future", "check the sender's clock")
    if created < at - max_age.total_seconds() - SKEW.total_seconds() or params.get("expires", at) < at:
        raise BadSignature(f"the signature is older than {max_age} or expired", "sign each request when it is sent")
    if "content-digest" not in h:
        raise BadSignature("the request has no Content-Digest (RFC 9530) for its signature to cover")
    return Signed(keyid, created, nonce)


DIGESTS: dict[str, Callable[[], Any]] = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}  # RFC 9530's


class BodyDigest:
    """The digests a request's Content-Digest names, computed over its body as it streams in (so that a
    large body is checked without ever being held whole), and compared with that field at the end."""

    def __init__(self, headers: Iterable[tuple[str, str]]) -> None:
        try:
            parsed = http_sf.parse(_field(Headers(headers), "content-digest").encode("latin-1"), tltype="dictionary")
        except ValueError as e:
            raise BadSignature(f"the Content-Digest field is not a structured dictionary (RFC 8941): {e}") from None
        if not isinstance(parsed, dict) or not parsed or set(parsed) - set(DIGESTS) or \
                any(not isinstance(v, bytes) for v, _ in parsed.values()):  # fmt: skip
            raise BadSignature(f"the Content-Digest must give the body's {' or '.join(DIGESTS)} as a byte sequence")
        self.expected = {name: value for name, (value, _) in parsed.items()}
        self._hashes = {name: DIGESTS[name]() for name in self.expected}
        self.sha256 = hashlib.sha256()  # of every body, whatever the field names: how it is known afterwards
        self.size = 0

    def update(self, chunk: bytes) -> None:
        """Count the next bytes of the body."""
        self.size += len(chunk)
        self.sha256.update(chunk)
        for h in self._hashes.values():
            h.update(chunk)

    def check(self) -> None:
        """Raise BadSignature unless the body received is the one the signed Content-Digest names."""
        if not all(hmac.compare_digest(h.digest(), self.expected[n]) for n, h in self._hashes.items()):
            raise BadSignature("the request's signature does not hold: its Content-Digest is not the body's",
                               "sign the body that is sent")  # fmt: skip


def check_signature(method: str, url: str, headers: Iterable[tuple[str, str]], signed: Signed, key: bytes, *,
                    max_age: timedelta = MAX_AGE) -> None:  # fmt: skip
    """Raise BadSignature unless the signature `inspect` read holds under `key` over this request's method,
    `url` as the recipient knows itself and its Content-Digest field: no byte of the body is read (see
    BodyDigest for that the field is the body's)."""
    msg = Message(method.upper(), url, Headers(headers))
    verifier = HTTPMessageVerifier(
        signature_algorithm=algorithms.ED25519, key_resolver=_Keys(public=lambda k: key if k == signed.keyid else None)
    )
    try:
        verifier.verify(msg, max_age=max_age, require_components=COVERED, expect_label=LABEL, expect_tag=LABEL)
    except HTTPMessageSignaturesException as e:
        raise BadSignature(f"the request's signature does not hold: {e}") from None


def use_nonce(signed: Signed, nonces: NonceLog, *, max_age: timedelta = MAX_AGE) -> str:
    """The signer's DID once the signature's nonce is used by it for the first time; BadSignature for a replay."""
    if not nonces.use(signed.nonce, signed.created, signed.until(max_age), signed.keyid):
        raise BadSignature("the request replays a nonce already used", "sign every request afresh")
    return signed.keyid


def check(method: str, url: str, headers: Iterable[tuple[str, str]], body: bytes, signed: Signed, key: bytes,
          nonces: NonceLog, *, max_age: timedelta = MAX_AGE) -> str:  # fmt: skip
    """The signer's DID, once the signature `inspect` read holds over this request (its method, `url` as
    the recipient knows itself, the body's digest) under `key` and its nonce is used for the first time."""
    headers = list(headers)
    check_signature(method, url, headers, signed, key, max_age=max_age)
    digest = BodyDigest(headers)
    digest.update(body)
    digest.check()
    return use_nonce(signed, nonces, max_age=max_age)


def verify(
    method: str,
    url: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    key_of: Callable[[str], bytes | None],
    nonces: NonceLog,
    *,
    max_age: timedelta = MAX_AGE,
    now: datetime | None = None,
) -> str:
    """The DID that signed this request; raises BadSignature (missing, malformed, forged, stale,
    replayed) or PermissionDenied (a signer the ledger does not know). The key is looked up once,
    and only for a signature of the right form."""
    headers = list(headers)
    signed = inspect(headers, max_age=max_age, now=now)
    key = key_of(signed.keyid)
    if key is None:
        raise PermissionDenied(f"{signed.keyid} is not a participant on this ledger")
    return check(method, url, headers, body, signed, key, nonces, max_age=max_age)


class _Bucket:
    """A token bucket: `burst` at once, refilled at `rate` a second. (Written here: a dozen lines, where
    a rate-limiting library would bring storage backends this node does not need.)"""

    def __init__(self, burst: float, rate: float, now: float) -> None:
        self.burst, self.rate, self.tokens, self.at = burst, rate, burst, now

    def take(self, now: float, cost: float = 1.0) -> float:
        """0 when `cost` tokens were taken, else the seconds until they are there."""
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.rate


class Throttle:
    """Work a stranger may ask of this node: at most `per_client` = (burst, per second) requests from one
    client address and `overall` from all (None: no bound in all), the busiest addresses remembered up to
    MAX_TRACKED."""

    def __init__(self, per_client: tuple[float, float], overall: tuple[float, float] | None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.per_client, self.clock = per_client, clock
        self._all = _Bucket(*overall, clock()) if overall is not None else None
        self._clients: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, client: str, what: str, cost: float = 1.0) -> None:
        """Count one request of `client` (worth `cost`, at most the burst), or raise RateLimited saying
        what was asked too often."""
        with self._lock:
            now = self.clock()
            bucket = self._clients.pop(client, None) or _Bucket(*self.per_client, now)
            self._clients[client] = bucket  # most recent last; the oldest are forgotten first
            while len(self._clients) > MAX_TRACKED:
                self._clients.popitem(last=False)
            wait = bucket.take(now, cost) or (self._all.take(now, cost) if self._all is not None else 0.0)
        if wait:
            raise RateLimited(f"too many {what}", retry_after=wait)


class Resolver:
    """A signer's key as the ledger has it, without letting strangers make this node look up keys at
    will: `known` reads this replica only; `lookup` may catch up with the log operator, so it runs only
    for a signer this replica does not know, at most `per_client` = (burst, per second) times for one
    client address (and `overall` for all, when given), and a keyid found unknown stays unknown for
    `forget` seconds. A node gives no `overall`: a bucket shared by made-up keyids would let a few
    addresses starve the lookups of newly registered members, and its lookups are bounded in all where
    they cost, by `Node.catch_up` (at most one at once, and one every CATCH_UP_EVERY seconds)."""

    def __init__(self, known: Callable[[str], bytes | None], lookup: Callable[[str], bytes | None], *,
                 per_client: tuple[float, float] = (3, 0.5), overall: tuple[float, float] | None = None,
                 forget: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.known, self.lookup, self.clock = known, lookup, clock
        self.forget = forget
        self._throttle = Throttle(per_client, overall, clock=clock)
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, keyid: str, client: str) -> bytes | None:
        """The key of `keyid`, or None when the ledger does not know it; raises RateLimited."""
        if (key := self.known(keyid)) is not None:
            return key
        with self._lock:
            now = self.clock()
            if self._unknown.get(keyid, -1.0) > now:
                return None
        self._throttle.take(client, "requests signed by keys this node does not know")
        key = self.lookup(keyid)
        if key is None:
            with self._lock:
                self._unknown[keyid] = self.clock() + self.forget
                self._unknown.move_to_end(keyid)
                while len(self._unknown) > MAX_TRACKED:
                    self._unknown.popitem(last=False)
        return key
