"""A supply relation withdrawn by the party that declared it (or the regulator): every replica checks who
may, refuses an unknown or already withdrawn one, keeps the same state digest (SQLite, PostgreSQL, after a
restart, on a replica made before relations were kept); the graph no longer follows it."""

import json

import pytest
from sqlalchemy import delete

from qdsn.cli.member import registration
from qdsn.crypto import SigningKey
from qdsn.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from qdsn.graph.region import RegionGraph
from qdsn.identity import did_key_from_public_key
from qdsn.ledger import Ledger, tx
from qdsn.ledger.store import supplies
from qdsn.node import NodeHome

from ..cli.test_cli import PASS, qdsn
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


@pytest.mark.slow  # a real `qdsn` process per command
def test_the_regulator_withdraws_a_relation_from_the_command_line(tmp_path):
    home = tmp_path / "reg"
    reg = NodeHome.init(home, "regulator", "某市市场监督管理局", PASS["QDSN_PASSPHRASE"], scrypt_n=2**4)
    keys = {n: SigningKey.generate() for n in ("甲", "乙")}
    dids = {n: did_key_from_public_key(k.verify_key.raw) for n, k in keys.items()}
    for n, did in dids.items():
        reg.submit("identity.register", registration(did, "enterprise", f"{n}电缆有限公司", None, None, "330106",
                                                     "C3831", None))  # fmt: skip
    led = Ledger.open(str(home / "ledger.db"))
    declared = {"supplier": dids["甲"], "customer": dids["乙"]}
    led.append([tx.sign_tx("supply.relation", declared, keys["甲"], dids["甲"])])
    led.close()
    (rel,) = json.loads(qdsn("graph", "relations", "--json", home=home).stdout)
    assert (rel["supplier"], rel["customer"], rel["declarer"], rel["withdrawn"]) == (
        dids["甲"], dids["乙"], dids["甲"], None)  # fmt: skip
    assert "1 downstream" in qdsn("graph", "recall", dids["甲"], home=home).stdout

    unknown = qdsn("graph", "withdraw", "ab" * 32, home=home, ok=False)
    assert unknown.returncode != 0 and "Traceback" not in unknown.stderr + unknown.stdout
    assert "no supply relation" in unknown.stderr + unknown.stdout
    bad = qdsn("graph", "withdraw", "not-an-id", home=home, ok=False)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr + bad.stdout and "relation" in bad.stderr

    done = qdsn("graph", "withdraw", rel["id"], "--reason", "declared in error", home=home).stdout
    assert "withdrawn" in done
    assert json.loads(qdsn("graph", "relations", "--json", home=home).stdout) == []
    (gone,) = json.loads(qdsn("graph", "relations", "--withdrawn", "--json", home=home).stdout)
    assert gone["withdrawn_by"] == reg.did
    assert "0 downstream" in qdsn("graph", "recall", dids["甲"], home=home).stdout
