"""The regulator's regional journey in a real browser, on a consortium of node processes: the regulator (log
operator, the task's helper and collector) and the certification body (the task's leader) each run `qdsn node
start`. The regulator creates an aggregation task in the console, three manufacturers report to it (Prio3,
each report checked by both aggregators), and the regulator collects the period's figure from the page — a
task of the node whose progress the page shows — then sees it in the statistics' table and chart and beside
the regional map. Nothing is fetched from outside the node; every page is saved as a screenshot."""

import time

from qdsn.api.client import NodeClient
from qdsn.node import Node, NodeHome
from qdsn.privacy import aggregator, reporter
from qdsn.web.staff import StaffStore

from ..api.conftest import FAST
from ..services import free_port
from .conftest import sign_in, start_node, stop

PW = "regulator passphrase"
STAFF = "a long staff password"
UNITS = [[120, 3], [80, 0], [200, 5]]  # each maker's [units inspected, units nonconforming]


def test_the_regulator_collects_a_regional_figure_and_sees_it_by_the_map(tmp_path, journey):
    started = time.monotonic()
    reg = NodeHome.init(tmp_path / "reg", "regulator", "浙江省市场监督管理局", PW, scrypt_n=FAST)
    cqc = NodeHome.init(tmp_path / "cqc", "certifier", "CQC", PW, origin=reg.origin, scrypt_n=FAST)
    makers = [NodeHome.init(tmp_path / f"m{i}", "enterprise", f"杭州某某电缆 {i}", PW, origin=reg.origin,
                            scrypt_n=FAST) for i in range(3)]  # fmt: skip
    reg.submit("identity.register", cqc.registration())
    for i, m in enumerate(makers):
        reg.submit("identity.register", m.registration() | {"region": ("330106", "330203", "330102")[i],
                                                             "industry": "C3831"})  # fmt: skip
    StaffStore(reg.path).add("zhou.min", "approver", STAFF)
    ports = {"reg": free_port(), "cqc": free_port()}
    url = {k: f"http://127.0.0.1:{p}" for k, p in ports.items()}
    procs = [start_node(reg.path, ports["reg"], PW)]
    procs.append(start_node(cqc.path, ports["cqc"], PW, operator=url["reg"]))
    try:
        j = journey(url["reg"])
        sign_in(j, "zhou.min", STAFF)
        j.goto("/console/regulator/statistics")
        assert j.page.locator("#create").get_attribute("open") is not None  # no task yet: the form is open
        form = {"task": "zj-cable-units", "title": "浙江电线电缆 检验与不合格数", "maximum": "255", "length": "2",
                "leader_url": url["cqc"], "helper_url": url["reg"], "region": "", "industry": "C3831",
                "min_batch": "3", "epsilon": "20", "budget": "40", "period": "86400"}  # fmt: skip
        for name, value in form.items():
            j.page.fill(f"#create [name={name}]", value)
        j.page.select_option("#create select[name=measure]", "sumvec")
        j.submit("#create button", "task-created")
        assert "Task created on the ledger" in j.page.inner_text("#created")
        assert "zj-cable-units" in j.page.inner_text("#tasks")

        for m, value in zip(makers, UNITS, strict=True):  # each maker's node sends its report, as qdsn stats report
            node = Node(m, operator=False, link=NodeClient(url["reg"], m.key(), m.did))
            store = aggregator.open_store(m)
            leader = NodeClient(url["cqc"], m.key(), m.did)
            try:
                node.catch_up()
                assert reporter.send(node, store, "zj-cable-units", value, leader)["period"] == 0
            finally:
                leader.close()
                store.close()
                node.close()

        j.goto("/console/regulator/statistics", "statistics-reported")
        j.page.select_option("#collect select[name=task]", "zj-cable-units")
        j.page.fill("#collect input[name=period]", "0")
        j.submit("#collect button", "collecting")
        j.page.wait_for_selector("#outcome", timeout=60_000)  # the page's script follows the task, then reloads
        j.snap("collected")
        outcome = j.page.inner_text("#outcome")
        assert "over 3 reports" in outcome, outcome

        j.goto("/console/regulator/statistics", "statistics-figures")
        figures = j.page.inner_text("#figures")
        assert "zj-cable-units" in figures and "Prio3SumVec" in figures
        assert j.page.locator("#figures svg.bars rect").count() == 2  # the node's bar chart of the two sums
        inspected = int(j.page.locator("#figures td.figure").first.inner_text().replace(",", ""))
        assert abs(inspected - sum(u[0] for u in UNITS)) <= 400  # noised: scale 2 × 255 / ε 20 per aggregator

        j.goto("/console/regulator/graph", "map")
        assert j.page.locator("#map svg g.tile[data-code='330100']").count() == 1  # 杭州: one province, its cities
        assert "浙江电线电缆" in j.page.inner_text("#regional-figures")
        assert "330100 杭州市" in j.page.inner_text("#values") and "330200 宁波市" in j.page.inner_text("#values")
        j.goto("/console/regulator/indicators?region=33", "indicators")
        assert j.page.inner_text("#enterprise-count").endswith("3 · valid certificates 0 · suspended certificates 0")
    finally:
        stop(procs)
    print(f"regional journey: {time.monotonic() - started:.1f} s")
