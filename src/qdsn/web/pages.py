"""Rendering console pages: the Jinja2 environment (autoescaped), the language, the staff member, the
navigation of the node's role and the CSRF token put into every page."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from qdsn import __version__
from qdsn.api.signatures import Throttle
from qdsn.compute import review
from qdsn.errors import (
    Conflict,
    IntegrityError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    QDSNError,
    RateLimited,
    Unavailable,
)
from qdsn.node.node import Node
from qdsn.web import i18n
from qdsn.web.auth import csrf_token, current, remember
from qdsn.web.staff import Staff, StaffStore
from qdsn.web.tasks import Tasks

TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class NavItem:
    """A link in the console's navigation: shown to staff whose role covers `role`."""

    path: str
    label: str  # an English msgid, translated when shown
    role: str = "viewer"


@dataclass
class Console:
    """The console of one node: the node's services, its staff store, its secret and templates."""

    node: Node
    staff: StaffStore
    secret: bytes
    role_module: str | None  # the module of the pages of the node's role, e.g. qdsn.web.manufacturer
    env: Environment = field(init=False)
    tasks: Tasks = field(default_factory=Tasks)
    # camera frames the verify page's script sends to have their QR code read: a few a second per visitor
    frames: Throttle = field(default_factory=lambda: Throttle(per_client=(10, 3), overall=(60, 30)))

    def __post_init__(self) -> None:
        self.env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                               undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)  # fmt: skip
        self.env.filters["reveal"] = review.reveal  # another party's text: controls and invisibles escaped
        self.env.filters["short"] = lambda s, n=16: s if len(s) <= n + 1 else s[:n] + "…"

    def nav(self, staff: Staff | None) -> list[NavItem]:
        if staff is None or self.role_module is None:
            return []
        items: list[NavItem] = importlib.import_module(self.role_module).NAV
        return [i for i in items if staff.may(i.role)]

    def home_page(self) -> str:
        """The first page of a signed-in staff member: the overview of the node's role."""
        if self.role_module is None:
            return "/console/verify"
        return importlib.import_module(self.role_module).NAV[0].path


def console_of(request: Request) -> Console:
    return request.app.state.console  # type: ignore[no-any-return]


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page of the console in the visitor's language, with the common context."""
    console = console_of(request)
    staff = request.state.__dict__.get("staff") or current(console.staff, request)
    lang = i18n.chosen(request.cookies.get(i18n.COOKIE), request.headers.get("accept-language"))
    t = i18n.translations(lang)
    node = console.node
    html = console.env.get_template(template).render(
        _=t.gettext, ngettext=t.ngettext, lang=lang, locales=i18n.LOCALES, staff=staff, nav=console.nav(staff),
        csrf=csrf_token(console.secret, request, staff), here=request.url.path,
        node_name=node.home.name, node_role=node.home.role, node_did=node.did, version=__version__, **context,
    )  # fmt: skip
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    remember(request, response)
    return response


# Nothing on a console page comes from elsewhere, and no other site may frame it. Inline styles are
# allowed because the node's own SVG charts (matplotlib) carry theirs; scripts only from the node.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _status_of(e: QDSNError) -> int:
    for kind, status in ((RateLimited, 429), (PermissionDenied, 403), (NotFound, 404), (Conflict, 409),
                         (InvalidInput, 400), (IntegrityError, 422), (Unavailable, 503)):  # fmt: skip
        if isinstance(e, kind):
            return status
    return 400


class ConsoleRoute(APIRoute):
    """A console route: a QDSNError or a form that does not validate becomes a page in the visitor's
    language saying what was wrong (never problem+json, never a traceback)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except QDSNError as e:
                page = render(request, "error.html", status=_status_of(e), message=f"{e.what}. {e.fix}" if e.fix
                              else e.what, login=False)  # fmt: skip
                if isinstance(e, RateLimited | Unavailable):
                    page.headers["Retry-After"] = str(e.retry_after)
                return page
            except RequestValidationError as e:
                first = e.errors()[0]
                where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "form"
                return render(request, "error.html", status=400, message=f"{where}: {first['msg']}", login=False)

        return handle
