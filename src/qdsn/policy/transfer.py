"""Transfer processes as the Dataspace Protocol (2025-1) defines them, for QDSN's two kinds.

    [start] -C-> REQUESTED -P-> STARTED -either-> COMPLETED | SUSPENDED
    SUSPENDED -either-> STARTED          REQUESTED, STARTED, SUSPENDED -either-> TERMINATED

`compute`: a model runs on the data inside the owner's node and only its result leaves.
`sealed-delivery`: records leave as HPKE ciphertext sealed to the consumer's key, with inclusion
proofs to their anchored batches. A process always runs under a finalized agreement; a message the
current state does not allow is an `InvalidTransition` (HTTP 400), and a termination says why.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from qdsn.errors import InvalidInput
from qdsn.policy.negotiation import CONTEXT, move

STATES = ("REQUESTED", "STARTED", "COMPLETED", "SUSPENDED", "TERMINATED")
KINDS = {"compute": "compute", "sealed-delivery": "read"}  # kind → the ODRL action it exercises
FORMAT = "urn:qdsn:transfer:"  # DSP `format` of a kind: urn:qdsn:transfer:compute, …

TRANSITIONS: dict[tuple[str, str], dict[str | None, str]] = {
    ("TransferRequestMessage", "consumer"): {None: "REQUESTED"},
    ("TransferStartMessage", "provider"): {"REQUESTED": "STARTED", "SUSPENDED": "STARTED"},
    ("TransferStartMessage", "consumer"): {"SUSPENDED": "STARTED"},
    ("TransferCompletionMessage", "provider"): {"STARTED": "COMPLETED"},
    ("TransferCompletionMessage", "consumer"): {"STARTED": "COMPLETED"},
    ("TransferSuspensionMessage", "provider"): {"STARTED": "SUSPENDED"},
    ("TransferSuspensionMessage", "consumer"): {"STARTED": "SUSPENDED"},
    ("TransferTerminationMessage", "provider"): dict.fromkeys(("REQUESTED", "STARTED", "SUSPENDED"), "TERMINATED"),
    ("TransferTerminationMessage", "consumer"): dict.fromkeys(("REQUESTED", "STARTED", "SUSPENDED"), "TERMINATED"),
}


@dataclass(frozen=True)
class Transfer:
    """One transfer process as both parties track it."""

    provider_pid: str
    consumer_pid: str
    agreement: str
    dataset: str
    kind: str
    state: str
    history: tuple[tuple[str, str, str | None, str], ...] = ()  # (message, sender, from, to)
    code: str | None = None  # why it was suspended or terminated
    reason: str | None = None
    purpose: str | None = None
    first: int = 0  # a sealed delivery's records: [first, first + count)
    count: int = 0
    model_hash: str | None = None  # the model a compute process runs
    uses: int = 0  # deliveries or runs under this process

    def to_dsp(self) -> dict[str, Any]:
        """The DSP TransferProcess object (with the code and reason once suspended or terminated)."""
        out: dict[str, Any] = {
            "@context": CONTEXT, "@type": "dspace:TransferProcess", "dspace:providerPid": self.provider_pid,
            "dspace:consumerPid": self.consumer_pid, "dspace:agreementId": self.agreement,
            "dspace:format": FORMAT + self.kind, "dspace:state": f"dspace:{self.state}", "qdsn:dataset": self.dataset,
            "qdsn:uses": self.uses,
        }  # fmt: skip
        if self.kind == "sealed-delivery":
            out["qdsn:records"] = {"first": self.first, "count": self.count}
        if self.state in ("SUSPENDED", "TERMINATED"):
            out |= {"dspace:code": self.code, "dspace:reason": [self.reason]}
        return out


def kind_of(fmt: Any) -> str:
    """The transfer kind a DSP `format` names, or InvalidInput listing the kinds."""
    kind = fmt[len(FORMAT) :] if isinstance(fmt, str) and fmt.startswith(FORMAT) else None
    if kind not in KINDS:
        raise InvalidInput(f"unknown transfer format {fmt!r}", f"use one of: {', '.join(FORMAT + k for k in KINDS)}")
    return kind


def start(provider_pid: str, consumer_pid: str, agreement: str, dataset: str, kind: str, **terms: Any) -> Transfer:
    """A new process, opened by the consumer's TransferRequestMessage; `terms`: purpose, first,
    count, model_hash."""
    to = _move(None, "TransferRequestMessage", "consumer")
    return Transfer(provider_pid, consumer_pid, agreement, dataset, kind_of(FORMAT + kind), to,
                    (("TransferRequestMessage", "consumer", None, to),), **terms)  # fmt: skip


def step(t: Transfer, message: str, sender: str, *, code: str | None = None, reason: str | None = None) -> Transfer:
    """The process after `sender`'s `message`; InvalidTransition when its state does not allow it."""
    to = _move(t.state, message, sender)
    changes: dict[str, Any] = {"state": to, "history": (*t.history, (message, sender, t.state, to))}
    if to in ("SUSPENDED", "TERMINATED"):
        if not reason:
            raise InvalidInput(f"a {message} says why", "give a code and a reason")
        changes |= {"code": code or to.lower(), "reason": reason}
    elif to == "STARTED":
        changes |= {"code": None, "reason": None}
    return replace(t, **changes)


def _move(state: str | None, message: str, sender: str) -> str:
    return move(TRANSITIONS, "transfer", state, message, sender)
