"""The console over the network: a password is never posted in clear from another machine, the cookies are
`__Host-` and Secure over TLS (a sibling subdomain cannot plant a visitor cookie: no login CSRF), and HSTS
keeps the browser on TLS."""

import re

import pytest
from fastapi.testclient import TestClient

from qdsn.api.app import create_app
from qdsn.node import Node, NodeHome
from qdsn.web.auth import ANON_COOKIE, SESSION_COOKIE
from qdsn.web.staff import StaffStore

from ..api.conftest import FAST

STAFF_PW = "a long staff password"
ELSEWHERE = ("203.0.113.5", 40000)


@pytest.fixture
def app(tmp_path):
    home = NodeHome.init(tmp_path / "e", "enterprise", "e node", "node passphrase", scrypt_n=FAST)
    node = Node(home, operator=True)
    StaffStore(home.path).add("eng", "engineer", STAFF_PW)
    yield create_app(node), home
    node.close()


def token(c, path="/console/login"):
    return re.search(r'name="csrf" value="([^"]+)"', c.get(path).text)[1]


def login(c):
    return c.post("/console/login", data={"name": "eng", "password": STAFF_PW, "csrf": token(c)},
                  follow_redirects=False)  # fmt: skip


def test_a_password_in_clear_from_another_machine_is_refused(app):
    app, home = app
    c = TestClient(app, client=ELSEWHERE)
    r = login(c)
    assert r.status_code == 403 and SESSION_COOKIE not in r.headers.get("set-cookie", "")
    assert "plain HTTP" in r.text and "--tls-cert" in r.text and "node.toml" in r.text
    assert SESSION_COOKIE not in r.cookies and not StaffStore(home.path).trail(action="login")


@pytest.mark.parametrize("client", [("127.0.0.1", 5000), ("::1", 5000)])
def test_plain_http_is_accepted_from_this_machine(app, client):
    app, _ = app
    r = login(TestClient(app, client=client))
    assert r.status_code == 303 and SESSION_COOKIE in r.cookies
    assert "Secure" not in r.headers["set-cookie"] and "strict-transport-security" not in r.headers


def test_over_tls_the_cookies_are_host_only_and_secure_and_hsts_is_sent(app):
    app, _ = app
    c = TestClient(app, base_url="https://testserver", client=ELSEWHERE)
    page = c.get("/console/login")
    assert page.headers["strict-transport-security"].startswith("max-age=")
    visitor = next(h for h in page.headers.get_list("set-cookie") if ANON_COOKIE in h)
    assert visitor.startswith(f"__Host-{ANON_COOKIE}=") and "Secure" in visitor and "Domain" not in visitor
    r = login(c)
    assert r.status_code == 303, r.text
    session = next(h for h in r.headers.get_list("set-cookie") if SESSION_COOKIE in h)
    assert session.startswith(f"__Host-{SESSION_COOKIE}=") and "Secure" in session and "Path=/" in session
    assert "Domain" not in session and "HttpOnly" in session
    overview = c.get("/console/enterprise/overview", follow_redirects=False)
    assert overview.status_code == 200 and "strict-transport-security" in overview.headers
    out = c.post("/console/logout", data={"csrf": token(c, "/console/enterprise/overview")}, follow_redirects=False)
    gone = next(h for h in out.headers.get_list("set-cookie") if SESSION_COOKIE in h)
    assert gone.startswith(f"__Host-{SESSION_COOKIE}=") and "Max-Age=0" in gone and "Secure" in gone
    assert c.get("/console/enterprise/overview", follow_redirects=False).status_code == 303


def test_a_cookie_planted_without_the_host_prefix_is_not_read_over_tls(app):
    """A sibling subdomain can set `qdsn_visitor` for the node's host, never `__Host-qdsn_visitor`: a token
    the attacker got for its own visitor value does not sign the victim in to the attacker's account."""
    app, _ = app
    attacker = TestClient(app, base_url="https://testserver", client=ELSEWHERE)
    stolen = token(attacker)
    planted = next(v for k, v in attacker.cookies.items() if k.endswith(ANON_COOKIE))  # its own visitor value
    victim = TestClient(app, base_url="https://testserver", client=("198.51.100.7", 40001))
    victim.cookies.set(ANON_COOKIE, planted)
    r = victim.post("/console/login", data={"name": "eng", "password": STAFF_PW, "csrf": stolen},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 403 and "security token" in r.text
    victim.cookies.set(SESSION_COOKIE, "planted-session")  # nor is a planted session read
    assert victim.get("/console/enterprise/overview", follow_redirects=False).status_code == 303
