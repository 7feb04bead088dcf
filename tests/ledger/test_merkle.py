"""RFC 9162 hashing and proofs against transparency-dev/merkle's reference vectors
(testonly/constants.go; proof/verify_test.go, whose leaf numbers are 1-based), including every
corrupted-proof probe that test file requires to be rejected."""

import hashlib
import random

import pytest

from qdsn.errors import IntegrityError
from qdsn.ledger.merkle import (
    EMPTY_ROOT,
    MemoryTree,
    consistency_plan,
    consistency_proof,
    inclusion_plan,
    inclusion_proof,
    leaf_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

h = bytes.fromhex
LEAVES = [
    h(x) for x in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
]
ROOTS = [
    h(x)
    for x in [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]
SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")

# (leaf, size, proof) with 1-based leaf numbers, as in verify_test.go.
INCLUSION = [
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (3, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        2,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (1, 1, []),
]
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]


def test_reference_roots():
    assert root_hash([]) == EMPTY_ROOT == h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    for n in range(1, 9):
        assert root_hash(LEAVES[:n]) == ROOTS[n - 1]


def _rejects_inclusion(index, size, leaf, proof, root):
    with pytest.raises(IntegrityError):
        verify_inclusion(leaf, index, size, proof, root)


def corrupt_inclusion(index, size, proof, root, leaf):
    """Every probe of verify_test.go's corruptInclusionProof."""
    probes = [
        (index - 1, size, root, leaf, proof),
        (index + 1, size, root, leaf, proof),
        (index ^ 2, size, root, leaf, proof),
        (index, size * 2, root, leaf, proof),
        (index, size // 2, root, leaf, proof),
        (index, size, root, b"WrongLeaf", proof),
        (index, size, EMPTY_ROOT, leaf, proof),
        (index, size, SOME_HASH, leaf, proof),
        (index, size, root, leaf, [*proof, b""]),
        (index, size, root, leaf, [*proof, root]),
        (index, size, root, leaf, [b"", *proof]),
        (index, size, root, leaf, [root, *proof]),
    ]
    for i in range(len(proof)):
        wrong = list(proof)
        wrong[i] = bytes([wrong[i][0] ^ 8]) + wrong[i][1:]
        probes.append((index, size, root, leaf, wrong))
    if proof:
        probes.append((index, size, root, leaf, proof[:-1]))
    if len(proof) > 1:
        probes.append((index, size, root, leaf, [proof[0], SOME_HASH, *proof[1:]]))
    return probes


@pytest.mark.parametrize("leaf,size,proof", INCLUSION)
def test_inclusion_vectors_and_corruptions(leaf, size, proof):
    proof = [h(p) for p in proof]
    index, lh, root = leaf - 1, leaf_hash(LEAVES[leaf - 1]), ROOTS[size - 1]
    assert inclusion_proof(index, size, MemoryTree(LEAVES[:size])) == proof
    verify_inclusion(lh, index, size, proof, root)
    for i, n, r, lf, p in corrupt_inclusion(index, size, proof, root, lh):
        if (i, n) == (index, size) and p == proof and r == root and lf == lh:
            continue
        _rejects_inclusion(i, n, lf, p, r)


def test_inclusion_single_entry_and_bad_sizes():
    data_hash = leaf_hash(b"data")
    verify_inclusion(data_hash, 0, 1, [], data_hash)
    for leaf, root in [(b"", data_hash), (data_hash, b""), (b"", b"")]:
        _rejects_inclusion(0, 1, leaf, [], root)
    for index, size in [(0, 0), (0, 1), (1, 0), (2, 1)]:
        _rejects_inclusion(index, size, SOME_HASH, [], b"")
        _rejects_inclusion(index, size, b"", [], EMPTY_ROOT)
        _rejects_inclusion(index, size, SOME_HASH, [], EMPTY_ROOT)


def corrupt_consistency(s1, s2, r1, r2, proof):
    """Every probe of verify_test.go's corruptConsistencyProof."""
    probes = [
        (s1 - 1, s2, r1, r2, proof),
        (s1 + 1, s2, r1, r2, proof),
        (s1 ^ 2, s2, r1, r2, proof),
        (s1, s2 * 2, r1, r2, proof),
        (s1, s2 // 2, r1, r2, proof),
        (s1, s2, b"WrongRoot", r2, proof),
        (s1, s2, r1, b"WrongRoot", proof),
        (s1, s2, r2, r1, proof),
        (s1, s2, r1, r2, []),
        (s1, s2, r1, r2, [*proof, b""]),
        (s1, s2, r1, r2, [*proof, r1]),
        (s1, s2, r1, r2, [*proof, r2]),
        (s1, s2, r1, r2, [b"", *proof]),
        (s1, s2, r1, r2, [r1, *proof]),
        (s1, s2, r1, r2, [r2, *proof]),
        (s1, s2, r1, r2, [proof[0], *proof]),
        (s1, s2, r1, r2, proof[:-1]),
    ]
    for i in range(len(proof)):
        wrong = list(proof)
        wrong[i] = bytes([wrong[i][0] ^ 16]) + wrong[i][1:]
        probes.append((s1, s2, r1, r2, wrong))
    return probes


@pytest.mark.parametrize("s1,s2,proof", CONSISTENCY)
def test_consistency_vectors_and_corruptions(s1, s2, proof):
    proof = [h(p) for p in proof]
    r1, r2 = ROOTS[s1 - 1], ROOTS[s2 - 1]
    assert consistency_proof(s1, s2, MemoryTree(LEAVES[:s2])) == proof
    verify_consistency(s1, s2, r1, r2, proof)
    if not proof:
        return
    for a, b, x, y, p in corrupt_consistency(s1, s2, r1, r2, proof):
        with pytest.raises(IntegrityError):
            verify_consistency(a, b, x, y, p)


@pytest.mark.parametrize(
    "s1,s2,r1,r2,proof,ok",
    [
        (0, 0, b"don't care 1", b"don't care 2", [], False),
        (1, 1, b"don't care 1", b"don't care 2", [], False),
        (0, 0, b"don't care 1", b"don't care 1", [], True),
        (0, 1, b"don't care 1", b"don't care 2", [], True),
        (1, 1, b"don't care 2", b"don't care 2", [], True),
        (1, 0, b"don't care 1", b"don't care 2", [], False),
        (2, 1, b"don't care 1", b"don't care 2", [], False),
        (1, 2, b"don't care 1", b"don't care 2", [], False),
        (0, 0, EMPTY_ROOT, b"don't care 2", [], False),
        (1, 1, EMPTY_ROOT, b"don't care 2", [], False),
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
        (0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
        (1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
    ],
)
def test_consistency_edge_cases(s1, s2, r1, r2, proof, ok):
    if ok:
        verify_consistency(s1, s2, r1, r2, proof)
    else:
        with pytest.raises(IntegrityError):
            verify_consistency(s1, s2, r1, r2, proof)


def _mth(d):
    """RFC 9162 §2.1.1 MTH, written from the definition as an independent reference."""
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return leaf_hash(d[0])
    k = 1 << ((len(d) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + _mth(d[:k]) + _mth(d[k:])).digest()


def _path(m, d):
    if len(d) <= 1:
        return []
    k = 1 << ((len(d) - 1).bit_length() - 1)
    return _path(m, d[:k]) + [_mth(d[k:])] if m < k else _path(m - k, d[k:]) + [_mth(d[:k])]


def _subproof(m, d, b):
    n = len(d)
    if m == n:
        return [] if b else [_mth(d)]
    k = 1 << ((n - 1).bit_length() - 1)
    return _subproof(m, d[:k], b) + [_mth(d[k:])] if m <= k else _subproof(m - k, d[k:], False) + [_mth(d[:k])]


def test_proofs_match_the_rfc_definition_on_random_trees():
    rng = random.Random(9162)
    for _ in range(60):
        n = rng.randint(1, 70)
        d = [rng.randbytes(rng.randint(0, 8)) for _ in range(n)]
        tree = MemoryTree(d)
        root = _mth(d)
        assert root_hash(d) == root
        m = rng.randrange(n)
        assert inclusion_proof(m, n, tree) == _path(m, d)
        verify_inclusion(leaf_hash(d[m]), m, n, inclusion_proof(m, n, tree), root)
        old = rng.randint(1, n)
        proof = consistency_proof(old, n, tree)
        assert proof == (_subproof(old, d, True) if old < n else [])
        verify_consistency(old, n, _mth(d[:old]), root, proof)


@pytest.mark.parametrize("size", [10_000_000, 2**40 + 12345])
def test_a_proof_reads_logarithmically_many_nodes(size):
    depth = (size - 1).bit_length()
    rng = random.Random(size)
    for _ in range(200):
        index = rng.randrange(size)
        reads = sum(len(element) for element in inclusion_plan(index, size))
        assert reads <= 2 * depth
        old = rng.randint(1, size)
        assert sum(len(element) for element in consistency_plan(old, size)) <= 2 * depth + 2
