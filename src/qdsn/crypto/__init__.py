"""The only package that touches cryptographic primitives."""

from __future__ import annotations

import hashlib

from qdsn.crypto.aead import new_key, open_sealed, seal
from qdsn.crypto.canonical import canonical_json
from qdsn.crypto.keys import BatchVerifier, SigningKey, VerifyKey, verify_batch, verify_key


def sha256(data: bytes) -> bytes:
    """SHA-256 digest."""
    return hashlib.sha256(data).digest()


__all__ = [
    "BatchVerifier",
    "SigningKey",
    "VerifyKey",
    "canonical_json",
    "new_key",
    "open_sealed",
    "seal",
    "sha256",
    "verify_batch",
    "verify_key",
]
