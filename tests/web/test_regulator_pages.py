"""The regulator's pages in process: the registry searched and paged, a member admitted through the form
(the same checked identity.register as `qdsn member add`, in the staff audit log), a bad form said back,
the explorer's pages, and another party's text shown escaped."""

import re

import pytest

from qdsn.api.app import create_app
from qdsn.crypto import SigningKey
from qdsn.identity import did_key_from_public_key
from qdsn.ledger import tx
from qdsn.node import Node, NodeHome
from qdsn.web.staff import StaffStore

from ..api.conftest import FAST
from .test_console_security import STAFF_PW, signed_in

PW = "node passphrase"


@pytest.fixture
def regulator(tmp_path):
    home = NodeHome.init(tmp_path / "samr", "regulator", "浙江省市场监督管理局", PW, scrypt_n=FAST)
    node = Node(home, operator=True)
    app = create_app(node)
    store = StaffStore(home.path)
    for role in ("viewer", "approver"):
        store.add(role, role, STAFF_PW)
    yield node, app
    node.close()


def csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page)[1]


def new_did() -> str:
    return did_key_from_public_key(SigningKey.generate().verify_key.raw)


def test_an_approver_admits_a_member_and_the_registry_finds_it(regulator):
    node, app = regulator
    c = signed_in(app, "approver")
    page = c.get("/console/regulator/members")
    assert page.status_code == 200 and "Admit a member" in page.text
    did = new_did()
    form = {
        "did": did,
        "role": "enterprise",
        "name": "杭州某某电缆有限公司",
        "credit_code": "91330100716105852F",
        "region": "330106",
        "industry": "c3831",
        "address": "杭州市西湖区某路 1 号",
        "csrf": csrf(page.text),
    }
    r = c.post("/console/regulator/members", data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith(f"/console/regulator/members/{did}")
    reg = tx.from_leaf(node.ledger.store.rows_of_type("identity.register")[-1].leaf)
    assert reg.payload | {"industry": "C3831"} == reg.payload and reg.payload["did"] == did
    assert reg.submitter == node.did
    shown = c.get(r.headers["location"]).text
    assert "浙江省 杭州市 西湖区" in shown and "91330100716105852F" in shown
    trail = StaffStore(node.home.path).trail(action="member.add")
    assert trail[0]["staff"] == "approver" and trail[0]["subject"] == did
    found = c.get("/console/regulator/members", params={"region": "330100", "industry": "C38"}).text
    assert "杭州某某电缆有限公司" in found and re.search(r"Members found: <strong>1</strong>", found)
    assert "No member matches." in c.get("/console/regulator/members", params={"region": "110000"}).text


def test_a_wrong_form_is_said_back_and_nothing_is_written(regulator):
    node, app = regulator
    c = signed_in(app, "approver")
    size = node.ledger.size
    token = csrf(c.get("/console/regulator/members").text)
    bad = {
        "did": new_did(),
        "role": "enterprise",
        "name": "Acme",
        "credit_code": "91330100716105852X",
        "region": "330106",
        "csrf": token,
    }
    r = c.post("/console/regulator/members", data=bad)
    assert r.status_code == 400 and "check character" in r.text and 'value="Acme"' in r.text
    r = c.post("/console/regulator/members", data=bad | {"credit_code": "", "region": "110103"})
    assert r.status_code == 400 and "no longer in use" in r.text  # 崇文区, merged in 2010
    r = c.post("/console/regulator/members", data=bad | {"credit_code": "", "did": "did:key:nonsense"})
    assert r.status_code == 400
    assert node.ledger.size == size


def test_the_explorer_pages_and_escaped_text(regulator):
    node, app = regulator
    hostile = "Evil\u202eCorp <script>alert(1)</script>"
    d = new_did()
    payload = {"did": d, "role": "enterprise", "name": hostile, "key": d.removeprefix("did:key:")}
    node.submit([node.home.sign("identity.register", payload)])
    c = signed_in(app, "viewer")
    for path in ("/console/regulator/overview", "/console/regulator/ledger", "/console/regulator/members",
                 f"/console/regulator/members/{d}", "/console/regulator/ledger/entries/1",
                 "/console/regulator/ledger/checkpoints", "/console/regulator/ledger/witnesses",
                 "/console/regulator/ledger/alerts", "/console/regulator/certificates",
                 "/console/regulator/statistics"):  # fmt: skip
        r = c.get(path)
        assert r.status_code == 200, (path, r.text[:300])
        assert "<script>alert" not in r.text and "\u202e" not in r.text, path
    page = c.get("/console/regulator/ledger", params={"type": "identity.register"}).text
    assert page.count("/console/regulator/ledger/entries/") >= 2
    assert c.get("/console/regulator/ledger", params={"type": "nothing"}).status_code == 400
    assert c.get("/console/regulator/ledger/entries/zzz").status_code == 400
    assert c.get("/console/regulator/members/did:key:z6MkNobody").status_code == 404
    # a viewer sees no admission form, and cannot post one
    assert "Admit a member" not in c.get("/console/regulator/members").text
