"""The console's pages for everyone: signing in and out, the language, a task's progress, and the
public verify page, where anyone checks a certificate presentation against the consortium's trust
file that this node serves."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response

from qdsn.errors import InvalidInput, QDSNError, RateLimited
from qdsn.node import trust
from qdsn.node.verification import verify_bundle, verify_online
from qdsn.web import i18n
from qdsn.web.auth import SESSION_COOKIE, anonymous_form, current, forget, local_path, require, set_cookie, tls_or_local
from qdsn.web.pages import SECURITY_HEADERS, ConsoleRoute, console_of, render
from qdsn.web.staff import Staff

router = APIRouter(prefix="/console", include_in_schema=False, route_class=ConsoleRoute)
MAX_PRESENTATION = 512 * 1024  # a presentation or bundle pasted or uploaded; a larger file is refused unread


@router.get("/")
def start(request: Request) -> Response:
    console = console_of(request)
    if current(console.staff, request) is None:
        return RedirectResponse("/console/login", status_code=303)
    return RedirectResponse(console.home_page(), status_code=303)


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", next=local_path(next, ""), error=None)


@router.post("/login", dependencies=[Depends(tls_or_local), Depends(anonymous_form)])
async def login(request: Request, name: Annotated[str, Form(max_length=64)],
                password: Annotated[str, Form(max_length=1024)],
                next: Annotated[str, Form()] = "") -> Response:  # fmt: skip
    console = console_of(request)
    address = request.client.host if request.client else "-"
    try:
        token = await run_in_threadpool(console.staff.login, name, password, address)
    except RateLimited as e:
        console.staff.record(name if name in {a["name"] for a in console.staff.list()} else "-", "login.limited",
                             address)  # fmt: skip
        return render(request, "login.html", status=429, next=local_path(next, ""), error=e.what, retry=e.retry_after)
    except InvalidInput:
        console.staff.record("-", "login.failed", address, name=name[:64])
        return render(request, "login.html", status=401, next=local_path(next, ""), error="wrong name or password")
    console.staff.record(name, "login", address)
    response = RedirectResponse(local_path(next, console.home_page()), status_code=303)
    set_cookie(response, request, SESSION_COOKIE, token)
    return response


@router.post("/logout")
def logout(request: Request, staff: Annotated[Staff, Depends(require("viewer"))]) -> Response:
    console_of(request).staff.logout(staff)
    response = RedirectResponse("/console/login", status_code=303)
    forget(response, request, SESSION_COOKIE)
    return response


@router.post("/lang", dependencies=[Depends(anonymous_form)])
def language(request: Request, lang: Annotated[str, Form()], back: Annotated[str, Form()] = "") -> Response:
    if lang not in i18n.LOCALES:
        raise InvalidInput(f"the console speaks {', '.join(i18n.LOCALES)}, not {lang[:20]!r}")
    response = RedirectResponse(local_path(back), status_code=303)
    set_cookie(response, request, i18n.COOKIE, lang, max_age=365 * 86400)
    return response


@router.get("/tasks/{task_id}")
def task_status(request: Request, task_id: str, staff: Annotated[Staff, Depends(require("viewer"))]) -> Response:
    """A task's progress, as JSON for the page's script."""
    task = console_of(request).tasks.get(task_id, staff.name)
    if task is None:
        return JSONResponse({"error": "no such task"}, status_code=404, headers=SECURITY_HEADERS)
    return JSONResponse(task.to_json(), headers=SECURITY_HEADERS)


def _trust_file(request: Request) -> dict[str, Any]:
    node = console_of(request).node
    node.catch_up()
    return trust.export(node.ledger)


@router.get("/verify")
def verify_page(request: Request) -> Response:
    doc = _trust_file(request)
    return render(request, "verify.html", report=None, error=None, fingerprint=doc["fingerprint"],
                  origin=doc["origin"], presentation="", aud="", nonce="")  # fmt: skip


@router.post("/verify", dependencies=[Depends(anonymous_form)])
async def verify(request: Request, presentation: Annotated[str, Form(max_length=MAX_PRESENTATION)] = "",
                 file: UploadFile | None = None, aud: Annotated[str, Form(max_length=512)] = "",
                 nonce: Annotated[str, Form(max_length=512)] = "") -> Response:  # fmt: skip
    """Verify what was pasted or uploaded: a presentation against this node's replica, or a bundle
    replayed on its own; both anchored in the trust file this node serves, never in what they say."""
    text = presentation.strip()
    if file is not None and file.filename:
        data = await file.read(MAX_PRESENTATION + 1)
        if len(data) > MAX_PRESENTATION:
            return _verify_error(request, f"the file is larger than {MAX_PRESENTATION // 1024} KiB: not a "
                                 "presentation or bundle", text, aud, nonce)  # fmt: skip
        try:
            text = data.decode("utf-8").strip()
        except UnicodeDecodeError:
            return _verify_error(request, "the file is not text (UTF-8): give the presentation file the holder sent",
                                 text, aud, nonce)  # fmt: skip
    if not text:
        return _verify_error(request, "paste a presentation (SD-JWT ~ … ~), or choose its file", text, aud, nonce)
    doc = _trust_file(request)
    anchor = trust.load(doc)
    node = console_of(request).node
    try:
        if text.startswith("{"):
            try:
                bundle = orjson.loads(text)
            except orjson.JSONDecodeError as e:
                raise InvalidInput(f"this is not a bundle (JSON): {e}") from None
            checks = await run_in_threadpool(verify_bundle, bundle, aud=aud or None, nonce=nonce or None, trust=anchor)
        else:
            checks = await run_in_threadpool(verify_online, node, text, aud=aud or None, nonce=nonce or None,
                                             trust=anchor)  # fmt: skip
    except QDSNError as e:
        return _verify_error(request, f"{e.what}. {e.fix}" if e.fix else e.what, text, aud, nonce)
    ok = all(c.ok for c in checks)
    return render(request, "verify.html", status=200, report={"ok": ok, "checks": checks}, error=None,
                  fingerprint=doc["fingerprint"], origin=doc["origin"], presentation=text, aud=aud,
                  nonce=nonce)  # fmt: skip


def _verify_error(request: Request, error: str, text: str, aud: str, nonce: str) -> Response:
    doc = _trust_file(request)
    return render(request, "verify.html", status=400, report=None, error=error, fingerprint=doc["fingerprint"],
                  origin=doc["origin"], presentation=text[:MAX_PRESENTATION], aud=aud, nonce=nonce)  # fmt: skip
