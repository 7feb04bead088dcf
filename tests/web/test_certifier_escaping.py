"""The certification body's pages show what another organisation wrote — a member's catalog (dataset
titles, offer ids, terms), member names on the ledger — as text: markup and control or bidirectional
characters escaped, never run. The member's node here is a real one, served on loopback."""

import re
import threading
import time

import pytest
import uvicorn
from fastapi.testclient import TestClient

from qdsn.api.app import create_app
from qdsn.node import Node, NodeHome
from qdsn.node.provider import publish
from qdsn.web.staff import StaffStore

from ..api.conftest import FAST
from ..api.test_jobs_api import lab, offer  # noqa: F401  (the fixture: a maker's node, a certifier, a model)
from ..conftest import LOOPBACK

PW = "a long staff password"
EVIL = "<script>alert(1)</script>\x1b[31m\u202etxt.exe"


@pytest.fixture
def served(lab):  # noqa: F811
    node, _, _ = lab
    server = uvicorn.Server(uvicorn.Config(create_app(node), host="127.0.0.1", port=0, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    yield node, f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    server.should_exit = True


def test_a_members_catalog_and_name_are_shown_as_text(served, tmp_path):
    maker, url = served
    maker.submit([maker.home.sign("dataset.declare", {"dataset": "evil-1", "title": EVIL, "kind": "measurements",
                                                      "characteristics": [{"name": "x", "unit": "m"}]})])  # fmt: skip
    bad = offer(maker.home, "urn:qdsn:offer:<img/src=x/onerror=alert(2)>") | {"target": "urn:qdsn:dataset:evil-1"}
    bad["permission"][0]["constraint"][0]["rightOperand"] = "<b>certification</b>"
    publish(maker, "evil-1", bad)
    cqc = Node(NodeHome.open(tmp_path / "cqc", "pw", scrypt_n=FAST))
    StaffStore(cqc.home.path).add("wang.fang", "approver", PW)
    c = TestClient(create_app(cqc), client=LOOPBACK)
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/console/login").text)[1]
    assert c.post("/console/login", data={"name": "wang.fang", "password": PW, "csrf": token}).status_code == 200
    page = c.get("/console/certifier/catalog", params={"url": url})
    assert page.status_code == 200, page.text
    html = page.text
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img/src=x" not in html and "&lt;img/src=x/onerror=alert(2)&gt;" in html
    assert "<b>certification</b>" not in html and "&lt;b&gt;certification&lt;/b&gt;" in html
    assert "\x1b" not in html and "\u202e" not in html  # written as their escapes
    assert "\\x1b" in html or "\\u001b" in html or "U+001B" in html.upper()
    cqc.close()


def test_a_members_name_in_the_register_is_shown_as_text(tmp_path):
    reg = NodeHome.init(tmp_path / "reg", "regulator", "SAMR", "pw", scrypt_n=FAST)
    shared = str(tmp_path / "reg" / "ledger.db")
    cqc = NodeHome.init(tmp_path / "cqc", "certifier", "CQC", "pw", ledger_url=shared, scrypt_n=FAST)
    evil = NodeHome.init(tmp_path / "evil", "enterprise", "Evil", "pw", ledger_url=shared, scrypt_n=FAST)
    reg.submit("identity.register", cqc.registration())
    reg.submit("identity.register", evil.registration() | {"name": "<script>alert(3)</script>\u202eCorp"})
    node = Node(cqc, operator=True)
    node.submit([cqc.sign("credential.issue", {
        "credential": "CQC-<i>7</i>", "vct": "urn:qdsn:vct:quality-certificate", "subject": evil.did,
        "hash": "ab" * 32, "status_list": "https://cqc.example/status-lists/1", "index": 7})])  # fmt: skip
    StaffStore(cqc.path).add("wang.fang", "viewer", PW)
    c = TestClient(create_app(node), client=LOOPBACK)
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/console/login").text)[1]
    assert c.post("/console/login", data={"name": "wang.fang", "password": PW, "csrf": token}).status_code == 200
    html = c.get("/console/certifier/certificates").text
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in html and "<script>alert(3)" not in html
    assert "&lt;i&gt;7&lt;/i&gt;" in html and "<i>7</i>" not in html and "\u202e" not in html
    node.close()
