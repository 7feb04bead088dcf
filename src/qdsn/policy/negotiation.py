"""Contract negotiation as the Dataspace Protocol (2025-1) defines it: a state machine both parties
keep, moved only by the other party's messages.

    [start] -C-> REQUESTED -P-> OFFERED | AGREED        OFFERED -C-> REQUESTED | ACCEPTED
    [start] -P-> OFFERED                                 ACCEPTED -P-> AGREED -C-> VERIFIED -P-> FINALIZED
    either party may terminate REQUESTED and OFFERED; the consumer AGREED; the provider ACCEPTED and VERIFIED

A message that the current state does not allow is an `InvalidTransition` (HTTP 400 in the DSP
binding) that names the state and what it would take. The agreement a provider sends must name
the negotiated offer by uid and hash (`odrl.check_agreement`); a termination keeps its reason, so
a failed negotiation always says why.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from qdsn.errors import InvalidInput
from qdsn.policy.odrl import check_agreement, load, offer_hash

CONTEXT = "https://w3id.org/dspace/2025/1/context.json"
STATES = ("REQUESTED", "OFFERED", "ACCEPTED", "AGREED", "VERIFIED", "FINALIZED", "TERMINATED")
TERMINAL = ("FINALIZED", "TERMINATED")

# (message, sender) → {state it may arrive in (None: it starts a negotiation): state it leads to}
TRANSITIONS: dict[tuple[str, str], dict[str | None, str]] = {
    ("ContractRequestMessage", "consumer"): {None: "REQUESTED", "OFFERED": "REQUESTED"},
    ("ContractOfferMessage", "provider"): {None: "OFFERED", "REQUESTED": "OFFERED"},
    ("ContractNegotiationEventMessage:ACCEPTED", "consumer"): {"OFFERED": "ACCEPTED"},
    ("ContractAgreementMessage", "provider"): {"REQUESTED": "AGREED", "ACCEPTED": "AGREED"},
    ("ContractAgreementVerificationMessage", "consumer"): {"AGREED": "VERIFIED"},
    ("ContractNegotiationEventMessage:FINALIZED", "provider"): {"VERIFIED": "FINALIZED"},
    ("ContractNegotiationTerminationMessage", "consumer"): dict.fromkeys(
        ("REQUESTED", "OFFERED", "AGREED"), "TERMINATED"
    ),
    ("ContractNegotiationTerminationMessage", "provider"): dict.fromkeys(
        ("REQUESTED", "OFFERED", "ACCEPTED", "VERIFIED"), "TERMINATED"
    ),
}


class InvalidTransition(InvalidInput):
    """A message the negotiation's current state does not allow."""


@dataclass(frozen=True)
class Negotiation:
    """One contract negotiation as both parties track it."""

    provider_pid: str
    consumer_pid: str
    state: str
    offer: dict[str, Any]
    agreement: dict[str, Any] | None = None
    history: tuple[tuple[str, str, str | None, str], ...] = ()  # (message, sender, from, to)
    code: str | None = None  # why it was terminated
    reason: str | None = None

    @property
    def offer_hash(self) -> str:
        return offer_hash(self.offer)

    def to_dsp(self) -> dict[str, Any]:
        """The DSP ContractNegotiation object for this negotiation (with the agreement once there is
        one, and the code and reason once it is terminated)."""
        out: dict[str, Any] = {
            "@context": CONTEXT,
            "@type": "dspace:ContractNegotiation",
            "dspace:providerPid": self.provider_pid,
            "dspace:consumerPid": self.consumer_pid,
            "dspace:state": f"dspace:{self.state}",
        }
        if self.agreement is not None:
            out["dspace:agreement"] = self.agreement
        if self.state == "TERMINATED":
            out |= {"dspace:code": self.code, "dspace:reason": [self.reason]}
        return out


def dsp_field(message: Any, name: str) -> Any:
    """A DSP message's field, named plainly or with the `dspace:` prefix of its compacted JSON-LD."""
    return message.get(name, message.get(f"dspace:{name}")) if isinstance(message, dict) else None


def allowed(state: str | None, sender: str) -> list[str]:
    """The messages `sender` may send in `state`."""
    return [m for (m, s), moves in TRANSITIONS.items() if s == sender and state in moves]


def start(message: str, sender: str, provider_pid: str, consumer_pid: str, offer: dict[str, Any]) -> Negotiation:
    """A new negotiation, opened by a consumer's request or a provider's offer."""
    to = _move(None, message, sender)
    return Negotiation(provider_pid, consumer_pid, to, load(offer), history=((message, sender, None, to),))


def step(
    n: Negotiation,
    message: str,
    sender: str,
    *,
    offer: dict[str, Any] | None = None,
    agreement: dict[str, Any] | None = None,
    code: str | None = None,
    reason: str | None = None,
) -> Negotiation:
    """The negotiation after `sender`'s `message`; raises InvalidTransition when the state does not
    allow it, and IntegrityError for an agreement that does not name the negotiated offer."""
    to = _move(n.state, message, sender)
    changes: dict[str, Any] = {"state": to, "history": (*n.history, (message, sender, n.state, to))}
    if message in ("ContractRequestMessage", "ContractOfferMessage") and offer is not None:
        changes["offer"] = load(offer)  # a counter-offer replaces the one on the table
    if message == "ContractAgreementMessage":
        if agreement is None:
            raise InvalidInput("a ContractAgreementMessage carries the agreement")
        check_agreement(agreement, changes.get("offer", n.offer))
        changes["agreement"] = agreement
    if to == "TERMINATED":
        if not reason:
            raise InvalidInput("a termination says why", "give a code and a reason")
        changes |= {"code": code or "terminated", "reason": reason}
    return replace(n, **changes)


def _move(state: str | None, message: str, sender: str) -> str:
    return move(TRANSITIONS, "negotiation", state, message, sender)


def move(transitions: dict[tuple[str, str], dict[str | None, str]], what: str, state: str | None, message: str,
         sender: str) -> str:  # fmt: skip
    """The state `sender`'s `message` leads to in a DSP state machine (`what`: negotiation or transfer);
    InvalidTransition naming what the sender may send instead."""
    if sender not in ("provider", "consumer"):
        raise InvalidInput(f"the sender is the provider or the consumer, not {sender!r}")
    moves = transitions.get((message, sender))
    if moves is None:
        known = sorted({m for m, _ in transitions})
        if message not in known:
            raise InvalidInput(f"unknown {what} message {message!r}", f"known: {', '.join(known)}")
        raise InvalidTransition(f"the {sender} does not send {message}")
    if state not in moves:
        where = f"a new {what}" if state is None else f"a {what} in state {state}"
        options = [m for (m, s), mv in transitions.items() if s == sender and state in mv]
        raise InvalidTransition(
            f"{message} from the {sender} cannot move {where}",
            f"the {sender} may send: {', '.join(options)}" if options else f"{state} is final: start a new {what}",
        )
    return moves[state]
