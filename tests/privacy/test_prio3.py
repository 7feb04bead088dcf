"""Prio3 end to end between two aggregators: honest reports are counted, and every kind of bad report —
a tampered share, a wrong seed or joint randomness part, a measurement out of range forced through by a
dishonest client — is refused by both aggregators and never counted.

What the client controls at the aggregators' trust boundary: the public share, both input shares, the
nonce, and the proof inside the leader's share; the tests alter each."""

from __future__ import annotations

import os
import secrets

import pytest

from qdsn.errors import InvalidInput, QDSNError
from qdsn.privacy import (
    Field64,
    Field128,
    Prio3,
    Prio3Count,
    Prio3Histogram,
    Prio3MultihotCountVec,
    Prio3Sum,
    Prio3SumVec,
    Prio3SumVecWithMultiproof,
    ReportRejected,
)
from qdsn.privacy.field import next_power_of_2

CTX = b"qdsn test"
KEY = bytes(range(32))


def report(vdaf: Prio3, measurement, nonce: bytes | None = None):
    nonce = nonce or os.urandom(16)
    public, shares = vdaf.shard(CTX, measurement, nonce, os.urandom(vdaf.RAND_SIZE))
    return nonce, public, shares


def forged(vdaf: Prio3, encoded: list[int]):
    """A dishonest client: its own encoding, out of range, sharded and proved as an honest one would."""
    nonce = os.urandom(16)
    seeds = [os.urandom(32) for _ in range(vdaf.RAND_SIZE // 32)]
    if vdaf.flp.JOINT_RAND_LEN:
        public, shares = vdaf._shard_with_joint_rand(CTX, encoded, nonce, seeds)
    else:
        public, shares = vdaf._shard_without_joint_rand(CTX, encoded, seeds)
    return nonce, public, shares


def verify(vdaf: Prio3, nonce, public, shares, keys=(KEY, KEY), wire: bool = True):
    """Both aggregators' verification, as it runs between two nodes: each decodes what it received, the
    verifier shares cross the wire encoded, each checks the message. Output shares, or the refusal."""
    if wire:  # what each aggregator receives are bytes
        public = vdaf.decode_public_share(vdaf.encode_public_share(public))
        shares = [vdaf.decode_input_share(j, vdaf.encode_input_share(s)) for j, s in enumerate(shares)]
    states, vshares = [], []
    for j in range(vdaf.SHARES):
        state, vshare = vdaf.verify_init(keys[j], CTX, j, None, nonce, public, shares[j])
        states.append(state)
        vshares.append(vdaf.decode_verifier_share(vdaf.encode_verifier_share(vshare)))
    message = vdaf.verifier_shares_to_message(CTX, None, vshares)
    return [vdaf.verify_next(CTX, s, message) for s in states]


def collect(vdaf: Prio3, reports):
    """Aggregate what verifies; count what is refused. (result, accepted, refused)"""
    aggs = [vdaf.agg_init(None) for _ in range(vdaf.SHARES)]
    accepted = refused = 0
    for r in reports:
        try:
            outs = verify(vdaf, *r)
        except QDSNError:
            refused += 1
            continue
        aggs = [vdaf.agg_update(None, a, o) for a, o in zip(aggs, outs, strict=True)]
        accepted += 1
    return vdaf.unshard(None, aggs, accepted), accepted, refused


CASES = [
    (Prio3Count(2), [1, 0, 1, 1], 3),
    (Prio3Sum(2, 255), [100, 0, 255, 7], 362),
    (Prio3Sum(2, 1000), [1000, 999, 1], 2000),
    (Prio3SumVec(2, 3, 255, 4), [[1, 2, 3], [255, 0, 9]], [256, 2, 12]),
    (Prio3Histogram(2, 10, 3), [0, 9, 9, 4], [1, 0, 0, 0, 1, 0, 0, 0, 0, 2]),
    (Prio3MultihotCountVec(2, 4, 2, 2), [[True, False, True, False], [False] * 4], [1, 0, 1, 0]),
    (Prio3SumVecWithMultiproof(2, Field64, 3, 2, 15, 3), [[15, 1], [3, 3]], [18, 4]),
]


@pytest.mark.parametrize(("vdaf", "measurements", "want"), CASES, ids=[c[0].name for c in CASES])
def test_honest_reports_are_counted(vdaf, measurements, want, arithmetic):
    assert collect(vdaf, [report(vdaf, m) for m in measurements]) == (want, len(measurements), 0)


def _flip(b: bytes) -> bytes:
    return bytes([b[0] ^ 1]) + b[1:]


def _bump(vec: list[int], i: int, mod: int) -> list[int]:
    return [*vec[:i], (vec[i] + 1) % mod, *vec[i + 1 :]]


TAMPER = {
    "leader measurement share": lambda v, n, p, s: (n, p, [(_bump(s[0][0], 0, v.field.MODULUS), *s[0][1:]), s[1]]),
    "leader proof share (wire seed)": lambda v, n, p, s: (
        n,
        p,
        [(s[0][0], _bump(s[0][1], 0, v.field.MODULUS), s[0][2]), s[1]],
    ),
    "leader proof share (gadget polynomial)": lambda v, n, p, s: (
        n,
        p,
        [(s[0][0], _bump(s[0][1], len(s[0][1]) - 1, v.field.MODULUS), s[0][2]), s[1]],
    ),
    "helper seed": lambda v, n, p, s: (n, p, [s[0], (_flip(s[1][0]), s[1][1])]),
}
JR_TAMPER = {  # without joint randomness the nonce only seeds the query: binding it is the upload's job
    "nonce": lambda v, n, p, s: (_flip(n), p, s),
    "leader blind": lambda v, n, p, s: (n, p, [(s[0][0], s[0][1], _flip(s[0][2])), s[1]]),
    "helper blind": lambda v, n, p, s: (n, p, [s[0], (s[1][0], _flip(s[1][1]))]),
    "joint randomness part of the leader": lambda v, n, p, s: (n, [_flip(p[0]), p[1]], s),
    "joint randomness part of the helper": lambda v, n, p, s: (n, [p[0], _flip(p[1])], s),
}
JR_CASES = [c for c in CASES if c[0].flp.JOINT_RAND_LEN]


@pytest.mark.parametrize("what", sorted(TAMPER))
@pytest.mark.parametrize(("vdaf", "measurements", "want"), CASES, ids=[c[0].name for c in CASES])
def test_tampered_report_is_refused_and_not_counted(vdaf, measurements, want, what, arithmetic):
    bad = TAMPER[what](vdaf, *report(vdaf, measurements[0]))
    with pytest.raises(ReportRejected):
        verify(vdaf, *bad)
    assert collect(vdaf, [bad, *(report(vdaf, m) for m in measurements)]) == (want, len(measurements), 1)


@pytest.mark.parametrize("what", sorted(JR_TAMPER))
@pytest.mark.parametrize(("vdaf", "measurements", "want"), JR_CASES, ids=[c[0].name for c in JR_CASES])
def test_wrong_joint_randomness_is_refused_and_not_counted(vdaf, measurements, want, what):
    bad = JR_TAMPER[what](vdaf, *report(vdaf, measurements[0]))
    with pytest.raises(ReportRejected):
        verify(vdaf, *bad)
    assert collect(vdaf, [bad, *(report(vdaf, m) for m in measurements)]) == (want, len(measurements), 1)


def test_a_verifier_message_that_is_not_the_joint_seed_is_refused_by_each_aggregator():
    vdaf = Prio3Histogram(2, 4, 2)
    nonce, public, shares = report(vdaf, 1)
    states = [vdaf.verify_init(KEY, CTX, j, None, nonce, public, shares[j])[0] for j in range(2)]
    for state in states:
        with pytest.raises(ReportRejected, match="joint randomness"):
            vdaf.verify_next(CTX, state, bytes(32))


def test_aggregators_with_different_verification_keys_refuse():
    vdaf = Prio3Sum(2, 255)
    with pytest.raises(ReportRejected):
        verify(vdaf, *report(vdaf, 5), keys=(KEY, bytes(32)))


def test_context_binds_the_report():
    vdaf = Prio3Histogram(2, 4, 2)
    nonce, public, shares = report(vdaf, 2)
    states, vshares = [], []
    for j in range(2):
        ctx = CTX if j == 0 else b"another task"
        s, v = vdaf.verify_init(KEY, ctx, j, None, nonce, public, shares[j])
        states.append(s)
        vshares.append(v)
    with pytest.raises(ReportRejected):
        vdaf.verifier_shares_to_message(CTX, None, vshares)


# A dishonest client's encodings, each outside what its circuit accepts, sharded and proved faithfully.
FORGED = [
    (Prio3Count(2), [2]),
    (Prio3Count(2), [Field64.MODULUS - 1]),  # −1
    (Prio3Sum(2, 255), [2, 0, 0, 0, 0, 0, 0, 0]),  # a "bit" of 2
    (Prio3Sum(2, 255), [Field64.MODULUS - 1] + [0] * 7),  # a bit of −1: the total −1 ≡ p−1
    (Prio3Sum(2, 100), [1] * 7),  # 63 + 37 + ... = 100 is the max; this is 63 + 37 = 100, valid below
    (Prio3SumVec(2, 3, 255, 4), [2] + [0] * 23),
    (Prio3Histogram(2, 10, 3), [0, 1, 1] + [0] * 7),  # two buckets
    (Prio3Histogram(2, 10, 3), [0] * 10),  # none
    (Prio3Histogram(2, 10, 3), [2] + [0] * 9),
    (Prio3Histogram(2, 10, 3), [Field128.MODULUS - 1, 1, 1] + [0] * 7),  # sums to 1, entries out of range
    (Prio3MultihotCountVec(2, 4, 2, 2), [1, 1, 1, 0, 1, 1]),  # weight 3 > 2, claimed 3 (bits 1, 1: 1 + 1·2 = 3)
    (Prio3MultihotCountVec(2, 4, 2, 2), [1, 1, 1, 0, 0, 1]),  # weight 3, claimed 2
    (Prio3SumVecWithMultiproof(2, Field64, 3, 2, 15, 3), [3, 0, 0, 0, 0, 0, 0, 0]),
]


HONEST = {
    "Prio3Count": 1,
    "Prio3Sum": 7,
    "Prio3SumVec": [1, 2, 3],
    "Prio3Histogram": 3,
    "Prio3MultihotCountVec": [False, True, False, False],
    "Prio3SumVecWithMultiproof": [1, 2],
}

COUNTED = {
    "Prio3Count": 1,
    "Prio3Sum": 7,
    "Prio3SumVec": [1, 2, 3],
    "Prio3Histogram": [0, 0, 0, 1, 0, 0, 0, 0, 0, 0],
    "Prio3MultihotCountVec": [0, 1, 0, 0],
    "Prio3SumVecWithMultiproof": [1, 2],
}


@pytest.mark.parametrize(("vdaf", "encoded"), FORGED, ids=[f"{v.name}-{i}" for i, (v, _) in enumerate(FORGED)])
def test_out_of_range_measurement_forced_through_is_refused(vdaf, encoded, arithmetic):
    if encoded == [1] * 7:  # the control: the same forging path with a valid encoding is accepted
        assert collect(vdaf, [forged(vdaf, encoded)]) == (100, 1, 0)
        return
    bad = forged(vdaf, encoded)
    with pytest.raises(ReportRejected):
        verify(vdaf, *bad)
    honest = [report(vdaf, HONEST[vdaf.name])]
    assert collect(vdaf, [bad, *honest]) == (COUNTED[vdaf.name], 1, 1)  # the honest report alone


@pytest.mark.parametrize(
    ("vdaf", "measurement"),
    [
        (Prio3Count(2), 2),
        (Prio3Count(2), -1),
        (Prio3Sum(2, 255), 256),
        (Prio3Sum(2, 255), -1),
        (Prio3Sum(2, 255), "7"),
        (Prio3Sum(2, 255), 1.5),
        (Prio3Histogram(2, 4, 2), 4),
        (Prio3SumVec(2, 3, 255, 4), [1, 2]),
        (Prio3SumVec(2, 3, 255, 4), [1, 2, 256]),
        (Prio3MultihotCountVec(2, 4, 2, 2), [True, True, True, False]),
        (Prio3MultihotCountVec(2, 4, 2, 2), [True, False]),
    ],
)
def test_honest_client_cannot_shard_an_out_of_range_measurement(vdaf, measurement):
    with pytest.raises(InvalidInput):
        vdaf.shard(CTX, measurement, os.urandom(16), os.urandom(vdaf.RAND_SIZE))


def test_malformed_messages_are_invalid_input():
    vdaf = Prio3Histogram(2, 4, 2)
    nonce, public, shares = report(vdaf, 1)
    leader = vdaf.encode_input_share(shares[0])
    with pytest.raises(InvalidInput, match="bytes"):
        vdaf.decode_input_share(0, leader[:-1])
    with pytest.raises(InvalidInput, match="modulus"):
        vdaf.decode_input_share(0, b"\xff" * 16 + leader[16:])
    with pytest.raises(InvalidInput):
        vdaf.decode_input_share(1, vdaf.encode_input_share(shares[1]) + b"\0")
    with pytest.raises(InvalidInput):
        vdaf.decode_public_share(vdaf.encode_public_share(public)[:-1])
    with pytest.raises(InvalidInput):
        vdaf.decode_verifier_share(b"\0" * 3)
    with pytest.raises(InvalidInput):
        vdaf.decode_agg_share(b"\0" * 16)
    with pytest.raises(InvalidInput):
        vdaf.verify_init(KEY[:-1], CTX, 0, None, nonce, public, shares[0])
    with pytest.raises(InvalidInput):
        vdaf.verify_init(KEY, CTX, 2, None, nonce, public, shares[0])
    with pytest.raises(InvalidInput):
        vdaf.verifier_shares_to_message(CTX, None, [])
    with pytest.raises(InvalidInput):
        vdaf.unshard(None, [vdaf.agg_init()], 1)


def test_each_share_alone_looks_random():
    """An aggregator's share of the same measurement differs every time: one share says nothing of it."""
    vdaf = Prio3Sum(2, 255)
    leader_shares = {tuple(report(vdaf, 42)[2][0][0]) for _ in range(20)}
    assert len(leader_shares) == 20


@pytest.mark.parametrize("field", [Field64, Field128])
def test_field_ntt_round_trip_and_encoding(field):
    for n in (1, 2, 8, 64):
        coeffs = field.rand_vec(n)
        evals = field.ntt(coeffs, n)
        w = field.nth_root(n)
        x = 1
        for i in range(n):  # evaluation at W**i, by Horner
            want = 0
            for c in reversed(coeffs):
                want = (want * x + c) % field.MODULUS
            assert evals[i] == want
            x = x * w % field.MODULUS
        assert field.inv_ntt(evals, n) == coeffs
    assert pow(field.nth_root(field.GEN_ORDER), field.GEN_ORDER // 2, field.MODULUS) == field.MODULUS - 1
    vec = field.rand_vec(5) + [0, field.MODULUS - 1]
    assert field.decode_vec(field.encode_vec(vec)) == vec
    with pytest.raises(InvalidInput):
        field.decode_vec(b"\0" * (field.ENCODED_SIZE + 1))
    assert next_power_of_2(secrets.randbelow(1000) + 1) & 1 in (0, 1)


def test_kernel_matches_python_on_random_input():
    """The C kernel against the Python code it stands in for, on random and edge inputs, both fields."""
    from qdsn.privacy import field, flp

    assert field.kernel is not None, "qdsn.privacy._fields was not built: pip install -e . needs a C compiler"
    mod = Field64.MODULUS
    for n in (1, 2, 4, 16, 64, 256):
        a = Field64.rand_vec(n) if n > 2 else [0, mod - 1][:n] or [mod - 1]
        roots = Field64.nth_root_powers(len(a))
        assert field.kernel.ntt(a, roots) == field._ntt(list(a), roots, mod)
        x = Field64.rand_vec(1)[0]
        polys = [Field64.rand_vec(len(a)) for _ in range(3)] + [[mod - 1] * len(a)]
        with_c = flp.poly_eval_batched(Field64, polys, x)
        field_kernel, field.kernel = field.kernel, None
        try:
            assert flp.poly_eval_batched(Field64, polys, x) == with_c
        finally:
            field.kernel = field_kernel
        assert field.kernel.dot(polys[0], polys[3]) == sum(p * q for p, q in zip(polys[0], polys[3], strict=True)) % mod
    p = Field128.MODULUS
    edge = [0, 1, p - 1, p - 2, 2**64 - 1, 2**64, 2**127, 28 << 64, (28 << 64) - 1]
    for a in edge + Field128.rand_vec(200):
        for b in [*edge, *Field128.rand_vec(2)]:
            assert field.kernel.mul128(a, b) == a * b % p
    for n in (1, 2, 8, 32):
        v, roots = Field128.rand_vec(n), Field128.nth_root_powers(n)
        assert field.kernel.ntt128(v, roots) == field._ntt(list(v), roots, p)
        polys = [Field128.rand_vec(n) for _ in range(3)]
        x = Field128.rand_vec(1)[0]
        with_c = flp.poly_eval_batched(Field128, polys, x)
        field_kernel, field.kernel = field.kernel, None
        try:
            assert flp.poly_eval_batched(Field128, polys, x) == with_c
        finally:
            field.kernel = field_kernel
        assert field.kernel.dot128(polys[0], polys[1]) == sum(a * b for a, b in zip(*polys[:2], strict=True)) % p
    with pytest.raises(ValueError):
        field.kernel.mul128(p, 1)
    with pytest.raises(ValueError):
        field.kernel.ntt([mod], [1])
    with pytest.raises(ValueError):
        field.kernel.ntt([1, 2, 3], [1, 1, 1])


def test_kernel_turboshake_matches_pycryptodome():
    """The C TurboSHAKE128 against pycryptodome's across the 168-byte rate boundaries, and the XOF's
    stream (several reads, rejection sampling) the same with either."""
    from Crypto.Hash import TurboSHAKE128

    from qdsn.privacy import field
    from qdsn.privacy.xof import XofTurboShake128

    assert field.kernel is not None, "qdsn.privacy._fields was not built: pip install -e . needs a C compiler"
    for size in (0, 1, 166, 167, 168, 169, 335, 336, 337, 1000):
        message = os.urandom(size)
        for domain in (1, 0x1F, 0x7F):
            for length in (1, 32, 167, 168, 169, 500):
                want = TurboSHAKE128.new(domain=domain).update(message).read(length)
                assert field.kernel.turboshake128(message, domain, length) == want
    with pytest.raises(ValueError):
        field.kernel.turboshake128(b"", 0, 1)

    def stream() -> list[object]:
        xof = XofTurboShake128(b"seed", b"dst", b"binder")
        return [xof.next(5), xof.next_vec(Field64, 3), xof.next(200), xof.next_vec(Field128, 40), xof.next(0)]

    class Small(Field64):  # a modulus far below 2**64, so that most words are rejected and redrawn
        MODULUS = 2**40 + 15

    def expanded() -> list[object]:
        return [XofTurboShake128.expand_into_vec(f, b"s", b"d", b"b", 50) for f in (Field64, Field128, Small)]

    with_c = stream() + expanded() + [XofTurboShake128(b"s", b"d", b"").next_vec(Small, 50)]
    field_kernel, field.kernel = field.kernel, None
    try:
        assert stream() + expanded() + [XofTurboShake128(b"s", b"d", b"").next_vec(Small, 50)] == with_c
    finally:
        field.kernel = field_kernel
    assert all(x < Small.MODULUS for x in with_c[-1])


def test_from_params_builds_each_variant_and_names_what_is_wrong():
    from qdsn.privacy import from_params

    assert from_params("Prio3Sum", {"max_measurement": 255}).flp.MEAS_LEN == 8
    assert from_params("Prio3Histogram", {"length": 10, "chunk_length": 3}).SHARES == 2
    multi = from_params("Prio3SumVecWithMultiproof", {"proofs": 3, "length": 2, "max_measurement": 15,
                                                      "chunk_length": 3})  # fmt: skip
    assert (multi.PROOFS, multi.field) == (3, Field64)
    for name, params, said in [
        ("Prio3Mean", {}, "unknown Prio3 variant"),
        ("Prio3Sum", {}, "needs the parameter 'max_measurement'"),
        ("Prio3Sum", {"max_measurement": "255"}, "must be integers"),
        ("Prio3Sum", {"max_measurement": 0}, "cannot take these parameters"),
        ("Prio3Histogram", {"length": 4, "chunk_length": 2, "shares": 1}, "cannot take these parameters"),
        ("Prio3SumVecWithMultiproof", {"field": "Field32"}, "Field64 or Field128"),
    ]:
        with pytest.raises(InvalidInput, match=said):
            from_params(name, params)
