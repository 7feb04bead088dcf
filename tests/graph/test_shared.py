"""Supply relations and batches read from EPCIS events a member shared: only events the sharer is a party
to, DIDs as parties, transformations linking inputs to outputs; a batch's recall follows them."""

import pytest

from qdsn.errors import InvalidInput, NotFound
from qdsn.graph import shared
from qdsn.graph.region import RegionGraph

from .test_graph import names, shipment

LOT = "urn:epc:class:lgtin:4012345.011111.L1"
OUT = "urn:epc:class:lgtin:4012345.077889.W7"


def transformation(inputs, outputs) -> dict:
    event = {
        "type": "TransformationEvent",
        "eventTime": "2026-11-03T08:00:00Z",
        "eventTimeZoneOffset": "+08:00",
        "inputQuantityList": [{"epcClass": c, "quantity": 10, "uom": "MTR"} for c in inputs],
        "outputQuantityList": [{"epcClass": c, "quantity": 10, "uom": "MTR"} for c in outputs],
    }
    return {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-11-03T08:00:00Z",
        "epcisBody": {"eventList": [event]},
    }


def test_products_of_gs1_identifiers():
    assert shared.product_of(LOT) == "urn:epc:idpat:sgtin:4012345.011111.*"
    assert shared.product_of("urn:epc:id:sgtin:4012345.011111.25") == "urn:epc:idpat:sgtin:4012345.011111.*"
    assert shared.product_of("https://id.gs1.org/01/04012345111118/10/L1") == "https://id.gs1.org/01/04012345111118"
    assert shared.product_of("urn:example:thing") == "urn:example:thing"


def test_a_batch_recall_follows_shipments_and_transformations(region):
    a, b, c = region.did("A"), region.did("B"), region.did("C")
    g = RegionGraph()
    g.update(region.ledger.store)
    doc = shipment(a, b, LOT)
    reading = g.add_shared(doc, a, "d1")
    assert [(s.supplier, s.customer, s.batches) for s in reading.shipments] == [(a, b, (LOT,))]
    g.add_shared(transformation([LOT], [OUT]), b, "d2")
    impact = g.recall(LOT)
    assert impact.kind == "batch" and impact.batches == [OUT]
    # the batch went to B, so B and everything downstream of it (C, D, E, and A through the cycle) is affected
    assert names(impact.enterprises) == ["A", "B", "C", "D", "E"]
    assert g.relations[(a, b)].sources == {"ledger", "epcis"}
    assert g.recall(OUT).batches == []  # nothing was made of the output or shipped yet
    with pytest.raises(NotFound):
        g.recall("urn:epc:class:lgtin:4012345.011111.NOPE")
    c_only = g.add_shared(shipment(a, b, LOT), c, "d3")  # C is neither party: nothing of it counts
    assert c_only.shipments == [] and "neither its source nor its destination" in c_only.skipped[0][1]


def test_a_shipment_shared_by_its_customer_confirms_the_relation(region):
    d, e = region.did("D"), region.did("E")
    g = RegionGraph()
    g.update(region.ledger.store)
    assert not g.relations[(d, e)].confirmed(d, e)  # D declared it alone
    g.add_shared(shipment(d, e, LOT), e, "d1")
    assert g.relations[(d, e)].confirmed(d, e)


def test_what_a_shared_document_cannot_give(region):
    g = RegionGraph()
    g.update(region.ledger.store)
    a = region.did("A")
    with pytest.raises(InvalidInput, match="EPCIS"):
        g.add_shared({"type": "EPCISDocument"}, a, "x")
    with pytest.raises(NotFound, match="not a registered enterprise"):
        g.add_shared(shipment(a, region.did("B"), LOT), region.certifier.did, "x")
    gln = shipment("urn:epc:id:pgln:4012345.00000", region.did("B"), LOT)
    reading = g.add_shared(gln, a, "g")
    assert reading.shipments == [] and "DID" in reading.skipped[0][1]
    stranger = "did:key:z6MkpTHR8VNsBxYAAWHut2Geadd9jSwuBV8xRoAnwWsdvktH"
    reading = g.add_shared(shipment(a, stranger, LOT), a, "s")
    assert reading.shipments and "not an enterprise member" in reading.skipped[-1][1]
    assert (a, stranger) not in g.relations
    to_certifier = g.add_shared(shipment(a, region.certifier.did, LOT), a, "k")
    assert "not an enterprise member" in to_certifier.skipped[-1][1] and (a, region.certifier.did) not in g.relations
