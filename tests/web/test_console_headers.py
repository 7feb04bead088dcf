"""What a console answer may leave behind or lead to: nothing a signed-in page shows is kept by the browser
or a proxy (`Cache-Control: no-store` on every console route, a downloaded presentation too), and the
login's `next` and the language form's `back` never lead off the console."""

import pytest
from fastapi.testclient import TestClient

from qdsn.web.auth import local_path
from qdsn.web.staff import ROLES

from ..conftest import LOOPBACK
from . import test_console_security as security
from .test_console_security import STAFF_PW, csrf_of, routes, signed_in

console = security.console  # the fixture: a node of each role with one staff account per role

EVIL = ["//evil.com", "https://x", "https://evil.com/console/", "\\\\evil", "%2F%2Fevil", "/\\evil", "/\\evil.com",
        "/console/%2F%2Fevil.com", "/console//evil.com", "/console/../../evil", "/console/%2e%2e/%2e%2e/evil",
        "/console/\\evil", "/console/x\r\nLocation: https://evil.com", "\t//evil.com", " /console/x",
        "javascript:alert(1)", "/console/%5Cevil", "http:/console/x"]  # fmt: skip


def test_every_console_answer_to_staff_is_no_store(console):
    app, _ = console
    c = signed_in(app, ROLES[-1])
    token = csrf_of(c)
    seen = 0
    for method, path, role in routes(app):
        if role == "public" or path == "/console/logout":
            continue
        r = c.request(method, path, data={"csrf": token} if method == "POST" else None, follow_redirects=False)
        assert r.headers.get("cache-control") == "no-store", (method, path, r.status_code, r.headers)
        seen += 1
    assert seen >= 5


def test_a_downloaded_presentation_is_not_kept(tmp_path):
    from qdsn.api.app import create_app
    from qdsn.node import Node, NodeHome
    from qdsn.web.staff import StaffStore

    from ..api.conftest import FAST

    home = NodeHome.init(tmp_path / "e", "enterprise", "e node", "node passphrase", scrypt_n=FAST)
    node = Node(home, operator=True)
    StaffStore(home.path).add("engineer", "engineer", STAFF_PW)
    app = create_app(node)
    c = signed_in(app, "engineer")
    r = c.post("/console/enterprise/certificates/download", data={"presentation": "eyJ.x.y~", "csrf": csrf_of(c)})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert r.headers["content-disposition"].startswith("attachment")
    node.close()


@pytest.mark.parametrize("target", EVIL)
def test_no_target_leads_off_the_console(target):
    assert local_path(target) == "/console/"


def test_the_login_and_the_language_never_redirect_off_the_console(console):
    app, _ = console
    for target in EVIL:
        c = TestClient(app, client=LOOPBACK)
        page = c.get("/console/login", params={"next": target})
        assert 'value="/console/' not in page.text or "evil" not in page.text.split('name="next"')[1][:200]
        r = c.post("/console/login", data={"name": "viewer", "password": STAFF_PW, "csrf": csrf_of(c, "/console/login"),
                                           "next": target}, follow_redirects=False)  # fmt: skip
        where = r.headers["location"]
        assert r.status_code == 303 and where.startswith("/console/") and "evil" not in where, (target, where)
        r = c.post("/console/lang", data={"lang": "en", "back": target, "csrf": csrf_of(c)}, follow_redirects=False)
        assert r.headers["location"] == "/console/", (target, r.headers["location"])
    c = TestClient(app, client=LOOPBACK)
    r = c.post("/console/login", data={"name": "viewer", "password": STAFF_PW, "csrf": csrf_of(c, "/console/login"),
                                       "next": "/console/verify?x=1"}, follow_redirects=False)  # fmt: skip
    assert r.headers["location"] == "/console/verify?x=1"  # a path on the console is kept
