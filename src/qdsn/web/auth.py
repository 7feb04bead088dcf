"""Who is asking: the session cookie, the CSRF token every form carries, and `require(role)`.

CSRF: every form and every script request carries a token that is an HMAC, under a secret of this
node, of what binds the visitor — the session's token digest when signed in, else a random
pre-session cookie. A synchronizer token needs per-session storage that the session row already is,
and the signed double-submit form of it (OWASP's recommended variant) also covers the anonymous forms
(login, verify, language): a cookie planted by a neighbouring host cannot forge the token without the
secret. Written here because it is a dozen lines on top of the session store; the maintained
middleware libraries implement plain double-submit only or tie into sessions of their own."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from fastapi import Request
from starlette.responses import Response

from qdsn.web.staff import ROLES, Staff, StaffStore

SESSION_COOKIE = "qdsn_session"
ANON_COOKIE = "qdsn_visitor"
# Over TLS the session and visitor cookies are named __Host-…: the browser then takes them only Secure, for
# this host and path /, so that a sibling subdomain cannot plant a visitor cookie (a login CSRF) or a session.
HOST_ONLY = (SESSION_COOKIE, ANON_COOKIE)
HSTS = "max-age=31536000"  # sent over TLS: the browser comes back over TLS for a year
PLAIN_LOGIN = (
    "signing in over plain HTTP is refused: the password would cross the network unencrypted",
    "open the console over HTTPS: serve the node with TLS (qdsn node start --tls-cert CHAIN.pem --tls-key KEY.pem, "
    "or tls_cert and tls_key in the [service] table of node.toml), or behind a TLS proxy on this machine that "
    "sets X-Forwarded-Proto; plain HTTP is accepted only from this machine itself",
)
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


class Refused(Exception):
    """A console request refused: `status` 401 (no session; a page asks to log in), 403 (role or CSRF),
    or another, with what was wrong said to the person."""

    def __init__(self, status: int, what: str, *, login: bool = False) -> None:
        super().__init__(what)
        self.status, self.what, self.login = status, what, login


def secret_of(home: Path) -> bytes:
    """This node's console secret (`console.secret` in its home, 32 random bytes, 0600), made on first use."""
    path = Path(home) / "console.secret"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        value = secrets.token_bytes(32)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:  # another process made it first
            return path.read_bytes()
        with os.fdopen(fd, "wb") as f:
            f.write(value)
            f.flush()
            os.fsync(f.fileno())
        return value


def secure(request: Request) -> bool:
    """Whether the console is served over TLS here: its cookies are then Secure."""
    return request.url.scheme == "https"


def loopback(host: object) -> bool:
    """Whether `host` is a loopback address: 127.0.0.0/8, ::1, or an IPv4 one mapped into IPv6
    (::ffff:127.0.0.1, as a dual-stack socket reports it). A name, an empty or malformed value is not."""
    if not isinstance(host, str):  # ip_address would also take an int or packed bytes
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # Python before 3.13 calls ::ffff:127.0.0.1 not loopback
    return address.is_loopback


def local(request: Request) -> bool:
    """Whether the client is this machine: the peer's address is a loopback one. No header is read here, as
    the client writes them (uvicorn puts X-Forwarded-For in the peer's place only for a proxy at 127.0.0.1);
    no address at all (a Unix socket, through which a proxy may relay anyone) is not local either."""
    return request.client is not None and loopback(request.client.host)


def cookie_name(request: Request, name: str) -> str:
    """The name a console cookie has on this request: `__Host-` + name for the session and visitor over TLS."""
    return f"__Host-{name}" if name in HOST_ONLY and secure(request) else name


def cookie(request: Request, name: str) -> str | None:
    return request.cookies.get(cookie_name(request, name))


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(cookie_name(request, name), value, max_age=max_age, path="/", httponly=True,
                        samesite="strict", secure=secure(request))  # fmt: skip


def forget(response: Response, request: Request, name: str) -> None:
    """Delete a console cookie (with the attributes it was set with, which a __Host- cookie needs)."""
    response.delete_cookie(cookie_name(request, name), path="/", httponly=True, samesite="strict",
                           secure=secure(request))  # fmt: skip


async def tls_or_local(request: Request) -> None:
    """A dependency for the login form: refused over plain HTTP unless the client is this machine."""
    if not secure(request) and not local(request):
        raise Refused(403, f"{PLAIN_LOGIN[0]}. {PLAIN_LOGIN[1]}")


tls_or_local.role = None  # type: ignore[attr-defined]  # anyone may send it (over TLS)


def visitor(request: Request) -> str:
    """The random pre-session value of an anonymous visitor (made now if it has none; `remember` sets it)."""
    value = cookie(request, ANON_COOKIE) or ""
    if len(value) != 43:
        value = request.state.__dict__.setdefault("new_visitor", secrets.token_urlsafe(32))
    return value


def csrf_token(secret: bytes, request: Request, staff: Staff | None) -> str:
    """The token this visitor's forms carry."""
    binding = f"session:{staff.session}" if staff else f"visitor:{visitor(request)}"
    return hmac.new(secret, binding.encode(), hashlib.sha256).hexdigest()


def remember(request: Request, response: Response) -> None:
    """Set the anonymous visitor's cookie if this request made one up."""
    if new := request.state.__dict__.get("new_visitor"):
        set_cookie(response, request, ANON_COOKIE, new)


async def check_csrf(secret: bytes, request: Request, staff: Staff | None) -> None:
    """Refuse (403) a state-changing request without this visitor's token, in the form or the header."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        sent = form.get(CSRF_FIELD)
    expected = csrf_token(secret, request, staff)
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise Refused(403, "the form's security token is missing or out of date; reload the page and send it again")


def current(store: StaffStore, request: Request) -> Staff | None:
    token = cookie(request, SESSION_COOKIE)
    return store.session(token) if token and len(token) < 128 else None


def require(role: str) -> Callable[[Request], Awaitable[Staff]]:
    """A dependency: the signed-in staff member whose role covers `role`; refused without a session (401,
    a page then offers the login), with a lesser role (403), and for a state-changing request without its
    CSRF token (403)."""
    if role not in ROLES:
        raise ValueError(role)

    async def dependency(request: Request) -> Staff:
        console: Any = request.app.state.console
        staff = current(console.staff, request)
        if staff is None:
            raise Refused(401, "sign in to see this page", login=True)
        if not staff.may(role):
            raise Refused(403, f"this needs the {role} role; {staff.name} is {staff.role}")
        if request.method not in ("GET", "HEAD"):
            await check_csrf(console.secret, request, staff)
        request.state.staff = staff
        return staff

    dependency.role = role  # type: ignore[attr-defined]  # read by the tests that walk every console route
    return dependency


async def anonymous_form(request: Request) -> None:
    """A dependency for the forms anyone may send (login, verify, language): the CSRF token is still required."""
    console: Any = request.app.state.console
    await check_csrf(console.secret, request, current(console.staff, request))


anonymous_form.role = None  # type: ignore[attr-defined]  # anyone may send it, with its CSRF token


def login_url(path: str) -> str:
    return "/console/login?next=" + quote(path, safe="/")


def local_path(target: str | None, default: str = "/console/") -> str:
    """`target` if it is a path on this console (never another site: no open redirect), else `default`:
    no scheme or host, no backslash, no empty or dot segment, no control character or space — also once
    percent-decoded, since a browser or a proxy may decode it before resolving."""
    if not target or len(target) > 2000:
        return default
    for form in (target, unquote(target)):
        parts = urlsplit(form)
        segments = parts.path.split("/")[1:]
        if (parts.scheme or parts.netloc or not form.startswith("/console/") or "\\" in form
                or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in form)
                or any(s in ("", ".", "..") for s in segments[:-1]) or segments[-1] in (".", "..")):  # fmt: skip
            return default
    return target
