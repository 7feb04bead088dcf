"""The consumer side of the data space: negotiate an offer, run a transfer, and open a sealed
delivery — checking every record against the batch root its owner anchored on the consumer's own
replica of the ledger, so provenance does not rest on the provider's word."""

from __future__ import annotations

import base64
import re
import uuid
from typing import Any

import orjson

from qdsn.crypto import SigningKey, hpke
from qdsn.errors import IntegrityError, NotFound, PermissionDenied, QDSNError
from qdsn.ledger import Ledger, merkle, tx
from qdsn.node.follow import Operator
from qdsn.node.transfer import delivery_info
from qdsn.policy.odrl import agreement, check_agreement
from qdsn.policy.transfer import FORMAT


def negotiate(provider: Operator, offer: dict[str, Any], consumer: str | None = None) -> dict[str, Any]:
    """Ask `provider` for `offer` as it is in its catalog and verify the agreement: it names that offer
    by uid and hash, and (given) grants it to `consumer`. Returns the agreement, or PermissionDenied
    with the provider's reason."""
    ask = {"@type": "ContractRequestMessage", "consumerPid": f"urn:uuid:{uuid.uuid4()}", "offer": offer}
    n: Any = provider.call("POST", "/negotiations/request", ask)
    if not isinstance(n, dict) or not isinstance(n.get("dspace:state"), str):
        raise IntegrityError("the provider answered the contract request with no ContractNegotiation")
    if n["dspace:state"] != "dspace:AGREED":
        why = n.get("dspace:reason")
        why = "; ".join(map(str, why)) if isinstance(why, list) else str(why or "no reason given")
        raise PermissionDenied(f"the provider ended the negotiation: {why}")
    pid, contract = n.get("dspace:providerPid"), n.get("dspace:agreement")
    if not isinstance(pid, str) or not isinstance(contract, dict) or not re.fullmatch(r"[\w:.\-]{1,200}", pid):
        raise IntegrityError("the provider's agreement message lacks its providerPid or the agreement")
    check_agreement(contract, offer)  # the agreement names exactly the offer asked for, by uid and hash
    if consumer is not None and contract.get("assignee") != consumer:
        raise IntegrityError(f"the agreement is granted to {str(contract.get('assignee'))[:100]}, not to this node")
    if not isinstance(contract.get("assignee"), str) or contract != agreement(
            offer, contract["assignee"], str(contract.get("uid"))):  # its terms, target and assigner too  # fmt: skip
        raise IntegrityError("the agreement's terms are not those of the offer it names: the provider changed them",
                             "negotiate again; if it persists, the provider's node is not to be trusted")  # fmt: skip
    provider.call(
        "POST", f"/negotiations/{pid}/agreement/verification", {"@type": "ContractAgreementVerificationMessage"}
    )
    return contract


def transfer(provider: Operator, agreement: str, kind: str, **terms: Any) -> dict[str, Any]:
    """Request a transfer process under `agreement`; `terms` are QDSN's message fields without their
    prefix (purpose, records={"first", "count"}, dataset, modelHash). Returns the STARTED process."""
    msg = {"@type": "TransferRequestMessage", "consumerPid": f"urn:uuid:{uuid.uuid4()}", "agreementId": agreement,
           "format": FORMAT + kind} | {f"qdsn:{k}": v for k, v in terms.items()}  # fmt: skip
    return provider.call("POST", "/transfers/request", msg)  # type: ignore[return-value]


def receive(
    ledger: Ledger, key: SigningKey, me: str, delivery: dict[str, Any], dataset: str | None = None
) -> list[dict[str, Any]]:
    """The records of a sealed delivery to `me` (of `dataset`, given), each proved against an anchored batch
    root on `ledger`; IntegrityError if anything does not open or add up."""
    try:
        return _receive(ledger, key, me, delivery, dataset)
    except QDSNError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:  # the provider wrote all of it
        raise IntegrityError(f"the sealed delivery is not in the form of one ({e!r})") from None


def _receive(
    ledger: Ledger, key: SigningKey, me: str, delivery: dict[str, Any], expected: str | None
) -> list[dict[str, Any]]:
    provider, pid, agreement = delivery["qdsn:provider"], delivery["dspace:providerPid"], delivery["dspace:agreementId"]
    sealed = base64.urlsafe_b64decode(delivery["qdsn:sealed"] + "=" * (-len(delivery["qdsn:sealed"]) % 4))
    body = orjson.loads(hpke.unseal(key, sealed, delivery_info(provider, me, pid, agreement)))
    if (body["transfer"], body["agreement"]) != (pid, agreement):
        raise IntegrityError("the sealed delivery names another transfer or agreement than its envelope")
    dataset = body["dataset"]
    if expected is not None and dataset != expected:
        raise IntegrityError(f"the delivery holds records of {str(dataset)[:80]}, not of {expected}, which was agreed")
    owner = ledger.state.datasets.get(dataset)
    if owner is None or owner.owner != provider:
        raise IntegrityError(f"dataset {dataset!r} is not declared on the ledger by {provider}")
    records = body["records"]
    out, at = [], 0
    for b in body["batches"]:
        try:
            anchor = tx.from_leaf(ledger.store.entry(txid=b["anchor"]).leaf)
        except NotFound:
            raise NotFound(
                f"the batch at record {b['first']} names anchor {str(b['anchor'])[:16]}…, which this "
                "replica does not hold",
                "let this node follow the log, then fetch again",
            ) from None
        p = anchor.payload
        if anchor.type != "dataset.anchor" or anchor.submitter != provider or p["dataset"] != dataset:
            raise IntegrityError(f"entry {b['anchor'][:16]}… is not an anchor of {dataset} by its owner")
        if (p["first"], p["count"], p["root"]) != (b["first"], b["count"], b["root"]):
            raise IntegrityError(f"the batch at record {b['first']} is not the one anchored in {b['anchor'][:16]}…")
        inside = b["count"] - len(b["before"]) - len(b["after"])
        mine = records[at : at + inside]
        at += inside
        first = b["first"] + len(b["before"])
        if inside < 1 or [r["seq"] for r in mine] != list(range(first, first + inside)):
            raise IntegrityError(f"the records delivered for the batch at record {b['first']} are not its records")
        leaves = [r["leaf"].encode() for r in mine]
        hashes = [*map(bytes.fromhex, b["before"]), *map(merkle.leaf_hash, leaves), *map(bytes.fromhex, b["after"])]
        if merkle.root_from_hashes(hashes) != bytes.fromhex(p["root"]):
            raise IntegrityError(f"the records do not hash to the root anchored for the batch at record {b['first']}")
        for r, leaf in zip(mine, leaves, strict=True):
            obj = orjson.loads(leaf)
            if (obj.get("dataset"), obj.get("seq")) != (dataset, r["seq"]):
                raise IntegrityError(f"leaf {r['seq']} is not record {r['seq']} of {dataset}")
            out.append({"seq": r["seq"], "record": obj["record"]})
    if at != len(records):
        raise IntegrityError("the delivery holds records outside its batches")
    return out
