"""The regulator's journey in a real browser, on its node process: admit a member through the form, find
it in the registry by region and industry, see the certificate a certification body issued it, a regional
figure (members per prefecture, a released aggregation period) and the ledger entries behind them. Nothing
is fetched from outside the node; every page is saved as a screenshot.

The certificate and the aggregation batch are put on the log as the certification body's and the leader's
signed transactions, validated by the ledger like any other; how a certificate is earned is the certifier's
journey (test_certifier_journey)."""

import time

from qdsn.api.client import NodeClient
from qdsn.crypto import SigningKey
from qdsn.identity import did_key_from_public_key
from qdsn.node import NodeHome
from qdsn.web.staff import StaffStore

from ..api.conftest import FAST
from ..services import free_port
from .conftest import sign_in, start_node, stop

PW = "regulator passphrase"
STAFF = "a long staff password"


def test_the_regulator_sees_the_member_its_certificate_and_a_regional_figure(tmp_path, journey):
    started = time.monotonic()
    reg = NodeHome.init(tmp_path / "reg", "regulator", "浙江省市场监督管理局", PW, scrypt_n=FAST)
    cqc = NodeHome.init(tmp_path / "cqc", "certifier", "CQC", PW, origin=reg.origin, scrypt_n=FAST)
    makers = [NodeHome.init(tmp_path / f"m{i}", "enterprise", f"宁波某某电器 {i}", PW, origin=reg.origin,
                            scrypt_n=FAST) for i in range(2)]  # fmt: skip
    reg.submit("identity.register", cqc.registration())
    for i, m in enumerate(makers):
        reg.submit("identity.register", m.registration() | {"region": "330203", "industry": "C3831" if i else "C3360"})
    new_key = SigningKey.generate()
    admitted = did_key_from_public_key(new_key.verify_key.raw)
    StaffStore(reg.path).add("zhou.min", "approver", STAFF)
    port = free_port()
    procs = [start_node(reg.path, port, PW)]
    try:
        base = f"http://127.0.0.1:{port}"
        began = time.monotonic()  # the regulator's time in the browser, without starting its node
        j = journey(base, lang="zh-CN")
        sign_in(j, "zhou.min", STAFF)
        assert j.page.url.endswith("/console/regulator/overview")
        j.submit("form.lang button[value=en]", "overview")
        assert j.page.inner_text("h1") == "Overview"
        j.goto("/console/regulator/members")
        j.page.fill("#add input[name=did]", admitted)
        j.page.fill("#add input[name=name]", "杭州某某电缆有限公司")
        j.page.fill("#add input[name=credit_code]", "91330100716105852F")
        j.page.fill("#add input[name=region]", "330106")
        j.page.fill("#add input[name=industry]", "C3831")
        j.page.fill("#add input[name=address]", "杭州市西湖区某路 1 号")
        j.submit("#add button", "admitted")
        assert "Admitted" in j.page.inner_text("main") and "浙江省 杭州市 西湖区" in j.page.inner_text("#record")

        # what other members put on the log meanwhile: a certificate, a task and its released period
        def submit(home, type, payload):  # through the node's API, as each member's node sends them
            env = home.sign(type, payload)
            client = NodeClient(base, home.key(), home.did)
            client.call("POST", "/ledger/transactions", {"transactions": [env.to_json()]})

        submit(cqc, "credential.issue", {
            "credential": "CQC-7", "vct": "urn:qdsn:vct:quality-certificate", "subject": admitted, "hash": "ab" * 32,
            "status_list": "https://cqc.example/status-lists/1", "index": 7})  # fmt: skip
        submit(reg, "aggregate.task", {
            "task": "zj-cable-2026", "title": "浙江电线电缆 合格率", "vdaf": "Prio3Count", "leader": cqc.did,
            "leader_url": "https://cqc.example", "helper": reg.did, "helper_url": "https://reg.example",
            "collector": reg.did, "attributes": {"region": "33"}, "start": "2026-01-01T00:00:00Z", "period": 86400,
            "min_batch": 2, "epsilon": 1.0, "budget": 4.0})  # fmt: skip
        submit(cqc, "aggregate.batch", {"task": "zj-cable-2026", "period": 0, "count": 3, "root": "cd" * 32,
                                        "epsilon": 1.0, "collector": reg.did})  # fmt: skip

        j.goto("/console/regulator/members?region=330000&industry=C38", "registry-filtered")
        registry = j.page.inner_text("#registry")
        assert "杭州某某电缆有限公司" in registry and "宁波某某电器 1" in registry and "宁波某某电器 0" not in registry
        assert j.page.inner_text("#total").endswith("2")
        j.page.click(f"#registry a[href='/console/regulator/members/{admitted}']")
        j.snap("member")
        assert "CQC-7" in j.page.inner_text("#certificates") and "valid" in j.page.inner_text("#certificates")
        j.goto("/console/regulator/certificates")
        assert "CQC-7" in j.page.inner_text("#certificates")
        j.goto("/console/regulator/statistics")
        regions = j.page.inner_text("#regions")
        assert "浙江省 宁波市" in regions and "浙江省 杭州市" in regions
        assert "period 0: 3 reports" in j.page.inner_text("#tasks")
        j.goto("/console/regulator/ledger?type=credential.issue", "ledger-certificates")
        j.page.click("#entries a[href^='/console/regulator/ledger/entries/']")
        j.snap("entry")
        assert admitted in j.page.inner_text("#payload") and "CQC-7" in j.page.inner_text("#payload")
        j.goto("/console/regulator/overview", "overview-after")
        assert "credential.issue" in j.page.inner_text("#types")
        browsing = time.monotonic() - began
        assert browsing < 60, f"the regulator's journey took {browsing:.1f} s in the browser"
    finally:
        stop(procs)
    print(f"regulator journey: {browsing:.1f} s in the browser, {time.monotonic() - started:.1f} s in all")
