"""A supply relation withdrawn by the party that declared it (or the regulator): every replica checks who
may, refuses an unknown or already withdrawn one, keeps the same state digest (SQLite, PostgreSQL, after a
restart, on a replica made before relations were kept); the graph no longer follows it."""

import pytest
from sqlalchemy import delete

from qdsn.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from qdsn.graph.region import RegionGraph
from qdsn.ledger import Ledger, tx
from qdsn.ledger.store import supplies

from ..services import fresh_database
from .test_graph import graph_of, names


def relation(region, by, supplier, customer):
    want = (region.did(by), region.did(supplier), region.did(customer))
    (found,) = [r for r in region.ledger.state.supplies.values() if (r.declarer, r.supplier, r.customer) == want]
    return found.id


def withdraw(region, who, rel, reason=None):
    signer = region.firms[who] if who in region.firms else getattr(region, who)
    region.ledger.append([signer.sign("supply.withdraw", {"relation": rel} | ({"reason": reason} if reason else {}))])


def test_the_declarer_withdraws_and_recall_no_longer_follows(region):
    g = graph_of(region)
    assert names(g.recall(region.did("B")).enterprises) == ["A", "C", "D", "E"]  # rustworkx graph built here
    b_to_d = relation(region, "D", "B", "D")
    with pytest.raises(PermissionDenied, match="only it, or the regulator"):
        withdraw(region, "B", b_to_d)  # the other party did not declare it
    with pytest.raises(PermissionDenied, match="may not submit"):
        withdraw(region, "certifier", b_to_d)
    withdraw(region, "D", b_to_d, "no longer buys from B")
    assert region.ledger.state.supplies[b_to_d].withdrawn_by == region.did("D")
    with pytest.raises(Conflict, match="withdrawn already"):
        withdraw(region, "D", b_to_d)
    assert g.update(region.ledger.store) == 1
    assert names(g.recall(region.did("B")).enterprises) == ["A", "C"]  # D and E are no longer downstream
    assert g.snapshot() == graph_of(region).snapshot()  # incremental equals a rebuild
    assert (region.did("B"), region.did("D")) not in g.relations

    # B → C was declared by both: one side's withdrawal leaves the other's word standing
    withdraw(region, "B", relation(region, "B", "B", "C"))
    g.update(region.ledger.store)
    assert not g.relations[(region.did("B"), region.did("C"))].confirmed(region.did("B"), region.did("C"))
    assert names(g.recall(region.did("B")).enterprises) == ["A", "C"]
    withdraw(region, "regulator", relation(region, "C", "B", "C"))  # the regulator may withdraw any
    g.update(region.ledger.store)
    assert g.recall(region.did("B")).enterprises == [] and g.snapshot() == graph_of(region).snapshot()


def test_an_unknown_or_malformed_relation_is_refused_with_what_to_give(region):
    with pytest.raises(NotFound, match=r"no supply relation \w+ on the ledger\. name it by the id of its"):
        withdraw(region, "A", "ab" * 32)
    with pytest.raises(InvalidInput, match="relation"):
        withdraw(region, "A", "A→B")
    with pytest.raises(InvalidInput, match="control or invisible"):
        withdraw(region, "A", relation(region, "A", "A", "B"), "ok\u202egnp.exe")


def test_replicas_agree_on_withdrawn_relations(region, tmp_path, postgres_url):
    withdraw(region, "D", relation(region, "D", "B", "D"))
    digest = region.ledger.state.digest()
    log = [tx.from_leaf(leaf) for leaf in region.ledger.store.leaves(0, region.ledger.size)]
    pg = Ledger.open(fresh_database(postgres_url, "withdraw_pg"), origin=region.ledger.origin)
    try:
        pg.append(log)
        assert pg.state.digest() == digest
        assert RegionGraph().update(pg.store) and graph_of(region).snapshot() == _graph(pg).snapshot()
    finally:
        pg.close()
    path = region.ledger.store.url
    region.ledger.close()
    again = Ledger.open(path, origin=region.ledger.origin)  # the state as persisted
    assert again.state.digest() == digest
    with pytest.raises(Conflict, match="withdrawn already"):
        again.append([region.firms["D"].sign("supply.withdraw", {"relation": relation(region, "D", "B", "D")})])
    with again.store.engine.begin() as c:  # a replica made before supply relations were kept
        c.execute(delete(supplies))
    again.close()
    rebuilt = Ledger.open(path, origin=region.ledger.origin)
    try:
        assert rebuilt.state.digest() == digest and len(rebuilt.state.supplies) == 6
    finally:
        rebuilt.close()
    region.ledger = Ledger.open(path, origin=region.ledger.origin)  # for the fixture to close


def _graph(ledger):
    g = RegionGraph()
    g.update(ledger.store)
    return g
