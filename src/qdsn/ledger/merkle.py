"""RFC 9162 §2.1 Merkle tree hashing, inclusion and consistency proofs, with 0-based indices.

A tree is addressed by its complete subtrees: node (level, index) covers leaves
[index·2^level, (index+1)·2^level). Every hash a proof needs is a complete subtree or a fold of a
few of them, so a store that keeps complete-subtree hashes answers any proof with O(log n) reads:
the `*_plan` functions say which nodes, a `NodeSource` fetches them in one call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

from qdsn.errors import IntegrityError, InvalidInput

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeId = tuple[int, int]  # (level, index)
Plan = list[list[NodeId]]  # each proof element is the fold of these complete subtrees


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 ‖ data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 ‖ left ‖ right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def fold(hashes: Sequence[bytes]) -> bytes:
    """The hash of a range from its complete subtrees, left to right (RFC 9162 MTH)."""
    if not hashes:
        return EMPTY_ROOT
    h = hashes[-1]
    for left in reversed(hashes[:-1]):
        h = hashlib.sha256(b"\x01" + left + h).digest()
    return h


def root_from_hashes(hashes: Sequence[bytes]) -> bytes:
    """The root of a tree given its leaf hashes, level by level: pair up each level's complete
    subtrees; an odd last one waits for the right edge (the RFC 9162 split, bottom-up)."""
    if not hashes:
        return EMPTY_ROOT
    level, border = list(hashes), []
    sha = hashlib.sha256
    while len(level) > 1:
        if len(level) % 2:
            border.append(level.pop())
        level = [sha(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level), 2)]
    # the level's single node is the largest complete subtree; fold the border back in from the right
    return fold([level[0], *reversed(border)])


def root_hash(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of the leaf data `leaves`."""
    return root_from_hashes([leaf_hash(d) for d in leaves])


class Frontier:
    """The compact range [0, size): the right border of complete subtrees.

    Appending a leaf returns the complete nodes it finishes, which a store persists, so the
    tree grows without reading anything back.
    """

    __slots__ = ("_border", "size")

    def __init__(self, size: int = 0, border: Sequence[bytes] = ()) -> None:
        if len(border) != size.bit_count():
            raise InvalidInput(f"a frontier of size {size} has {size.bit_count()} nodes, got {len(border)}")
        self.size = size
        self._border = list(border)  # highest level first

    def append(self, h: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf hash; returns the new complete nodes as (level, index, hash)."""
        idx = self.size
        new = [(0, idx, h)]
        level = 0
        while idx & 1:
            h = hashlib.sha256(b"\x01" + self._border.pop() + h).digest()
            idx >>= 1
            level += 1
            new.append((level, idx, h))
        self._border.append(h)
        self.size += 1
        return new

    def root(self) -> bytes:
        """The root hash of the tree so far."""
        return fold(self._border)

    def copy(self) -> Frontier:
        return Frontier(self.size, self._border)


def _largest_pow2_below(n: int) -> int:
    """k with k < n <= 2k (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def subtree_ids(start: int, end: int) -> list[NodeId]:
    """The complete subtrees covering [start, end), left to right, for ranges that arise in
    RFC 9162's recursion (start aligned to the range's enclosing power of two)."""
    ids: list[NodeId] = []
    while start < end:
        level = (end - start).bit_length() - 1
        while start & ((1 << level) - 1):
            level -= 1
        ids.append((level, start >> level))
        start += 1 << level
    return ids


def _check_sizes(index: int, size: int) -> None:
    if not (0 <= index < size):
        raise InvalidInput(f"leaf index {index} is outside a tree of size {size}")


def inclusion_plan(index: int, size: int) -> Plan:
    """Which complete subtrees make up PATH(index, D[size]), in proof order."""
    _check_sizes(index, size)
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = _largest_pow2_below(end - start)
        if index < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    return [subtree_ids(s, e) for s, e in reversed(ranges)]


def consistency_plan(old_size: int, new_size: int) -> Plan:
    """Which complete subtrees make up PROOF(old_size, D[new_size]), in proof order."""
    if not (0 <= old_size <= new_size):
        raise InvalidInput(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    ranges: list[tuple[int, int]] = []
    start, end, complete = 0, new_size, True
    while end != old_size:
        k = _largest_pow2_below(end - start)
        if old_size <= start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
            complete = False
    if not complete:
        ranges.append((start, end))
    return [subtree_ids(s, e) for s, e in reversed(ranges)]


class NodeSource(Protocol):
    """Anything that returns the hashes of complete subtrees, in the order asked."""

    def nodes(self, ids: Sequence[NodeId]) -> list[bytes]: ...


def resolve(plan: Plan, source: NodeSource) -> list[bytes]:
    """Fetch a plan's nodes in one call and fold each proof element."""
    flat = [i for element in plan for i in element]
    got = dict(zip(flat, source.nodes(flat), strict=True)) if flat else {}
    return [fold([got[i] for i in element]) for element in plan]


def inclusion_proof(index: int, size: int, source: NodeSource) -> list[bytes]:
    """The audit path of leaf `index` in the tree of `size` leaves."""
    return resolve(inclusion_plan(index, size), source)


def consistency_proof(old_size: int, new_size: int, source: NodeSource) -> list[bytes]:
    """The proof that the tree of `old_size` leaves is a prefix of the tree of `new_size`."""
    return resolve(consistency_plan(old_size, new_size), source)


def root_at(size: int, source: NodeSource) -> bytes:
    """The root of the first `size` leaves."""
    return fold(source.nodes(subtree_ids(0, size))) if size else EMPTY_ROOT


class MemoryTree:
    """Every complete subtree of a list of leaves, in memory; a NodeSource for tests and tools."""

    def __init__(self, leaves: Sequence[bytes] = (), *, hashed: bool = False) -> None:
        self.levels: list[list[bytes]] = [[h if hashed else leaf_hash(h) for h in leaves]]
        while len(self.levels[-1]) > 1:
            row = self.levels[-1]
            self.levels.append([node_hash(row[i], row[i + 1]) for i in range(0, len(row) - 1, 2)])

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def nodes(self, ids: Sequence[NodeId]) -> list[bytes]:
        return [self.levels[lv][ix] for lv, ix in ids]


def _fail(what: str) -> IntegrityError:
    return IntegrityError(what, "the proof, the sizes or the roots were altered or belong to another log")


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Raise IntegrityError unless `proof` shows leaf hash `leaf` at `index` of the tree with `root`
    (RFC 9162 §2.1.3.2)."""
    if not (0 <= index < size):
        raise _fail(f"leaf index {index} is outside a tree of size {size}")
    if len(leaf) != HASH_SIZE or len(root) != HASH_SIZE:
        raise _fail("leaf hash and root must be 32 bytes")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if len(p) != HASH_SIZE:
            raise _fail("a proof element is not 32 bytes")
        if sn == 0:
            raise _fail("the inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise _fail("the inclusion proof is too short")
    if r != root:
        raise _fail(f"the inclusion proof for leaf {index} does not lead to the root of size {size}")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """Raise IntegrityError unless `proof` shows the tree (old_size, old_root) is a prefix of
    (new_size, new_root) (RFC 9162 §2.1.4.2)."""
    if not (0 <= old_size <= new_size):
        raise _fail(f"size went back from {old_size} to {new_size}")
    if old_size == new_size:
        if proof:
            raise _fail("a consistency proof between equal sizes must be empty")
        if old_root != new_root:
            raise _fail(f"two different roots for the same size {old_size}: the log forked")
        return
    if old_size == 0:
        if proof:
            raise _fail("a consistency proof from the empty tree must be empty")
        return
    if not proof:
        raise _fail("the consistency proof is empty")
    if any(len(p) != HASH_SIZE for p in proof):
        raise _fail("a proof element is not 32 bytes")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = fh = path[0]
    for c in path[1:]:
        if sn == 0:
            raise _fail("the consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            fh = node_hash(c, fh)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            fh = node_hash(fh, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise _fail("the consistency proof is too short")
    if fr != old_root:
        raise _fail(f"the proof does not reproduce the root of size {old_size}")
    if fh != new_root:
        raise _fail(f"the proof does not reproduce the root of size {new_size}")
