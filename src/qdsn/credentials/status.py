"""Token Status Lists (draft-ietf-oauth-status-list): the status of many credentials in one signed,
compressed bit array — 1, 2, 4 or 8 bits per credential, least significant bits first, DEFLATE in
the ZLIB format, base64url. A credential names its list's URI and its index; the index is drawn at
random from a list of at least 131,072 entries, so neither the list nor the index says who it is."""

from __future__ import annotations

import base64
import zlib
from collections.abc import Sequence

import numpy as np

from qdsn.errors import InvalidInput

BITS = (1, 2, 4, 8)
VALID, INVALID, SUSPENDED = 0, 1, 2  # the draft's registered status values
MIN_SIZE = 131_072


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
    """One entry's status."""
    x = _unpack(lst, bits)
    if not 0 <= index < x.size:
        raise InvalidInput(f"index {index} is outside the status list of {x.size} entries")
    return int(x[index])


def _unpack(lst: str, bits: int) -> np.ndarray:
    per = 8 // _check(bits)
    try:
        raw = zlib.decompress(base64.urlsafe_b64decode(lst + "=" * (-len(lst) % 4)))
    except (ValueError, zlib.error) as e:
        raise InvalidInput(f"not a status list (base64url of zlib data): {e}") from None
    b = np.frombuffer(raw, dtype=np.uint8)
    shifts = np.arange(per, dtype=np.uint8) * bits
    return ((b[:, None] >> shifts) & ((1 << bits) - 1)).reshape(-1)
