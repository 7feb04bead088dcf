"""Sealing to a participant's public key with HPKE (RFC 9180), base mode, one suite:
DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM — the suite of RFC 9180's test vector A.1.

The recipient's X25519 key is the key agreement key its did:key derives from its Ed25519 key (RFC
7748 §4.1 on the public side, the clamped SHA-512 of the seed on the private side, as libsodium's
`crypto_sign_ed25519_sk_to_curve25519`), so sealing to a member needs no key beyond the one the
ledger holds. HPKE itself is `cryptography`'s.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from qdsn.crypto.keys import SigningKey
from qdsn.errors import IntegrityError, InvalidInput

SUITE = "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM"
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM)
ENC_LENGTH = 32  # the encapsulated key that opens each sealed message


def agreement_key(key: SigningKey) -> X25519PrivateKey:
    """The X25519 private key that belongs to an Ed25519 signing key (X25519 clamps it)."""
    return _agreement_key(key.seed())


def seal(recipient: bytes, plaintext: bytes, info: bytes) -> bytes:
    """`plaintext` sealed to the raw X25519 public key `recipient`, bound to `info`: enc ‖ ciphertext."""
    if len(recipient) != 32:
        raise InvalidInput("an X25519 public key is 32 bytes")
    return _SUITE.encrypt(plaintext, _public_key(recipient), info=info)


@lru_cache(maxsize=64)
def _agreement_key(seed: bytes) -> X25519PrivateKey:
    """agreement_key for an aggregator that opens many messages: building the key object derives its
    public key, an X25519 multiplication as dear as the opening itself."""
    return X25519PrivateKey.from_private_bytes(hashlib.sha512(seed).digest()[:32])


@lru_cache(maxsize=1024)
def _public_key(recipient: bytes) -> X25519PublicKey:
    """The key object of a recipient, built once: a client seals every report to the same few keys."""
    return X25519PublicKey.from_public_bytes(recipient)


def unseal(key: SigningKey | X25519PrivateKey, sealed: bytes, info: bytes) -> bytes:
    """The plaintext of a message sealed to `key` with the same `info`, or IntegrityError."""
    private = _agreement_key(key.seed()) if isinstance(key, SigningKey) else key
    if len(sealed) < ENC_LENGTH + 16:
        raise IntegrityError("the sealed message is too short to be one")
    try:
        return _SUITE.decrypt(sealed, private, info=info)
    except (InvalidTag, ValueError):
        raise IntegrityError(
            "the sealed message does not open: it was sealed to another key or context, or altered"
        ) from None


def agree(key: SigningKey, peer: bytes) -> bytes:
    """The X25519 shared secret of this Ed25519 key's agreement key and a peer's raw X25519 public key:
    two participants derive the same secret from the keys the ledger holds, without a message."""
    if len(peer) != 32:
        raise InvalidInput("an X25519 public key is 32 bytes")
    secret = agreement_key(key).exchange(X25519PublicKey.from_public_bytes(peer))
    if secret == bytes(32):  # a low-order point: no secret at all
        raise IntegrityError("the peer's X25519 key is a low-order point")
    return secret
