"""AES-256-GCM sealing: a random 96-bit nonce per message, carried in front of the ciphertext."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from qdsn.errors import IntegrityError, InvalidInput

NONCE_SIZE = 12


def new_key() -> bytes:
    """A fresh 256-bit key."""
    return AESGCM.generate_key(bit_length=256)


def seal(key: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    """nonce ‖ ciphertext ‖ tag under `key`, binding `aad`."""
    if len(key) != 32:
        raise InvalidInput(f"AES-256-GCM needs a 32-byte key, got {len(key)}")
    nonce = os.urandom(NONCE_SIZE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


class Sealer:
    """`seal` under one key, many times: the cipher is set up once and nonces are drawn in bulk."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise InvalidInput(f"AES-256-GCM needs a 32-byte key, got {len(key)}")
        self._encrypt = AESGCM(key).encrypt

    def seal_many(self, items: list[tuple[bytes, bytes]]) -> list[bytes]:
        """nonce ‖ ciphertext ‖ tag for each (plaintext, aad)."""
        nonces = os.urandom(NONCE_SIZE * len(items))
        out = []
        for i, (plaintext, aad) in enumerate(items):
            nonce = nonces[i * NONCE_SIZE : (i + 1) * NONCE_SIZE]
            out.append(nonce + self._encrypt(nonce, plaintext, aad))
        return out


def open_sealed(key: bytes, sealed: bytes, aad: bytes = b"") -> bytes:
    """Inverse of `seal`; raises IntegrityError if the key, data or aad do not match."""
    if len(sealed) < NONCE_SIZE + 16:
        raise IntegrityError("sealed data is too short to hold a nonce and a tag")
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], aad)
    except InvalidTag:
        raise IntegrityError(
            "decryption failed: wrong key or passphrase, or the data was altered",
            "check the passphrase; if it is right, restore the file from a backup",
        ) from None
