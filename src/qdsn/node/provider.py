"""The provider side of the data space: the catalog this node shows, and the negotiations it runs.

A consumer asks for an offer from the catalog; the provider checks that the offer is exactly the one
it published (by hash, never by comparing structures), decides the request with the owner's policy
at the negotiation point, records the decision on the ledger, and answers with an agreement or a
termination that says why. Agreement verification by the consumer finalizes the negotiation.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from qdsn.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from qdsn.node import pact
from qdsn.node.node import Node
from qdsn.policy import Decision, Request, agreement, decide, negotiation, offer_hash
from qdsn.policy.negotiation import CONTEXT, Negotiation, dsp_field
from qdsn.policy.store import unknown_offer

DCAT = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "odrl": "http://www.w3.org/ns/odrl/2/",
}
MAX_OPEN = 16  # negotiations one counterpart may hold agreed and not yet verified


def publish(node: Node, dataset: str, offer: dict[str, Any]) -> str:
    """Offer one of this node's datasets under `offer`: kept here, its hash put on the ledger
    (`policy.set`). Returns the hash."""
    node.catch_up()
    ds = node.ledger.state.datasets.get(dataset)
    if ds is None or ds.owner != node.did:
        raise PermissionDenied(f"dataset {dataset!r} is not declared on the ledger by this node")
    if offer.get("target") != f"urn:qdsn:dataset:{dataset}" or offer.get("assigner") != node.did:
        raise InvalidInput(f"the offer's target must be urn:qdsn:dataset:{dataset} and its assigner {node.did}")
    digest = node.policies.put_offer(dataset, offer)
    node.submit([node.home.sign("policy.set", {"dataset": dataset, "offer": offer["uid"], "hash": digest})])
    return digest


def visible(offer: dict[str, Any], requester: str | None) -> bool:
    """An offer shows to everyone unless each of its permissions names someone else."""
    return any(p.get("assignee") in (None, requester) for p in offer["permission"])


def catalog(node: Node, requester: str | None) -> dict[str, Any]:
    """A DCAT 3 catalog of this node's datasets with the ODRL offers `requester` may see (the DSP
    catalog form)."""
    datasets: dict[str, list[dict[str, Any]]] = {}
    for dataset, offer in node.policies.offers():
        if visible(offer, requester):
            datasets.setdefault(dataset, []).append(offer)
    items = []
    for dataset, shown in datasets.items():
        ds = node.ledger.state.datasets.get(dataset)
        items.append({
            "@id": f"urn:qdsn:dataset:{dataset}", "@type": "dcat:Dataset",
            "dct:title": ds.title if ds else dataset, "qdsn:kind": ds.kind if ds else None,
            "qdsn:anchoredRecords": ds.anchored if ds else 0, "odrl:hasPolicy": shown,
        })  # fmt: skip
    return {
        "@context": [CONTEXT, DCAT], "@id": f"urn:qdsn:catalog:{node.did}", "@type": "dcat:Catalog",
        "dspace:participantId": node.did, "dcat:dataset": items,
    }  # fmt: skip


def request(node: Node, consumer: str, message: dict[str, Any], *, now: datetime | None = None) -> Negotiation:
    """A consumer's initial ContractRequestMessage: the negotiation, AGREED or TERMINATED with the reason."""
    consumer_pid = dsp_field(message, "consumerPid")
    offer = dsp_field(message, "offer")
    if not isinstance(consumer_pid, str) or not isinstance(offer, dict) or not isinstance(offer.get("uid"), str):
        raise InvalidInput("a ContractRequestMessage carries consumerPid and the offer (with its uid) asked for")
    pid = f"urn:uuid:{uuid.uuid4()}"
    node.catch_up()
    dataset, published = offered(node, offer["uid"], consumer)
    n = negotiation.start("ContractRequestMessage", "consumer", pid, consumer_pid, published)
    rule = published["permission"][0]
    ask = Request(rule["action"], consumer, now or datetime.now(UTC), role=node.role_of(consumer))
    with node.deciding:  # the open negotiations counted and the new one saved in one step
        opened = node.policies.open_negotiations(consumer)
        if opened >= MAX_OPEN:
            raise Conflict(f"{consumer} has {opened} negotiations with this node agreed and not verified: "
                           f"{MAX_OPEN} is the most one counterpart may hold open",
                           "verify the agreements you mean to use (POST /negotiations/{pid}/agreement/"
                           "verification) and terminate the others (POST /negotiations/{pid}/termination), "
                           "then ask again")  # fmt: skip
        if offer_hash(offer) != offer_hash(published):
            why = (f"the offer asked for differs from {published['uid']} as published "
                   f"(hash {offer_hash(published)[:16]}…)")  # fmt: skip
            pact.record_denial(node, Decision(False, "offer", why).payload(dataset, ask, "negotiation"))
            return _end(node, n, consumer, "offer-mismatch", why)
        d = decide(published, ask, point="negotiation")
        if not d.allowed:  # repeats of one denial are recorded as one entry with their count
            pact.record_denial(node, d.payload(dataset, ask, "negotiation"))
            return _end(node, n, consumer, "policy", d.reason)
        node.submit([node.home.sign("access.decision", d.payload(dataset, ask, "negotiation"))])
        contract = agreement(published, consumer, f"urn:qdsn:agreement:{uuid.uuid4()}")
        n = negotiation.step(n, "ContractAgreementMessage", "provider", agreement=contract)
        node.policies.save(n, consumer)
    return n


def offered(node: Node, uid: str, requester: str | None) -> tuple[str, dict[str, Any]]:
    """(dataset, offer) of the offer `uid` as `requester` may ask for it. One it may not see answers as
    an unknown uid does, before anything is decided or recorded: a private offer cannot be probed."""
    try:
        dataset, published = node.policies.offer(uid)
        if not visible(published, requester):
            raise unknown_offer(uid)
    except NotFound as e:
        raise NotFound(e.what, "ask for an offer from this node's catalog") from None
    return dataset, published


def verify_agreement(node: Node, consumer: str, pid: str, *, now: datetime | None = None) -> Negotiation:
    """The consumer's ContractAgreementVerificationMessage; the provider finalizes at once, and the
    agreement is in force from then on."""
    n = mine(node, consumer, pid)
    n = negotiation.step(n, "ContractAgreementVerificationMessage", "consumer")
    n = negotiation.step(n, "ContractNegotiationEventMessage:FINALIZED", "provider")
    dataset, _ = node.policies.offer(n.offer["uid"])
    node.policies.finalize(n, consumer, dataset, now or datetime.now(UTC))
    return n


def terminate(node: Node, consumer: str, pid: str, code: str | None, reason: str | None) -> Negotiation:
    """The consumer's ContractNegotiationTerminationMessage."""
    n = negotiation.step(mine(node, consumer, pid), "ContractNegotiationTerminationMessage", "consumer",
                         code=code, reason=reason)  # fmt: skip
    node.policies.save(n, consumer)
    return n


def mine(node: Node, consumer: str, pid: str) -> Negotiation:
    """The negotiation `pid` if `consumer` is its consumer; otherwise it does not exist for them."""
    n, owner = node.policies.negotiation(pid)
    if owner != consumer:
        raise NotFound(f"no negotiation {pid!r}")  # DSP: an unauthorized client gets 404
    return n


def _end(node: Node, n: Negotiation, consumer: str, code: str, reason: str) -> Negotiation:
    n = negotiation.step(n, "ContractNegotiationTerminationMessage", "provider", code=code, reason=reason)
    node.policies.save(n, consumer)
    return n
