"""The two NTT-friendly prime fields of Prio3 (draft-irtf-cfrg-vdaf-20 §6.1): Field64 and Field128.

Elements are plain Python ints in [0, MODULUS) and vectors are lists of them: at Prio3's sizes (tens to a
few hundred elements) an int list beats numpy object arrays and the machine-word fields cannot hold a
Field128 product, so the arithmetic is written out here with the modulus reduced at each product. The
per-size constants (roots of unity, their inverses) are computed once per size and cached.
"""

from __future__ import annotations

import secrets
import struct
from functools import cache
from typing import ClassVar

from qdsn.errors import InvalidInput

try:  # the transforms in C (_fields.c), where setup.py could build it; the Python code does the same
    from qdsn.privacy import _fields as kernel
except ImportError:  # pragma: no cover - depends on the build
    kernel = None


def next_power_of_2(x: int) -> int:
    """The smallest power of two ≥ x (1 for x ≤ 1)."""
    return 1 if x <= 1 else 1 << (x - 1).bit_length()


def assert_power_of_2(x: int) -> int:
    """log2(x) for a positive power of two x, else ValueError."""
    if x <= 0 or x & (x - 1):
        raise ValueError(f"{x} is not a power of two")
    return x.bit_length() - 1


class Field:
    """A prime field with a multiplicative subgroup of order 2**k (class-level only, never instantiated)."""

    MODULUS: ClassVar[int]
    ENCODED_SIZE: ClassVar[int]
    GEN_ORDER: ClassVar[int]
    GENERATOR: ClassVar[int]

    @classmethod
    def zeros(cls, length: int) -> list[int]:
        return [0] * length

    @classmethod
    def rand_vec(cls, length: int) -> list[int]:
        return [secrets.randbelow(cls.MODULUS) for _ in range(length)]

    @classmethod
    def encode_vec(cls, vec: list[int]) -> bytes:
        """The little-endian encoding of each element, concatenated."""
        size = cls.ENCODED_SIZE
        return b"".join(x.to_bytes(size, "little") for x in vec)

    @classmethod
    def decode_vec(cls, encoded: bytes) -> list[int]:
        """The vector `encoded` holds; InvalidInput for a length that is not a whole number of elements or
        an element not below the modulus."""
        size = cls.ENCODED_SIZE
        if len(encoded) % size:
            raise InvalidInput(f"{len(encoded)} bytes is not a whole number of {size}-byte field elements")
        vec = [int.from_bytes(encoded[i : i + size], "little") for i in range(0, len(encoded), size)]
        if vec and max(vec) >= cls.MODULUS:
            raise InvalidInput("a field element is not below the field's modulus")
        return vec

    @classmethod
    def _transform(cls, a: list[int], roots: list[int]) -> list[int]:
        return _ntt(a, roots, cls.MODULUS)

    @classmethod
    def words(cls, encoded: bytes) -> list[int]:
        """The little-endian ENCODED_SIZE-byte words of `encoded` as ints, unchecked."""
        size = cls.ENCODED_SIZE
        return [int.from_bytes(encoded[i : i + size], "little") for i in range(0, len(encoded), size)]

    @classmethod
    def inv(cls, x: int) -> int:
        return pow(x, cls.MODULUS - 2, cls.MODULUS)

    @classmethod
    def inv_const(cls, x: int) -> int:
        """inv(x) for the few small constants the circuits divide by (sizes, numbers of shares), cached."""
        return _inv_const(cls, x)

    @classmethod
    def nth_root(cls, n: int) -> int:
        """The principal n-th root of unity, gen**(GEN_ORDER // n)."""
        return pow(cls.GENERATOR, cls.GEN_ORDER // n, cls.MODULUS)

    @classmethod
    def nth_root_powers(cls, n: int) -> list[int]:
        return _root_powers(cls, n)

    @classmethod
    def ntt(cls, p: list[int], n: int, set_s: bool = False) -> list[int]:
        """Evaluations of the polynomial with coefficients `p` (len ≤ n) at Wn**i, or at s·Wn**i with
        s = nth_root(2n) when `set_s`."""
        mod = cls.MODULUS
        a = list(p) + [0] * (n - len(p))
        if set_s:
            s_pows = _root_powers(cls, 2 * n)  # s**i = W_2n**i
            a = [x * s % mod for x, s in zip(a, s_pows, strict=False)]
        return cls._transform(a, _root_powers(cls, n))

    @classmethod
    def inv_ntt(cls, v: list[int], n: int) -> list[int]:
        """Coefficients of the polynomial whose evaluations at the n powers of Wn are `v`."""
        mod = cls.MODULUS
        out = cls._transform(list(v), _inv_root_powers(cls, n))
        n_inv = cls.inv_const(n)
        return [x * n_inv % mod for x in out]


class Field64(Field):
    MODULUS = 2**32 * 4294967295 + 1
    ENCODED_SIZE = 8
    GEN_ORDER = 2**32
    GENERATOR = pow(7, 4294967295, 2**32 * 4294967295 + 1)

    @classmethod
    def encode_vec(cls, vec: list[int]) -> bytes:
        return struct.pack(f"<{len(vec)}Q", *vec)

    @classmethod
    def _transform(cls, a: list[int], roots: list[int]) -> list[int]:
        return kernel.ntt(a, roots) if kernel is not None else _ntt(a, roots, cls.MODULUS)

    @classmethod
    def words(cls, encoded: bytes) -> list[int]:
        return list(struct.unpack(f"<{len(encoded) // 8}Q", encoded))

    @classmethod
    def decode_vec(cls, encoded: bytes) -> list[int]:
        if len(encoded) % 8:
            raise InvalidInput(f"{len(encoded)} bytes is not a whole number of 8-byte field elements")
        vec = cls.words(encoded)
        if vec and max(vec) >= cls.MODULUS:
            raise InvalidInput("a field element is not below the field's modulus")
        return vec


class Field128(Field):
    MODULUS = 2**66 * 4611686018427387897 + 1
    ENCODED_SIZE = 16
    GEN_ORDER = 2**66
    GENERATOR = pow(7, 4611686018427387897, 2**66 * 4611686018427387897 + 1)

    @classmethod
    def _transform(cls, a: list[int], roots: list[int]) -> list[int]:
        return kernel.ntt128(a, roots) if kernel is not None else _ntt(a, roots, cls.MODULUS)

    @classmethod
    def words(cls, encoded: bytes) -> list[int]:
        halves = struct.unpack(f"<{len(encoded) // 8}Q", encoded)
        return [lo | hi << 64 for lo, hi in zip(halves[0::2], halves[1::2], strict=True)]

    @classmethod
    def encode_vec(cls, vec: list[int]) -> bytes:
        m = 0xFFFFFFFFFFFFFFFF
        return struct.pack(f"<{2 * len(vec)}Q", *[h for x in vec for h in (x & m, x >> 64)])

    @classmethod
    def decode_vec(cls, encoded: bytes) -> list[int]:
        if len(encoded) % 16:
            raise InvalidInput(f"{len(encoded)} bytes is not a whole number of 16-byte field elements")
        vec = cls.words(encoded)
        if vec and max(vec) >= cls.MODULUS:
            raise InvalidInput("a field element is not below the field's modulus")
        return vec


@cache
def _inv_const(field: type[Field], x: int) -> int:
    return field.inv(x)


@cache
def _root_powers(field: type[Field], n: int) -> list[int]:
    w, mod = field.nth_root(n), field.MODULUS
    out = [1] * n
    for i in range(1, n):
        out[i] = out[i - 1] * w % mod
    return out


@cache
def _inv_root_powers(field: type[Field], n: int) -> list[int]:
    powers = _root_powers(field, n)
    return [powers[0]] + powers[:0:-1]  # W**-i = W**(n-i)


@cache
def _bit_reversal(n: int) -> tuple[int, ...]:
    bits = assert_power_of_2(n)
    return tuple(int(format(i, f"0{bits}b")[::-1], 2) if bits else 0 for i in range(n))


def _ntt(a: list[int], roots: list[int], mod: int) -> list[int]:
    """In-order evaluations of `a` at roots[i] (radix-2 Cooley–Tukey over a bit-reversed copy)."""
    n = len(a)
    a = [a[i] for i in _bit_reversal(n)]
    half = 1
    while half < n:
        stride = n // (2 * half)
        ws = roots[: half * stride : stride]
        for start in range(0, n, 2 * half):
            for j in range(half):
                u = a[start + j]
                v = a[start + j + half] * ws[j] % mod
                a[start + j] = (u + v) % mod
                a[start + j + half] = (u - v) % mod
        half *= 2
    return a


def vec_add(left: list[int], right: list[int], mod: int) -> list[int]:
    if len(left) != len(right):
        raise InvalidInput("mismatched vector sizes")
    return [(x + y) % mod for x, y in zip(left, right, strict=True)]


def vec_sub(left: list[int], right: list[int], mod: int) -> list[int]:
    if len(left) != len(right):
        raise InvalidInput("mismatched vector sizes")
    return [(x - y) % mod for x, y in zip(left, right, strict=True)]
