"""Byte encodings used by the standards we follow: base64url (JOSE), base64 (signed notes),
multibase base58btc (DIDs) and lowercase hex (hashes in JSON)."""

from __future__ import annotations

import base64
import binascii
import re

from qdsn.errors import InvalidInput


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_B64URL_TEXT = re.compile("[A-Za-z0-9_-]*")
_UNUSED_BITS = {2: 0b1111, 3: 0b11}  # length mod 4 -> the bits of the last character that carry no data


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url strictly (RFC 7515 §2): only `A-Z a-z 0-9 - _`, no padding or
    whitespace, no impossible length, and no data in the unused trailing bits — so that every byte
    string has exactly one encoding and nothing can be slipped into a signed token's text."""
    if not isinstance(text, str) or not _B64URL_TEXT.fullmatch(text):
        raise InvalidInput(f"{_shown(text)} is not base64url", "use only A-Z, a-z, 0-9, '-' and '_', unpadded")
    if len(text) % 4 == 1:
        raise InvalidInput(f"{_shown(text)} is not base64url: {len(text)} characters cannot encode whole bytes")
    if len(text) % 4 and _B64URL.index(text[-1]) & _UNUSED_BITS[len(text) % 4]:
        raise InvalidInput(f"{_shown(text)} is not canonical base64url: its last character carries unused bits")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _shown(text: object) -> str:
    """A short repr of untrusted text for an error message."""
    r = repr(text)
    return r if len(r) <= 40 else r[:36] + "…" + r[-3:]


def b64_encode(data: bytes) -> str:
    """Standard padded base64 (RFC 4648 §4)."""
    return base64.b64encode(data).decode("ascii")


def b64_decode(text: str) -> bytes:
    """Strict standard base64: rejects non-alphabet characters and bad padding."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidInput(f"{text!r} is not standard base64: {e}") from e
    if b64_encode(raw) != text:
        raise InvalidInput(f"{text!r} is not canonical base64")
    return raw


# Base58 by hand: it is a base conversion Python's big integers do in one pass, and the `base58`
# package's digit-by-digit loop cost a third of a ledger append in profiles.
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}


def b58encode(data: bytes) -> str:
    """Bitcoin-alphabet base58; leading zero bytes become leading '1's."""
    n = int.from_bytes(data, "big")
    digits = []
    while n:
        n, r = divmod(n, 58)
        digits.append(_B58[r])
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + "".join(reversed(digits))


def b58decode(text: str) -> bytes:
    """Inverse of `b58encode`; raises InvalidInput on a character outside the alphabet."""
    n = 0
    try:
        for c in text:
            n = n * 58 + _B58_INDEX[c]
    except KeyError as e:
        raise InvalidInput(f"{text!r} is not base58btc: {e.args[0]!r} is outside the alphabet") from None
    return b"\0" * (len(text) - len(text.lstrip("1"))) + n.to_bytes((n.bit_length() + 7) // 8, "big")


def multibase_b58btc_encode(data: bytes) -> str:
    """Multibase base58btc: the prefix `z` followed by Bitcoin-alphabet base58."""
    return "z" + b58encode(data)


def multibase_b58btc_decode(text: str) -> bytes:
    """Decode a `z`-prefixed multibase base58btc string."""
    if not isinstance(text, str) or not text.startswith("z") or len(text) < 2:
        raise InvalidInput(f"{text!r} is not multibase base58btc (it must start with 'z')")
    return b58decode(text[1:])


def hex_decode(text: str, size: int | None = None) -> bytes:
    """Decode lowercase hex, optionally of an exact byte length."""
    if not isinstance(text, str) or text != text.lower():
        raise InvalidInput(f"{text!r} is not lowercase hex")
    try:
        raw = bytes.fromhex(text)
    except ValueError as e:
        raise InvalidInput(f"{text!r} is not hex") from e
    if size is not None and len(raw) != size:
        raise InvalidInput(f"expected {size} bytes of hex, got {len(raw)}")
    return raw
