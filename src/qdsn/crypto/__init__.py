"""The only package that touches cryptographic primitives."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from qdsn.crypto.aead import Sealer, new_key, open_sealed, seal
from qdsn.crypto.canonical import canonical_json
from qdsn.crypto.keys import BatchVerifier, SigningKey, VerifyKey, verify_batch, verify_key


def sha256(data: bytes) -> bytes:
    """SHA-256 digest."""
    return hashlib.sha256(data).digest()


def hkdf_sha256(secret: bytes, info: bytes, length: int = 32) -> bytes:
    """RFC 5869 HKDF with SHA-256 and no salt: a key for one purpose from a secret for another."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(secret)


__all__ = [
    "BatchVerifier",
    "Sealer",
    "SigningKey",
    "VerifyKey",
    "canonical_json",
    "hkdf_sha256",
    "new_key",
    "open_sealed",
    "seal",
    "sha256",
    "verify_batch",
    "verify_key",
]
