"""Requests between nodes, signed with HTTP Message Signatures (RFC 9421, Ed25519).

The signature covers the method, the target URI and the body's `content-digest` (RFC 9530), with
`created`, a random `nonce`, `keyid` = the sender's DID and the application `tag` "qdsn". A
verifier takes the sender's key from the ledger (its current key, so a rotated key stops working
at once), refuses signatures older than `max_age` or from the future, and refuses a nonce it has
seen. The RFC 9421 engine is the `http-message-signatures` package; this module adapts it to our
messages and keys."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    algorithms,
)

from qdsn.crypto import SigningKey
from qdsn.errors import BadSignature, PermissionDenied

COVERED = ("@method", "@target-uri", "content-digest")
LABEL = "qdsn"
MAX_AGE = timedelta(minutes=5)


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
    """Nonces seen within the signature lifetime; a second use is a replay. Thread-safe."""

    def __init__(self, lifetime: timedelta = MAX_AGE) -> None:
        self.lifetime = lifetime.total_seconds() * 2  # covers clock skew on either side
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def use(self, nonce: str, now: float | None = None) -> bool:
        """True the first time `nonce` is used."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen = {n: t for n, t in self._seen.items() if now - t < self.lifetime}
            if nonce in self._seen and now - self._seen[nonce] < self.lifetime:
                return False
            self._seen[nonce] = now
            return True


def verify(
    method: str,
    url: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    key_of: Callable[[str], bytes | None],
    nonces: Nonces,
    *,
    max_age: timedelta = MAX_AGE,
    now: datetime | None = None,
) -> str:
    """The DID that signed this request; raises BadSignature (missing, malformed, forged, stale,
    replayed) or PermissionDenied (a signer the ledger does not know)."""
    msg = Message(method.upper(), url, Headers(headers))
    if "signature" not in msg.headers or "signature-input" not in msg.headers:
        raise BadSignature("the request is not signed", "sign it with RFC 9421 (qdsn.api.client does)")
    signer_did: list[str] = []

    def lookup(key_id: str) -> bytes | None:
        signer_did.append(key_id)
        return key_of(key_id)

    verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=_Keys(public=lookup))
    try:
        results = verifier.verify(
            msg, max_age=max_age, require_components=COVERED, expect_label=LABEL, expect_tag=LABEL, body=body
        )
    except HTTPMessageSignaturesException as e:
        if signer_did and key_of(signer_did[-1]) is None:
            raise PermissionDenied(f"{signer_did[-1]} is not a participant on this ledger") from None
        raise BadSignature(f"the request's signature does not hold: {e}") from None
    params = results[0].parameters
    created = datetime.fromtimestamp(params["created"], UTC)
    if created > (now or datetime.now(UTC)) + timedelta(seconds=60):
        raise BadSignature("the signature was created in the future", "check the sender's clock")
    nonce = params.get("nonce")
    if not nonce or not nonces.use(nonce):
        raise BadSignature("the request replays a nonce already used" if nonce else "the signature has no nonce")
    return params["keyid"]
