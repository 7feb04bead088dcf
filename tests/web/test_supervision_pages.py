"""The regulator's supervision pages in process: its quality notifications (the moves the state machine
allows it, a forbidden move and a missing reason refused), its actions (suspend and reinstate through the
same `actions.act` as `qdsn supervise`, in the staff audit log; an unknown DID refused), the risk classes
paged, and an inspection plan committed, drawn, verified by the page and given a result."""

import re

import pytest

from qdsn.api.app import create_app
from qdsn.clock import system_clock
from qdsn.node import Node, NodeHome, notify
from qdsn.supervision import actions, draw, evidence, inspections, risk
from qdsn.web import supervision
from qdsn.web.staff import StaffStore

from ..api.conftest import FAST
from .test_console_security import STAFF_PW, signed_in

PW = "node passphrase"
R = "/console/regulator"


class Inbox:
    """The regulator's node as a peer's API would reach it: a delivery goes to `notify.receive` there."""

    def __init__(self, node: Node, sender: str) -> None:
        self.node, self.sender = node, sender

    def call(self, method, path, payload=None):
        assert (method, path) == ("POST", "/notifications/inbox")
        return notify.receive(self.node, self.sender, payload)


@pytest.fixture
def world(tmp_path):
    reg = NodeHome.init(tmp_path / "samr", "regulator", "浙江省市场监督管理局", PW, scrypt_n=FAST)
    makers = [NodeHome.init(tmp_path / f"m{i}", "enterprise", f"宁波某某电器 {i}", PW, origin=reg.origin,
                            scrypt_n=FAST) for i in range(3)]  # fmt: skip
    for m in makers:
        reg.submit("identity.register", m.registration() | {"region": "330203", "industry": "C3831"})
    node = Node(reg, operator=True)
    maker = Node(makers[0], operator=True, ledger=node.ledger)
    app = create_app(node)
    store = StaffStore(reg.path)
    for role in ("viewer", "approver"):
        store.add(role, role, STAFF_PW)
    yield node, maker, makers, app
    maker.close()
    node.close()


def csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page)[1]


def investigation(maker: Node, node: Node, description: str = "电缆导体电阻超标，请调查原因") -> str:
    """A notification from a maker to the regulator, delivered to it (RECEIVED on the ledger)."""
    n = notify.raise_(maker, node.did, "alert", "MAJOR", description, affected={"batches": ["line-1#0+200"]})
    assert notify.send(maker, n.id, Inbox(node, maker.did))["state"] == "RECEIVED"
    return n.id


def test_the_regulator_sees_its_notifications_and_moves_one_as_the_state_machine_allows(world):
    node, maker, makers, app = world
    id = investigation(maker, node, "Evil <script>alert(1)</script> 导体电阻超标")
    other = NodeHome.open(makers[1].path, PW, scrypt_n=FAST)
    second = Node(other, operator=True, ledger=node.ledger)
    draft = notify.raise_(second, maker.did, "investigation", "MINOR", "草稿")  # a draft is the sender's: not counted
    sent = notify.raise_(second, maker.did, "investigation", "CRITICAL", "供应商来料不合格")  # between two makers
    assert notify.send(second, sent.id, Inbox(maker, second.did))["state"] == "RECEIVED"  # sent: counted, not shown
    assert draft.id != sent.id
    second.close()
    c = signed_in(app, "approver")
    page = c.get(f"{R}/notifications")
    assert page.status_code == 200 and id in page.text and "宁波某某电器 0" in page.text
    assert "RECEIVED" in page.text and "MAJOR" in page.text
    assert re.search(r'id="others-total">On the ledger: <strong>1</strong>', page.text)
    assert "CRITICAL" in page.text  # the other one's severity, counted
    detail = c.get(f"{R}/notifications/{id}")
    assert detail.status_code == 200 and "line-1#0+200" in detail.text
    assert "<script>alert" not in detail.text and "\u202e" not in detail.text
    assert 'value="ACKNOWLEDGED"' in detail.text and 'value="ACCEPTED"' not in detail.text  # what RECEIVED allows

    # a move the state machine forbids from RECEIVED: said back, nothing written
    size = node.ledger.size
    r = c.post(f"{R}/notifications/{id}", data={"state": "ACCEPTED", "csrf": csrf(detail.text)})
    assert r.status_code == 409 and "cannot move to ACCEPTED" in r.text and node.ledger.size == size
    r = c.post(f"{R}/notifications/{id}", data={"state": "CLOSED", "reason": "x", "csrf": csrf(detail.text)})
    assert r.status_code in (403, 409) and node.ledger.size == size  # the sender's move, not the recipient's
    r = c.post(f"{R}/notifications/{id}", data={"state": "SENT", "csrf": csrf(detail.text)})
    assert r.status_code == 400 and node.ledger.size == size

    r = c.post(f"{R}/notifications/{id}", data={"state": "ACKNOWLEDGED", "csrf": csrf(detail.text)},
               follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    detail = c.get(r.headers["location"])
    assert "Recorded on the ledger at entry" in detail.text and node.ledger.state.notices[id].state == "ACKNOWLEDGED"
    assert re.search(r'name="reason"[^>]*required', detail.text)  # declining needs a reason
    # declining without a reason: refused as the state machine refuses it
    r = c.post(f"{R}/notifications/{id}", data={"state": "DECLINED", "reason": "  ", "csrf": csrf(detail.text)})
    assert r.status_code == 400 and "needs a reason" in r.text and node.ledger.state.notices[id].state == "ACKNOWLEDGED"
    r = c.post(f"{R}/notifications/{id}", data={"state": "DECLINED", "reason": "不属于本局管辖",
                                               "csrf": csrf(detail.text)})  # fmt: skip
    assert "不属于本局管辖" in r.text and node.ledger.state.notices[id].state == "DECLINED"
    trail = StaffStore(node.home.path).trail(action="notification.move")
    assert [(t["staff"], t["subject"]) for t in trail] == [("approver", id)] * 2

    # somebody else's notification has no page here, and a viewer cannot move one
    assert c.get(f"{R}/notifications/qn-nothing").status_code == 404
    assert c.get(f"{R}/notifications/bad%20id").status_code == 400
    v = signed_in(app, "viewer")
    shown = v.get(f"{R}/notifications/{id}").text
    assert r.status_code == 200 and 'name="state"' not in shown
    assert v.post(f"{R}/notifications/{id}", data={"state": "CLOSED", "csrf": csrf(shown)}).status_code == 403


def test_an_approver_suspends_and_reinstates_with_a_reason(world):
    node, maker, _, app = world
    c = signed_in(app, "approver")
    page = c.get(f"{R}/actions")
    assert page.status_code == 200 and "Nothing is suspended now." in page.text and 'id="act"' in page.text
    token = csrf(page.text)
    form = {"action": "suspend", "scope": "member", "subject": maker.did, "reason": "抽查不合格 failed sampling",
            "csrf": token}  # fmt: skip
    r = c.post(f"{R}/actions", data=form, follow_redirects=False)
    assert r.status_code == 303
    (done,) = actions.history(node.ledger)
    assert (done.action, done.subject, done.reason, done.regulator) == ("suspend", maker.did, form["reason"], node.did)
    assert node.ledger.state.standings  # the fold enforces it
    shown = c.get(r.headers["location"]).text
    assert f"entry {done.seq}" in shown and "宁波某某电器 0" in shown and "抽查不合格" in shown
    assert re.search(r'id="in-force">.*宁波某某电器 0', shown, re.S)
    trail = StaffStore(node.home.path).trail(action="regulator.suspend")
    assert trail[0]["subject"] == maker.did and trail[0]["detail"]["entry"] == done.seq

    size = node.ledger.size
    for bad, says in (
        (form, "already suspended"),
        (form | {"reason": ""}, "says why"),
        (form | {"subject": "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"}, "not registered"),
        (form | {"subject": "nonsense"}, ""),
        (form | {"scope": "planet"}, "is not one of"),
        (form | {"action": "reinstate", "scope": "issuer"}, ""),
    ):
        r = c.post(f"{R}/actions", data=bad)
        assert 400 <= r.status_code < 500 and says in r.text, (bad, r.status_code, r.text[-600:])
        assert "Traceback" not in r.text and "This could not be done" in r.text
    assert node.ledger.size == size

    r = c.post(f"{R}/actions", data=form | {"action": "reinstate", "reason": "整改完成"}, follow_redirects=False)
    assert r.status_code == 303 and "Nothing is suspended now." in c.get(f"{R}/actions").text
    only = c.get(f"{R}/actions", params={"subject": maker.did}).text
    assert only.count("/console/regulator/ledger/entries/") == 2
    v = signed_in(app, "viewer")
    assert 'id="act"' not in v.get(f"{R}/actions").text
    assert v.post(f"{R}/actions", data=form | {"csrf": csrf(v.get(f"{R}/actions").text)}).status_code == 403


def test_the_risk_classes_are_the_commands_ordered_by_risk_and_paged(world, monkeypatch):
    node, _, makers, app = world
    c = signed_in(app, "viewer")
    before = c.get(f"{R}/risk").text
    inspections.record(node, makers[2].did, "电缆 BV 2.5", "GB/T 5023.3-2008", False, "2026-01-05")
    r = c.get(f"{R}/risk")  # the ledger grew: classed again, not the page kept from before
    assert r.status_code == 200 and r.text != before
    day = system_clock().date()  # as the page takes today
    found = risk.assess_all(evidence.read(node.ledger, day), day)  # what `qdsn supervise risk` computes
    want = sorted(found.values(), key=lambda a: (-a.score, a.enterprise))
    assert len(want) == 3 and want[0].enterprise == makers[2].did  # its failed inspection puts it first
    table = r.text.split('id="risk"')[1].split("</table>")[0]
    rows = re.findall(r'<span class="did">(did:key:[^<]*)</span>', table)
    assert [w.enterprise[:28] for w in want] == [x.rstrip("…")[:28] for x in rows]
    for f in want[0].factors:  # each factor's contribution, as `qdsn supervise risk` prints it
        assert f"{f.contribution:.2f}" in r.text
    assert f"<strong>{want[0].risk_class}</strong>" in r.text and "Enterprises: <strong>3</strong>" in r.text

    monkeypatch.setattr(supervision, "PAGE", 2)  # pages of two: the second page holds the third enterprise
    first = c.get(f"{R}/risk", params={"region": "3302"}).text
    assert first.split('id="risk"')[1].split("</table>")[0].count('class="did"') == 2 and "start=2" in first
    second = c.get(f"{R}/risk", params={"region": "3302", "start": 2}).text
    assert second.split('id="risk"')[1].split("</table>")[0].count('class="did"') == 1 and "start=0" in second
    assert "No enterprise in this scope." in c.get(f"{R}/risk", params={"region": "11"}).text
    top = want[0].risk_class
    only = c.get(f"{R}/risk", params={"class": top}).text
    assert f"Enterprises: <strong>{sum(a.risk_class == top for a in want)}</strong>" in only
    assert makers[2].did[:28] in only and f"<strong>{top}</strong> {risk.CLASS_NAMES[top]}: " in only
    for bad in ({"region": "zj"}, {"industry": "38"}, {"as_of": "2026-02-30"}, {"class": "E"}, {"start": -1}):
        r = c.get(f"{R}/risk", params=bad)
        assert r.status_code == 400 and "Traceback" not in r.text, bad


def test_a_plan_is_committed_drawn_verified_and_given_a_result(world):
    node, _, makers, app = world
    c = signed_in(app, "approver")
    page = c.get(f"{R}/plans")
    assert page.status_code == 200 and "No inspection plan yet." in page.text
    token = csrf(page.text)
    form = {"plan": "2026-Q1-wire", "title": "电线电缆 2026 年第一季度", "count": "2", "region": "3302",
            "inspectors": "zj-001\nzj-002\nzj-003", "per_inspection": "2", "csrf": token}  # fmt: skip
    r = c.post(f"{R}/plans", data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"{R}/plans/2026-Q1-wire"
    p = node.ledger.state.plans["2026-Q1-wire"]
    assert p.drawn is None and (node.home.path / "inspection-seeds" / f"{p.commitment}.json").exists()
    shown = c.get(r.headers["location"]).text
    assert "Not drawn yet." in shown and p.commitment in shown and 'id="draw"' in shown

    size = node.ledger.size
    for bad, says in ((form, "already exists"), (form | {"plan": "p2", "count": "9"}, "cannot draw 9"),
                      (form | {"plan": "p2", "weights": "A=1"}, "weigh"),
                      (form | {"plan": "p2", "count": "x"}, "count"),
                      (form | {"plan": "p2", "region": "11"}, "no enterprise"),
                      (form | {"plan": "a b"}, "plan")):  # fmt: skip
        r = c.post(f"{R}/plans", data=bad)
        assert 400 <= r.status_code < 500 and says in r.text, (bad, r.status_code, r.text[-500:])
    assert node.ledger.size == size

    r = c.post(f"{R}/plans/2026-Q1-wire/draw", data={"csrf": token}, follow_redirects=False)
    assert r.status_code == 303
    drawn = node.ledger.state.plans["2026-Q1-wire"]
    shown = c.get(r.headers["location"]).text
    assert "Verification: verified" in shown and "is the one the seed gives (2 enterprises)" in shown
    for did in drawn.selection:
        assert did in shown
    assert draw.verify(node.ledger, "2026-Q1-wire").ok
    again = c.post(f"{R}/plans/2026-Q1-wire/draw", data={"csrf": token})
    assert again.status_code == 409 and "drawn once" in again.text
    assert c.post(f"{R}/plans/nothing/draw", data={"csrf": token}).status_code == 404
    assert c.get(f"{R}/plans/nothing").status_code == 404

    chosen = drawn.selection[0]
    result = {"enterprise": chosen, "product": "聚氯乙烯绝缘电缆 BV 2.5mm²", "standard": "GB/T 5023.3-2008",
              "result": "fail", "day": "2026-03-31", "plan": "2026-Q1-wire", "csrf": token}  # fmt: skip
    unchosen = next(m.did for m in makers if m.did not in drawn.selection)
    for bad, says in ((result | {"day": "2026-13-01"}, "not a date"),
                      (result | {"enterprise": unchosen}, "not selected"),
                      (result | {"result": "maybe"}, "pass or fail"), (result | {"product": " "}, "must not be empty"),
                      (result | {"enterprise": node.did}, "not a registered enterprise")):  # fmt: skip
        r = c.post(f"{R}/inspections", data=bad)
        assert r.status_code in (400, 404) and says in r.text, (bad, r.text[-500:])
    r = c.post(f"{R}/inspections", data=result, follow_redirects=False)
    assert r.status_code == 303
    shown = c.get(r.headers["location"]).text
    assert "聚氯乙烯绝缘电缆" in shown and 'class="invalid">fail' in shown
    assert [t["action"] for t in StaffStore(node.home.path).trail()][:3] == [
        "inspection.result", "inspection.draw", "inspection.plan"]  # fmt: skip
    v = signed_in(app, "viewer")
    listed = v.get(f"{R}/plans").text
    assert "2026-Q1-wire" in listed and 'id="create"' not in listed
    assert 'id="record"' not in v.get(f"{R}/plans/2026-Q1-wire").text


def test_the_manufacturers_overview_shows_its_notifications_and_indicator_level(world):
    node, maker, _, app = world
    id = notify.raise_(node, maker.did, "investigation", "CRITICAL", "抽查不合格，请说明原因").id
    StaffStore(maker.home.path).add("eng", "engineer", STAFF_PW)
    app = create_app(maker)
    c = signed_in(app, "eng")
    page = c.get("/console/enterprise/overview")
    assert page.status_code == 200
    table = page.text.split('id="notifications"')[1].split("</table>")[0]
    assert id in table and "CRITICAL" in table and "CREATED" in table and "浙江省市场监督管理局" in table
    level = page.text.split('id="level"')[1].split("</p>")[0]
    assert "below the inspection level" in level  # nothing on the ledger yet lifts it to 检验级
