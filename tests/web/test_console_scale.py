"""The console's lists page through what they hold and cost what they show: the risk classes, a region's
indicators and the maker's footprints, each walked through its first, middle, last and an empty page against
what the command computes for the whole; and a page's work counted for a region and one ten times larger."""

import re

import pytest
from sqlalchemy import event

from qdsn.api.app import create_app
from qdsn.clock import system_clock
from qdsn.crypto import SigningKey
from qdsn.identity import did_key_from_public_key, multikey_from_public_key
from qdsn.node import Node, NodeHome, pact
from qdsn.supervision import evidence, indicators, risk
from qdsn.web import green, region, supervision
from qdsn.web.staff import StaffStore

from ..api.conftest import FAST
from .test_console_security import STAFF_PW, signed_in
from .test_green_pages import client, footprint_of
from .test_green_pages import maker as maker  # the fixture

R = "/console/regulator"


def regional(tmp_path, n: int):
    """A regulator's node whose log holds `n` enterprises of one county (330106) and, for every third of them,
    a failed sampling inspection and for every fifth a passed one, so that their risk scores differ."""
    home = NodeHome.init(tmp_path / f"samr-{n}", "regulator", "浙江省市场监督管理局", "pw", scrypt_n=FAST)
    node = Node(home, operator=True)
    dids = []
    regs = []
    for i in range(n):
        key = SigningKey.generate()
        did = did_key_from_public_key(key.verify_key.raw)
        dids.append(did)
        regs.append(home.sign("identity.register", {"did": did, "role": "enterprise", "name": f"电缆企业 {i:04d}",
                                                    "key": multikey_from_public_key(key.verify_key.raw),
                                                    "region": "330106", "industry": "C3831"}))  # fmt: skip
    for i in range(0, n, 200):
        node.submit(regs[i : i + 200])
    results = [home.sign("inspection.result", {"enterprise": d, "product": "电线电缆", "standard": "GB/T 5023.3-2008",
                                               "passed": i % 3 != 0, "date": "2026-01-05"})
               for i, d in enumerate(dids) if i % 3 == 0 or i % 5 == 0]  # fmt: skip
    for i in range(0, len(results), 200):
        node.submit(results[i : i + 200])
    app = create_app(node)
    StaffStore(home.path).add("viewer", "viewer", STAFF_PW)
    return node, app, dids


def listed(html: str, table: str) -> list[str]:
    body = html.split(f'id="{table}"')[1].split("</table>")[0]
    return re.findall(r'<span class="did">([^<]*)</span>', body)


def short(did: str) -> str:
    return did if len(did) <= 29 else did[:28] + "…"


def test_the_risk_classes_page_through_the_commands_ranking(tmp_path, monkeypatch):
    node, app, _ = regional(tmp_path, 23)
    try:
        monkeypatch.setattr(supervision, "PAGE", 5)
        c = signed_in(app, "viewer")
        day = system_clock().date()
        want = sorted(risk.assess_all(evidence.read(node.ledger, day), day).values(),
                      key=lambda a: (-a.score, a.enterprise))  # what `qdsn supervise risk` lists  # fmt: skip
        assert len({a.score for a in want}) > 1  # the order is a real one
        seen = []
        for start in (0, 5, 10, 15, 20):  # first, middle pages, the last (three)
            page = c.get(f"{R}/risk", params={"start": start}).text
            rows = listed(page, "risk")
            assert rows == [short(a.enterprise) for a in want[start : start + 5]], start
            seen += rows
            assert (f"start={start + 5}" in page) == (start + 5 < 23) and (start == 0 or "start=" in page)
        assert len(seen) == 23 == len(set(seen))
        for a in want[:5]:  # each row explained as the command explains it
            first = c.get(f"{R}/risk").text
            assert f"{a.score:.2f}" in first and all(f"{f.contribution:.2f}" in first for f in a.factors)
        beyond = c.get(f"{R}/risk", params={"start": 40}).text
        assert listed(beyond, "risk") == [] and "No enterprise in this scope." in beyond
        empty = c.get(f"{R}/risk", params={"region": "11"}).text  # a scope that holds none
        assert listed(empty, "risk") == [] and "No enterprise in this scope." in empty
        d = next(a.enterprise for a in want if a.risk_class == want[0].risk_class)
        only = c.get(f"{R}/risk", params={"class": want[0].risk_class}).text
        assert short(d) in listed(only, "risk")
    finally:
        node.close()


def explained(monkeypatch) -> list:
    """Every enterprise `risk.assess` explains from now on."""
    calls: list = []
    real = risk.assess
    monkeypatch.setattr(risk, "assess", lambda ev, day: calls.append(ev.enterprise) or real(ev, day))
    return calls


def test_a_risk_page_explains_only_what_it_shows_and_folds_only_what_is_new(tmp_path, monkeypatch):
    """Ten times the enterprises: the same work per page. Each page explains its own rows only, and once the
    log's evidence is folded, a grown log is folded from where it was, not from its start."""
    monkeypatch.setattr(supervision, "PAGE", 5)
    calls = explained(monkeypatch)
    real = evidence.Tally.fold
    work = {}
    for n in (12, 120):
        node, app, dids = regional(tmp_path, n)
        try:
            c = signed_in(app, "viewer")
            calls.clear()
            assert len(listed(c.get(f"{R}/risk").text, "risk")) == 5
            assert len(calls) == 5  # not every enterprise of the region
            calls.clear()
            assert len(listed(c.get(f"{R}/risk", params={"start": 5}).text, "risk")) == 5 and len(calls) == 5
            folded: list[int] = []

            def fold(t, store, upto=None, folded=folded):
                folded.append(t.size)
                return real(t, store, upto)

            monkeypatch.setattr(evidence.Tally, "fold", fold)
            size = node.ledger.size
            node.submit([node.home.sign("inspection.result", {"enterprise": dids[1], "product": "电线电缆",
                                                              "standard": "GB/T 5023.3-2008", "passed": False,
                                                              "date": "2026-01-06"})])  # fmt: skip
            calls.clear()
            again = c.get(f"{R}/risk").text
            work[n] = len(calls)
            assert folded == [size] and work[n] == 5  # from where it was: only the new entry is read
            day = system_clock().date()
            want = sorted(risk.assess_all(evidence.read(node.ledger, day), day).values(),
                          key=lambda a: (-a.score, a.enterprise))  # fmt: skip
            assert listed(again, "risk") == [short(a.enterprise) for a in want[:5]]
            monkeypatch.setattr(evidence.Tally, "fold", real)
        finally:
            node.close()
    assert work[12] == work[120]


def test_the_indicators_page_through_the_region_by_name(tmp_path, monkeypatch):
    node, app, _ = regional(tmp_path, 23)
    try:
        monkeypatch.setattr(region, "PAGE", 5)
        c = signed_in(app, "viewer")
        now = system_clock()
        inside, _ = indicators.region(node.ledger, "33", now)  # what `qdsn indicators region` shows
        by_name = sorted(inside, key=lambda a: (a.name, a.did))
        seen = []
        for offset in (0, 5, 10, 20):  # the first, middle and last (three) pages
            page = c.get(f"{R}/indicators", params={"region": "33", "offset": offset}).text
            body = page.split('id="enterprises"')[1].split("</table>")[0]
            names = re.findall(r'enterprise\?did=[^"]+">([^<]+)</a>', body)
            assert names == [a.name for a in by_name[offset : offset + 5]], offset
            for a in by_name[offset : offset + 5]:  # each at its level with every criterion
                row = body.split(a.name)[1].split("</tr>")[0]
                assert all(f"{'✓' if x.met else '✗' if x.met is False else '?'} {x.key}" in row for x in a.criteria)
            seen += names
            assert "Enterprises: <strong>23</strong>" in page and (f"offset={offset + 5}" in page) == (offset < 20)
        assert len(set(seen)) == 18  # three pages of five and the last three
        r = c.get(f"{R}/indicators", params={"region": "33", "offset": 25})
        assert r.status_code == 404 and "no enterprise at offset 25" in r.text
        empty = c.get(f"{R}/indicators", params={"region": "11"}).text  # a region that holds none
        assert "No enterprise is registered in this region." in empty and "Enterprises: <strong>0</strong>" in empty
    finally:
        node.close()


def test_an_indicators_page_reads_and_assesses_only_its_enterprises(tmp_path, monkeypatch):
    """Ten times the enterprises: the same work per page, once the region's summary is kept — the page's
    enterprises read from their own entries and assessed, never the region's."""
    monkeypatch.setattr(region, "PAGE", 5)
    read, assessed = [], []
    real_read, real_assess = indicators.read_facts, indicators.assess
    monkeypatch.setattr(indicators, "read_facts", lambda led, dids=None, outputs=None: read.append(
        None if dids is None else len(list(dids))) or real_read(led, dids, outputs))  # fmt: skip
    monkeypatch.setattr(indicators, "assess", lambda f, now: assessed.append(f.did) or real_assess(f, now))
    work = {}
    for n in (12, 120):
        node, app, _ = regional(tmp_path, n)
        try:
            c = signed_in(app, "viewer")
            assert c.get(f"{R}/indicators", params={"region": "33"}).status_code == 200  # the summary, kept
            read.clear(), assessed.clear()
            statements: list[str] = []
            engine = node.ledger.store.engine

            def count(conn, cursor, statement, *_, statements=statements):
                statements.append(statement)

            event.listen(engine, "before_cursor_execute", count)
            try:
                page = c.get(f"{R}/indicators", params={"region": "33", "offset": 5}).text
            finally:
                event.remove(engine, "before_cursor_execute", count)
            assert f"Enterprises: <strong>{n}</strong>" in page
            assert read == [5] and len(assessed) == 5
            work[n] = (list(read), len(assessed), len(statements))
        finally:
            node.close()
    assert work[12] == work[120]


def test_the_footprints_page_through_the_vault_and_read_only_their_page(maker, monkeypatch):
    node, app, records = maker
    monkeypatch.setattr(green, "PAGE", 20)
    c = client(app)
    none = c.get("/console/enterprise/footprints").text  # empty: no footprint yet
    assert "No footprint yet" in none and 'id="pager"' not in none
    base = footprint_of(records)
    older = [base] + [footprint_of(records) | {"productIds": [f"urn:gtin:69000000{i:05d}"]} for i in range(24)]
    pact.add_footprints(node, "fps-2025", older)
    newer = [footprint_of(records) | {"productIds": [f"urn:gtin:69100000{i:05d}"]} for i in range(30)]
    newer[29] = newer[29] | {"precedingPfIds": [newer[2]["id"], newer[5]["id"]]}  # changed footprints: a new one
    pact.add_footprints(node, "fps-2026", newer)
    # What `qdsn footprint list` reads, newest first: the second dataset's last footprint first.
    every = [(d, pf) for d in pact.footprint_datasets(node) for pf in pact.stored(node, d)][::-1]
    assert len(every) == 55 and sum(pf["status"] == "Deprecated" for _, pf in every) == 2
    reads = []
    real = node.vault.records
    monkeypatch.setattr(node.vault, "records", lambda d, start=0, end=None: reads.append((d, start, end)) or
                        real(d, start, end))  # fmt: skip
    for page in (1, 2, 3):  # the preceding ids each dataset names, read once (then only what is anchored since)
        c.get("/console/enterprise/footprints", params={"page": page})
    assert sum((e - s) for d, s, e in reads if d.startswith("fps")) == 55 + 55
    for page in (1, 2, 3):  # the first, the middle (across both datasets) and the last
        reads.clear()
        html = c.get("/console/enterprise/footprints", params={"page": page}).text
        ids = re.findall(r'href="/console/enterprise/footprints/([0-9a-f-]{36})"', html)
        want = every[(page - 1) * 20 : page * 20]
        assert ids == [pf["id"] for _, pf in want], page
        statuses = re.findall(r"<td>(Active|Deprecated)</td>", html)
        assert statuses == [pf["status"] for _, pf in want], page
        assert f"Page {page} of 3" in html
        assert sum((e - s) for d, s, e in reads if d.startswith("fps")) == len(want)  # only the page, from the vault
    assert c.get("/console/enterprise/footprints", params={"page": 2}).text.count("<td>Deprecated</td>") == 2
    r = c.get("/console/enterprise/footprints", params={"page": 4})
    assert r.status_code == 404 and "no page 4" in r.text


@pytest.fixture(autouse=True)
def _no_kept_pages():
    """Each test's rankings and summaries start empty (they are kept per process)."""
    region._assessed.clear()
    yield
    region._assessed.clear()
