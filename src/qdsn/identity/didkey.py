"""did:key for Ed25519 (multicodec ed25519-pub 0xed01, multibase base58btc) per the W3C CCG
did:key method, and the X25519 key agreement key the method derives from it."""

from __future__ import annotations

from qdsn.crypto.encoding import multibase_b58btc_decode, multibase_b58btc_encode
from qdsn.errors import InvalidInput

ED25519_PUB = b"\xed\x01"  # varint of multicodec 0xed
X25519_PUB = b"\xec\x01"  # varint of multicodec 0xec
_P = 2**255 - 19


def multikey_from_public_key(raw: bytes) -> str:
    """The Multikey `publicKeyMultibase` of a raw Ed25519 public key (`z6Mk…`)."""
    if len(raw) != 32:
        raise InvalidInput(f"an Ed25519 public key is 32 bytes, got {len(raw)}")
    return multibase_b58btc_encode(ED25519_PUB + raw)


def public_key_from_multikey(value: str) -> bytes:
    """The raw Ed25519 key inside a `z6Mk…` Multikey value."""
    data = multibase_b58btc_decode(value)
    if data[:2] != ED25519_PUB or len(data) != 34:
        raise InvalidInput(
            f"{value!r} is not an Ed25519 Multikey",
            "expected multicodec 0xed01 followed by 32 key bytes (a value starting 'z6Mk')",
        )
    return data[2:]


def did_key_from_public_key(raw: bytes) -> str:
    """`did:key:z6Mk…` for a raw 32-byte Ed25519 public key."""
    return "did:key:" + multikey_from_public_key(raw)


def public_key_from_did_key(did: str) -> bytes:
    """The raw Ed25519 public key of a `did:key:z6Mk…` DID (a fragment, if any, is ignored)."""
    if not isinstance(did, str) or not did.startswith("did:key:"):
        raise InvalidInput(f"{did!r} is not a did:key DID", "a did:key looks like did:key:z6Mk…")
    return public_key_from_multikey(did[len("did:key:") :].split("#", 1)[0])


def x25519_from_ed25519(raw: bytes) -> bytes:
    """The X25519 public key birationally equivalent to an Ed25519 public key (RFC 7748 §4.1).

    `cryptography` has no such conversion; it is the map u = (1 + y) / (1 - y) mod p.
    """
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    if y >= _P or y == 1:
        raise InvalidInput("Ed25519 public key has no X25519 equivalent")
    u = (1 + y) * pow(1 - y, _P - 2, _P) % _P
    return u.to_bytes(32, "little")


def x25519_multikey(raw_ed25519: bytes) -> str:
    """Multikey (`z6LS…`) of the X25519 key derived from an Ed25519 public key."""
    return multibase_b58btc_encode(X25519_PUB + x25519_from_ed25519(raw_ed25519))
