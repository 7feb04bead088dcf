"""The regulator's supervision in a real browser, on its node process: a manufacturer's quality notification
is delivered to the regulator's node over the signed API (sealed to its key, checked against the ledger,
RECEIVED recorded there), the regulator sees it on its notifications page, acknowledges it and declines it
with a reason; then it suspends the manufacturer through the actions form and sees its risk class. Nothing
is fetched from outside the node; every page is saved as a screenshot."""

import base64
import time

from qdsn.api.client import NodeClient
from qdsn.clock import system_clock
from qdsn.crypto import hpke
from qdsn.identity.didkey import x25519_from_ed25519
from qdsn.node import NodeHome, notify
from qdsn.supervision import notifications as qn
from qdsn.web.staff import StaffStore

from ..api.conftest import FAST
from ..services import free_port
from .conftest import sign_in, start_node, stop

PW = "regulator passphrase"
STAFF = "a long staff password"


def test_the_regulator_answers_a_notification_and_suspends_its_sender(tmp_path, journey):
    started = time.monotonic()
    reg = NodeHome.init(tmp_path / "reg", "regulator", "浙江省市场监督管理局", PW, scrypt_n=FAST)
    maker = NodeHome.init(tmp_path / "m", "enterprise", "宁波某某电器", PW, origin=reg.origin, scrypt_n=FAST)
    reg.submit("identity.register", maker.registration() | {"region": "330203", "industry": "C3831"})
    StaffStore(reg.path).add("zhou.min", "approver", STAFF)
    port = free_port()
    procs = [start_node(reg.path, port, PW)]
    try:
        base = f"http://127.0.0.1:{port}"
        # the manufacturer raises an alert about its own cable to the regulator and delivers it, as
        # `qdsn notify raise --send` does: CREATED and SENT on the log, then the content sealed to the regulator
        n = qn.new(maker.did, reg.did, "alert", "CRITICAL", "BV 2.5 电缆导体电阻超标，已停止发货",
                   now=system_clock(),
                   affected={"batches": ["line-1#0+200"]})  # fmt: skip
        client = NodeClient(base, maker.key(), maker.did)
        for state in ("CREATED", "SENT"):
            env = maker.sign("notification.transition", n.transition(state))
            client.call("POST", "/ledger/transactions", {"transactions": [env.to_json()]})
        sealed = hpke.seal(x25519_from_ed25519(reg.key().verify_key.raw), n.canonical(), notify.info(n))
        got = client.call("POST", "/notifications/inbox", {"notification": n.id, "suite": hpke.SUITE,
                          "sealed": base64.urlsafe_b64encode(sealed).decode().rstrip("=")})  # fmt: skip
        assert got == {"notification": n.id, "state": "RECEIVED"}

        j = journey(base)
        sign_in(j, "zhou.min", STAFF)
        j.goto("/console/regulator/notifications", "notifications")
        listed = j.page.inner_text("#notifications")
        assert n.id in listed and "宁波某某电器" in listed and "CRITICAL" in listed and "RECEIVED" in listed
        j.page.click(f"#notifications a[href='/console/regulator/notifications/{n.id}']")
        j.snap("notification")
        assert "已停止发货" in j.page.inner_text("#description") and "line-1#0+200" in j.page.inner_text("#affected")
        j.submit("#moves button[value=ACKNOWLEDGED]", "acknowledged")
        assert j.page.inner_text("#state") == "ACKNOWLEDGED"
        j.page.fill("#moves form:has(button[value=DECLINED]) textarea[name=reason]", "请向认证机构报告")
        j.submit("#moves button[value=DECLINED]", "declined")
        assert j.page.inner_text("#state") == "DECLINED" and "请向认证机构报告" in j.page.inner_text("#history")

        j.goto("/console/regulator/actions", "actions")
        j.page.select_option("#act select[name=scope]", "member")
        j.page.fill("#act input[name=subject]", maker.did)
        j.page.fill("#act textarea[name=reason]", "产品存在严重质量问题")
        j.page.fill("#act input[name=notification]", n.id)
        j.submit("#act button", "suspended")
        assert "宁波某某电器" in j.page.inner_text("#in-force") and n.id in j.page.inner_text("#actions")
        j.goto("/console/regulator/risk", "risk")
        assert "宁波某某电器" in j.page.inner_text("#risk")
    finally:
        stop(procs)
    print(f"supervision journey: {time.monotonic() - started:.1f} s")
