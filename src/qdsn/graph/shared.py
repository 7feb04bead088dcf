"""Supply relations read from EPCIS 2.0 events a member shares with the regulator.

A shipping event names its parties in `sourceList` / `destinationList` (CBV source/destination types
`owning_party` or `possessing_party`); QDSN reads a party only when it is a member's DID (EPCIS allows any
URI there), since a GLN would need a register of GLNs the ledger does not keep. The member who shared the
document is its only author we know of, so an event counts only when the sharer is one of its two parties —
the same rule as a declared `supply.relation`; any other event is skipped with the reason. A
TransformationEvent links its input EPCs (or classes) to its outputs, made by the sharer.

Pure: documents in, readings out; the document is checked against GS1's schema by `qdsn.data.epcis.check`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qdsn.data import epcis
from qdsn.ledger.tx import is_did

_PARTY_TYPES = ("owning_party", "possessing_party")
_LGTIN = re.compile(r"^urn:epc:class:lgtin:([^.]+)\.([^.]+)\.(.+)$")
_SGTIN = re.compile(r"^urn:epc:id:sgtin:([^.]+)\.([^.]+)\.(.+)$")
_LINK = re.compile(r"^(https?://[^/]+(?:/.*)?/01/\d{14})(?:/(?:10|21)/.+)?$")
MAX_ID = 500  # longer identifiers are not GS1 keys; refused rather than stored


@dataclass(frozen=True)
class Shipment:
    """Batches (EPCs or EPC classes) moved from `supplier` to `customer`."""

    event: int
    supplier: str
    customer: str
    batches: tuple[str, ...]


@dataclass(frozen=True)
class Transformation:
    """Inputs made into outputs by `maker`."""

    event: int
    maker: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass
class Reading:
    """What one shared document gives the graph, and what it left out (event index, why)."""

    shipments: list[Shipment] = field(default_factory=list)
    transformations: list[Transformation] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)


def product_of(epc: str) -> str:
    """The product (GTIN class) an EPC or EPC class belongs to: an lgtin's or sgtin's company prefix and item
    reference as an sgtin pattern, a GS1 Digital Link cut after its GTIN; anything else is its own product."""
    for pattern in (_LGTIN, _SGTIN):
        m = pattern.match(epc)
        if m:
            return f"urn:epc:idpat:sgtin:{m.group(1)}.{m.group(2)}.*"
    m = _LINK.match(epc)
    return m.group(1) if m else epc


def _party(entries: Any) -> str | None:
    for e in entries or ():
        kind = str(e.get("type", ""))
        value = e.get("source", e.get("destination"))
        if kind.rsplit("-", 1)[-1].rsplit(":", 1)[-1] in _PARTY_TYPES and is_did(value):
            return str(value)
    return None


def _ids(event: Mapping[str, Any], epcs: str, quantities: str) -> tuple[str, ...]:
    out = [str(e) for e in event.get(epcs) or ()]
    out += [str(q.get("epcClass")) for q in event.get(quantities) or () if q.get("epcClass")]
    return tuple(dict.fromkeys(i for i in out if len(i) <= MAX_ID))


def read(doc: Mapping[str, Any], sharer: str) -> Reading:
    """The shipments and transformations of a checked EPCIS document that `sharer` is a party to."""
    epcis.check(doc)
    out = Reading()
    for i, ev in enumerate(epcis.events(doc)):
        if ev.get("type") == "TransformationEvent":
            inputs = _ids(ev, "inputEPCList", "inputQuantityList")
            outputs = _ids(ev, "outputEPCList", "outputQuantityList")
            if inputs and outputs:
                out.transformations.append(Transformation(i, sharer, inputs, outputs))
            else:
                out.skipped.append((i, "a transformation needs both inputs and outputs"))
            continue
        supplier = _party(ev.get("sourceList"))
        customer = _party(ev.get("destinationList"))
        if supplier is None or customer is None:
            out.skipped.append((i, "no owning or possessing party named by DID at both source and destination"))
        elif supplier == customer:
            out.skipped.append((i, "source and destination are the same party"))
        elif sharer not in (supplier, customer):
            out.skipped.append((i, f"shared by {sharer}, who is neither its source nor its destination"))
        else:
            batches = _ids(ev, "epcList", "quantityList") + _ids(ev, "childEPCs", "childQuantityList")
            out.shipments.append(Shipment(i, supplier, customer, tuple(dict.fromkeys(batches))))
    return out
