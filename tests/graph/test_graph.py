"""The regional graph's queries on a known small region, with exact answers; incremental folding equals a
rebuild; cycles; what a bad question is told."""

import pytest

from qdsn.errors import IntegrityError, InvalidInput, NotFound, PermissionDenied
from qdsn.graph import documents
from qdsn.graph.region import RegionGraph, draw_map, of_replica
from qdsn.ledger import Ledger, tx

from ..services import fresh_database
from .conftest import build, populate


def graph_of(region) -> RegionGraph:
    g = RegionGraph()
    g.update(region.ledger.store)
    return g


def names(rows) -> list[str]:
    return sorted(r["name"][0] for r in rows)


def test_recall_of_a_supplier_is_everything_downstream(region):
    g = graph_of(region)
    impact = g.recall(region.did("B"))
    # B supplies C and D; C supplies A (the cycle), A supplies B; D supplies E
    assert names(impact.enterprises) == ["A", "C", "D", "E"]
    assert sorted(c["id"] for c in impact.certificates) == ["CERT-A", "CERT-B", "CERT-C", "CERT-D"]
    assert {c["id"]: c["status"] for c in impact.certificates} == {
        "CERT-A": "invalid",
        "CERT-B": "valid",
        "CERT-C": "suspended",
        "CERT-D": "valid",
    }
    assert sorted((p["maker"], p["product"]) for p in impact.products) == sorted(
        [(region.did("A"), "cable"), (region.did("B"), "cable")]
    )
    assert impact.datasets == ["a-line-1"]
    # E is downstream of D only: its recall reaches nothing but itself's own holdings (none)
    e = g.recall(region.did("D"))
    assert names(e.enterprises) == ["E"] and [c["id"] for c in e.certificates] == ["CERT-D"]
    assert g.recall(region.did("E")).enterprises == []


def test_what_the_graph_holds(region):
    g = graph_of(region)
    assert g.summary() == {"entries": region.ledger.size, "nodes": 7 + 2 + 1 + 4 + 1, "edges": 5 + 2 + 1 + 4 + 1,
                           "enterprises": 5, "products": 2, "datasets": 1, "certificates": 4, "models": 1,
                           "batches": 0, "relations": 5, "notifications": 0, "inspections": 0,
                           "shared_documents": 0}  # fmt: skip
    assert g.models == {"cpk-check@1.0.0": region.certifier.did}
    assert g.recall(region.certifier.did).enterprises == []  # a certifier supplies no one


def test_recall_through_a_long_cycle_ends(tmp_path):
    r = build(tmp_path / "ring.db")
    ring = ["A", "B", "C", "D", "E"]
    for a, b in zip(ring, ring[1:] + ring[:1], strict=True):
        r.supply(a, a, b)
    g = graph_of(r)
    for start in ring:
        assert names(g.recall(r.did(start)).enterprises) == sorted(set(ring) - {start})
    r.ledger.close()


def test_coverage_per_region_and_industry(region):
    g = graph_of(region)
    by_province = {row["key"]: row for row in g.coverage("region", "province")}
    assert by_province["330000"] | {} == {
        "key": "330000",
        "name": "浙江省",
        "enterprises": 3,
        "certified": 1,
        "share": 0.3333,
        "valid": 1,
        "suspended": 1,
        "invalid": 1,
    }
    assert (by_province["320000"]["certified"], by_province["320000"]["share"]) == (1, 1.0)
    assert (by_province["110000"]["enterprises"], by_province["110000"]["share"]) == (1, 0.0)
    prefectures = {row["key"]: row["enterprises"] for row in g.coverage("region", "prefecture", "330000")}
    assert prefectures == {"330100": 2, "330200": 1}
    # a municipality has no prefectures: its districts stand at that level
    assert [row["key"] for row in g.coverage("region", "prefecture", "110000")] == ["110105"]
    industry = {row["key"]: (row["enterprises"], row["certified"]) for row in g.coverage("industry")}
    assert industry == {"C38": (3, 2), "C36": (1, 0), "C27": (1, 0)}


def test_supplier_concentration(region):
    g = graph_of(region)
    doc = g.suppliers()
    # relations: A→B, B→C, C→A, B→D, D→E; B has 2 of 5, the others 1 each: HHI = 40² + 3 × 20²
    assert (doc["relations"], doc["suppliers"], doc["customers"]) == (5, 4, 5)
    assert doc["hhi"] == 2800.0 and doc["equivalent_suppliers"] == 3.57
    assert doc["top"][0]["did"] == region.did("B") and doc["top"][0]["customers"] == 2
    assert len(doc["single_sourced"]) == 5
    confirmed = g.suppliers(confirmed=True)  # only B → C was declared by both sides
    assert (confirmed["relations"], confirmed["hhi"]) == (1, 10000.0)
    cable = g.suppliers(product="cable")
    assert cable["relations"] == 2 and cable["hhi"] == 5000.0
    assert g.suppliers(region="320000")["relations"] == 1  # B → D: the customer is in Jiangsu


def transition(g: RegionGraph, by: str, **payload) -> None:
    """A `notification.transition` entry as its contract shapes it, folded at the graph's next position."""
    g.fold(g.size, "notification.transition", by, {"classification": "alert", "content": "00" * 32} | payload)


def test_open_notifications_and_inspections_are_read_by_type(region):
    g = graph_of(region)
    a, c, k = region.did("A"), region.did("C"), region.certifier.did
    transition(g, a, notification="n1", state="SENT", sender=a, recipient=c, severity="MAJOR")
    transition(g, a, notification="n2", state="SENT", sender=a, recipient=c, severity="CRITICAL")
    transition(g, c, notification="n2", state="CLOSED", sender=a, recipient=c, severity="CRITICAL", reason="fixed")
    transition(g, c, notification="n3", state="SENT", sender=c, recipient=k, severity="CRITICAL",
               classification="investigation")  # fmt: skip
    result = {"enterprise": c, "product": "wire", "standard": "GB/T 5023", "passed": False, "date": "2026-11-02"}
    g.fold(g.size, "inspection.result", region.regulator.did, result)
    rows = g.open_notifications()
    # the most severe first: C has an open CRITICAL investigation; n2 is closed and counts for no one
    assert [(r["name"][0], r["open"], r["alert"], r["investigation"], r["severity"]) for r in rows] == [
        ("C", 2, 1, 1, "CRITICAL"),
        ("A", 1, 1, 0, "MAJOR"),
    ]
    assert rows[1]["notifications"] == [{"id": "n1", "state": "SENT", "severity": "MAJOR", "as": "sender"}]
    assert g.open_notifications("320000") == []
    assert g.indicator("failed", "province") == {"330000": 1.0}
    assert g.indicator("open", "prefecture", "330000") == {"330100": 2}


def test_incremental_update_equals_a_rebuild(tmp_path):
    r = build(tmp_path / "ledger.db")
    g = RegionGraph()
    g.update(r.ledger.store)
    g.recall(r.did("A"))  # the rustworkx graph is built once here, and extended below
    populate(r)
    size = g.size
    assert g.update(r.ledger.store) == r.ledger.size - size > 0
    r.supply("E", "E", "A", "steel")
    before = g.size
    assert g.update(r.ledger.store) == 1 and g.size == before + 1
    fresh = graph_of(r)
    assert g.snapshot() == fresh.snapshot()
    assert g.recall(r.did("E")).to_json() == fresh.recall(r.did("E")).to_json()
    assert names(g.recall(r.did("E")).enterprises) == ["A", "B", "C", "D"]
    assert g.update(r.ledger.store) == 0
    r.ledger.close()


def test_bad_questions_are_told_what_to_give(region):
    g = graph_of(region)
    with pytest.raises(NotFound, match="not a participant"):
        g.recall("did:key:z6MkpTHR8VNsBxYAAWHut2Geadd9jSwuBV8xRoAnwWsdvktH")
    with pytest.raises(InvalidInput, match="not a DID"):
        g.recall("did:nope")
    with pytest.raises(NotFound, match="batch"):
        g.recall("urn:epc:class:lgtin:4012345.011111.4444")
    with pytest.raises(InvalidInput, match="not a GB/T 2260"):
        g.coverage("region", "province", "999999")
    with pytest.raises(InvalidInput, match="six-digit"):
        g.suppliers(region="33")
    with pytest.raises(InvalidInput, match="level"):
        g.coverage("region", "village")
    with pytest.raises(InvalidInput, match="indicator"):
        draw_map(g, "happiness")
    with pytest.raises(InvalidInput, match="not a province"):
        draw_map(g, "coverage", "330100")


def test_supply_relation_rules_on_the_ledger(region):
    a, b, k = region.firms["A"], region.firms["B"], region.certifier
    c = region.firms["C"]
    with pytest.raises(PermissionDenied, match="one of its two parties"):
        region.ledger.append([c.sign("supply.relation", {"supplier": a.did, "customer": b.did})])
    with pytest.raises(InvalidInput, match="two different"):
        region.ledger.append([a.sign("supply.relation", {"supplier": a.did, "customer": a.did})])
    with pytest.raises(NotFound, match="not a registered enterprise"):
        region.ledger.append([a.sign("supply.relation", {"supplier": a.did, "customer": k.did})])
    with pytest.raises(PermissionDenied, match="may not submit"):
        region.ledger.append([k.sign("supply.relation", {"supplier": k.did, "customer": a.did})])
    with pytest.raises(InvalidInput, match="product"):
        region.ledger.append([a.sign("supply.relation", {"supplier": a.did, "customer": b.did, "product": ""})])


def test_of_replica_folds_each_shared_document_once(region, tmp_path):
    doc = shipment(region.did("A"), region.did("B"), "urn:epc:class:lgtin:4012345.011111.L1")
    name = documents.save(tmp_path, doc, region.did("A"))
    kept = tmp_path / "graph" / "shared" / f"{name}.json"
    assert kept.stat().st_mode & 0o777 == 0o600
    g = of_replica(region.ledger.store, tmp_path)
    assert g.summary()["shared_documents"] == 1 and g.summary()["batches"] == 1
    assert of_replica(region.ledger.store, tmp_path, g).snapshot() == g.snapshot()
    # a kept document changed afterwards (another batch put in) is refused, naming the file
    kept.write_text(kept.read_text().replace("L1", "L2"))
    with pytest.raises(IntegrityError, match=name):
        of_replica(region.ledger.store, tmp_path)


def shipment(supplier: str, customer: str, *classes: str, kind="ObjectEvent") -> dict:
    event = {
        "type": kind,
        "eventTime": "2026-11-02T08:00:00Z",
        "eventTimeZoneOffset": "+08:00",
        "action": "OBSERVE",
        "bizStep": "shipping",
        "epcList": [],
        "quantityList": [{"epcClass": c, "quantity": 100, "uom": "MTR"} for c in classes],
        "sourceList": [{"type": "owning_party", "source": supplier}],
        "destinationList": [{"type": "owning_party", "destination": customer}],
    }
    return {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-11-02T08:00:00Z",
        "epcisBody": {"eventList": [event]},
    }


def test_a_postgresql_replica_gives_the_same_graph(region, postgres_url):
    pg = Ledger.open(fresh_database(postgres_url, "graph_pg"), origin=region.ledger.origin)
    try:
        # the same log, entry for entry, validated again by a replica in PostgreSQL
        pg.append([tx.from_leaf(leaf) for leaf in region.ledger.store.leaves(0, region.ledger.size)])
        assert graph_of(region).snapshot() == of_replica(pg.store).snapshot()
    finally:
        pg.close()
