"""A failed action is in the audit log as much as a done one, and a certificate's status list is on the
node's own public URL, never on the Host a request named."""

import re

import pytest

from qdsn.api.app import create_app
from qdsn.node import Node, NodeHome
from qdsn.web.staff import StaffStore

from ..api.conftest import FAST
from .test_console_security import STAFF_PW, signed_in

PW = "node passphrase"


def node_of(tmp_path, role, **kw):
    home = NodeHome.init(tmp_path / role, role, f"{role} node", PW, scrypt_n=FAST)
    node = Node(home, operator=True, **kw)
    StaffStore(home.path).add("approver", "approver", STAFF_PW)
    return node, create_app(node)


@pytest.fixture
def certifier(tmp_path):
    node, app = node_of(tmp_path, "certifier")
    yield node, app, signed_in(app, "approver")
    node.close()


def csrf(c, path):
    return re.search(r'name="csrf" value="([^"]+)"', c.get(path).text)[1]


def refused(node, action):
    return [t for t in StaffStore(node.home.path).trail(action=action) if t["detail"].get("outcome") == "refused"]


ISSUE = {"url": "http://127.0.0.1:9", "job": "urn:uuid:0", "number": "CQC-9", "standards": "GB/T 5023",
         "category": "cable", "scope": "BV 2.5", "site": "Hangzhou", "days": "365"}  # fmt: skip


def test_a_certificate_is_not_issued_without_the_nodes_public_url(certifier):
    node, _, c = certifier
    node.public_url = None
    form = ISSUE | {"status_list": "http://testserver/status-lists/1", "csrf": csrf(c, "/console/certifier/overview")}
    r = c.post("/console/certifier/certificates", data=form)
    assert r.status_code == 400 and "no public URL" in r.text and "public_url" in r.text and "node.toml" in r.text
    (line,) = refused(node, "certificate.issue")
    assert line["subject"] == "CQC-9" and "public URL" in line["detail"]["why"]


def test_a_status_list_named_by_the_host_header_is_refused(certifier):
    node, _, c = certifier
    node.public_url = "https://cert.example.cn"
    evil = {"status_list": "http://evil.example/status-lists/1", "csrf": csrf(c, "/console/certifier/overview")}
    r = c.post("/console/certifier/certificates", data=ISSUE | evil, headers={"host": "evil.example"})
    assert r.status_code == 400 and "not one this node serves" in r.text and "https://cert.example.cn" in r.text
    assert refused(node, "certificate.issue")


def test_a_failed_status_change_and_negotiation_are_audited(certifier):
    node, _, c = certifier
    token = csrf(c, "/console/certifier/overview")
    r = c.post("/console/certifier/certificates/CQC-404/status", data={"status": "suspended", "reason": "audit",
                                                                       "csrf": token})  # fmt: skip
    assert r.status_code == 404
    (line,) = refused(node, "certificate.suspend")
    assert line["subject"] == "CQC-404" and "no certificate" in line["detail"]["why"]
    r = c.post("/console/certifier/certificates/CQC-404/status", data={"status": "invalid", "reason": "x",
                                                                       "csrf": token})  # fmt: skip
    assert r.status_code == 400 and refused(node, "certificate.status")
    r = c.post("/console/certifier/negotiate", data={"url": "http://127.0.0.1:9", "offer": "urn:qdsn:offer:x",
                                                     "csrf": token})  # fmt: skip
    assert r.status_code == 503
    (line,) = refused(node, "negotiate")
    assert line["subject"] == "urn:qdsn:offer:x" and "cannot reach" in line["detail"]["why"]
    r = c.post("/console/certifier/jobs", data={"url": "not a url", "model": "m@1", "dataset": "d", "agreement": "a",
                                                "csrf": token})  # fmt: skip
    assert r.status_code == 400 and refused(node, "job.request")


def test_a_refused_admission_is_audited(tmp_path):
    node, app = node_of(tmp_path, "regulator")
    c = signed_in(app, "approver")
    r = c.post("/console/regulator/members", data={"did": "did:web:<script>", "role": "enterprise", "name": "x",
                                                   "csrf": csrf(c, "/console/regulator/members")})  # fmt: skip
    assert r.status_code == 400
    (line,) = refused(node, "member.add")
    assert line["staff"] == "approver" and line["detail"]["why"]
    node.close()


def test_the_issue_form_offers_the_public_urls_status_list_only(certifier):
    from qdsn.web import certifier as pages

    node, _, _ = certifier
    node.public_url = None
    assert pages.status_list_of(node) is None
    node.public_url = "https://cert.example.cn/"
    assert pages.status_list_of(node) == "https://cert.example.cn/status-lists/1"
