"""XofTurboShake128 (draft-irtf-cfrg-vdaf-20 §6.2.1): the XOF Prio3 derives every share, seed and random
value from. TurboSHAKE128 (RFC 9861) is the fields' C kernel's where it was built (a Prio3 report draws from
seven short XOFs, and pycryptodome's binding costs several times the permutation per call), else
pycryptodome's; the tests run both."""

from __future__ import annotations

from functools import cache

from Crypto.Hash import TurboSHAKE128

from qdsn.errors import InvalidInput
from qdsn.privacy import field as field_mod
from qdsn.privacy.field import Field, next_power_of_2

VERSION = 18  # draft-irtf-cfrg-vdaf's VERSION constant, part of every domain separation tag


def format_dst(algo_class: int, algo: int, usage: int) -> bytes:
    """The domain separation tag: version, algorithm class, algorithm id, usage (§6.2.3)."""
    return bytes([VERSION, algo_class]) + algo.to_bytes(4, "big") + usage.to_bytes(2, "big")


class XofTurboShake128:
    """TurboSHAKE128 with domain byte 1 over len(dst) ‖ dst ‖ len(seed) ‖ seed ‖ binder, read as a stream."""

    SEED_SIZE = 32

    def __init__(self, seed: bytes, dst: bytes, binder: bytes) -> None:
        if len(seed) > 255:
            raise InvalidInput("an XOF seed is at most 255 bytes")
        if len(dst) > 65535:
            raise InvalidInput("a domain separation tag is at most 65535 bytes")
        message = len(dst).to_bytes(2, "little") + dst + bytes([len(seed)]) + seed + binder
        self._kernel = field_mod.kernel
        if self._kernel is not None:  # the stream is squeezed anew from the start at each read: reads are few
            self._message, self._read = message, 0
        else:
            self._h = TurboSHAKE128.new(domain=1)
            self._h.update(message)

    def next(self, length: int) -> bytes:
        if self._kernel is None:
            return self._h.read(length)
        start, self._read = self._read, self._read + length
        return self._kernel.turboshake128(self._message, 1, self._read)[start:]

    def next_vec(self, field: type[Field], length: int) -> list[int]:
        """The next `length` field elements, by rejection sampling of ENCODED_SIZE-byte words."""
        size, mod = field.ENCODED_SIZE, field.MODULUS
        mask = _mask(field)
        vec = field.words(self.next(size * length))
        if mask.bit_length() < 8 * size:  # not for Field64 and Field128, whose words fill their encoding
            vec = [x & mask for x in vec]
        if vec and max(vec) >= mod:  # a rejected word is replaced by the next in the stream
            vec = [x for x in vec if x < mod]
            while len(vec) < length:
                x = int.from_bytes(self.next(size), "little") & mask
                if x < mod:
                    vec.append(x)
        return vec

    @classmethod
    def derive_seed(cls, seed: bytes, dst: bytes, binder: bytes) -> bytes:
        return cls(seed, dst, binder).next(cls.SEED_SIZE)

    @classmethod
    def expand_into_vec(cls, field: type[Field], seed: bytes, dst: bytes, binder: bytes, length: int) -> list[int]:
        kernel = field_mod.kernel
        if kernel is None or len(seed) > 255 or len(dst) > 65535:  # the stream, or the constructor's error
            return cls(seed, dst, binder).next_vec(field, length)
        # one squeeze without the stream object: a report expands seven vectors
        message = len(dst).to_bytes(2, "little") + dst + bytes([len(seed)]) + seed + binder
        vec = field.words(kernel.turboshake128(message, 1, field.ENCODED_SIZE * length))
        if vec and (max(vec) >= field.MODULUS or _mask(field).bit_length() < 8 * field.ENCODED_SIZE):
            return cls(seed, dst, binder).next_vec(field, length)  # a word to mask or reject: the general path
        return vec


@cache
def _mask(field: type[Field]) -> int:
    """The bits of a word that rejection sampling keeps."""
    return next_power_of_2(field.MODULUS) - 1
