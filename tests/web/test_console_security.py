"""Every console page and form, found by walking the app's routes (so a page added later is covered
without a line here): refused without a session, with a lesser role and without the CSRF token; staff
passwords, sessions and the login limit as the other side would try them."""

import re
import stat

import pytest
from fastapi.testclient import TestClient

from qdsn.api.app import create_app
from qdsn.node import Node, NodeHome
from qdsn.web import ROLE_PAGES
from qdsn.web.auth import SESSION_COOKIE
from qdsn.web.staff import PAIR_LIMIT, ROLES, StaffStore

from ..api.conftest import FAST
from ..conftest import LOOPBACK

PW = "node passphrase"
STAFF_PW = "a long staff password"


@pytest.fixture(params=sorted(ROLE_PAGES))  # each node role whose pages the console serves
def console(request, tmp_path):
    home = NodeHome.init(tmp_path / request.param, request.param, f"{request.param} node", PW, scrypt_n=FAST)
    node = Node(home, operator=request.param == "regulator")
    app = create_app(node)
    store = StaffStore(home.path)
    for role in ROLES:
        store.add(role, role, STAFF_PW)
    yield app, home
    node.close()


def walk(routes, prefix=""):
    """(path served, route) of every route, into included routers (FastAPI keeps them whole, as the router
    given, with the prefix they were included under)."""
    for r in routes:
        if hasattr(r, "original_router"):
            yield from walk(r.original_router.routes, prefix + r.include_context.prefix)
        else:
            yield prefix + getattr(r, "path", ""), r


def routes(app):
    """(method, path with its parameters filled, role required or None) of every console route."""
    out = []
    for path, r in walk(app.routes):
        if not path.startswith("/console") or not hasattr(r, "dependant"):
            continue
        roles = [getattr(d.call, "role", "?") for d in r.dependant.dependencies if hasattr(d.call, "role")]
        filled = re.sub(r"\{[^}]+\}", "x", path)
        for method in r.methods - {"HEAD"}:
            out.append((method, filled, roles[0] if roles else "public"))
    return out


def signed_in(app, name):
    c = TestClient(app, client=LOOPBACK)
    page = c.get("/console/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)[1]
    r = c.post("/console/login", data={"name": name, "password": STAFF_PW, "csrf": token}, follow_redirects=False)
    assert r.status_code == 303 and SESSION_COOKIE in r.cookies
    return c


def csrf_of(client, path="/console/verify"):
    return re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)[1]


def test_every_console_route_is_guarded(console):
    app, _ = console
    found = routes(app)
    assert len([r for r in found if r[2] not in ("public", None)]) >= 2, found
    anonymous = TestClient(app, client=LOOPBACK)
    staff = {role: signed_in(app, role) for role in ROLES}
    for method, path, role in found:
        if role in ("public", None):
            continue  # the login, the verify page, the language: anyone, with a CSRF token for a form
        r = anonymous.request(method, path, follow_redirects=False)
        if method == "GET":
            assert r.status_code == 303 and "/console/login" in r.headers["location"], (method, path)
        else:
            assert r.status_code == 401, (method, path, r.status_code)
        for lesser in ROLES[: ROLES.index(role)]:
            c = staff[lesser]
            r = c.request(method, path, data={"csrf": csrf_of(c)}, follow_redirects=False)
            assert r.status_code == 403, (method, path, lesser, r.status_code)
        if method == "POST":
            c = staff[role]
            r = c.post(path, data={}, follow_redirects=False)
            assert r.status_code == 403 and "security token" in r.text, (path, r.status_code)
            r = c.post(path, data={"csrf": "0" * 64}, follow_redirects=False)
            assert r.status_code == 403, path


def test_the_public_forms_need_their_token_too(console):
    app, _ = console
    for method, path, role in routes(app):
        if method == "POST" and role is None:
            r = TestClient(app, client=LOOPBACK).post(path, data={"name": "viewer", "password": STAFF_PW, "lang": "en"},
                                     follow_redirects=False)  # fmt: skip
            assert r.status_code == 403, path


def test_a_token_is_bound_to_its_session(console):
    app, _ = console
    a, b = signed_in(app, "approver"), signed_in(app, "approver")
    r = b.post("/console/logout", data={"csrf": csrf_of(a)}, follow_redirects=False)
    assert r.status_code == 403
    assert b.post("/console/logout", data={"csrf": csrf_of(b)}, follow_redirects=False).status_code == 303
    assert b.get("/console/verify").status_code in (200, 404)  # b is out; a is still in
    assert a.post("/console/logout", data={"csrf": csrf_of(a)}, follow_redirects=False).status_code == 303


def test_cookies_are_http_only_and_same_site_strict(console):
    app, _ = console
    c = TestClient(app, client=LOOPBACK)
    token = csrf_of(c, "/console/login")
    r = c.post("/console/login", data={"name": "viewer", "password": STAFF_PW, "csrf": token}, follow_redirects=False)
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower() and "Secure" not in cookie  # plain http here
    tls = TestClient(app, base_url="https://testserver", client=LOOPBACK)
    token = csrf_of(tls, "/console/login")
    r = tls.post("/console/login", data={"name": "viewer", "password": STAFF_PW, "csrf": token},
                 follow_redirects=False)  # fmt: skip
    assert "Secure" in r.headers["set-cookie"]


def test_passwords_are_argon2_hashes_and_the_store_is_private(console):
    _, home = console
    raw = b"".join(p.read_bytes() for p in home.path.glob("console.db*"))  # the database and its WAL
    assert STAFF_PW.encode() not in raw and b"$argon2id$" in raw
    assert stat.S_IMODE((home.path / "console.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((home.path / "console.secret").stat().st_mode) == 0o600


def test_failed_logins_are_limited_across_restarts(console, tmp_path):
    app, home = console
    c = TestClient(app, client=LOOPBACK)
    for _ in range(PAIR_LIMIT):
        r = c.post("/console/login", data={"name": "approver", "password": "not it at all", "csrf": csrf_of(c)})
        assert r.status_code == 401
    fresh = TestClient(create_app(Node(home, operator=False)), client=LOOPBACK)  # another process's view: the same file
    r = fresh.post("/console/login", data={"name": "approver", "password": STAFF_PW, "csrf": csrf_of(fresh)})
    assert r.status_code == 429 and "too many failed logins" in r.text
    assert signed_in(app, "viewer")  # another account is not locked out by them


def test_a_session_ends_with_its_password(console):
    app, home = console
    c = signed_in(app, "engineer")
    page = next(p for m, p, r in routes(app) if m == "GET" and r == "viewer" and "/tasks/" not in p)
    assert c.get(page, follow_redirects=False).status_code == 200
    StaffStore(home.path).passwd("engineer", "another long password")
    r = c.get(page, follow_redirects=False)
    assert r.status_code == 303 and "/console/login" in r.headers["location"]


def test_the_sub_pages_are_plain_routers_included_under_their_role_and_guarded(tmp_path):
    """The regulator's supervision and regional pages and the manufacturer's green pages are routers of their
    own without a prefix, included under their role's: each of their routes is served there, walked above, and
    refuses a visitor without a session."""
    from qdsn.web import green, manufacturer, region, regulator, supervision

    for role, owner, parts in (("regulator", regulator, (supervision, region)), ("enterprise", manufacturer, (green,))):
        home = NodeHome.init(tmp_path / role, role, f"{role} node", PW, scrypt_n=FAST)
        node = Node(home, operator=role == "regulator")
        try:
            app = create_app(node)
            served = {(m, p) for m, p, r in routes(app) if r not in ("public", None)}
            for part in parts:
                assert part.PREFIX == owner.PREFIX and part.router.prefix == ""
                assert part.router.routes, part.__name__
                for r in part.router.routes:
                    assert not r.path.startswith("/console"), r.path  # the role's prefix is added where it is included
                    filled = re.sub(r"\{[^}]+\}", "x", owner.PREFIX + r.path)
                    for method in r.methods - {"HEAD"}:
                        assert (method, filled) in served, (method, filled)
                        got = TestClient(app).request(method, filled, follow_redirects=False)
                        assert got.status_code in (303, 401), (method, filled, got.status_code)
        finally:
            node.close()
