"""Prio3 (draft-irtf-cfrg-vdaf-20 §7): a measurement secret-shared between aggregators, with a fully
linear proof that lets them refuse an invalid one without seeing it.

The method names, their arguments and the wire encodings are the draft's. Shares are kept as lists of
ints (see field.py). Two aggregators (SHARES = 2) are the deployment here; the code takes any number
from 2 to 255, as the draft does, so that its three- and four-aggregator vectors run too.

A report fails verification by an exception, as in the draft: InvalidInput for a message that does not
decode, ReportRejected when the proof or the joint randomness check fails. Either way the report must
not be aggregated.
"""

from __future__ import annotations

from typing import Any

from qdsn.errors import IntegrityError, InvalidInput
from qdsn.privacy import flp as flp_mod
from qdsn.privacy.field import Field, Field64, Field128
from qdsn.privacy.xof import XofTurboShake128, format_dst

USAGE_MEAS_SHARE = 1
USAGE_PROOF_SHARE = 2
USAGE_JOINT_RANDOMNESS = 3
USAGE_PROVE_RANDOMNESS = 4
USAGE_QUERY_RANDOMNESS = 5
USAGE_JOINT_RAND_SEED = 6
USAGE_JOINT_RAND_PART = 7

# Leader: (meas_share, proofs_share, blind | None); helper: (seed, blind | None).
InputShare = tuple[list[int], list[int], bytes | None] | tuple[bytes, bytes | None]
VerifyState = tuple[list[int], bytes | None]  # (out_share, corrected joint rand seed)
VerifierShare = tuple[list[int], bytes | None]  # (verifiers_share, joint_rand_part)


class ReportRejected(IntegrityError):
    """A report whose validity proof or joint randomness does not check out: it must not be counted."""


class Prio3:
    """Prio3 over one FLP: shard (client), verify_init / verifier_shares_to_message / verify_next
    (aggregators), agg_init / agg_update / merge (aggregators), unshard (collector)."""

    xof = XofTurboShake128
    NONCE_SIZE = 16
    ROUNDS = 1
    VERIFY_KEY_SIZE = XofTurboShake128.SEED_SIZE

    def __init__(self, shares: int, flp: flp_mod.FlpBBCGGI19, proofs: int, vdaf_id: int, name: str) -> None:
        if not 2 <= shares < 256:
            raise ValueError("shares must be in [2, 256)")
        if not 1 <= proofs < 256:
            raise ValueError("proofs must be in [1, 256)")
        self.SHARES = shares
        self.PROOFS = proofs
        self.ID = vdaf_id
        self.name = name
        self.flp = flp
        self.field: type[Field] = flp.field
        seed = self.xof.SEED_SIZE
        self.RAND_SIZE = seed * shares * (2 if flp.JOINT_RAND_LEN > 0 else 1)
        self._dst_cache: dict[bytes, list[bytes]] = {}  # ctx → tag per usage

    def __repr__(self) -> str:
        return f"{self.name}(shares={self.SHARES})"

    def domain_separation_tag(self, usage: int, ctx: bytes) -> bytes:
        tags = self._dst_cache.get(ctx)
        if tags is None:
            if len(self._dst_cache) > 64:
                self._dst_cache.clear()
            tags = self._dst_cache[ctx] = [format_dst(0, self.ID, u) + ctx for u in range(8)]
        return tags[usage]

    # ---- sharding (client) -----------------------------------------------------------------------------

    def shard(
        self, ctx: bytes, measurement: Any, nonce: bytes, rand: bytes
    ) -> tuple[list[bytes] | None, list[InputShare]]:
        """The public share and one input share per aggregator. InvalidInput for a measurement out of range."""
        if len(nonce) != self.NONCE_SIZE:
            raise InvalidInput(f"a nonce is {self.NONCE_SIZE} bytes")
        if len(rand) != self.RAND_SIZE:
            raise InvalidInput(f"the sharding randomness is {self.RAND_SIZE} bytes")
        size = self.xof.SEED_SIZE
        seeds = [rand[i : i + size] for i in range(0, self.RAND_SIZE, size)]
        meas = self.flp.encode(measurement)
        if self.flp.JOINT_RAND_LEN > 0:
            return self._shard_with_joint_rand(ctx, meas, nonce, seeds)
        return self._shard_without_joint_rand(ctx, meas, seeds)

    def _shard_without_joint_rand(self, ctx: bytes, meas: list[int], seeds: list[bytes]):  # type: ignore[no-untyped-def]
        mod = self.field.MODULUS
        helper_shares, prove_seed = seeds[: self.SHARES - 1], seeds[self.SHARES - 1]
        leader_meas = meas
        for j, share in enumerate(helper_shares):
            leader_meas = _sub(leader_meas, self.helper_meas_share(ctx, j + 1, share), mod)
        prove_rands = self.prove_rands(ctx, prove_seed)
        proofs: list[int] = []
        n = self.flp.PROVE_RAND_LEN
        for i in range(self.PROOFS):
            proofs += self.flp.prove(meas, prove_rands[i * n : (i + 1) * n], [])
        for j, share in enumerate(helper_shares):
            proofs = _sub(proofs, self.helper_proofs_share(ctx, j + 1, share), mod)
        return None, [(leader_meas, proofs, None)] + [(share, None) for share in helper_shares]

    def _shard_with_joint_rand(self, ctx: bytes, meas: list[int], nonce: bytes, seeds: list[bytes]):  # type: ignore[no-untyped-def]
        mod = self.field.MODULUS
        helper_seeds = seeds[: (self.SHARES - 1) * 2]
        helper_shares, helper_blinds = helper_seeds[0::2], helper_seeds[1::2]
        leader_blind, prove_seed = seeds[(self.SHARES - 1) * 2 :][:2]
        leader_meas = meas
        parts = []
        for j in range(self.SHARES - 1):
            helper_meas = self.helper_meas_share(ctx, j + 1, helper_shares[j])
            leader_meas = _sub(leader_meas, helper_meas, mod)
            parts.append(self.joint_rand_part(ctx, j + 1, helper_blinds[j], helper_meas, nonce))
        parts.insert(0, self.joint_rand_part(ctx, 0, leader_blind, leader_meas, nonce))
        prove_rands = self.prove_rands(ctx, prove_seed)
        joint_rands = self.joint_rands(ctx, self.joint_rand_seed(ctx, parts))
        proofs: list[int] = []
        n, m = self.flp.PROVE_RAND_LEN, self.flp.JOINT_RAND_LEN
        for i in range(self.PROOFS):
            proofs += self.flp.prove(meas, prove_rands[i * n : (i + 1) * n], joint_rands[i * m : (i + 1) * m])
        for j in range(self.SHARES - 1):
            proofs = _sub(proofs, self.helper_proofs_share(ctx, j + 1, helper_shares[j]), mod)
        shares: list[InputShare] = [(leader_meas, proofs, leader_blind)]
        shares += [(helper_shares[j], helper_blinds[j]) for j in range(self.SHARES - 1)]
        return parts, shares

    # ---- verification (aggregators) --------------------------------------------------------------------

    def verify_init(
        self,
        verify_key: bytes,
        ctx: bytes,
        agg_id: int,
        agg_param: None,
        nonce: bytes,
        public_share: list[bytes] | None,
        input_share: InputShare,
    ) -> tuple[VerifyState, VerifierShare]:
        """This aggregator's verification state and its verifier share for the report."""
        if len(verify_key) != self.VERIFY_KEY_SIZE:
            raise InvalidInput(f"a verification key is {self.VERIFY_KEY_SIZE} bytes")
        if not 0 <= agg_id < self.SHARES:
            raise InvalidInput(f"the aggregator id must be in [0, {self.SHARES})")
        if len(nonce) != self.NONCE_SIZE:
            raise InvalidInput(f"a nonce is {self.NONCE_SIZE} bytes")
        meas_share, proofs_share, blind = self.expand_input_share(ctx, agg_id, input_share)
        out_share = self.flp.truncate(meas_share)
        flp = self.flp
        joint_rands: list[int] = []
        corrected_seed, part = None, None
        if flp.JOINT_RAND_LEN > 0:
            if blind is None or public_share is None or len(public_share) != self.SHARES:
                raise InvalidInput("the report lacks its joint randomness parts or blind")
            part = self.joint_rand_part(ctx, agg_id, blind, meas_share, nonce)
            parts = list(public_share)
            parts[agg_id] = part
            corrected_seed = self.joint_rand_seed(ctx, parts)
            joint_rands = self.joint_rands(ctx, corrected_seed)
        query_rands = self.query_rands(verify_key, ctx, nonce)
        verifiers: list[int] = []
        q, m, plen = flp.QUERY_RAND_LEN, flp.JOINT_RAND_LEN, flp.PROOF_LEN
        for i in range(self.PROOFS):
            try:
                verifiers += flp.query(
                    meas_share,
                    proofs_share[i * plen : (i + 1) * plen],
                    query_rands[i * q : (i + 1) * q],
                    joint_rands[i * m : (i + 1) * m],
                    self.SHARES,
                )
            except ValueError as e:  # the query point hit a root of unity: refuse rather than leak
                raise ReportRejected(f"the report cannot be verified: {e}") from None
        return (out_share, corrected_seed), (verifiers, part)

    def verifier_shares_to_message(
        self, ctx: bytes, agg_param: None, verifier_shares: list[VerifierShare]
    ) -> bytes | None:
        """The verifier message (the joint randomness seed, or None); ReportRejected if a proof fails."""
        flp, mod = self.flp, self.field.MODULUS
        if len(verifier_shares) != self.SHARES:
            raise InvalidInput(f"{self.SHARES} verifier shares are needed, not {len(verifier_shares)}")
        length = flp.VERIFIER_LEN * self.PROOFS
        verifiers = [0] * length
        parts = []
        for share, part in verifier_shares:
            if len(share) != length:
                raise InvalidInput("a verifier share has the wrong length")
            verifiers = [(a + b) % mod for a, b in zip(verifiers, share, strict=True)]
            if flp.JOINT_RAND_LEN > 0:
                if part is None:
                    raise InvalidInput("a verifier share lacks its joint randomness part")
                parts.append(part)
        for i in range(self.PROOFS):
            if not flp.decide(verifiers[i * flp.VERIFIER_LEN : (i + 1) * flp.VERIFIER_LEN]):
                raise ReportRejected(
                    "the report's validity proof does not verify: the measurement is out of "
                    "range or a share was altered"
                )
        return self.joint_rand_seed(ctx, parts) if flp.JOINT_RAND_LEN > 0 else None

    def verify_next(self, ctx: bytes, verify_state: VerifyState, verifier_message: bytes | None) -> list[int]:
        """The output share, if the joint randomness the aggregators agreed on is the one this one used."""
        out_share, corrected_seed = verify_state
        if verifier_message != corrected_seed:
            raise ReportRejected(
                "the joint randomness check failed: the client's joint randomness parts do not match its shares"
            )
        return out_share

    def is_valid(self, agg_param: None, previous_agg_params: list[None]) -> bool:
        return len(previous_agg_params) == 0

    # ---- aggregation and unsharding --------------------------------------------------------------------

    def agg_init(self, agg_param: None = None) -> list[int]:
        return [0] * self.flp.OUTPUT_LEN

    def agg_update(self, agg_param: None, agg_share: list[int], out_share: list[int]) -> list[int]:
        return _add(agg_share, out_share, self.field.MODULUS)

    def merge(self, agg_param: None, agg_shares: list[list[int]]) -> list[int]:
        agg = self.agg_init(None)
        for share in agg_shares:
            agg = _add(agg, share, self.field.MODULUS)
        return agg

    def unshard(self, agg_param: None, agg_shares: list[list[int]], num_measurements: int) -> Any:
        """The aggregate result from every aggregator's aggregate share."""
        if len(agg_shares) != self.SHARES:
            raise InvalidInput(f"{self.SHARES} aggregate shares are needed, not {len(agg_shares)}")
        return self.flp.decode(self.merge(None, agg_shares), num_measurements)

    # ---- auxiliary functions (§7.2.5) ------------------------------------------------------------------

    def helper_meas_share(self, ctx: bytes, agg_id: int, share: bytes) -> list[int]:
        return self.xof.expand_into_vec(
            self.field, share, self.domain_separation_tag(USAGE_MEAS_SHARE, ctx), bytes([agg_id]), self.flp.MEAS_LEN
        )

    def helper_proofs_share(self, ctx: bytes, agg_id: int, share: bytes) -> list[int]:
        return self.xof.expand_into_vec(
            self.field,
            share,
            self.domain_separation_tag(USAGE_PROOF_SHARE, ctx),
            bytes([self.PROOFS, agg_id]),
            self.flp.PROOF_LEN * self.PROOFS,
        )

    def expand_input_share(
        self, ctx: bytes, agg_id: int, input_share: InputShare
    ) -> tuple[list[int], list[int], bytes | None]:
        if agg_id > 0:
            if len(input_share) != 2:
                raise InvalidInput("a helper's input share is (seed, blind)")
            share, blind = input_share  # type: ignore[misc]
            return self.helper_meas_share(ctx, agg_id, share), self.helper_proofs_share(ctx, agg_id, share), blind
        if len(input_share) != 3:
            raise InvalidInput("the leader's input share is (measurement share, proofs share, blind)")
        return input_share  # type: ignore[return-value]

    def prove_rands(self, ctx: bytes, prove_seed: bytes) -> list[int]:
        return self.xof.expand_into_vec(
            self.field,
            prove_seed,
            self.domain_separation_tag(USAGE_PROVE_RANDOMNESS, ctx),
            bytes([self.PROOFS]),
            self.flp.PROVE_RAND_LEN * self.PROOFS,
        )

    def query_rands(self, verify_key: bytes, ctx: bytes, nonce: bytes) -> list[int]:
        return self.xof.expand_into_vec(
            self.field,
            verify_key,
            self.domain_separation_tag(USAGE_QUERY_RANDOMNESS, ctx),
            bytes([self.PROOFS]) + nonce,
            self.flp.QUERY_RAND_LEN * self.PROOFS,
        )

    def joint_rand_part(self, ctx: bytes, agg_id: int, blind: bytes, meas_share: list[int], nonce: bytes) -> bytes:
        return self.xof.derive_seed(
            blind,
            self.domain_separation_tag(USAGE_JOINT_RAND_PART, ctx),
            bytes([agg_id]) + nonce + self.field.encode_vec(meas_share),
        )

    def joint_rand_seed(self, ctx: bytes, joint_rand_parts: list[bytes]) -> bytes:
        return self.xof.derive_seed(
            bytes(self.xof.SEED_SIZE),
            self.domain_separation_tag(USAGE_JOINT_RAND_SEED, ctx),
            b"".join(joint_rand_parts),
        )

    def joint_rands(self, ctx: bytes, joint_rand_seed: bytes) -> list[int]:
        return self.xof.expand_into_vec(
            self.field,
            joint_rand_seed,
            self.domain_separation_tag(USAGE_JOINT_RANDOMNESS, ctx),
            bytes([self.PROOFS]),
            self.flp.JOINT_RAND_LEN * self.PROOFS,
        )

    # ---- message encodings (§7.2.6) --------------------------------------------------------------------

    def encode_public_share(self, public_share: list[bytes] | None) -> bytes:
        return b"".join(public_share) if public_share is not None else b""

    def decode_public_share(self, encoded: bytes) -> list[bytes] | None:
        size = self.xof.SEED_SIZE
        if self.flp.JOINT_RAND_LEN == 0:
            if encoded:
                raise InvalidInput(f"{self.name}'s public share is empty, not {len(encoded)} bytes")
            return None
        if len(encoded) != size * self.SHARES:
            raise InvalidInput(f"{self.name}'s public share is {size * self.SHARES} bytes, not {len(encoded)}")
        return [encoded[i : i + size] for i in range(0, len(encoded), size)]

    def encode_input_share(self, input_share: InputShare) -> bytes:
        if len(input_share) == 3:
            meas, proofs, blind = input_share  # type: ignore[misc]
            out = self.field.encode_vec(meas) + self.field.encode_vec(proofs)
        else:
            seed, blind = input_share  # type: ignore[misc]
            out = seed
        return out + (blind or b"")

    def decode_input_share(self, agg_id: int, encoded: bytes) -> InputShare:
        """Aggregator `agg_id`'s input share from its encoding; InvalidInput if it has the wrong form."""
        size, fsize = self.xof.SEED_SIZE, self.field.ENCODED_SIZE
        blind_len = size if self.flp.JOINT_RAND_LEN > 0 else 0
        if agg_id == 0:
            meas_len = self.flp.MEAS_LEN * fsize
            want = meas_len + self.flp.PROOF_LEN * self.PROOFS * fsize + blind_len
        else:
            want = size + blind_len
        if len(encoded) != want:
            raise InvalidInput(f"aggregator {agg_id}'s input share for {self.name} is {want} bytes, not {len(encoded)}")
        blind = encoded[want - blind_len :] if blind_len else None
        if agg_id == 0:
            return (
                self.field.decode_vec(encoded[:meas_len]),
                self.field.decode_vec(encoded[meas_len : want - blind_len]),
                blind,
            )
        return encoded[:size], blind

    def encode_verifier_share(self, verifier_share: VerifierShare) -> bytes:
        verifiers, part = verifier_share
        return self.field.encode_vec(verifiers) + (part or b"")

    def decode_verifier_share(self, encoded: bytes) -> VerifierShare:
        size = self.xof.SEED_SIZE if self.flp.JOINT_RAND_LEN > 0 else 0
        length = self.flp.VERIFIER_LEN * self.PROOFS * self.field.ENCODED_SIZE
        if len(encoded) != length + size:
            raise InvalidInput(f"a verifier share for {self.name} is {length + size} bytes, not {len(encoded)}")
        return self.field.decode_vec(encoded[:length]), (encoded[length:] if size else None)

    def encode_verifier_message(self, verifier_message: bytes | None) -> bytes:
        return verifier_message or b""

    def decode_verifier_message(self, encoded: bytes) -> bytes | None:
        size = self.xof.SEED_SIZE if self.flp.JOINT_RAND_LEN > 0 else 0
        if len(encoded) != size:
            raise InvalidInput(f"a verifier message for {self.name} is {size} bytes, not {len(encoded)}")
        return encoded if size else None

    def encode_agg_share(self, agg_share: list[int]) -> bytes:
        return self.field.encode_vec(agg_share)

    def decode_agg_share(self, encoded: bytes) -> list[int]:
        vec = self.field.decode_vec(encoded)
        if len(vec) != self.flp.OUTPUT_LEN:
            raise InvalidInput(f"an aggregate share for {self.name} has {self.flp.OUTPUT_LEN} elements, not {len(vec)}")
        return vec

    encode_out_share = encode_agg_share


def _add(a: list[int], b: list[int], mod: int) -> list[int]:
    if len(a) != len(b):
        raise InvalidInput("mismatched vector sizes")
    return [(x + y) % mod for x, y in zip(a, b, strict=True)]


def _sub(a: list[int], b: list[int], mod: int) -> list[int]:
    if len(a) != len(b):
        raise InvalidInput("mismatched vector sizes")
    return [(x - y) % mod for x, y in zip(a, b, strict=True)]


# ---- the variants (§7.4) -------------------------------------------------------------------------------

TEST_ID = 0xFFFFFFFF  # private-use code point of the draft's test-only variants


def Prio3Count(shares: int = 2) -> Prio3:
    """Counts of 0/1 measurements (Field64)."""
    return Prio3(shares, flp_mod.FlpBBCGGI19(flp_mod.Count(Field64)), 1, 0x00000001, "Prio3Count")


def Prio3Sum(shares: int, max_measurement: int) -> Prio3:
    """Sums of integers in [0, max_measurement] (Field64)."""
    return Prio3(shares, flp_mod.FlpBBCGGI19(flp_mod.Sum(Field64, max_measurement)), 1, 0x00000002, "Prio3Sum")


def Prio3SumVec(shares: int, length: int, max_measurement: int, chunk_length: int) -> Prio3:
    """Element-wise sums of vectors of integers in [0, max_measurement] (Field128)."""
    valid = flp_mod.SumVec(Field128, length, max_measurement, chunk_length)
    return Prio3(shares, flp_mod.FlpBBCGGI19(valid), 1, 0x00000003, "Prio3SumVec")


def Prio3Histogram(shares: int, length: int, chunk_length: int) -> Prio3:
    """Counts per bucket of bucket indices in [0, length) (Field128)."""
    valid = flp_mod.Histogram(Field128, length, chunk_length)
    return Prio3(shares, flp_mod.FlpBBCGGI19(valid), 1, 0x00000004, "Prio3Histogram")


def Prio3MultihotCountVec(shares: int, length: int, max_weight: int, chunk_length: int) -> Prio3:
    """Counts per entry of boolean vectors with at most max_weight true entries (Field128)."""
    valid = flp_mod.MultihotCountVec(Field128, length, max_weight, chunk_length)
    return Prio3(shares, flp_mod.FlpBBCGGI19(valid), 1, 0x00000005, "Prio3MultihotCountVec")


def Prio3SumVecWithMultiproof(
    shares: int, field: type[Field], num_proofs: int, length: int, max_measurement: int, chunk_length: int
) -> Prio3:
    """Prio3SumVec over another field with several proofs (the draft's experimental variant)."""
    valid = flp_mod.SumVec(field, length, max_measurement, chunk_length)
    return Prio3(shares, flp_mod.FlpBBCGGI19(valid), num_proofs, TEST_ID, "Prio3SumVecWithMultiproof")


def Prio3HigherDegree(shares: int = 2) -> Prio3:
    """The draft's test variant with a degree-3 gadget (measurements 0, 1 or 2; Field64)."""
    return Prio3(shares, flp_mod.FlpBBCGGI19(flp_mod.HigherDegree(Field64)), 1, TEST_ID, "Prio3HigherDegree")


VARIANTS = {
    "Prio3Count": (Prio3Count, ()),
    "Prio3Sum": (Prio3Sum, ("max_measurement",)),
    "Prio3SumVec": (Prio3SumVec, ("length", "max_measurement", "chunk_length")),
    "Prio3Histogram": (Prio3Histogram, ("length", "chunk_length")),
    "Prio3MultihotCountVec": (Prio3MultihotCountVec, ("length", "max_weight", "chunk_length")),
    "Prio3HigherDegree": (Prio3HigherDegree, ()),
}


def from_params(name: str, params: dict[str, Any]) -> Prio3:
    """The Prio3 variant `name` with the draft's parameter names (`shares` defaults to 2), e.g.
    from_params("Prio3Sum", {"max_measurement": 255}); InvalidInput naming what is wrong otherwise.
    Prio3SumVecWithMultiproof also takes `field` ("Field64" or "Field128", default Field64) and `proofs`."""
    if name == "Prio3SumVecWithMultiproof":
        field = {"Field64": Field64, "Field128": Field128}.get(params.get("field", "Field64"))
        if field is None:
            raise InvalidInput("field must be Field64 or Field128")
        names: tuple[str, ...] = ("proofs", "length", "max_measurement", "chunk_length")
        make: Any = lambda shares, *rest: Prio3SumVecWithMultiproof(shares, field, *rest)  # noqa: E731
    elif name in VARIANTS:
        make, names = VARIANTS[name]
    else:
        raise InvalidInput(
            f"unknown Prio3 variant {name!r}", f"use one of {', '.join([*VARIANTS, 'Prio3SumVecWithMultiproof'])}"
        )
    values = [params.get("shares", 2)]
    for key in names:
        if key not in params:
            raise InvalidInput(f"{name} needs the parameter {key!r}")
        values.append(params[key])
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int)]
    if bad:
        raise InvalidInput(f"{name}'s parameters must be integers, not {bad[0]!r}")
    try:
        return make(*values)
    except ValueError as e:
        raise InvalidInput(f"{name} cannot take these parameters: {e}") from None
