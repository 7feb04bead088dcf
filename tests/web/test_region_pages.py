"""The regulator's regional pages in process: the quality graph's map (the node's own SVG, inline; the 审图号
of an operator's GeoJSON), its queries as forms — recall, coverage, open notifications, supplier
concentration — with the same answers as `qdsn graph`; the indicators with each enterprise's level and
criteria, paged; the statistics page's task form and collection. Bad input is a clear page, never a 500."""

import json
import re
import time
from urllib.parse import quote

import pytest

from qdsn.api.app import create_app
from qdsn.clock import system_clock
from qdsn.errors import IntegrityError
from qdsn.graph.region import of_replica
from qdsn.node import Node, NodeHome
from qdsn.privacy import figures
from qdsn.privacy.collect import Figure
from qdsn.supervision import indicators
from qdsn.web import region as regional
from qdsn.web.staff import StaffStore

from ..api.conftest import FAST
from ..ledger.conftest import member
from .test_console_security import STAFF_PW, signed_in

PW = "node passphrase"
FIRMS = {"A": ("330106", "C3831"), "B": ("330203", "C3831"), "C": ("330102", "C3612"), "D": ("320505", "C3831")}
HOSTILE = "Evil\u202eCorp <script>alert(1)</script>"


@pytest.fixture
def world(tmp_path):
    """A regulator's node (the log operator) and four enterprises in two provinces with supply relations,
    a certificate and an open notification on its ledger."""
    home = NodeHome.init(tmp_path / "samr", "regulator", "浙江省市场监督管理局", PW, scrypt_n=FAST)
    node = Node(home, operator=True)
    app = create_app(node)
    store = StaffStore(home.path)
    for name, role in (("viewer", "viewer"), ("approver", "approver"), ("li.hua", "approver")):
        store.add(name, role, STAFF_PW)
    certifier = member("certifier", "某认证中心")
    firms = {k: member("enterprise", f"{k} 电缆有限公司") for k in FIRMS}
    firms["C"].name = HOSTILE
    regs = [home.sign("identity.register", certifier.register_payload())]
    regs += [home.sign("identity.register", f.register_payload() | {"region": FIRMS[k][0], "industry": FIRMS[k][1]})
             for k, f in firms.items()]  # fmt: skip
    node.submit(regs)

    def supply(by, s, c, product):
        return firms[by].sign("supply.relation", {"supplier": firms[s].did, "customer": firms[c].did,
                                                  "product": product})  # fmt: skip

    node.submit([supply("A", "A", "B", "cable"), supply("B", "A", "B", "cable"), supply("A", "A", "C", "cable"),
                 supply("D", "D", "C", "wire")])  # fmt: skip
    node.submit([certifier.sign("credential.issue", {
        "credential": "CQC-1", "vct": "urn:qdsn:vct:quality-certificate", "subject": firms["B"].did, "hash": "ab" * 32,
        "status_list": "https://cqc.example/status-lists/1", "index": 1})])  # fmt: skip
    note = {"notification": "n-1", "classification": "alert", "severity": "MAJOR", "sender": firms["A"].did,
            "recipient": firms["B"].did, "content": "00" * 32}  # fmt: skip
    for state in ("CREATED", "SENT"):
        node.submit([firms["A"].sign("notification.transition", note | {"state": state})])
    yield node, app, firms
    node.close()


def test_the_map_is_the_nodes_own_svg_with_the_graph_figures(world):
    node, app, _ = world
    c = signed_in(app, "viewer")
    page = c.get("/console/regulator/graph")
    assert page.status_code == 200, page.text[:500]
    svg = page.text.split("<svg", 1)[1].split("</svg>")[0]
    assert 'data-code="330000"' in svg and 'data-code="320000"' in svg  # two provinces: the nation's tiles
    assert "http" not in svg.replace("http://www.w3.org/2000/svg", "")  # nothing fetched from elsewhere
    assert "Tile-grid map" in page.text and "审图号" not in page.text
    zj = c.get("/console/regulator/graph", params={"province": "330000"}).text  # a province: its prefectures
    assert 'data-code="330100"' in zj and 'data-code="330200"' in zj and 'data-code="320500"' not in zj
    nation = c.get("/console/regulator/graph", params={"indicator": "enterprises"}).text
    g = of_replica(node.ledger.store, node.home.path)
    values = dict(sorted(g.indicator("enterprises", "province").items()))
    assert values == {"320000": 1, "330000": 3}
    assert "330000 浙江省</td><td>3</td>" in nation.replace("\n", "")
    assert "<script>alert" not in nation and "\u202e" not in nation


def test_a_geojson_map_shows_its_approval_number(world, tmp_path):
    node, app, _ = world
    square = [[[120.0, 30.0], [121.0, 30.0], [121.0, 31.0], [120.0, 31.0], [120.0, 30.0]]]
    doc = {"type": "FeatureCollection", "审图号": "GS(2024)0650号", "features": [
        {"type": "Feature", "properties": {"adcode": "330000", "name": "浙江省"},
         "geometry": {"type": "Polygon", "coordinates": square}}]}  # fmt: skip
    path = node.home.path / regional.BOUNDARIES
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    c = signed_in(app, "viewer")
    page = c.get("/console/regulator/graph", params={"indicator": "enterprises"})
    assert page.status_code == 200 and re.search(r'id="approval">GS\(2024\)0650号<', page.text)
    del doc["审图号"]  # a map of China without its approval number: refused, clearly
    time.sleep(0.01)
    path.write_text(json.dumps(doc), encoding="utf-8")
    refused = c.get("/console/regulator/graph")
    assert refused.status_code == 400 and "审图号" in refused.text and "Traceback" not in refused.text


def test_recall_lists_the_affected_enterprises_and_products(world):
    node, app, firms = world
    c = signed_in(app, "viewer")
    page = c.get("/console/regulator/graph/recall", params={"source": firms["A"].did})
    assert page.status_code == 200
    expected = of_replica(node.ledger.store, node.home.path).recall(firms["A"].did)
    listed = page.text.split('id="enterprises"')[1].split("</table>")[0]
    assert {e["did"] for e in expected.enterprises} == {firms["B"].did, firms["C"].did}
    for e in expected.enterprises:
        assert f"/console/regulator/members/{e['did']}" in listed
    assert firms["D"].did not in listed and "cable" in page.text and "CQC-1" in page.text
    assert "<script>alert" not in page.text and "\u202e" not in page.text
    # bad input: an unknown DID, something that is no DID, an unknown batch, nothing at all
    unknown = c.get("/console/regulator/graph/recall", params={"source": member().did})
    assert unknown.status_code == 404 and "not a participant of this log" in unknown.text
    bad = c.get("/console/regulator/graph/recall", params={"source": "did:example:<b>x</b>"})
    assert bad.status_code == 400 and "is not a DID" in bad.text
    batch = c.get("/console/regulator/graph/recall", params={"source": "urn:epc:id:sgtin:0614141.107346.2018"})
    assert batch.status_code == 404 and "is in no EPCIS event" in batch.text
    assert c.get("/console/regulator/graph/recall").status_code == 400
    assert c.get("/console/regulator/graph/recall", params={"source": "x" * 500}).status_code == 400


def test_coverage_open_notifications_and_supplier_concentration(world):
    node, app, firms = world
    g = of_replica(node.ledger.store, node.home.path)
    c = signed_in(app, "viewer")
    cov = c.get("/console/regulator/graph/coverage", params={"level": "prefecture", "region": "330000"})
    assert cov.status_code == 200
    rows = g.coverage("region", "prefecture", "330000")
    hz = next(r for r in rows if r["key"] == "330200")
    assert hz["certified"] == 1 and re.search(r"330200 宁波市</td><td>1</td><td>1</td><td>100.0 %", cov.text)
    assert c.get("/console/regulator/graph/coverage", params={"by": "industry"}).status_code == 200
    opened = c.get("/console/regulator/graph/open").text
    assert "n-1" in opened and firms["A"].did in opened and firms["B"].did in opened and "MAJOR" in opened
    sup = c.get("/console/regulator/graph/suppliers", params={"top": 5})
    doc = g.suppliers(None, None, False, 5)
    assert sup.status_code == 200 and f"HHI <strong>{doc['hhi']:,g}</strong>" in sup.text
    assert doc["relations"] == 3 and doc["hhi"] == pytest.approx(5555.6, abs=0.1)
    confirmed = c.get("/console/regulator/graph/suppliers", params={"confirmed": "true"}).text
    assert "1 supply relations" in confirmed  # only A→B is declared by both
    for path, params, status, said in (
        ("/console/regulator/graph/coverage", {"level": "street"}, 400, "level"),
        ("/console/regulator/graph/coverage", {"by": "colour"}, 400, "coverage by"),
        ("/console/regulator/graph/coverage", {"region": "999999"}, 400, "999999"),
        ("/console/regulator/graph/open", {"region": "33"}, 400, "six-digit"),
        ("/console/regulator/graph/suppliers", {"top": "-1"}, 400, "top"),
        ("/console/regulator/graph/suppliers", {"top": "many"}, 400, "top"),
        ("/console/regulator/graph", {"indicator": "happiness"}, 400, "happiness"),
        ("/console/regulator/graph", {"province": "330100"}, 400, "not a province"),
    ):  # fmt: skip
        r = c.get(path, params=params)
        assert r.status_code == status and said in r.text and "Traceback" not in r.text, (path, params, r.text[:300])


def test_indicators_of_a_region_and_each_enterprise_paged(world, monkeypatch):
    node, app, firms = world
    c = signed_in(app, "viewer")
    asking = c.get("/console/regulator/indicators")  # this regulator's registration names no region
    assert asking.status_code == 200 and "?region=33" in asking.text
    page = c.get("/console/regulator/indicators", params={"region": "33"})
    assert page.status_code == 200
    inside, summary = indicators.region(node.ledger, "33", system_clock())
    assert summary["enterprises"] == 3 and re.search(r"Enterprises: <strong>3</strong>", page.text)
    listed = page.text.split('id="enterprises"')[1]
    for a in inside:
        assert f"/indicators/enterprise?did={quote(a.did, safe='/')}" in listed
        for crit in a.criteria:
            assert crit.key in listed
    assert firms["D"].did not in listed and "检验级" in page.text and "\u202e" not in page.text
    monkeypatch.setattr(regional, "PAGE", 2)  # paged: two enterprises a page, then the third
    first = c.get("/console/regulator/indicators", params={"region": "33"}).text.split('id="enterprises"')[1]
    second = c.get("/console/regulator/indicators", params={"region": "33", "offset": 2}).text
    assert first.count("/indicators/enterprise?did=") == 2 and "offset=2" in first
    assert second.split('id="enterprises"')[1].count("/indicators/enterprise?did=") == 1
    one = c.get("/console/regulator/indicators/enterprise", params={"did": firms["B"].did})
    a = indicators.enterprise(node.ledger, firms["B"].did, system_clock())
    assert one.status_code == 200 and len(re.findall(r"<tr><td>[^<]+级 \(", one.text)) == len(a.criteria)
    for did, status, said in ((member().did, 404, "not registered"), ("nonsense", 400, "is not a DID"),
                              (None, 400, "is not a DID")):  # fmt: skip
        r = c.get("/console/regulator/indicators/enterprise", params={"did": did} if did else {})
        assert r.status_code == status and said in r.text, r.text[:300]
    r = c.get("/console/regulator/indicators", params={"region": "zhejiang"})
    assert r.status_code == 400 and "GB/T 2260" in r.text
    r = c.get("/console/regulator/indicators", params={"region": "33", "offset": -5})
    assert r.status_code == 400


def test_an_approver_creates_a_task_and_bad_forms_are_said_back(world):
    node, app, _ = world
    c = signed_in(app, "approver")
    page = c.get("/console/regulator/statistics")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)[1]
    assert "Create an aggregation task" in page.text
    form = {"csrf": token, "task": "zj-cable-footprints", "title": "电线电缆 碳足迹", "measure": "footprints",
            "categories": "urn:pact:cable\nurn:pact:motor", "leader_url": "https://cqc.example",
            "helper_url": "https://samr.example", "region": "330106", "min_batch": "2", "epsilon": "1",
            "budget": "2", "period": "86400"}  # fmt: skip
    size = node.ledger.size
    r = c.post("/console/regulator/statistics/tasks", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text[:500]
    t = node.ledger.state.tasks["zj-cable-footprints"]
    assert t.spec["vdaf"] == "Prio3SumVec" and t.spec["params"]["length"] == 4 and t.spec["helper"] == node.did
    assert t.spec["attributes"] == {"region": "330106"} and t.spec["collector"] == node.did
    assert figures.categories(node.home.path) == {"zj-cable-footprints": ["urn:pact:cable", "urn:pact:motor"]}
    assert StaffStore(node.home.path).trail(action="stats.task")[0]["subject"] == "zj-cable-footprints"
    shown = c.get(r.headers["location"]).text
    assert "Task created on the ledger" in shown and "zj-cable-footprints" in shown
    size = node.ledger.size
    for change, said in (({"measure": "sum"}, "needs its max"), ({"measure": "median"}, "VDAF is one of"),
                         ({"measure": "count", "task": "zj-cable-footprints"}, "already on the ledger"),
                         ({"measure": "count", "task": "t2", "leader_url": "ftp://x"}, "leader_url"),
                         ({"measure": "count", "task": "t2", "epsilon": "9", "budget": "2"}, "epsilon"),
                         ({"measure": "count", "task": "t2", "min_batch": "two"}, "not a number"),
                         ({"measure": "count", "task": "t2", "region": "", "reporters": "someone"}, "not a DID"),
                         ({"measure": "footprints", "task": "t2", "categories": " "}, "categories")):  # fmt: skip
        r = c.post("/console/regulator/statistics/tasks", data=form | change)
        assert r.status_code in (400, 404) and said in r.text and "Traceback" not in r.text, (change, r.text[:400])
    assert node.ledger.size == size  # nothing written by a refused form


def test_collected_figures_are_shown_in_a_table_and_a_bar_chart(world):
    node, app, _ = world
    figures.name_categories(node.home.path, "fp", ["urn:pact:cable", "urn:pact:motor"])
    figures.keep(node.home.path, Figure("fp", 0, "Prio3SumVec", [3000, 3, 15000, 1], 4, "cd" * 32, 1.0, 1.0, 2.0))
    figures.keep(node.home.path, Figure("units", 2, "Prio3Sum", 168, 4, "ef" * 32, 1.0, 1.0, 4.0))
    c = signed_in(app, "viewer")
    page = c.get("/console/regulator/statistics").text
    table = page.split('id="figures"')[1].split("</table>\n<p")[0]
    assert "urn:pact:cable" in table and "1,000 g CO2e" in table and "15,000 g CO2e" in table
    assert "<svg" in table and 'class="bars"' in table and "168" in table
    assert 'id="collect"' not in page and 'id="create"' not in page  # a viewer neither collects nor creates


def test_a_collection_runs_as_a_task_and_an_unreachable_leader_is_said(world):
    node, app, firms = world
    c = signed_in(app, "approver")
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/console/regulator/statistics").text)[1]
    spec = {"task": "t1", "title": "合格", "vdaf": "Prio3Count", "params": {}, "leader": firms["A"].did,
            "leader_url": "http://127.0.0.1:9", "helper": node.did, "helper_url": "http://127.0.0.1:8",
            "collector": node.did, "reporters": [firms["B"].did], "attributes": {}, "start": "2026-01-01T00:00:00Z",
            "period": 3600, "min_batch": 2, "epsilon": 1.0, "budget": 2.0}  # fmt: skip
    node.submit([node.home.sign("aggregate.task", spec)])
    r = c.post("/console/regulator/statistics/collect", data={"csrf": token, "task": "t1", "period": "0"},
               follow_redirects=False)  # fmt: skip
    where = r.headers["location"]
    assert r.status_code == 303 and "/statistics/collect/" in where
    deadline = time.monotonic() + 30
    while "data-task" in (shown := c.get(where).text) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "did not answer" in shown and "collect again" in shown and 'role="alert"' in shown
    assert figures.kept(node.home.path) == []
    for data, status, said in (({"task": "nothing", "period": "0"}, 404, "no aggregation task"),
                               ({"task": "t1", "period": "-1"}, 400, "period"),
                               ({"task": "t1"}, 400, "period")):  # fmt: skip
        r = c.post("/console/regulator/statistics/collect", data={"csrf": token, **data})
        assert r.status_code == status and said in r.text, r.text[:300]
    other = signed_in(app, "li.hua")  # another staff member cannot see this one's collection
    assert other.get(where).status_code == 404 and "no such collection" in other.get(where).text


def test_a_footprints_figure_with_a_noised_empty_category_and_hostile_labels(tmp_path):
    # noise can leave a category's count at zero or below: there is then no mean to give, not a division by it
    rows = figures.per_category([3000, 3, 40, -1, 7, 0], ["cable", "motor", "lamp"])
    assert [r["mean"] for r in rows] == [1000.0, None, None]
    svg = regional.bar_chart(["<script>x</script>", "a&b"], [5, -3], "t <b>")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "a&amp;b" in svg and "t &lt;b&gt;" in svg
    assert 'width="0.0"' in svg  # a negative (noised) value draws no bar, its number is still written
    # kept whole: a period collected again replaces its copy, never a second row
    f = Figure("t", 0, "Prio3Count", 7, 3, "ab" * 32, 1.0, 1.0, 2.0)
    figures.keep(tmp_path, f)
    figures.keep(tmp_path, f)
    assert figures.kept(tmp_path) == [f] and not list((tmp_path / "stats").glob("*.tmp"))
    (tmp_path / figures.FILE).write_text("{not json")
    with pytest.raises(IntegrityError, match="not the file this node writes"):
        figures.kept(tmp_path)


def test_the_regional_pages_in_chinese(world):
    node, app, firms = world
    figures.name_categories(node.home.path, "fp", ["urn:pact:cable"])
    figures.keep(node.home.path, Figure("fp", 0, "Prio3SumVec", [3000, 3], 3, "cd" * 32, 1.0, 1.0, 2.0))
    c = signed_in(app, "approver")
    zh = {"Accept-Language": "zh-CN"}
    for path, params, said in (
        ("/console/regulator/graph", {}, "区域质量图谱"),
        ("/console/regulator/graph/recall", {"source": firms["A"].did}, "下游共 2 家企业"),
        ("/console/regulator/graph/coverage", {}, "认证覆盖率"),
        ("/console/regulator/graph/open", {}, "存在未结通报的企业"),
        ("/console/regulator/graph/suppliers", {}, "集中程度相当于"),
        ("/console/regulator/indicators", {"region": "33"}, "区域指标"),
        ("/console/regulator/indicators/enterprise", {"did": firms["B"].did}, "判定条件"),
        ("/console/regulator/statistics", {}, "已收集的统计结果"),
    ):  # fmt: skip
        r = c.get(path, params=params, headers=zh)
        assert r.status_code == 200 and said in r.text, (path, r.text[:300])
