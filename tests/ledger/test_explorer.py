"""The explorer's and the registry's pages: filters, keyset paging that visits every row once, the indexes
they read (built on old replicas too), and bad parameters refused with what to do."""

import pytest
from sqlalchemy import text
from stdnum.cn import uscc

from qdsn.crypto.encoding import b64url_encode
from qdsn.errors import InvalidInput, NotFound
from qdsn.identity import organization
from qdsn.ledger import Ledger, explorer, registry
from qdsn.ledger.checkpoint import Checkpoint, NoteSigner, cosigned_message
from qdsn.ledger.store import Store

from .conftest import ORIGIN, member

PLACES = [("330106", "C3831"), ("330102", "C3831"), ("330203", "C2710"), ("110101", "I6510"), ("440305", "C3831")]


def credit_code(region: str, i: int) -> str:
    body = f"{i:08d}"
    code = f"91{region}{body}{organization._organization_check(body)}"
    return code + uscc.calc_check_digit(code)


def admit(ledger, regulator, n: int):
    """n enterprises, spread over PLACES, in one batch; returns them in registration order."""
    ms = [member("enterprise", f"工厂 {i}") for i in range(n)]
    envs = []
    for i, m in enumerate(ms):
        region, industry = PLACES[i % len(PLACES)]
        payload = m.register_payload() | {"region": region, "industry": industry,
                                          "credit_code": credit_code(region, i), "address": f"路 {i} 号"}  # fmt: skip
        envs.append(regulator.sign("identity.register", payload))
    ledger.append(envs)
    return ms


def walk(fetch, **filters):
    """Every item of a paged listing, following the `older` cursors from the newest page."""
    seen, before = [], None
    while True:
        page = fetch(before=before, limit=7, **filters)
        seen += page.items
        if page.older is None:
            return seen
        before = page.older


def test_the_registry_filters_by_region_industry_role_and_name(ledger, regulator):
    ms = admit(ledger, regulator, 25)
    store = ledger.store
    everyone = walk(lambda **k: registry.members_page(store, **k))
    assert [m["did"] for m in everyone] == [m.did for m in reversed(ms)] + [regulator.did]
    zhejiang = walk(lambda **k: registry.members_page(store, **k), region="330000")
    assert len(zhejiang) == 15 and all(m["region"].startswith("33") for m in zhejiang)
    assert registry.members_page(store, region="330000").filters["total"] == 15
    hangzhou = walk(lambda **k: registry.members_page(store, **k), region="330100")
    assert {m["region"] for m in hangzhou} == {"330106", "330102"} and len(hangzhou) == 10
    assert len(walk(lambda **k: registry.members_page(store, **k), region="330106")) == 5
    cables = walk(lambda **k: registry.members_page(store, **k), industry="c38")
    assert len(cables) == 15 and {m["industry"] for m in cables} == {"C3831"}
    assert len(walk(lambda **k: registry.members_page(store, **k), industry="C", region="330000")) == 15
    assert [m["did"] for m in walk(lambda **k: registry.members_page(store, **k), role="regulator")] == [regulator.did]
    one = registry.members_page(store, search="工厂 7").items
    assert [m["did"] for m in one] == [ms[7].did]
    assert one[0]["region_name"] == "浙江省 宁波市 海曙区" and one[0]["address"] == "路 7 号"
    assert registry.members_page(store, search=ms[3].did).items[0]["name"] == "工厂 3"
    by_code = registry.members_page(store, search=credit_code("110101", 3).lower()).items
    assert [m["did"] for m in by_code] == [ms[3].did]
    assert registry.members_page(store, search="%").items == []  # a wildcard is a character, not a pattern
    assert registry.member(store, ms[0].did)["credit_code"] == credit_code("330106", 0)
    provinces = {r["region"]: r["members"] for r in registry.by_region(store)}
    assert provinces == {"330000": 15, "110000": 5, "440000": 5}
    assert {r["region"]: r["name"] for r in registry.by_region(store, "prefecture")}["330100"] == "浙江省 杭州市"


def test_pages_go_both_ways_and_bad_parameters_are_refused(ledger, regulator):
    ms = admit(ledger, regulator, 12)
    store = ledger.store
    first = registry.members_page(store, limit=5)
    assert first.newer is None and len(first.items) == 5
    second = registry.members_page(store, before=first.older, limit=5)
    back = registry.members_page(store, after=second.newer, limit=5)
    assert back.items == first.items
    assert [m["did"] for m in second.items] == [m.did for m in reversed(ms[2:7])]
    for bad in ({"region": "33"}, {"industry": "C99"}, {"role": "king"}, {"limit": 0}, {"limit": 10_000},
                {"before": 3, "after": 1}):  # fmt: skip
        with pytest.raises(InvalidInput):
            registry.members_page(store, **bad)
    with pytest.raises(InvalidInput, match="not a transaction type"):
        explorer.entries_page(store, type="dataset.teleport")
    with pytest.raises(NotFound):
        registry.member(store, "did:key:z6MkNobody")
    with pytest.raises(InvalidInput):
        explorer.entry(store, "../etc")
    with pytest.raises(NotFound):
        explorer.entry(store, str(10**6))


def test_entries_by_type_and_submitter_visit_each_entry_once(ledger, regulator):
    admit(ledger, regulator, 9)
    w = member("certifier", "CQC")
    ledger.append([regulator.sign("identity.register", w.register_payload())])
    signer = NoteSigner(ORIGIN, regulator.key)
    for ts in range(3):
        ledger.sign_checkpoint(signer)
        size, root = ledger.size, ledger.root()
        sig = w.key.sign(cosigned_message(Checkpoint(ORIGIN, size, root).text(), 1_700_000_000 + ts))
        payload = {"origin": ORIGIN, "size": size, "root": root.hex(), "timestamp": 1_700_000_000 + ts,
                   "signature": b64url_encode(sig)}  # fmt: skip
        ledger.append([w.sign("checkpoint.cosign", payload)])
    store = ledger.store
    all_entries = walk(lambda **k: explorer.entries_page(store, **k))
    assert [e["seq"] for e in all_entries] == list(range(ledger.size - 1, -1, -1))
    registrations = walk(lambda **k: explorer.entries_page(store, **k), type="identity.register")
    assert len(registrations) == 11 and registrations[-1]["payload"]["role"] == "regulator"
    by_w = walk(lambda **k: explorer.entries_page(store, **k), submitter=w.did)
    assert [e["type"] for e in by_w] == ["checkpoint.cosign"] * 3
    ascending = explorer.entries_page(store, after=2, limit=3)
    assert [e["seq"] for e in ascending.items] == [5, 4, 3] and ascending.newer == 5 and ascending.older == 3
    one = explorer.entry(store, str(by_w[0]["seq"]))
    assert one["type"] == "checkpoint.cosign" and explorer.entry(store, one["txid"])["seq"] == one["seq"]

    cps = explorer.checkpoints_page(store).items
    assert [c["size"] for c in cps] == [13, 12, 11] and [c["recorded_cosignatures"] for c in cps] == [1, 1, 1]
    assert len(explorer.cosignatures_page(store, cosigner=w.did).items) == 3
    assert [c["size"] for c in explorer.cosignatures_page(store, size=12).items] == [12]
    health = explorer.witnesses(store).items
    assert health == [{"cosigner": w.did, "size": 13, "timestamp": 1_700_000_002, "behind_log": 1,
                       "behind_checkpoint": 0, "current": True}]  # fmt: skip
    counts = explorer.type_counts(store)
    assert counts["types"] == {"identity.register": 11, "checkpoint.cosign": 3}
    ledger.append([regulator.sign("identity.register", member().register_payload())])
    assert explorer.type_counts(store, counts)["types"]["identity.register"] == 12


def test_a_filtered_page_reads_an_index_range(tmp_path, regulator):
    """The plan SQLite chooses for each page: an index search, never a scan of the log."""
    led = Ledger.open(str(tmp_path / "l.db"), origin=ORIGIN)
    led.append([regulator.sign("identity.register", regulator.register_payload())])
    admit(led, regulator, 3)
    plans = []
    with led.store.engine.connect() as c:
        for where in ("type = 'identity.register' AND seq < 100", "submitter = 'did:key:x' AND seq < 100"):
            sql = f"EXPLAIN QUERY PLAN SELECT seq FROM entries WHERE {where} ORDER BY seq DESC LIMIT 51"
            plans.append(" ".join(str(r[-1]) for r in c.execute(text(sql))))
        sql = "EXPLAIN QUERY PLAN SELECT did FROM members WHERE region LIKE '33%' ESCAPE '\\' ORDER BY seq DESC"
        plans.append(" ".join(str(r[-1]) for r in c.execute(text(sql))))
    assert "USING COVERING INDEX ix_entries_type_seq" in plans[0] or "USING INDEX ix_entries_type_seq" in plans[0]
    assert "ix_entries_submitter_seq" in plans[1]
    led.close()


def test_an_older_replica_gets_the_indexes_and_the_registry_on_open(tmp_path, regulator):
    path = str(tmp_path / "old.db")
    led = Ledger.open(path, origin=ORIGIN)
    led.append([regulator.sign("identity.register", regulator.register_payload())])
    ms = admit(led, regulator, 4)
    led.close()
    store = Store(path)
    with store.engine.begin() as c:  # as a replica made before the registry and its indexes
        c.execute(text("DROP TABLE members"))
        c.execute(text("DROP INDEX ix_entries_type_seq"))
        c.execute(text("DROP INDEX ix_cosignatures_size"))
    store.close()
    store = Store(path)
    assert registry.members_page(store, region="110000").items[0]["did"] == ms[3].did
    assert registry.members_page(store).filters["total"] == 5
    with store.engine.connect() as c:
        names = {r[0] for r in c.execute(text("SELECT name FROM sqlite_master WHERE type = 'index'"))}
    assert {"ix_entries_type_seq", "ix_cosignatures_size", "ix_members_region_seq"} <= names
    store.close()
