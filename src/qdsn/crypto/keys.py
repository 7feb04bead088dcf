"""Ed25519 signing and verification through `cryptography`; batches go to `verifier`'s workers."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from qdsn.crypto import verifier
from qdsn.crypto.encoding import b64url_encode
from qdsn.errors import BadSignature, InvalidInput

_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


class VerifyKey:
    """An Ed25519 public key."""

    __slots__ = ("_key", "raw")

    def __init__(self, raw: bytes) -> None:
        if len(raw) != 32:
            raise InvalidInput(f"an Ed25519 public key is 32 bytes, got {len(raw)}")
        self.raw = bytes(raw)
        self._key = Ed25519PublicKey.from_public_bytes(self.raw)

    def verify(self, signature: bytes, message: bytes) -> None:
        """Raise BadSignature unless `signature` is this key's signature of `message`."""
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            raise BadSignature(
                "Ed25519 signature does not verify", "check the signer's current key and the signed bytes"
            ) from None

    def is_valid(self, signature: bytes, message: bytes) -> bool:
        """True when the signature verifies."""
        try:
            self._key.verify(signature, message)
            return True
        except InvalidSignature:
            return False

    def jwk(self) -> dict[str, str]:
        """RFC 8037 OKP JWK."""
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(self.raw)}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyKey) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        return f"VerifyKey({self.raw.hex()[:16]}…)"


class SigningKey:
    """An Ed25519 private key. Its repr never shows key material."""

    __slots__ = ("_key", "verify_key")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.verify_key = VerifyKey(key.public_key().public_bytes(*_RAW))

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh key from the OS's CSPRNG."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """The key for a 32-byte RFC 8032 seed."""
        if len(seed) != 32:
            raise InvalidInput(f"an Ed25519 seed is 32 bytes, got {len(seed)}")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def seed(self) -> bytes:
        """The 32-byte seed; for encrypted storage only."""
        return self._key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )

    def sign(self, message: bytes) -> bytes:
        """A 64-byte Ed25519 signature."""
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"SigningKey(public={self.verify_key.raw.hex()[:16]}…)"


@lru_cache(maxsize=4096)
def verify_key(raw: bytes) -> VerifyKey:
    """A cached VerifyKey for raw bytes (parsing a key costs as much as a hash)."""
    return VerifyKey(raw)


class BatchVerifier:
    """Collects (key, signature, message, tag) checks; worker processes verify them while the
    caller keeps working. Use as a context manager; `failures()` gives the failed tags in order."""

    def __init__(self) -> None:
        self._batch = verifier.Batch()
        self._tags: list[object] = []
        self._failed: list[object] | None = None

    def __enter__(self) -> BatchVerifier:
        self._batch.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._batch.__exit__(*exc)

    def add(self, key: VerifyKey, signature: bytes, message: bytes, tag: object) -> None:
        self._batch.add(key.raw, signature, message)
        self._tags.append(tag)

    def flush(self) -> None:
        """Send every check queued so far to the workers now; no `add` may follow."""
        self._batch.flush()

    def failures(self) -> list[object]:
        """Tags of the checks that failed, in the order they were added; waits for every answer."""
        if self._failed is None:
            self._failed = [t for t, ok in zip(self._tags, self._batch.results(), strict=True) if not ok]
        return self._failed


def verify_batch(items: Sequence[tuple[VerifyKey, bytes, bytes]]) -> list[bool]:
    """Verify many (key, signature, message) triples over all cores; one bool per triple."""
    with BatchVerifier() as batch:
        for i, (k, s, m) in enumerate(items):
            batch.add(k, s, m, i)
        bad = set(batch.failures())
    return [i not in bad for i in range(len(items))]
