"""The console's pages for everyone: signing in and out, the language, a task's progress, and the
public verify page, where anyone checks a certificate presentation against the consortium's trust
file that this node serves."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response

from qdsn.errors import InvalidInput, QDSNError, RateLimited, Unavailable
from qdsn.node import trust, verification
from qdsn.node.node import PUBLIC_RECENT
from qdsn.node.verification import verify_bundle, verify_online
from qdsn.web import i18n, qr
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
    node.catch_up(recent=PUBLIC_RECENT)  # anonymous: the replica as it stands, see Node.catch_up
    return trust.export(node.ledger)


@router.get("/verify")
def verify_page(request: Request) -> Response:
    doc = _trust_file(request)
    return render(request, "verify.html", report=None, error=None, fingerprint=doc["fingerprint"],
                  origin=doc["origin"], presentation="", aud="", nonce="", source=None, link=None)  # fmt: skip


def verification_budget(request: Request) -> None:
    """Count one verification of this client before its form is read (a refused one is never read), on
    the same budget as the API's POST /verify and /bundle: the two doors do not add up."""
    request.app.state.public_work.take(_client(request), "verifications from this address")


def frame_budget(request: Request) -> None:
    """Count one camera frame of this client before it is read, on a budget of the frames' own."""
    console_of(request).frames.take(_client(request), "camera frames from this address")


@router.post("/verify", dependencies=[Depends(verification_budget), Depends(anonymous_form)])
async def verify(request: Request, presentation: Annotated[str, Form(max_length=MAX_PRESENTATION)] = "",
                 file: UploadFile | None = None, picture: UploadFile | None = None,
                 aud: Annotated[str, Form(max_length=512)] = "",
                 nonce: Annotated[str, Form(max_length=512)] = "") -> Response:  # fmt: skip
    """Verify what was pasted or uploaded, or what the QR code in a picture carries: a presentation
    against this node's replica, or a bundle replayed on its own, both anchored in the trust file this
    node serves, never in what they say; a link to a published presentation is followed first."""
    text, source, link = presentation.strip(), None, None
    try:
        if picture is not None and picture.filename:  # a picture wins: the text area may hold an earlier one
            data = await picture.read(qr.MAX_PICTURE + 1)
            text, source = await run_in_threadpool(qr.read_picture, data), "picture"
        elif file is not None and file.filename:
            data = await file.read(MAX_PRESENTATION + 1)
            if len(data) > MAX_PRESENTATION:
                raise InvalidInput(f"the file is larger than {MAX_PRESENTATION // 1024} KiB: not a presentation or "
                                   "bundle")  # fmt: skip
            try:
                text = data.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise InvalidInput("the file is not text (UTF-8): give the presentation file the holder sent") from None
        if text.startswith(("http://", "https://")):
            link, text = text, await run_in_threadpool(_published, request, text, source)
    except QDSNError as e:
        return _verify_error(request, _said(e), text, aud, nonce, status=_status(e), wait=e)
    if not text:
        return _verify_error(request, "paste a presentation (SD-JWT ~ … ~), or choose its file", text, aud, nonce)
    if link and not qr.carries_presentation(text):  # never echoed: what a host answers is not shown
        return _verify_error(request, _fetch_failed(link), link, aud, nonce, status=503, source=source, link=link)
    if source and not qr.carries_presentation(text):
        return _verify_error(request, "the QR code is not a presentation (an SD-JWT: <JWT>~<disclosure>~…) nor the "
                             f"link to one; it reads: {text[:120]}", text, aud, nonce, source=source)  # fmt: skip
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
        if link:  # what the link gave is not shown back, nor any part of it a refusal might quote
            return _verify_error(request, _fetch_failed(link), link, aud, nonce, status=503, source=source, link=link)
        said = _said(e)
        if source:
            said = f"the QR code does not carry a presentation: {said}"
        return _verify_error(request, said, text, aud, nonce, source=source, link=link)
    ok = all(c.ok for c in checks)
    return render(request, "verify.html", status=200, report={"ok": ok, "checks": checks}, error=None,
                  fingerprint=doc["fingerprint"], origin=doc["origin"], presentation=link or text, aud=aud,
                  nonce=nonce, source=source, link=link)  # fmt: skip


@router.post("/verify/scan", dependencies=[Depends(frame_budget), Depends(anonymous_form)])
async def scan(request: Request, picture: UploadFile | None = None) -> Response:
    """The text of the QR code in a camera frame, for the page's script, which then sends it to be
    verified as if pasted: {"text": …}, or {"error": …, "none": whether no code was seen} with 422 (429
    when the decoder is busy; a page with Retry-After when the client sent too many)."""
    try:
        if picture is None or not picture.filename:
            raise InvalidInput("send the camera frame as the form's picture")
        text = await run_in_threadpool(qr.read_picture, await picture.read(qr.MAX_PICTURE + 1))
    except QDSNError as e:
        status = 429 if isinstance(e, RateLimited) else 422
        headers = SECURITY_HEADERS | ({"Retry-After": str(e.retry_after)} if isinstance(e, RateLimited) else {})
        return JSONResponse({"error": _said(e), "none": isinstance(e, qr.NoQRCode)}, status_code=status,
                            headers=headers)  # fmt: skip
    return JSONResponse({"text": text}, headers=SECURITY_HEADERS)


def _client(request: Request) -> str:
    return request.client.host if request.client else ""


def _published(request: Request, text: str, source: str | None) -> str:
    """The presentation at the link `text` (pasted, or carried by a QR code), fetched from the holder's node."""
    if not qr.published_link(text):
        where = "the QR code carries" if source else "this is"
        raise InvalidInput(f"{where} a link, not a presentation: {text[:200]}",
                           "only the link where a QDSN node publishes a presentation (…/console/enterprise/"
                           "presentations/…) is followed; ask the holder for the certificate's QR code")  # fmt: skip
    node = console_of(request).node
    try:
        return qr.fetch_published(text, policy=verification.policy_of(node), origins=verification.member_origins(node))
    except QDSNError:  # one answer whatever went wrong: the page must not tell a closed port from an open one
        raise Unavailable(_fetch_failed(text)) from None


def _fetch_failed(link: str) -> str:
    """What the page says of a link not followed, or whose answer is not taken, whatever the reason."""
    return (f"the presentation could not be fetched from {link.split('/console/', 1)[0]}: a link is followed only "
            "to a member node the ledger records, and must give a presentation. Try again later, or ask the holder "
            "for the presentation itself")  # fmt: skip


def _said(e: QDSNError) -> str:
    return f"{e.what}. {e.fix}" if e.fix else e.what


def _status(e: QDSNError) -> int:
    return 429 if isinstance(e, RateLimited) else 503 if isinstance(e, Unavailable) else 400


def _verify_error(request: Request, error: str, text: str, aud: str, nonce: str, *, status: int = 400,
                  wait: QDSNError | None = None, source: str | None = None,
                  link: str | None = None) -> Response:  # fmt: skip
    doc = _trust_file(request)
    response = render(request, "verify.html", status=status, report=None, error=error, fingerprint=doc["fingerprint"],
                      origin=doc["origin"], presentation=text[:MAX_PRESENTATION], aud=aud, nonce=nonce,
                      source=source, link=link)  # fmt: skip
    if isinstance(wait, RateLimited | Unavailable):
        response.headers["Retry-After"] = str(wait.retry_after)
    return response
