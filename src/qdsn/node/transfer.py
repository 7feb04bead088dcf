"""The provider side of transfer processes: each start and each use decided by the agreement, every
decision recorded on the ledger, and sealed deliveries that only the consumer can open.

A transfer runs under a finalized agreement of the consumer's. The provider decides the request at
the transfer point (who, when, purpose, how often so far — counted on the ledger, the model for a
compute); a refusal is an `access.decision` denial and a 403 that says which rule failed. A sealed
delivery is one use: decided, recorded, and only then sealed to the consumer's X25519 key with
HPKE, with what the consumer needs to recompute each anchored batch root. Plaintext never leaves.
"""

from __future__ import annotations

import base64
import threading
import uuid
import weakref
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from qdsn.crypto import hpke
from qdsn.data.vault import Batch
from qdsn.errors import InvalidInput, NotFound, PermissionDenied
from qdsn.identity.didkey import x25519_from_ed25519
from qdsn.ledger import Ledger, merkle
from qdsn.node.node import Node
from qdsn.policy import Request, decide
from qdsn.policy import transfer as tp
from qdsn.policy.negotiation import InvalidTransition, dsp_field
from qdsn.policy.odrl import constraints, operand
from qdsn.policy.store import Agreement
from qdsn.policy.transfer import Transfer

MAX_RECORDS = 10_000  # per delivery; a larger range is several uses
DATA_ADDRESS = "https://w3id.org/idsa/v4.1/HTTP"


@dataclass
class _Tally:
    """Allowed uses per agreement on one replica, counted up to entry `upto`."""

    upto: int = 0
    uses: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)  # two readers would count rows twice


_tallies: weakref.WeakKeyDictionary[Ledger, _Tally] = weakref.WeakKeyDictionary()


def uses(node: Node, agreement: str) -> int:
    """How often `agreement` was used: the allowed uses recorded on this node's replica. Each call
    reads only the decisions appended since the last one (the log only grows), so deciding does not
    slow down as the log does."""
    tally = _tallies.setdefault(node.ledger, _Tally())
    with tally.lock:
        for row in node.ledger.store.rows_of_type("access.decision", start=tally.upto):
            p = orjson.loads(row.leaf)["payload"]
            if p["point"] == "use" and p["allowed"] and "agreement" in p:
                tally.uses[p["agreement"]] += 1
            tally.upto = row.seq + 1
        return tally.uses[agreement]


def request(node: Node, consumer: str, message: dict[str, Any], *, now: datetime | None = None) -> Transfer:
    """A consumer's TransferRequestMessage: the process STARTED, or PermissionDenied saying why
    (recorded on the ledger)."""
    consumer_pid, agreement_id = dsp_field(message, "consumerPid"), dsp_field(message, "agreementId")
    if not isinstance(consumer_pid, str) or not isinstance(agreement_id, str):
        raise InvalidInput("a TransferRequestMessage carries consumerPid, agreementId and format")
    kind = tp.kind_of(dsp_field(message, "format"))
    purpose, model_hash = message.get("qdsn:purpose"), message.get("qdsn:modelHash")
    first, count = _range(message) if kind == "sealed-delivery" else (0, 0)
    node.catch_up()
    try:
        a = node.policies.agreement(agreement_id)
    except NotFound as e:
        raise NotFound(e.what, "negotiate an agreement for an offer of the provider's catalog") from None
    at = now or datetime.now(UTC)
    ask = Request(tp.KINDS[kind], consumer, at, role=node.role_of(consumer), purpose=purpose,
                  uses=uses(node, a.uid), started=a.finalized, model_hash=model_hash)  # fmt: skip
    wanted = message.get("qdsn:dataset", a.dataset)
    if a.consumer != consumer:
        refuse(node, a, ask, "transfer", f"agreement {a.uid} was made with another consumer")
    if wanted != a.dataset:
        refuse(node, a, ask, "transfer", f"agreement {a.uid} covers dataset {a.dataset}, not {wanted}")
    if a.ended:
        refuse(node, a, ask, "transfer", f"agreement {a.uid} has ended: {a.ended}")
    if kind == "sealed-delivery":
        anchored = node.ledger.state.datasets[a.dataset].anchored
        if first + count > anchored:
            raise InvalidInput(f"records {first}–{first + count - 1} are not all anchored ({anchored} are)",
                               f"ask for records below {anchored}")  # fmt: skip
    with node.deciding:
        d = decide(a.policy, ask, point="transfer")
        record_decision(node, d.allowed, d.payload(a.dataset, ask, "transfer", agreement=a.uid))
    if not d.allowed:
        raise PermissionDenied(f"the agreement's policy denies this transfer: {d.reason}")
    t = tp.start(f"urn:uuid:{uuid.uuid4()}", consumer_pid, a.uid, a.dataset, kind,
                 purpose=purpose, first=first, count=count, model_hash=model_hash)  # fmt: skip
    t = tp.step(t, "TransferStartMessage", "provider")
    node.policies.save_transfer(t, consumer)
    return t


def deliver(node: Node, consumer: str, pid: str, *, now: datetime | None = None) -> dict[str, Any]:
    """One sealed delivery of a STARTED process: a use, decided and recorded before anything is
    sealed; the answer opens only with the consumer's key (`consumer.receive`)."""
    t = mine(node, consumer, pid)
    if t.kind != "sealed-delivery":
        raise InvalidInput(f"transfer {pid} is a {t.kind} process: it delivers no records")
    if t.state != "STARTED":
        raise InvalidTransition(f"transfer {pid} is {t.state}", "records are delivered while it is STARTED")
    a = node.policies.agreement(t.agreement)
    at = now or datetime.now(UTC)
    node.catch_up()
    if a.ended:
        refuse(
            node, a, Request("read", consumer, at, purpose=t.purpose), "use", f"agreement {a.uid} has ended: {a.ended}"
        )
    key = node.key_of(consumer)
    if key is None:
        raise NotFound(f"{consumer} is not registered on the ledger")
    groups = node.vault.covering(t.dataset, t.first, t.first + t.count)
    if any(txid is None for _, txid, _ in groups):
        raise NotFound(f"records of {t.dataset} in this range are not anchored yet", "deliver once they are")
    with node.deciding:
        ask = Request("read", consumer, at, role=node.role_of(consumer), purpose=t.purpose, uses=uses(node, a.uid),
                      started=a.finalized)  # fmt: skip
        d = decide(a.policy, ask, point="use")
        record_decision(node, d.allowed, d.payload(a.dataset, ask, "use", agreement=a.uid, records=t.count))
    if not d.allowed:
        raise PermissionDenied(f"the agreement's policy denies this use: {d.reason}")
    plain = orjson.dumps(_package(t, a.uid, groups))
    sealed = hpke.seal(x25519_from_ed25519(key), plain, delivery_info(node.did, consumer, pid, a.uid))
    node.policies.save_transfer(replace(t, uses=t.uses + 1), consumer)
    return {
        "@type": "qdsn:SealedDelivery", "dspace:providerPid": pid, "dspace:agreementId": a.uid,
        "qdsn:provider": node.did, "qdsn:suite": hpke.SUITE, "qdsn:records": t.count,
        "qdsn:sealed": base64.urlsafe_b64encode(sealed).decode().rstrip("="),
    }  # fmt: skip


def _package(t: Transfer, agreement: str, groups: list[tuple[Batch, str | None, list[bytes]]]) -> dict[str, Any]:
    """The records [first, first + count) and, for each batch they lie in, its anchor and the leaf
    hashes outside the range: with them the consumer recomputes every batch root — one hash per
    record, where a proof per record would cost log₂(batch) each."""
    end = t.first + t.count
    batches, records = [], []
    for b, txid, leaves in groups:
        lo, hi = max(t.first, b.first) - b.first, min(end, b.first + b.count) - b.first
        batches.append({
            "anchor": txid, "first": b.first, "count": b.count, "root": b.root.hex(),
            "before": [merkle.leaf_hash(x).hex() for x in leaves[:lo]],
            "after": [merkle.leaf_hash(x).hex() for x in leaves[hi:]],
        })  # fmt: skip
        records += [{"seq": b.first + i, "leaf": leaves[i].decode()} for i in range(lo, hi)]
    return {"dataset": t.dataset, "agreement": agreement, "transfer": t.provider_pid, "batches": batches,
            "records": records}  # fmt: skip


def delivery_info(provider: str, consumer: str, pid: str, agreement: str) -> bytes:
    """The HPKE context of one delivery: a sealed message replayed into another transfer, between
    other parties or under another agreement does not open."""
    return "\n".join(("qdsn/sealed-delivery/v1", provider, consumer, pid, agreement)).encode()


def message(
    node: Node, consumer: str, pid: str, kind: str, code: str | None = None, reason: str | None = None
) -> Transfer:
    """The consumer's TransferStartMessage (resume), TransferCompletionMessage,
    TransferSuspensionMessage or TransferTerminationMessage."""
    t = mine(node, consumer, pid)
    if kind == "TransferStartMessage":
        a = node.policies.agreement(t.agreement)
        if a.ended:
            raise PermissionDenied(f"agreement {a.uid} has ended: {a.ended}")
    t = tp.step(t, kind, "consumer", code=code, reason=reason)
    node.policies.save_transfer(t, consumer)
    return t


def mine(node: Node, consumer: str, pid: str) -> Transfer:
    """The process `pid` if `consumer` is its consumer; otherwise it does not exist for them."""
    t, owner = node.policies.transfer(pid)
    if owner != consumer:
        raise NotFound(f"no transfer process {pid!r}")  # as DSP: an unauthorized client gets 404
    return t


def expire(node: Node, now: datetime | None = None) -> list[Agreement]:
    """The monitor: end every agreement whose time is up (a dateTime or elapsedTime bound of each of
    its permissions has passed), terminate its open processes and record why. Returns those ended."""
    at = now or datetime.now(UTC)
    ended = []
    for a in node.policies.agreements(active=True):
        why = _expired(a, at)
        if why is None:
            continue
        node.policies.end_agreement(a.uid, why)
        for t in node.policies.transfers(a.uid):
            if t.state in ("REQUESTED", "STARTED", "SUSPENDED"):
                node.policies.save_transfer(tp.step(t, "TransferTerminationMessage", "provider", code="expired",
                                                    reason=why), a.consumer)  # fmt: skip
        ask = Request(a.policy["permission"][0]["action"], a.consumer, at, role=node.role_of(a.consumer))
        note = {"dataset": a.dataset, "requester": a.consumer, "action": ask.action, "point": "transfer",
                "allowed": False, "rule": "permission", "reason": why, "agreement": a.uid}  # fmt: skip
        node.submit([node.home.sign("access.decision", note)])
        ended.append(a)
    return ended


def _expired(a: Agreement, at: datetime) -> str | None:
    """Why no permission of `a` can ever allow anything after `at`, or None."""
    reasons = []
    for i, rule in enumerate(a.policy["permission"]):
        why = None
        for where, c in constraints({"permission": [rule]}):
            if where.count(".and") + where.count(".or") or c["operator"] not in ("lt", "lteq"):
                continue  # only a top-level upper bound ends a permission for good
            bound = (
                operand(c["leftOperand"], c["rightOperand"])
                if c["leftOperand"] in ("dateTime", "elapsedTime")
                else None
            )
            if isinstance(bound, datetime) and at >= bound:
                why = f"its dateTime bound {bound.isoformat()} has passed"
            elif isinstance(bound, timedelta) and at - a.finalized >= bound:
                why = f"its elapsedTime {c['rightOperand']} since {a.finalized.isoformat()} is over"
        if why is None:
            return None
        reasons.append(f"permission[{i}]: {why}")
    return "; ".join(reasons)


def refuse(node: Node, a: Agreement, ask: Request, point: str, why: str) -> None:
    """Record a denial that no policy rule made (the wrong consumer, dataset, an ended agreement) and
    raise it as PermissionDenied."""
    note = {"dataset": a.dataset, "requester": ask.assignee, "action": ask.action, "point": point,
            "allowed": False, "rule": "agreement", "reason": why, "agreement": a.uid}  # fmt: skip
    if ask.purpose is not None:
        note["purpose"] = ask.purpose
    with node.deciding:
        record_decision(node, False, note)
    raise PermissionDenied(why)


def record_decision(node: Node, allowed: bool, note: dict[str, Any]) -> None:
    """Put a decision on the ledger: an allowed one at once, each on its own (a use is metered one by
    one); a denial with its repeats collapsed into one counted entry. Call under `node.deciding`."""
    if allowed:
        node.submit([node.home.sign("access.decision", note)])
        return
    from qdsn.node.pact import record_denial  # here: node.pact counts uses with this module's `uses`

    record_denial(node, note)


def _range(message: dict[str, Any]) -> tuple[int, int]:
    r = message.get("qdsn:records")
    ok = isinstance(r, dict) and all(
        isinstance(r.get(k), int) and not isinstance(r.get(k), bool) for k in ("first", "count")
    )
    if not ok or r["first"] < 0 or not 0 < r["count"] <= MAX_RECORDS:  # type: ignore[index]
        raise InvalidInput(
            f'a sealed delivery names its records: "qdsn:records": {{"first": ≥ 0, "count": 1–{MAX_RECORDS}}}'
        )
    return r["first"], r["count"]  # type: ignore[index]
