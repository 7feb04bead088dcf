"""Boolean series packed 64 points to a word, and the window operations run rules are made of.

Point i is bit i % 64 of word i // 64 (numpy's little-endian bit order), so "the point k places
earlier" is a shift by k bits carried across words, and one operation on a word judges 64 points:
the rules over a million points are a few hundred operations on 125 KB arrays, which stay in
cache, instead of as many passes over megabyte-sized boolean arrays.
"""

from __future__ import annotations

import numpy as np

WORD = np.dtype("<u8")


def empty(rows: int, n: int) -> np.ndarray:
    """`rows` packed series of n points each, uninitialized."""
    return np.empty((rows, -(-n // 64)), dtype=WORD)


def pack(into: np.ndarray, start: int, flags: np.ndarray) -> None:
    """Write (rows, k) booleans into packed series `into` (rows, words) from point `start`, a
    multiple of 8; k is a multiple of 8, or reaches the end of the series."""
    into.view(np.uint8)[:, start // 8 : start // 8 + -(-flags.shape[1] // 8)] = np.packbits(
        flags, axis=1, bitorder="little"
    )


def later(w: np.ndarray, k: int) -> np.ndarray:
    """The series moved k points later: out[i] = w[i − k], false for the first k points."""
    q, r = divmod(k, 64)
    out = np.zeros_like(w) if q else np.empty_like(w)
    if q >= w.size:
        return out
    src = w[: w.size - q]
    if r == 0:
        out[q:] = src
    else:
        np.left_shift(src, r, out=out[q:])
        out[q + 1 :] |= src[:-1] >> (64 - r)
    return out


def held(w: np.ndarray, n: int) -> np.ndarray:
    """True at i when the last n points (i − n + 1 … i) are all true: windows doubled and combined
    by the binary digits of n, so a run of any length costs O(log n) operations."""
    out: np.ndarray | None = None
    covered, window, span = 0, w, 1
    while n:
        if n & 1:
            out = window if out is None else out & later(window, covered)
            covered += span
        n >>= 1
        if n:
            window = window & later(window, span)
            span *= 2
    assert out is not None
    return out


def at_least(w: np.ndarray, m: int, k: int) -> np.ndarray:
    """True at i when point i is true and at least k of the last m points are (i among them);
    points before the start count as false. Past the point itself, a thermometer of k − 1 levels
    (level j: "at least j + 1 so far") takes the earlier points one at a time."""
    if k == 1:
        return w
    top = k - 2
    levels = [np.zeros_like(w) for _ in range(k - 1)]
    for by in range(1, m):
        v = later(w, by)
        # only levels that can still climb to the top in the steps left are worth updating
        for j in range(min(by - 1, top), max(0, top - (m - 1 - by)) - 1, -1):
            levels[j] |= levels[j - 1] & v if j else v
    return w & levels[top]


def turns(rise: np.ndarray, fall: np.ndarray) -> np.ndarray:
    """True where the series changes direction: up after down, or down after up."""
    return (rise & later(fall, 1)) | (fall & later(rise, 1))


def before(w: np.ndarray, n: int) -> np.ndarray:
    """w (each row of it) with the points from n on cleared, in place: the last word's padding."""
    if n % 64:
        w[..., n // 64] &= np.uint64((1 << (n % 64)) - 1)
    return w


def positions(w: np.ndarray, n: int) -> np.ndarray:
    """The indices (below n) of the true points, in order: only the bytes with a point set are
    unpacked. (`!= 0` first: numpy finds the true entries of a boolean array far faster than the
    nonzero ones of a byte array.)"""
    b = w.view(np.uint8)
    set_ = (b != 0).nonzero()[0]
    k = np.flatnonzero(np.unpackbits(b[set_], bitorder="little").view(bool))
    idx = set_[k >> 3] * 8 + (k & 7)
    return idx[idx < n] if idx.size and idx[-1] >= n else idx
