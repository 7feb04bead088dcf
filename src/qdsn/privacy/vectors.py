"""Running the draft's test vectors (draft-irtf-cfrg-vdaf-20 appendix "Test Vectors") through Prio3.

Each operation the vector lists runs on the vector's own inputs (its public share and input shares,
its verifier shares and messages, its aggregate shares), so a vector that carries a tampered message
tests the refusal of exactly that message. An operation marked `success: true` must succeed and give
every byte the vector gives; one marked `success: false` must fail. The first difference is reported
by report, operation, round, aggregator, and expected against computed bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qdsn.errors import InvalidInput, QDSNError
from qdsn.privacy import prio3
from qdsn.privacy.field import Field128
from qdsn.privacy.xof import XofTurboShake128

VARIANTS = (
    "Prio3Count",
    "Prio3Sum",
    "Prio3SumVec",
    "Prio3Histogram",
    "Prio3MultihotCountVec",
    "Prio3SumVecWithMultiproof",
    "Prio3HigherDegree",
)
OTHERS = ("Poplar1", "XofFixedKeyAes128", "IdpfBBCGGI21", "IdpfPoplar")  # the draft's, not implemented here
OPERATIONS = ("shard", "verify_init", "verifier_shares_to_message", "verify_next", "aggregate", "unshard")


class NotAVector(InvalidInput):
    """A file that is not a test vector in the draft's form, or one that lacks a value it refers to."""


class Mismatch(Exception):
    """The first place where the implementation and the vector differ."""


@dataclass(frozen=True)
class VectorResult:
    ok: bool
    summary: str
    readable: bool = True  # False: the file is not a test vector at all


def run_vector_file(path: Path, variant: str | None = None) -> VectorResult:
    """Run one test vector file; `variant` names the Prio3 variant when the file name does not."""
    try:
        vec = json.loads(Path(path).read_bytes())
    except OSError as e:
        return VectorResult(False, f"cannot read it: {e.strerror or e}", readable=False)
    except ValueError as e:
        return VectorResult(False, f"not a test vector: it is not JSON ({e})", readable=False)
    stem = Path(path).name.split("_")[0].removesuffix(".json")
    if variant is None and stem in OTHERS:
        return VectorResult(False, f"not supported: {stem} is not implemented here (the Prio3 variants and "
                                   "XofTurboShake128 are)", readable=False)  # fmt: skip
    try:
        return VectorResult(True, run_vector(vec, variant or _variant_from_name(Path(path).name)))
    except NotAVector as e:
        return VectorResult(False, f"not a test vector: {e}", readable=False)
    except Mismatch as e:
        return VectorResult(False, str(e))


def _variant_from_name(name: str) -> str | None:
    stem = name.split("_")[0].removesuffix(".json")
    return stem if stem in VARIANTS or stem == "XofTurboShake128" else None


def run_vector(vec: Any, variant: str | None = None) -> str:
    """Run a parsed vector; a one-line summary if everything matches, else Mismatch or NotAVector."""
    if not isinstance(vec, dict):
        raise NotAVector("its JSON is not an object")
    if variant in OTHERS:
        raise NotAVector(f"{variant} is not implemented here")
    if variant is None and "bits" in vec:
        raise NotAVector("it has Poplar1's 'bits' parameter; only Prio3 vectors are implemented here")
    if variant == "XofTurboShake128" or (variant is None and {"seed", "dst", "binder"} <= vec.keys()):
        return _run_xof(vec)
    missing = [k for k in ("shares", "verify_key", "ctx", "reports", "operations") if k not in vec]
    if missing:
        raise NotAVector(f"it lacks {', '.join(repr(k) for k in missing)}")
    vdaf = make_vdaf(variant or infer_variant(vec), vec)
    return _Run(vdaf, vec).run()


def infer_variant(vec: dict[str, Any]) -> str:
    """The variant a vector's parameters imply, for a file whose name does not say it."""
    keys = vec.keys()
    if "max_weight" in keys:
        return "Prio3MultihotCountVec"
    if {"length", "max_measurement"} <= keys:
        share = next(iter(vec.get("agg_shares") or []), None)
        if isinstance(share, str) and isinstance(vec.get("length"), int) and len(share) == 16 * vec["length"]:
            return "Prio3SumVecWithMultiproof"  # Field64 elements: the multiproof variant
        return "Prio3SumVec"
    if "length" in keys:
        return "Prio3Histogram"
    if "max_measurement" in keys:
        return "Prio3Sum"
    return "Prio3Count"


def make_vdaf(variant: str, vec: dict[str, Any]) -> prio3.Prio3:
    """The Prio3 instance a vector's parameters describe."""
    params = dict(vec)
    if variant == "Prio3SumVecWithMultiproof":  # the draft's generator: Field64, three proofs
        params.setdefault("proofs", vec.get("num_proofs", 3))
    if "shares" not in params:
        raise NotAVector("it lacks 'shares'")
    try:
        return prio3.from_params(variant, params)
    except InvalidInput as e:
        raise NotAVector(f"its parameters do not make a {variant}: {e}") from None


def _hex(vec: dict[str, Any], key: str, where: str) -> bytes:
    value = vec.get(key)
    if not isinstance(value, str):
        raise NotAVector(f"{where} lacks the hex string {key!r}")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise NotAVector(f"{where}'s {key!r} is not hex") from None


def _at(seq: Any, index: int, what: str) -> Any:
    if not isinstance(seq, list) or not 0 <= index < len(seq):
        raise NotAVector(f"it does not give {what}")
    return seq[index]


def _unhex(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise NotAVector(f"{what} is not a hex string")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise NotAVector(f"{what} is not hex") from None


def _compare(where: str, what: str, expected: bytes, got: bytes) -> None:
    if expected == got:
        return
    pairs = enumerate(zip(expected, got, strict=False))
    offset = next((i for i, (a, b) in pairs if a != b), min(len(expected), len(got)))
    raise Mismatch(
        f"{where}: {what} differs at byte {offset} (expected {len(expected)} bytes, got {len(got)})\n"
        f"  expected {_window(expected, offset)}\n  got      {_window(got, offset)}"
    )


def _window(data: bytes, offset: int, width: int = 48) -> str:
    """The hex of `data` around `offset`, with … where bytes are left out."""
    start = max(0, min(offset - width // 3, len(data) - width))
    end = start + width
    return ("…" if start else "") + data[start:end].hex() + ("…" if end < len(data) else "")


def _run_xof(vec: dict[str, Any]) -> str:
    seed, dst, binder = (_hex(vec, k, "the XOF vector") for k in ("seed", "dst", "binder"))
    length = vec.get("length")
    if not isinstance(length, int) or length < 1:
        raise NotAVector("the XOF vector lacks a positive 'length'")
    got = XofTurboShake128.derive_seed(seed, dst, binder)
    _compare("XofTurboShake128", "derived_seed", _hex(vec, "derived_seed", "the XOF vector"), got)
    got = Field128.encode_vec(XofTurboShake128.expand_into_vec(Field128, seed, dst, binder, length))
    _compare("XofTurboShake128", "expanded_vec_field128", _hex(vec, "expanded_vec_field128", "the XOF vector"), got)
    return "derived seed and expanded vector match"


class _Run:
    """One vector's operations in order, with the verification states they hand on."""

    def __init__(self, vdaf: prio3.Prio3, vec: dict[str, Any]) -> None:
        self.vdaf, self.vec = vdaf, vec
        self.verify_key = _hex(vec, "verify_key", "the vector")
        self.ctx = _hex(vec, "ctx", "the vector")
        if not isinstance(vec["reports"], list) or not isinstance(vec["operations"], list):
            raise NotAVector("'reports' and 'operations' must be lists")
        self.states: dict[tuple[int, int], Any] = {}
        self.out_shares: dict[tuple[int, int], list[int]] = {}
        self.agg_shares: dict[int, list[int]] = {}

    def run(self) -> str:
        ops = self.vec["operations"]
        refused = 0
        for n, op in enumerate(ops):
            if not isinstance(op, dict) or op.get("operation") not in OPERATIONS:
                raise NotAVector(f"operation {n} is not one of {', '.join(OPERATIONS)}")
            expect = op.get("success")
            if not isinstance(expect, bool):
                raise NotAVector(f"operation {n} lacks a true/false 'success'")
            where = self._where(op)
            try:
                getattr(self, "_" + op["operation"])(op, where)
            except (Mismatch, NotAVector):
                raise
            except (QDSNError, ValueError) as e:
                if expect:
                    raise Mismatch(f"{where}: expected success, but it failed: {e}") from None
                refused += 1
                continue
            except Exception as e:  # any other exception is a fault of the implementation, shown as such
                raise Mismatch(f"{where}: failed with {type(e).__name__}: {e}") from None
            if not expect:
                raise Mismatch(f"{where}: expected a failure, but it succeeded")
        reports = len(self.vec["reports"])
        tail = f", {refused} refused as expected" if refused else ""
        return f"{self.vdaf.name}: {len(ops)} operations on {reports} report(s) match{tail}"

    def _where(self, op: dict[str, Any]) -> str:
        parts = [f"report {op['report_index']}"] if "report_index" in op else []
        parts.append(op["operation"])
        if "round" in op:
            parts.append(f"round {op['round']}")
        if "aggregator_id" in op:
            parts.append(f"aggregator {op['aggregator_id']}")
        return ", ".join(parts)

    def _report(self, op: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        i = op.get("report_index")
        report = _at(self.vec["reports"], i if isinstance(i, int) else -1, f"report {i}")
        if not isinstance(report, dict):
            raise NotAVector(f"report {i} is not an object")
        return i, report  # type: ignore[return-value]

    def _agg_id(self, op: dict[str, Any]) -> int:
        j = op.get("aggregator_id")
        if not isinstance(j, int) or not 0 <= j < self.vdaf.SHARES:
            raise NotAVector(f"aggregator_id {j!r} is not in [0, {self.vdaf.SHARES})")
        return j

    def _round(self, op: dict[str, Any]) -> int:
        r = op.get("round")
        if not isinstance(r, int) or r < 0:
            raise NotAVector(f"round {r!r} is not a round number")
        return r

    def _shard(self, op: dict[str, Any], where: str) -> None:
        i, report = self._report(op)
        nonce, rand = _hex(report, "nonce", f"report {i}"), _hex(report, "rand", f"report {i}")
        public_share, input_shares = self.vdaf.shard(self.ctx, report.get("measurement"), nonce, rand)
        if not op["success"]:
            return
        _compare(
            where,
            "public share",
            _hex(report, "public_share", f"report {i}"),
            self.vdaf.encode_public_share(public_share),
        )
        for j, share in enumerate(input_shares):
            want = _unhex(_at(report.get("input_shares"), j, f"report {i}'s input share {j}"), "an input share")
            _compare(f"{where}, aggregator {j}", "input share", want, self.vdaf.encode_input_share(share))

    def _verify_init(self, op: dict[str, Any], where: str) -> None:
        i, report = self._report(op)
        j = self._agg_id(op)
        nonce = _hex(report, "nonce", f"report {i}")
        encoded = _unhex(_at(report.get("input_shares"), j, f"report {i}'s input share {j}"), "an input share")
        public_share = self.vdaf.decode_public_share(_hex(report, "public_share", f"report {i}"))
        input_share = self.vdaf.decode_input_share(j, encoded)
        state, verifier_share = self.vdaf.verify_init(
            self.verify_key, self.ctx, j, None, nonce, public_share, input_share
        )
        self.states[i, j] = state
        if op["success"]:
            round0 = _at(report.get("verifier_shares"), 0, f"report {i}'s verifier shares of round 0")
            want = _unhex(_at(round0, j, f"report {i}'s verifier share {j}"), "a verifier share")
            _compare(where, "verifier share", want, self.vdaf.encode_verifier_share(verifier_share))

    def _verifier_shares_to_message(self, op: dict[str, Any], where: str) -> None:
        i, report = self._report(op)
        r = self._round(op)
        encoded = _at(report.get("verifier_shares"), r, f"report {i}'s verifier shares of round {r}")
        if not isinstance(encoded, list):
            raise NotAVector(f"report {i}'s verifier shares of round {r} are not a list")
        shares = [self.vdaf.decode_verifier_share(_unhex(s, "a verifier share")) for s in encoded]
        message = self.vdaf.verifier_shares_to_message(self.ctx, None, shares)
        if op["success"]:
            want = _unhex(
                _at(report.get("verifier_messages"), r, f"report {i}'s verifier message {r}"), "a verifier message"
            )
            _compare(where, "verifier message", want, self.vdaf.encode_verifier_message(message))

    def _verify_next(self, op: dict[str, Any], where: str) -> None:
        i, report = self._report(op)
        j, r = self._agg_id(op), self._round(op)
        if (i, j) not in self.states:
            raise NotAVector(f"{where} comes before that aggregator's verify_init")
        if r < 1:
            raise NotAVector(f"{where}: verify_next starts at round 1")
        encoded = _at(report.get("verifier_messages"), r - 1, f"report {i}'s verifier message {r - 1}")
        message = self.vdaf.decode_verifier_message(_unhex(encoded, "a verifier message"))
        out_share = self.vdaf.verify_next(self.ctx, self.states.pop((i, j)), message)
        if op["success"]:
            want = _unhex(_at(report.get("out_shares"), j, f"report {i}'s output share {j}"), "an output share")
            _compare(where, "output share", want, self.vdaf.encode_out_share(out_share))
            self.out_shares[i, j] = out_share

    def _aggregate(self, op: dict[str, Any], where: str) -> None:
        j = self._agg_id(op)
        agg = self.vdaf.agg_init(None)
        for (_, agg_id), out_share in sorted(self.out_shares.items()):
            if agg_id == j:
                agg = self.vdaf.agg_update(None, agg, out_share)
        self.agg_shares[j] = agg
        if op["success"]:
            want = _unhex(_at(self.vec.get("agg_shares"), j, f"aggregate share {j}"), "an aggregate share")
            _compare(where, "aggregate share", want, self.vdaf.encode_agg_share(agg))

    def _unshard(self, op: dict[str, Any], where: str) -> None:
        encoded = self.vec.get("agg_shares")
        if not isinstance(encoded, list):
            raise NotAVector("it does not give the aggregate shares")
        shares = [self.vdaf.decode_agg_share(_unhex(s, "an aggregate share")) for s in encoded]
        counted = len({i for (i, _) in self.out_shares})
        result = self.vdaf.unshard(None, shares, counted)
        if op["success"] and result != self.vec.get("agg_result"):
            raise Mismatch(
                f"{where}: aggregate result differs\n  expected {self.vec.get('agg_result')!r}\n  got      {result!r}"
            )
