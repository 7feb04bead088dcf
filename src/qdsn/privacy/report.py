"""A reporter's side of a task (DAP's Client): shard a measurement with the task's VDAF, seal each
input share to its aggregator with HPKE (the X25519 key its did:key derives), sign the report with
the reporter's DID key. And what either aggregator checks of a report before it opens its share.

A report on the wire (JSON, byte strings base64url):
`{task, id, period, reporter, public_share, leader_share, helper_share, signature}`; `id` is 16 random
bytes and is the VDAF nonce, as in DAP. Each share is sealed with the HPKE info
"qdsn-dap input share" ‖ 0x01 ‖ role (0x02 leader, 0x03 helper) ‖ SHA-256 of the canonical
{task, config, id, period, reporter, public_share} — DAP's InputShareAad, so a share moved to
another report, task, period or reporter does not open. The signature (Ed25519, over
"qdsn-dap report\\n" ‖ the canonical report without it) lets the helper check the reporter itself,
not take the leader's word for it."""

from __future__ import annotations

import copy
import os
from functools import lru_cache
from typing import Any

from qdsn.crypto import SigningKey, VerifyKey, canonical_json, hpke, sha256
from qdsn.crypto.encoding import b64url_decode, b64url_encode
from qdsn.errors import BadSignature, InvalidInput
from qdsn.identity.didkey import x25519_from_ed25519
from qdsn.privacy.task import HELPER, LEADER, Task

FIELDS = ("helper_share", "id", "leader_share", "period", "public_share", "reporter", "signature", "task")
SIGNED = b"qdsn-dap report\n"
MAX_SHARE = 256 * 1024  # bytes of one encoded share, sealed; a report is bounded by the API's body limit too


@lru_cache(maxsize=64)
def _x25519(ed25519: bytes) -> bytes:
    """An aggregator's X25519 key from its ledger key (a modular inversion: worth keeping)."""
    return x25519_from_ed25519(ed25519)


def share_info(task: Task, report: dict[str, Any], agg_id: int) -> bytes:
    """The HPKE info that binds an input share to its report, task and recipient."""
    aad = {"task": task.id, "config": task.config_hash.hex(), "id": report["id"], "period": report["period"],
           "reporter": report["reporter"], "public_share": report["public_share"]}  # fmt: skip
    return b"qdsn-dap input share" + bytes([1, 2 + agg_id]) + sha256(canonical_json(aad))


def signing_input(report: dict[str, Any]) -> bytes:
    return SIGNED + canonical_json({k: v for k, v in report.items() if k != "signature"})


def leaf(report_id: str, reporter: str) -> bytes:
    """A report's leaf in its batch's Merkle tree: which report, from whom."""
    return canonical_json({"id": report_id, "reporter": reporter})


def shard(
    vdaf: Any, task: Task, measurement: Any, nonce: bytes, *, encoded: list[int] | None = None
) -> tuple[Any, Any]:
    """(public share, input shares) of a measurement. `encoded` shards a raw encoded vector instead,
    skipping the VDAF's own encoding and its range check, as a dishonest client would: the
    aggregators' validity proof is what must refuse it."""
    rand = os.urandom(vdaf.RAND_SIZE)
    if encoded is not None:  # the same VDAF with an encoding that passes any vector through
        vdaf, flp = copy.copy(vdaf), copy.copy(vdaf.flp)
        flp.encode = lambda m: [v % vdaf.field.MODULUS for v in m]
        vdaf.flp, measurement = flp, encoded
    try:
        return vdaf.shard(task.ctx, measurement, nonce, rand)
    except (ValueError, TypeError) as e:
        what = getattr(e, "what", e)
        raise InvalidInput(f"task {task.id} ({task.vdaf} {task.params}) cannot take {measurement!r}: {what}",
                           "give a measurement within the task's range") from None  # fmt: skip


def make(task: Task, vdaf: Any, measurement: Any, key: SigningKey, did: str, period: int,
         leader_key: bytes, helper_key: bytes, *, encoded: list[int] | None = None) -> dict[str, Any]:  # fmt: skip
    """A signed report of `measurement` for `period`; `leader_key` and `helper_key` are the
    aggregators' Ed25519 keys as the ledger holds them."""
    if encoded is None:
        task.check_measurement(measurement)
    nonce = os.urandom(16)
    public, inputs = shard(vdaf, task, measurement, nonce, encoded=encoded)
    report: dict[str, Any] = {"task": task.id, "id": nonce.hex(), "period": period, "reporter": did,
                              "public_share": b64url_encode(vdaf.encode_public_share(public))}  # fmt: skip
    for agg_id, name, ed in ((LEADER, "leader_share", leader_key), (HELPER, "helper_share", helper_key)):
        plain = vdaf.encode_input_share(inputs[agg_id])
        report[name] = b64url_encode(hpke.seal(_x25519(ed), plain, share_info(task, report, agg_id)))
    report["signature"] = b64url_encode(key.sign(signing_input(report)))
    return report


def check_form(report: Any) -> dict[str, Any]:
    """The report's fields, each of the right type; InvalidInput names the first that is not."""
    if not isinstance(report, dict):
        raise InvalidInput("a report is a JSON object")
    missing, extra = sorted(set(FIELDS) - set(report)), sorted(set(report) - set(FIELDS))
    if missing or extra:
        raise InvalidInput(f"report fields: missing {missing}, unexpected {extra}")
    for f in FIELDS:
        want = int if f == "period" else str
        if type(report[f]) is not want:
            raise InvalidInput(f"report field {f!r} must be a {want.__name__}")
    if len(report["id"]) != 32 or any(c not in "0123456789abcdef" for c in report["id"]):
        raise InvalidInput("report id must be 16 random bytes as 32 lowercase hex digits")
    if not 0 <= report["period"] < 2**40:
        raise InvalidInput("report period must be a whole number from 0 (the task's first period)")
    for f in ("public_share", "leader_share", "helper_share", "signature"):
        if len(report[f]) > MAX_SHARE * 4 // 3 + 4:
            raise InvalidInput(f"report field {f!r} is too large")
    return report


def check_signature(report: dict[str, Any], key: bytes) -> None:
    """BadSignature unless the reporter's key (as the ledger holds it) signed this report."""
    try:
        sig = b64url_decode(report["signature"])
    except ValueError:
        raise BadSignature("the report's signature is not base64url") from None
    if not VerifyKey(key).is_valid(sig, signing_input(report)):
        raise BadSignature(f"the report is not signed by {report['reporter']}'s key",
                           "sign the report with the reporter's current DID key")  # fmt: skip


def open_share(task: Task, vdaf: Any, report: dict[str, Any], agg_id: int, key: SigningKey) -> tuple[Any, Any]:
    """(public share, this aggregator's input share), decoded; IntegrityError when the share does
    not open for this report or is not a share of this VDAF."""
    name = "leader_share" if agg_id == LEADER else "helper_share"
    try:
        sealed = b64url_decode(report[name])
        public = b64url_decode(report["public_share"])
    except ValueError:
        raise InvalidInput(f"report field {name!r} or 'public_share' is not base64url") from None
    plain = hpke.unseal(key, sealed, share_info(task, report, agg_id))
    return vdaf.decode_public_share(public), vdaf.decode_input_share(agg_id, plain)


def nonce(report: dict[str, Any]) -> bytes:
    return bytes.fromhex(report["id"])
