"""The console over the network: a password is never posted in clear from another machine, the cookies are
`__Host-` and Secure over TLS (a sibling subdomain cannot plant a visitor cookie: no login CSRF), and HSTS
keeps the browser on TLS."""

import re

import pytest
import uvicorn
from fastapi.testclient import TestClient
from starlette.requests import Request

from qdsn.api.app import create_app
from qdsn.node import Node, NodeHome
from qdsn.web.auth import ANON_COOKIE, SESSION_COOKIE, local, loopback
from qdsn.web.staff import StaffStore

from ..api.conftest import FAST
from ..conftest import LOOPBACK

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


def request_from(client: tuple[str, int] | None) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "headers": [], "client": client})


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1", "::ffff:127.0.0.2"])
def test_a_loopback_peer_is_this_machine(host):
    assert loopback(host) and local(request_from((host, 40000)))


@pytest.mark.parametrize("host", [
    "testclient",  # Starlette's TestClient: a name a proxy or a client could present as well
    "localhost",  # a name is not an address
    "192.168.1.5", "10.0.0.1", "::ffff:192.168.1.5", "fe80::1", "203.0.113.5", "8.8.8.8", "2001:db8::1",
    "0.0.0.0", "::", "::127.0.0.1", "64:ff9b::7f00:1",  # unspecified, IPv4-compatible, NAT64: not loopback
    "", " 127.0.0.1", "127.0.0.1 ", "127.0.0.1:80", "[::1]", "127.1", "0x7f000001", "2130706433", "127.0.0.1.evil",
    "::1/128", "not an address", "1" * 300,
])  # fmt: skip
def test_a_name_another_machine_or_garbage_is_not_this_machine(host):
    assert not loopback(host) and not local(request_from((host, 40000)))


def test_no_peer_address_is_not_this_machine():
    """A Unix socket gives no address, and a proxy on it may relay anyone: not local."""
    assert not local(request_from(None))
    assert not loopback(None) and not loopback(2130706433) and not loopback(b"\x7f\x00\x00\x01")


def refused_in_clear(r, home) -> None:
    """The login page refused it with what to do: serve the console over TLS; nobody was signed in."""
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    assert "plain HTTP" in r.text and "HTTPS" in r.text and "--tls-cert" in r.text and "node.toml" in r.text
    assert SESSION_COOKIE not in r.headers.get("set-cookie", "") and SESSION_COOKIE not in r.cookies
    assert not StaffStore(home.path).trail(action="login")


@pytest.mark.parametrize("client", [ELSEWHERE, ("testclient", 50000), ("192.168.1.5", 51000), ("::ffff:10.1.2.3", 1)])
def test_a_password_in_clear_from_another_machine_is_refused(app, client):
    app, home = app
    refused_in_clear(login(TestClient(app, client=client)), home)


def test_a_password_in_clear_from_the_default_test_client_is_refused(app):
    app, home = app
    refused_in_clear(login(TestClient(app)), home)  # Starlette names its client "testclient"


SPOOFED = {
    "X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1", "Forwarded": "for=127.0.0.1;proto=https",
    "X-Forwarded-Proto": "https", "X-Forwarded-Host": "localhost", "X-Client-IP": "::1", "True-Client-IP": "::1",
}  # fmt: skip


def test_headers_do_not_make_another_machine_local(app):
    """What the client writes (proxy headers, the Host) never makes it this machine nor its HTTP TLS."""
    app, home = app
    c = TestClient(app, base_url="http://localhost", client=ELSEWHERE, headers=SPOOFED)
    refused_in_clear(login(c), home)


def test_behind_uvicorn_only_a_proxy_on_this_machine_is_believed(app, monkeypatch):
    """`qdsn node start` serves through uvicorn, which takes X-Forwarded-For/-Proto only from 127.0.0.1: the
    headers of another machine are ignored, and a proxy on this machine relaying another one in clear is refused."""
    app, home = app
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    config = uvicorn.Config(app, log_config=None)  # the proxy-headers step as `uvicorn.run` sets it up
    config.load()
    served = config.loaded_app
    refused_in_clear(login(TestClient(served, client=ELSEWHERE, headers=SPOOFED)), home)
    relayed = TestClient(served, client=LOOPBACK, headers={"X-Forwarded-For": "127.0.0.1, 203.0.113.5"})
    refused_in_clear(login(relayed), home)
    assert login(TestClient(served, client=LOOPBACK)).status_code == 303  # the proxy's own (this machine's) login


@pytest.mark.parametrize("client", [LOOPBACK, ("127.0.0.1", 5000), ("::1", 5000), ("::ffff:127.0.0.1", 5000)])
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
