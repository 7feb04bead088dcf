"""The web console: server-rendered pages (Jinja2, zh-CN and English) for the staff of the organisation
that runs the node, and a public verify page, served by the node's own FastAPI app beside `api/` and
calling the same node services with the same checks. See docs/architecture.md, "Web console"."""

from __future__ import annotations

import importlib
import threading
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from qdsn.node.node import Node
from qdsn.web.auth import HSTS, Refused, login_url, secret_of
from qdsn.web.pages import Console, render
from qdsn.web.qr import MAX_PICTURE
from qdsn.web.staff import StaffStore

# The pages of each node role: a module under web/ with `router` (an APIRouter under /console/<role>/)
# and `NAV` (its NavItems, the overview first). Only the node's own role's pages are served.
ROLE_PAGES = {
    "enterprise": "qdsn.web.manufacturer",
    "regulator": "qdsn.web.regulator",
    "certifier": "qdsn.web.certifier",
}
STATIC = Path(__file__).parent / "static"
UPLOAD_PATH = "/console/enterprise/upload"  # the one console form that takes a large file
MAX_UPLOAD = 512 << 20
PICTURE_PATHS = ("/console/verify", "/console/verify/scan")  # the public forms that take a photo of a QR code
MAX_PICTURE_FORM = MAX_PICTURE + (640 << 10)  # the photo, a pasted presentation, the other fields


def mount(app: FastAPI, node: Node) -> None:
    """Serve the console of `node` under /console/ on `app` (the node's API app)."""
    from qdsn.web import public

    module = ROLE_PAGES.get(node.home.role)
    app.state.console = Console(node, StaffStore(node.home.path), secret_of(node.home.path), module)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    app.include_router(public.router)
    if module is not None:
        pages = importlib.import_module(module)
        app.include_router(pages.router)
        if hasattr(pages, "warm"):  # libraries its pages load once per process: loaded before the first needs them
            threading.Thread(target=pages.warm, name="console-warm", daemon=True).start()

    @app.middleware("http")
    async def _transport(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        if request.url.scheme == "https":  # the node serves TLS: browsers keep to it (the console's cookies are Secure)
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        path = request.url.path
        if path.startswith("/console") and not path.startswith("/console/static/"):
            response.headers["Cache-Control"] = "no-store"  # every console answer: none is kept by a shared browser
        return response

    @app.exception_handler(Refused)
    async def _refused(request: Request, e: Refused) -> Response:
        if e.login and request.method in ("GET", "HEAD"):
            return RedirectResponse(login_url(request.url.path), status_code=303)
        return render(request, "error.html", status=e.status, message=e.what, login=e.login)

    @app.get("/console", include_in_schema=False)
    def _console() -> HTMLResponse:
        return RedirectResponse("/console/", status_code=307)  # type: ignore[return-value]
