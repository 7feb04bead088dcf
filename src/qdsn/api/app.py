"""The node's HTTP API (FastAPI). Requests between nodes are signed (RFC 9421, see `signatures`);
the DID document and the log's checkpoint are public. Every error is RFC 9457 problem+json."""

import asyncio
import base64
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any
from urllib.parse import urlsplit

import orjson
from fastapi import Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from fastapi_offline import FastAPIOffline
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as ASGIMessage

from qdsn import __version__
from qdsn.api import explorer, inspection
from qdsn.api import graph as graph_routes
from qdsn.api import pact as pact_api
from qdsn.api.bodies import SIGNER, Gate, receive_into
from qdsn.api.client import NodeClient
from qdsn.api.problems import MEDIA_TYPE, from_error, problem
from qdsn.api.signatures import BodyDigest, Resolver, Signed, Throttle, check_signature, inspect, use_nonce
from qdsn.clock import parse_time
from qdsn.compute import package
from qdsn.crypto import VerifyKey
from qdsn.crypto.jose import public_jwk
from qdsn.errors import (
    BadSignature,
    IntegrityError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    QDSNError,
    RateLimited,  # fmt: skip
    Unavailable,
)
from qdsn.identity import did_document
from qdsn.ledger import tx
from qdsn.ledger.checkpoint import COSIGNATURE_V1, NoteVerifier
from qdsn.ledger.ledger import batch_key
from qdsn.ledger.ordering.etcd import POSITION
from qdsn.node import certify, jobs, notify, pact, provider, transfer, trust, verification
from qdsn.node.follow import keep_up
from qdsn.node.keeper import MAX_BACKUP
from qdsn.node.node import PUBLIC_RECENT, Node
from qdsn.policy.meter import invoice, usage
from qdsn.privacy import aggregator, report
from qdsn.privacy.task import tasks
from qdsn.supervision import notifications as qn
from qdsn.web import MAX_PICTURE_FORM, MAX_UPLOAD, PICTURE_PATHS, UPLOAD_PATH, mount

logger = logging.getLogger("qdsn.api")
MAX_BODY = 1 << 20  # a batch of transactions; larger requests are refused before they are read
MAX_JOB_BODY = package.MAX_ARCHIVE_BASE64 + (64 << 10)  # a job request: the largest model archive, base64, and the rest
# A body must arrive within BODY_SECONDS, plus a second per BODY_RATE bytes of its route's limit: a
# client trickling a byte now and then holds a connection (and a worker's memory) for no longer.
BODY_SECONDS = 30.0
BODY_RATE = 1 << 20
# Connections a node serves at once (`qdsn node start`); past it, new requests get 503 at once.
MAX_CONNECTIONS = 256
MAX_ENTRIES = 1000
# Requests one counterpart (a signer's DID) may make of the routes where this node decides and records
# something (negotiations, transfers and deliveries, jobs, the notification inbox, scoring), and all
# counterparts together: (burst, per second). A throttled request is refused before anything is decided.
PER_COUNTERPART = (50.0, 10.0)
OVERALL = (200.0, 50.0)
# Rows `POST /ai/score` scores for one counterpart and for all: (burst, per second), about 20,000 and
# 100,000 a minute.
SCORED_PER_COUNTERPART = (20_000.0, 20_000 / 60)
SCORED_OVERALL = (100_000.0, 100_000 / 60)


def _body(required: tuple[str, ...] = (), **properties: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI request body of an endpoint that reads its JSON object itself (to verify the
    signature over the exact bytes first)."""
    schema = {"type": "object", "properties": properties, "required": list(required)}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


_STR = {"type": "string"}
_REASON = _body(code=_STR, reason=_STR)


def _limit_of(request: Request) -> int:
    """The largest body a request may carry: a sealed vault backup, a job request, or a batch of transactions."""
    if request.method == "POST" and request.url.path == "/jobs":
        return MAX_JOB_BODY
    if request.method == "POST" and request.url.path == UPLOAD_PATH:  # a staff member's file for the vault
        return MAX_UPLOAD
    if request.method == "POST" and request.url.path in PICTURE_PATHS:  # anyone's photo of a QR code
        return MAX_PICTURE_FORM
    return MAX_BACKUP if request.method == "PUT" and request.url.path.startswith("/backups/") else MAX_BODY


def _problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=body["status"], media_type=MEDIA_TYPE, headers=headers)


class BodyLimit:
    """Refuses a body over its route's limit while it streams in: at once by its Content-Length, or as
    soon as the bytes received (chunked or not) pass the limit, so no large body is ever held; and a
    body not received in full by its deadline (408). A body over MAX_BODY whose signature was verified
    (its signer in the scope) is let in through `gate`: so many at once, so many per signer."""

    def __init__(self, app: ASGIApp, gate: Gate | None = None) -> None:
        self.app = app
        self.gate = gate or Gate()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = _limit_of(Request(scope))
        length = Headers(scope=scope).get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            refusal = problem(413, "too-large", "Request too large", f"bodies are limited to {limit} bytes")
            await _problem_response(refusal)(scope, receive, send)
            return
        got = 0
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + BODY_SECONDS + limit / BODY_RATE
        admitted: str | None = None

        async def counted() -> ASGIMessage:
            nonlocal got, admitted
            if admitted is None and limit > MAX_BODY and (signer := scope.get(SIGNER)) is not None:
                self.gate.enter(signer)  # Unavailable (503) when full: before a byte of it is read
                admitted = signer
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.001))
            except TimeoutError:  # the handler turns this into a 408 problem, and the connection is closed
                raise StarletteHTTPException(408, f"the body did not arrive within {deadline - start:.0f} s") from None
            if message["type"] == "http.request":
                got += len(message.get("body", b""))
                if got > limit:  # the route's handler turns this into a 413 problem
                    raise StarletteHTTPException(413, f"bodies are limited to {limit} bytes")
            return message

        try:
            await self.app(scope, counted, send)
        finally:
            if admitted is not None:
                self.gate.leave(admitted)


def origin(url: str) -> tuple[str, str]:
    """(scheme, authority) of an http(s) URL as a client signs it: the host in lower case, a default port
    left out. Raises InvalidInput for anything else."""
    try:
        u = urlsplit(url)
        host, port = u.hostname, u.port
    except ValueError as e:
        raise InvalidInput(f"{url!r} is not a URL: {e}") from None
    if u.scheme not in ("http", "https") or not host or u.path.strip("/") or u.query or u.username:
        raise InvalidInput(
            f"{url!r} is not a node's public URL", "give scheme://host[:port], e.g. https://node.example:8420"
        )
    return u.scheme, _authority(u.scheme, host, port)


def _authority(scheme: str, host: str, port: int | None) -> str:
    host = host.lower()
    host = f"[{host}]" if ":" in host else host
    return host if port is None or port == {"http": 80, "https": 443}[scheme] else f"{host}:{port}"


def _addressed(scheme: str, host: str | None) -> str | None:
    """The authority a request's Host field names, in the form of `origin`; None when there is none."""
    try:
        u = urlsplit(f"//{host}")
        return _authority(scheme, u.hostname, u.port) if host and u.hostname else None
    except ValueError:
        return None


async def _monitor(node: Node, every: float) -> None:
    """The node's own rounds: a member follows and cosigns the log; a provider ends expired agreements; a
    certification body runs the rechecks that are due."""
    while True:
        try:
            if node.link is not None and node.etcd is None:
                await run_in_threadpool(_follow, node)
            await run_in_threadpool(transfer.expire, node)
            if node.backup_to is not None:  # the real-time backup: sealed, to a keeper, when the vault changed
                await run_in_threadpool(node.back_up, node.backup_to)
            await run_in_threadpool(certify.run_due, node, lambda url: NodeClient(url, node.home.key(), node.did))
            await run_in_threadpool(notify.on_split_views, node)  # evidence this node recorded: tell the other side
            await run_in_threadpool(notify.deliver_due, node, lambda url: NodeClient(url, node.home.key(), node.did))
            await run_in_threadpool(pact.flush_denials, node)  # repeated denials, counted, go on the ledger
        except QDSNError as e:  # the node keeps serving; the next round tries again
            logger.warning("a monitor round failed: %s", e)
        except Exception:
            logger.exception("a monitor round failed")
        await asyncio.sleep(every)


def _follow(node: Node) -> None:
    assert node.link is not None
    with node.following:
        try:
            keep_up(node.home, node.ledger, node.link)
        except IntegrityError as e:  # a split view or a bad entry: never cosigned, always reported
            logger.critical("the log operator's log does not hold together: %s. %s", e.what, e.fix or "")


def _served_at(scope: Scope) -> tuple[str, str]:
    """(scheme, authority) of the address this request reached the node at (the ASGI server's)."""
    server = scope.get("server")
    if not server or server[1] is None:
        raise QDSNError("this node does not know the URL it is served at", "set public_url in node.toml's [service]")
    scheme = "https" if scope.get("scheme") == "https" else "http"
    return scheme, _authority(scheme, str(server[0]), int(server[1]))


def _known(node: Node) -> Callable[[str], bytes | None]:
    def known(did: str) -> bytes | None:
        """A participant's key as this replica has it, without asking anybody."""
        ident = node.ledger.state.identities.get(did)
        return ident.key if ident else None

    return known


def create_app(node: Node, *, monitor: float | None = None, public_url: str | None = None,
               counterparts: Throttle | None = None, scored: Throttle | None = None) -> FastAPI:  # fmt: skip
    """The API of one node; with `monitor`, every that many seconds it follows and cosigns the log
    (members) and ends agreements whose time is up. `public_url` (default the node's own, else the
    address it serves on) is the URL signed requests must be addressed to. `counterparts` bounds each
    signer's requests that this node decides and records (default PER_COUNTERPART and OVERALL), `scored`
    the rows it scores (default SCORED_PER_COUNTERPART and SCORED_OVERALL)."""
    if public_url is not None:
        origin(public_url)  # refused here, not on the first request

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_monitor(node, monitor)) if monitor else None
        yield
        if task is not None:
            task.cancel()

    # FastAPIOffline: /docs and /redoc load Swagger UI and ReDoc from this node, not from a public CDN
    # that a plant network cannot reach
    app = FastAPIOffline(
        lifespan=lifespan,
        title=f"QDSN node {node.home.name}",
        version=__version__,
        description="A participant of a QDSN consortium. Requests between nodes carry RFC 9421 signatures "
        "by the sender's DID key; errors are RFC 9457 problem+json.",
    )
    nonces = node.nonces
    keys = Resolver(_known(node), node.key_of)
    # Verifying a presentation or bundling the log for one is real work that anyone may ask for: bounded
    # per client address and overall, so that strangers cannot take the node's cores from its members.
    public_work = Throttle(per_client=(10, 2), overall=(40, 20))
    app.state.public_work = public_work  # the console's verify page takes from the same budget (web/public.py)

    def public(request: Request) -> None:
        public_work.take(request.client.host if request.client else "", "verifications from this address")

    Public = Depends(public)

    @app.exception_handler(QDSNError)
    async def _qdsn(_: Request, e: QDSNError) -> JSONResponse:
        wait = {"Retry-After": str(e.retry_after)} if isinstance(e, (RateLimited, Unavailable)) else None
        return _problem_response(from_error(e), wait)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _problem_response(problem(400, "invalid-input", "The request is not valid", f"{where}: {first['msg']}"))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, e: StarletteHTTPException) -> JSONResponse:
        kinds = {404: "not-found", 405: "method-not-allowed", 408: "too-slow", 413: "too-large"}
        kind = kinds.get(e.status_code, "http")
        closing = {"Connection": "close"} if e.status_code == 408 else None  # the rest of the body is not read
        return _problem_response(problem(e.status_code, kind, str(e.detail), str(e.detail)), closing)

    @app.exception_handler(Exception)
    async def _internal(_: Request, e: Exception) -> JSONResponse:  # never a stack trace to a peer
        return _problem_response(problem(500, "internal", "Internal error", "the node failed to answer; see its log"))

    app.state.large_bodies = Gate()  # large bodies arriving at once (see api.bodies)
    app.add_middleware(BodyLimit, gate=app.state.large_bodies)

    def own_origin(request: Request) -> tuple[str, str]:
        """(scheme, authority) of this node: its public URL, by default the address it serves on."""
        own = public_url or node.public_url
        return origin(own) if own else _served_at(request.scope)

    def target_uri(request: Request) -> str:
        """The URI this request was sent to, as this node knows itself: its own origin with the
        request's path. A request addressed to another node is refused, and a signature over another
        node's URI never holds here, whatever Host the client sends."""
        scheme, own = own_origin(request)
        asked = _addressed(scheme, request.headers.get("host"))
        if asked != own:
            raise BadSignature(f"the request is addressed to {asked or 'no host'}, but this node is {scheme}://{own}",
                               "sign each request for the node it is sent to, at that node's public URL")  # fmt: skip
        return str(request.url.replace(scheme=scheme, netloc=own))

    async def signature(request: Request) -> tuple[list[tuple[str, str]], Signed]:
        """The request's header lines and its signature, once it holds (RFC 9421) over everything but the
        body, whose digest it covers; a 401/403/429 problem otherwise. Its form, its recipient and its
        signer are checked before a key is used, and no byte of the body is read."""
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        signed = inspect(headers)
        url = target_uri(request)
        key = keys.known(signed.keyid)
        if key is None:  # may catch up with the log operator: limited, and off the event loop
            key = await run_in_threadpool(keys, signed.keyid, request.client.host if request.client else "")
        if key is None:
            raise PermissionDenied(f"{signed.keyid} is not a participant on this ledger",
                                   "ask the regulator to register it, or sign with the current key")  # fmt: skip
        await run_in_threadpool(check_signature, request.method, url, headers, signed, key)
        request.scope[SIGNER] = signed.keyid  # a verified signer: its large body may come in (BodyLimit)
        return headers, signed

    async def signer(request: Request) -> str:
        """The DID that signed this request (RFC 9421), or a 401/403/429 problem: its signature over the
        headers first, then its body (bounded by BodyLimit as it streams in) against their digest."""
        headers, signed = await signature(request)
        digest = BodyDigest(headers)
        body = await request.body()

        def checked() -> str:
            digest.update(body)
            digest.check()
            return use_nonce(signed, nonces)

        return await run_in_threadpool(checked)

    Signer = Annotated[str, Depends(signer)]
    deciding = counterparts or Throttle(PER_COUNTERPART, OVERALL)
    scoring = scored or Throttle(SCORED_PER_COUNTERPART, SCORED_OVERALL)

    def counterpart(who: Signer) -> str:
        """The signer, once its request is counted against its organisation's budget (429 past it)."""
        deciding.take(who, "requests from your organisation to decide and record (negotiations, transfers, jobs, "
                           "notifications, scoring)")  # fmt: skip
        return who

    Counterpart = Annotated[str, Depends(counterpart)]
    app.include_router(explorer.router(node, Signer))

    async def maybe_signer(request: Request) -> str | None:
        """The signer's DID when the request is signed; None for an anonymous one."""
        signs = "signature" in request.headers or "signature-input" in request.headers
        return await signer(request) if signs else None

    async def message(request: Request) -> dict[str, Any]:
        try:
            doc = orjson.loads(await request.body() or b"{}")
        except orjson.JSONDecodeError as e:
            raise InvalidInput(f"the body is not JSON: {e}") from None
        if not isinstance(doc, dict):
            raise InvalidInput("the body must be a JSON object")
        return doc

    Message = Annotated[dict[str, Any], Depends(message)]

    app.include_router(pact_api.router(node, own=own_origin))  # PACT v3 product footprints, over bearer tokens

    @app.post("/pact/clients", tags=["pact"], status_code=201, openapi_extra=_body(
        agreement=_STR, purpose=_STR, events=_STR))  # fmt: skip
    def pact_client(who: Signer, body: Message, request: Request) -> dict[str, Any]:
        """PACT client credentials for the signer: under a footprints agreement it holds (to read and
        request footprints), or with none (to send this node the events a data owner sends). HTTPS only:
        the answer holds the client secret."""
        if pact_api.plain_http(request):
            raise InvalidInput(f"{pact_api.PLAIN}: no client secret is sent in clear", pact_api.PLAIN_FIX)
        if not all(isinstance(body.get(k), str | None) for k in ("agreement", "purpose", "events")):
            raise InvalidInput('the body is {"agreement"?: UID, "purpose"?: str, "events"?: https URL}')
        creds = pact.add_client(node, agreement=body.get("agreement"), counterpart=who, purpose=body.get("purpose"),
                                events_url=body.get("events"))  # fmt: skip
        return creds | {"owner": node.did}

    @app.get("/.well-known/did.json", tags=["identity"])
    def did_json() -> dict[str, Any]:
        """This node's DID document (public): its keys as the ledger records them (`qdsn did show` prints the
        same), or its own key before the regulator registered it."""
        return node.ledger.did_document(node.did) or did_document(node.did, node.home.key().verify_key.raw)

    @app.get("/ledger/checkpoint", response_class=PlainTextResponse, tags=["ledger"])
    def checkpoint() -> str:
        """The log's latest checkpoint, a C2SP signed note (public; log operators only)."""
        return node.checkpoint()

    @app.get("/ledger/entries", tags=["ledger"])
    def entries(
        who: Signer,
        start: Annotated[int, Query(ge=0, description="first entry")] = 0,
        end: Annotated[int | None, Query(ge=0, description="one past the last entry; at most 1000 after start")] = None,
    ) -> dict[str, Any]:
        """Log entries [start, end) as their exact leaf bytes (base64), for followers to verify and apply;
        participants only."""
        size = node.ledger.size
        end = min(size, start + MAX_ENTRIES) if end is None else end
        if start > size or end > size or end < start or end - start > MAX_ENTRIES:
            raise InvalidInput(f"entries [{start}, {end}) are not within the log of {size} (at most {MAX_ENTRIES})")
        leaves = node.ledger.store.leaves(start, end) if end > start else []
        return {"size": size, "start": start, "entries": [base64.b64encode(x).decode() for x in leaves]}

    @app.get("/ledger/ordering", tags=["ledger"])
    def ordering(who: Signer) -> dict[str, Any]:
        """This replica's size and how much of the etcd ordering sequence it has applied, read together,
        for a peer that catches up from this node; participants only."""
        size, position = node.ledger.mark(POSITION)
        return {"size": size, "position": int(position or 0)}

    envelopes = {"type": "array", "items": {"type": "object"}}

    @app.post("/ledger/transactions", tags=["ledger"], status_code=201,
              openapi_extra=_body(("transactions",), transactions=envelopes))  # fmt: skip
    def submit(who: Signer, body: Message, request: Request, response: Response) -> dict[str, Any]:
        """Append signed transactions to the log this node operates. Each must be submitted by the
        participant that signed the request; the batch is taken or refused whole. Its idempotency key
        (`Idempotency-Key`, optional) is the SHA-256 of its transaction ids: a batch sent again because
        its answer was lost is answered 200 with the receipts it got, and written once. 503 with
        Retry-After when the ordering service cannot answer: send the same batch again then, or ask
        `GET /ledger/transactions/{txid}`. 429 with Retry-After when the submitter has used up its budget
        (`ledger.ordering.budget`: transactions at once and per second, draft notifications per day)."""
        items = body.get("transactions")
        if not isinstance(items, list) or not items:
            raise InvalidInput('the body is {"transactions": [envelope, …]} with at least one envelope')
        envs = [tx.from_json(x) for x in items]
        for i, env in enumerate(envs):
            if env.submitter != who:
                raise PermissionDenied(f"transaction {i} is submitted by {env.submitter}, but {who} signed the request")
        key, sent = batch_key(envs), request.headers.get("idempotency-key")
        if sent is not None and sent.strip().strip('"') != key:
            raise IntegrityError(f"the Idempotency-Key {sent[:80]!r} is not this batch's key {key}",
                                 "send the SHA-256 of the batch's transaction ids, or no key")  # fmt: skip
        receipts = node.ledger.recorded(envs)
        if receipts is not None:
            response.status_code = 200  # written before: its answer was lost
        else:
            receipts = node.order(envs)  # type: ignore[assignment]
        return {"idempotencyKey": key, "receipts": [{"seq": r.seq, "txid": r.txid} for r in receipts]}

    @app.get("/ledger/transactions/{txid}", tags=["ledger"])
    def transaction(txid: str, who: Signer) -> dict[str, Any]:
        """Whether a transaction is in the log (after catching up with it): its position and its inclusion
        proof in the log as this replica holds it, or 404. A client whose submission got no answer asks
        this before it decides to send the batch again; participants only."""
        if not re.fullmatch(r"[0-9a-f]{64}", txid):
            raise InvalidInput(f"a transaction id is 64 lowercase hex digits (SHA-256 of its leaf), not {txid[:80]!r}")
        try:
            row = node.ledger.store.entry(txid=txid)
        except NotFound:
            node.catch_up()
            try:
                row = node.ledger.store.entry(txid=txid)
            except NotFound:
                again = "a batch that got no answer may be sent again; it is written once"
                raise NotFound(f"transaction {txid} is not in the log of {node.ledger.size} entries", again) from None
        size = node.ledger.size
        proof = node.ledger.inclusion_proof(row.seq, size)
        return {"txid": row.txid, "seq": row.seq, "type": row.type, "submitter": row.submitter, "size": size,
                "root": node.ledger.root_at(size).hex(), "inclusion": [h.hex() for h in proof]}  # fmt: skip

    @app.post("/ledger/cosignatures", tags=["ledger"], openapi_extra=_body(("note",), note=_STR))
    def cosign(who: Signer, body: Message) -> dict[str, Any]:
        """A member's cosignature of this log's checkpoint (C2SP tlog-cosignature), merged into the
        stored checkpoint; returns the note with every cosignature so far."""
        note = body.get("note")
        if not isinstance(note, str):
            raise InvalidInput('the body is {"note": "<cosigned checkpoint>"}')
        key = node.key_of(who)
        assert key is not None  # the signature was verified with it
        merged = node.ledger.add_cosignature(note, NoteVerifier(who, VerifyKey(key), COSIGNATURE_V1))
        return {"note": merged}

    octets = {"required": True, "content": {"application/octet-stream": {}}}

    @app.put("/backups/{owner}", tags=["backups"], status_code=201, openapi_extra={"requestBody": octets})
    async def keep_backup(owner: str, request: Request) -> dict[str, Any]:
        """Keep a member's sealed vault backup for it, in place of its last one. Only the owner sends its
        own (signed); this node can read nothing in it. The body goes to a file as it arrives, its digest
        computed on the way, and takes the last one's place only once that digest is the signed one."""
        headers, signed = await signature(request)
        if signed.keyid != owner:
            raise PermissionDenied(f"{signed.keyid} may keep only its own backup here, not {owner}'s")
        digest = BodyDigest(headers)
        await run_in_threadpool(use_nonce, signed, nonces)  # a replay is refused before a byte is stored
        f, part = await run_in_threadpool(node.keeper.receiving)
        try:
            with f:
                await receive_into(request.stream(), f, digest)
            digest.check()
            await run_in_threadpool(node.keeper.keep_file, owner, part)
        finally:
            node.keeper.discard(part)  # kept, it was moved: gone either way
        return {"owner": owner, "sha256": digest.sha256.hexdigest()}

    @app.get("/backups/{owner}", tags=["backups"], response_class=Response,
             responses={200: {"content": {"application/octet-stream": {}}}})  # fmt: skip
    def fetch_backup(owner: str, who: Signer) -> Response:
        """A member's last sealed backup, for that member only."""
        if who != owner:
            raise PermissionDenied(f"only {owner} may fetch its backup")
        return FileResponse(node.keeper.path_of(owner), media_type="application/octet-stream")  # streamed

    @app.get("/catalog", tags=["catalog"])
    def catalog_get(who: Annotated[str | None, Depends(maybe_signer)]) -> dict[str, Any]:
        """The catalog, as `POST /catalog/request` gives it (the DSP binding), for plain HTTP clients."""
        return provider.catalog(node, who)

    @app.post("/catalog/request", tags=["catalog"])
    def catalog_request(who: Annotated[str | None, Depends(maybe_signer)]) -> dict[str, Any]:
        """This node's DCAT 3 catalog with the ODRL offers the requester may see (anonymous requesters
        see the offers that name nobody)."""
        return provider.catalog(node, who)

    @app.post("/negotiations/request", tags=["negotiation"], status_code=201,
              openapi_extra=_body(("consumerPid", "offer"), consumerPid=_STR, offer={"type": "object"}))  # fmt: skip
    def negotiation_request(who: Counterpart, body: Message) -> dict[str, Any]:
        """A ContractRequestMessage for an offer of the catalog: answered AGREED, or TERMINATED with why."""
        return provider.request(node, who, body).to_dsp()

    @app.get("/negotiations/{pid}", tags=["negotiation"])
    def negotiation_get(pid: str, who: Signer) -> dict[str, Any]:
        """A negotiation of the requester's."""
        return provider.mine(node, who, pid).to_dsp()

    @app.post("/negotiations/{pid}/agreement/verification", tags=["negotiation"], openapi_extra=_body())
    def negotiation_verify(pid: str, who: Counterpart, body: Message) -> dict[str, Any]:
        """The consumer verifies the agreement; the provider finalizes."""
        return provider.verify_agreement(node, who, pid).to_dsp()

    @app.post("/negotiations/{pid}/termination", tags=["negotiation"], openapi_extra=_REASON)
    def negotiation_terminate(pid: str, who: Counterpart, body: Message) -> dict[str, Any]:
        """The consumer ends a negotiation; `code` and `reason` say why."""
        reason = body.get("reason", body.get("dspace:reason"))
        if isinstance(reason, list):
            reason = "; ".join(map(str, reason))
        code = body.get("code", body.get("dspace:code"))
        return provider.terminate(node, who, pid, code, reason).to_dsp()

    @app.post("/transfers/request", tags=["transfer"], status_code=201, openapi_extra=_body(
        ("consumerPid", "agreementId", "format"), consumerPid=_STR, agreementId=_STR,
        format={"enum": ["urn:qdsn:transfer:compute", "urn:qdsn:transfer:sealed-delivery"]},
        **{"qdsn:purpose": _STR, "qdsn:dataset": _STR, "qdsn:modelHash": _STR, "qdsn:records": {
            "type": "object", "properties": {"first": {"type": "integer"}, "count": {"type": "integer"}}}},
    ))  # fmt: skip
    def transfer_request(who: Counterpart, body: Message) -> dict[str, Any]:
        """A TransferRequestMessage under one of the requester's agreements: answered STARTED (with the
        data address of a sealed delivery), or 403 with the rule that denied it — recorded on the ledger."""
        t = transfer.request(node, who, body)
        out = t.to_dsp()
        if t.kind == "sealed-delivery":
            out["dspace:dataAddress"] = {"@type": "dspace:DataAddress", "dspace:endpointType": transfer.DATA_ADDRESS,
                                         "dspace:endpoint": f"/transfers/{t.provider_pid}/data"}  # fmt: skip
        return out

    @app.get("/transfers/{pid}", tags=["transfer"])
    def transfer_get(pid: str, who: Signer) -> dict[str, Any]:
        """A transfer process of the requester's."""
        return transfer.mine(node, who, pid).to_dsp()

    @app.post("/transfers/{pid}/data", tags=["transfer"])
    def transfer_data(pid: str, who: Counterpart) -> dict[str, Any]:
        """One sealed delivery (a use, decided and metered): the records with their inclusion proofs,
        HPKE-sealed to the requester's X25519 key."""
        return transfer.deliver(node, who, pid)

    def transfer_message(pid: str, who: str, body: dict[str, Any], kind: str) -> dict[str, Any]:
        reason = body.get("reason", body.get("dspace:reason"))
        if isinstance(reason, list):
            reason = "; ".join(map(str, reason))
        return transfer.message(node, who, pid, kind, body.get("code", body.get("dspace:code")), reason).to_dsp()

    @app.post("/transfers/{pid}/start", tags=["transfer"], openapi_extra=_body())
    def transfer_start(pid: str, who: Counterpart, body: Message) -> dict[str, Any]:
        """The consumer resumes a SUSPENDED transfer (TransferStartMessage)."""
        return transfer_message(pid, who, body, "TransferStartMessage")

    @app.post("/transfers/{pid}/completion", tags=["transfer"], openapi_extra=_body())
    def transfer_completion(pid: str, who: Counterpart, body: Message) -> dict[str, Any]:
        """The consumer completes a STARTED transfer (TransferCompletionMessage)."""
        return transfer_message(pid, who, body, "TransferCompletionMessage")

    @app.post("/transfers/{pid}/suspension", tags=["transfer"], openapi_extra=_REASON)
    def transfer_suspension(pid: str, who: Counterpart, body: Message) -> dict[str, Any]:
        """The consumer suspends a STARTED transfer; `code` and `reason` say why."""
        return transfer_message(pid, who, body, "TransferSuspensionMessage")

    @app.post("/transfers/{pid}/termination", tags=["transfer"], openapi_extra=_REASON)
    def transfer_termination(pid: str, who: Counterpart, body: Message) -> dict[str, Any]:
        """The consumer ends a transfer; `code` and `reason` say why."""
        return transfer_message(pid, who, body, "TransferTerminationMessage")

    @app.post("/jobs", tags=["compute"], status_code=201, openapi_extra=_body(
        ("agreementId", "archive", "datasets", "nonce"), agreementId=_STR, archive=_STR, nonce=_STR, purpose=_STR,
        parameters={"type": "object"}, model=_STR, codeHash=_STR,
        datasets={"type": "array", "items": {"type": "object", "properties": {
            "dataset": _STR, "first": {"type": "integer"}, "count": {"type": "integer"}}}},
    ))  # fmt: skip
    def job_request(who: Counterpart, body: Message) -> dict[str, Any]:
        """A certification body asks for a published model (its canonical archive, base64) to run on
        pinned, anchored records under its agreement: pending for the owner's approval, or run at once
        when the agreement names the model's code hash; 403 with the rule that denied it."""
        return jobs.request(node, who, body).to_json()

    @app.get("/jobs", tags=["compute"])
    def job_list(who: Signer) -> dict[str, Any]:
        """The jobs the requester may see: all for the owner, its own for a certification body."""
        return {"jobs": [j.to_json() for j in jobs.visible(node, who)]}

    @app.get("/jobs/{job_id}", tags=["compute"])
    def job_get(job_id: str, who: Signer) -> dict[str, Any]:
        """One job, with its result and attestation once it ran."""
        return _job(job_id, who).to_json()

    @app.post("/jobs/{job_id}/approval", tags=["compute"], openapi_extra=_body())
    def job_approve(job_id: str, who: Signer, body: Message) -> dict[str, Any]:
        """The owner approves a pending job: it runs in the sandbox now (owner only)."""
        _owner_only(who)
        return jobs.approve(node, job_id).to_json()

    @app.post("/jobs/{job_id}/denial", tags=["compute"], openapi_extra=_body(("reason",), reason=_STR))
    def job_deny(job_id: str, who: Signer, body: Message) -> dict[str, Any]:
        """The owner refuses a pending job, saying why (owner only)."""
        _owner_only(who)
        return jobs.deny(node, job_id, str(body.get("reason") or "")).to_json()

    def _job(job_id: str, who: str) -> jobs.Job:
        visible = {j.id: j for j in jobs.visible(node, who)}
        if job_id not in visible:
            raise NotFound(f"no job {job_id!r}")  # somebody else's job does not exist for them
        return visible[job_id]

    def _owner_only(who: str) -> None:
        if who != node.did:
            raise PermissionDenied("only the data's owner approves or denies jobs on its node")

    @app.post("/notifications/inbox", tags=["notifications"], status_code=201, openapi_extra=_body(
        ("notification", "sealed"), notification=_STR, sealed=_STR, suite=_STR))  # fmt: skip
    def notification_inbox(who: Counterpart, body: Message) -> dict[str, Any]:
        """A quality notification delivered by its sender: its content sealed (HPKE) to this node, for a
        notification the ledger says is SENT from the signer to this node; stored, then RECEIVED recorded."""
        return notify.receive(node, who, body)

    raised = _body(("recipient", "classification", "severity", "description"), recipient=_STR,
                   classification={"enum": list(qn.CLASSIFICATIONS)}, severity={"enum": list(qn.SEVERITIES)},
                   description=_STR, target_date=_STR, related=_STR, url=_STR,
                   affected={"type": "object", "additionalProperties": {"type": "array", "items": _STR}})  # fmt: skip

    @app.post("/notifications", tags=["notifications"], status_code=201, openapi_extra=raised)
    def notification_raise(who: Signer, body: Message) -> dict[str, Any]:
        """Raise a quality notification (this node's owner only): CREATED on the ledger, and sent at once
        when `url`, the recipient's API, is given."""
        _self_only(who)
        fields = {k: body.get(k) for k in ("recipient", "classification", "severity", "description")}
        if not all(isinstance(v, str) for v in fields.values()):
            raise InvalidInput("recipient, classification, severity and description are strings")
        if not all(isinstance(body.get(k), (str, type(None))) for k in ("target_date", "related", "url")):
            raise InvalidInput("target_date (YYYY-MM-DD), related (a notification id) and url are strings")
        if not isinstance(body.get("affected"), (dict, type(None))):
            raise InvalidInput('affected is {"datasets": […], "batches": […], "serials": […], "products": […], '
                               '"certificates": […]}')  # fmt: skip
        url = body.get("url")
        n = notify.raise_(node, **fields, target_date=body.get("target_date"), related=body.get("related"),
                          affected=body.get("affected"), url=url)  # fmt: skip
        if url is not None:
            notify.send(node, n.id, peer(url))
        return notify.show(node, n.id)

    @app.get("/notifications", tags=["notifications"])
    def notification_list(who: Signer) -> dict[str, Any]:
        """This node's quality notifications, sent and received; the regulator also gets counts of the
        others (this node's owner only)."""
        _self_only(who)
        node.catch_up()
        return notify.listing(node)

    @app.get("/notifications/{nid}", tags=["notifications"])
    def notification_get(nid: str, who: Signer) -> dict[str, Any]:
        """One of this node's notifications, with its content and history (this node's owner only)."""
        _self_only(who)
        node.catch_up()
        return notify.show(node, nid)

    @app.post("/notifications/{nid}/delivery", tags=["notifications"], openapi_extra=_body(("url",), url=_STR))
    def notification_send(nid: str, who: Signer, body: Message) -> dict[str, Any]:
        """Send (again) a notification this node raised to the recipient's API at `url` (owner only)."""
        _self_only(who)
        url = body.get("url")
        if not isinstance(url, str):
            raise InvalidInput('the body is {"url": "<the recipient\'s API>"}')
        return notify.send(node, nid, peer(url))

    answers = {"enum": ["ACKNOWLEDGED", "ACCEPTED", "DECLINED", "CLOSED", "CANCELED"]}

    @app.post("/notifications/{nid}/transitions", tags=["notifications"],
              openapi_extra=_body(("state",), state=answers, reason=_STR))  # fmt: skip
    def notification_move(nid: str, who: Signer, body: Message) -> dict[str, Any]:
        """Acknowledge, accept or decline (recipient), close or cancel (sender) one of this node's
        notifications; declining and closing need a reason (owner only)."""
        _self_only(who)
        state, reason = body.get("state"), body.get("reason")
        if not isinstance(state, str) or not (reason is None or isinstance(reason, str)):
            raise InvalidInput('the body is {"state": "ACKNOWLEDGED|ACCEPTED|DECLINED|CLOSED|CANCELED", "reason": "…"}')
        notify.answer(node, nid, state, reason)
        return notify.show(node, nid)

    def _self_only(who: str) -> None:
        if who != node.did:
            raise PermissionDenied("only this node's own organisation handles its notifications here")

    @app.get("/status/ingest", tags=["data"])
    def ingest_status(who: Signer) -> dict[str, Any]:
        """Readings that never arrived, per dataset and device: the gaps in the devices' sequence numbers
        (owner only)."""
        if who != node.did:
            raise PermissionDenied("only the data's owner sees its ingestion status")
        datasets = {}
        for d in node.vault.datasets():
            try:
                datasets[d] = [s.to_json() for s in node.vault.streams(d)]
            except NotFound:  # shredded: nothing of it can be read any more
                continue
        missing = sum(s["missing"] for streams in datasets.values() for s in streams)
        return {"missing": missing, "datasets": [{"dataset": d, "devices": v} for d, v in datasets.items()]}

    @app.get("/.well-known/jwt-vc-issuer", tags=["credentials"])
    def vc_issuer(request: Request) -> dict[str, Any]:
        """SD-JWT VC issuer metadata for this node as an HTTPS issuer: its URL and the key its certificates
        are signed with, named by its DID (public)."""
        issuer = "://".join(own_origin(request))  # its own URL, not whatever Host a client sent
        return {"issuer": issuer, "jwks": {"keys": [public_jwk(node.home.key()) | {"kid": node.did}]}}

    @app.get(trust.PATH, tags=["credentials"])
    def consortium_trust() -> dict[str, Any]:
        """The consortium's trust file for offline verifiers (`qdsn verify --trust`): the log's origin and
        key, the members' cosigner keys, the default quorum and a fingerprint to compare out of band (public)."""
        node.catch_up(recent=PUBLIC_RECENT)
        return trust.export(node.ledger)

    @app.get("/status-lists/{name}", tags=["credentials"], response_class=PlainTextResponse)
    def status_list(name: str) -> Response:
        """A Status List Token (statuslist+jwt) of this issuer's certificates (public)."""
        lists = certify.status_lists(node)
        uri = next((u for u in lists.uris() if u.rsplit("/", 1)[-1] == name), None)
        if uri is None:
            raise NotFound(f"no status list {name!r} here")
        token = lists.token(uri, node.home.key(), kid=node.did)
        return Response(token, media_type="application/statuslist+jwt")

    @app.get("/credentials", tags=["credentials"])
    def credentials_held(who: Signer) -> dict[str, Any]:
        """The certificates this node issued to the requester (SD-JWTs, for its wallet)."""
        return {"credentials": certify.held_by(node, who)}

    asked = _body(("presentation",), presentation=_STR, aud=_STR, nonce=_STR, quorum={"type": "integer", "minimum": 0})

    @app.post("/verify", tags=["credentials"], openapi_extra=asked, dependencies=[Public])
    def verify_presentation(body: Message) -> dict[str, Any]:
        """Verify a certificate presentation as a buyer would, against this node's replica of the ledger:
        issuer, signature, disclosures, key binding, status and the evidence chain, each line with its
        reason (public)."""
        presentation = body.get("presentation")
        if not isinstance(presentation, str):
            raise InvalidInput('the body is {"presentation": "<SD-JWT>~…", "aud": …, "nonce": …}')
        quorum = body.get("quorum")  # absent: the node's own quorum
        if quorum is not None and (not isinstance(quorum, int) or isinstance(quorum, bool) or quorum < 0):
            raise InvalidInput("quorum is a whole number of cosignatures, 0 or more")
        aud, nonce = body.get("aud"), body.get("nonce")
        if (aud is None) != (nonce is None) or not all(x is None or (isinstance(x, str) and x) for x in (aud, nonce)):
            raise InvalidInput("a key binding is checked against both the verifier's aud and its fresh nonce",
                               'give "aud" and "nonce" as non-empty strings, or neither (RFC 9901 §7.3)')  # fmt: skip
        checks = verification.verify_online(node, presentation, aud=aud, nonce=nonce, quorum=quorum)
        return {"ok": all(c.ok for c in checks), "checks": [c.__dict__ for c in checks]}

    @app.post(
        "/bundle",
        tags=["credentials"],
        openapi_extra=_body(("presentation",), presentation=_STR),
        dependencies=[Public],
    )
    def bundle_presentation(body: Message) -> Response:
        """A presentation bundled with the log under the latest cosigned checkpoint and the issuer's status
        list: what a verifier without a node checks against the consortium's trust file (`qdsn verify
        --trust FILE --node URL`), trusting nothing this node says. Public, for presentations of
        certificates on this log signed by their issuer (the log is what `qdsn bundle` hands a buyer)."""
        from qdsn.credentials import sdjwt
        from qdsn.credentials.reasons import Code, Reason

        presentation = body.get("presentation")
        if not isinstance(presentation, str):
            raise InvalidInput('the body is {"presentation": "<SD-JWT>~…"}')
        try:
            sdjwt.verify(presentation, lambda iss, _h: node.ledger.state.identities[iss].key)
        except Reason as e:  # only a certificate its issuer signed opens the log; later faults are the report's
            if e.code in (Code.FORMAT, Code.ENCODING, Code.HEADER, Code.CRIT, Code.TYP, Code.SIGNATURE, Code.CLAIMS,
                          Code.VCT, Code.SD_ALG):  # fmt: skip
                raise PermissionDenied(f"not a certificate of this consortium: {e.what}") from None
        # checked and fetched before the answer starts; the log streams from its file, never held whole
        return StreamingResponse(verification.bundle_stream(node, presentation), media_type="application/json")

    @app.get("/usage", tags=["metering"])
    def usage_report(
        who: Signer,
        agreement: Annotated[str | None, Query(max_length=256, description="one agreement only")] = None,
        since: Annotated[str | None, Query(max_length=40, description="RFC 3339; decisions from then on")] = None,
    ) -> dict[str, Any]:
        """Meters per agreement as the ledger has them — the same figures for the data's owner and its
        consumer — and the invoice their price duties make. Each participant sees its own."""
        try:
            start = parse_time(since) if since else None
        except ValueError as e:
            raise InvalidInput(str(e)) from None
        node.catch_up()
        ms = usage(node.ledger, who, agreement=agreement, since=start)
        return {"meters": [m.to_json() for m in ms], "invoice": invoice(ms)}

    # -- supervision: regulator actions and evaluation indicators -----------------------------------------

    act_body = _body(("action", "scope", "subject", "reason"), action={"enum": ["suspend", "reinstate"]},
                     scope={"enum": ["member", "issuer", "model"]}, subject=_STR, reason=_STR, notification=_STR,
                     credentials={"type": "array", "items": _STR})  # fmt: skip

    @app.post("/supervision/actions", tags=["supervision"], status_code=201, openapi_extra=act_body)
    def supervision_act(who: Signer, body: Message) -> dict[str, Any]:
        """The regulator suspends or reinstates a member, an issuer's authority or a model: `regulator.action`
        on the ledger, enforced by every node (this regulator's own node only)."""
        from qdsn.supervision import actions

        if who != node.did:
            raise PermissionDenied("only this node's own regulator acts through its API",
                                   "sign the request with the regulator node's key")  # fmt: skip
        credentials = body.get("credentials") or []
        if not isinstance(credentials, list) or not all(isinstance(x, str) for x in credentials):
            raise InvalidInput("credentials is a list of certificate numbers")
        fields = [body.get(k) for k in ("action", "scope", "subject", "reason", "notification")]
        if not all(isinstance(x, str) for x in fields[:3]) or any(x is not None and not isinstance(x, str)
                                                                   for x in fields[3:]):  # fmt: skip
            raise InvalidInput('the body is {"action", "scope", "subject", "reason", "notification"?, "credentials"?}, '
                               "each a string")  # fmt: skip
        env, receipt = actions.act(node, *fields, credentials)  # type: ignore[arg-type]
        return {"txid": tx.txid(env.leaf()), "seq": getattr(receipt, "seq", None), "payload": env.payload}

    @app.get("/supervision/actions", tags=["supervision"])
    def supervision_actions(subject: Annotated[str | None, Query(max_length=512)] = None) -> dict[str, Any]:
        """The regulator's actions on this node's replica and the suspensions in force: what every verifier
        reads (public, as the certificates they bear on are)."""
        from qdsn.supervision import actions

        node.catch_up(recent=PUBLIC_RECENT)
        return {"actions": [a.to_json() for a in actions.history(node.ledger, subject)],
                "in_force": [s.to_json() for s in actions.in_force(node.ledger.state)]}  # fmt: skip

    @app.get("/indicators/enterprises/{did}", tags=["supervision"])
    def indicators_enterprise(did: str, who: Signer) -> dict[str, Any]:
        """An enterprise's evaluation indicators and capability level with the criteria met and missed, from
        this node's replica (participants only; on the enterprise's own node, for itself, its attested outputs
        count too)."""
        from qdsn.clock import system_clock
        from qdsn.supervision import indicators

        node.catch_up()
        outputs = {}
        if did == node.did and who == node.did:
            done = [j.result for j in jobs.visible(node, node.did) if j.state == "done" and j.result]
            outputs = indicators.verified_outputs(node.ledger, done)
        return indicators.enterprise(node.ledger, did, system_clock(), outputs).to_json()

    @app.get("/indicators/regions/{code}", tags=["supervision"])
    def indicators_region(code: str, who: Signer) -> dict[str, Any]:
        """A region's indicators (GB/T 2260 code): its enterprises' levels and each indicator's median, from
        this node's replica (participants only)."""
        from qdsn.clock import system_clock
        from qdsn.supervision import indicators

        node.catch_up()
        inside, summary = indicators.region(node.ledger, code, system_clock())
        return {"region": code, "summary": summary,
                "enterprises": [{"did": a.did, "name": a.name, "level": a.level} for a in inside]}  # fmt: skip

    graph_routes.add_routes(app, node, Signer)

    stats = aggregator.open_store(node.home)

    peers: dict[str, NodeClient] = {}

    def peer(url: str) -> NodeClient:
        """A signed-request client to another aggregator (one per URL, its connections reused), trusting
        the CA of `[service] operator_ca` if set."""
        import ssl

        if url not in peers:
            ca = node.home.service().get("operator_ca")
            trust = ssl.create_default_context(cafile=str(ca)) if ca else True
            peers[url] = NodeClient(url, node.home.key(), node.did, verify=trust)
        return peers[url]

    task_body = _body(("task", "period"), task=_STR, period={"type": "integer", "minimum": 0})

    @app.post("/stats/reports", tags=["statistics"], status_code=201, openapi_extra=_body(report.FIELDS))
    def stats_report(who: Signer, body: Message) -> dict[str, Any]:
        """A reporter uploads its report of a task to the task's leader (this node): verified with the
        helper and kept, or refused (422) with the reason; one per reporter and period (409)."""
        task = aggregator.task_of(node, str(body.get("task", "")))
        return aggregator.upload(node, stats, who, body, peer(task.helper_url))

    @app.post("/stats/helper/verify", tags=["statistics"], openapi_extra=_body(("report", "verifier_share"),
              report={"type": "object"}, verifier_share=_STR))  # fmt: skip
    def stats_helper_verify(who: Signer, body: Message) -> dict[str, Any]:
        """The task's leader asks this helper to verify a report with it: this helper's verifier share
        and the verifier message, or 422 when the report fails (leader only)."""
        return aggregator.helper_verify(node, stats, who, body)

    @app.post("/stats/collect", tags=["statistics"], openapi_extra=task_body)
    def stats_collect(who: Signer, body: Message) -> dict[str, Any]:
        """The collector asks for a period's aggregate: recorded on the ledger, both aggregators' noised
        shares sealed to it; refused below the minimum batch or past the privacy budget (collector only)."""
        task = aggregator.task_of(node, str(body.get("task", "")))
        return aggregator.collect(node, stats, who, body, peer(task.helper_url))

    @app.post("/stats/helper/aggregate", tags=["statistics"], openapi_extra=_body(("task", "period", "reports"),
              task=_STR, period={"type": "integer"}, reports={"type": "array", "items": _STR}))  # fmt: skip
    def stats_helper_aggregate(who: Signer, body: Message) -> dict[str, Any]:
        """The leader asks this helper for its sealed, noised aggregate share of a batch recorded on the
        ledger (leader only)."""
        return aggregator.helper_aggregate(node, stats, who, body)

    @app.post("/ai/score", tags=["ai"], openapi_extra=_body(("model", "sha256", "rows"), model=_STR, sha256=_STR,
              rows={"type": "array", "items": {"type": "array", "items": {"type": "number"}}}))  # fmt: skip
    def ai_score(who: Counterpart, body: Message) -> dict[str, Any]:
        """Score rows against a saved quality model (T², MCD, forest or predictive): its parameters file in
        base64, opened only when its SHA-256 is the one given; each row's statistic, the limit and the rows
        above it (participants).

        This is compute a participant asks of this node for its own model and rows, so it is metered per
        signer: its requests count against the counterpart throttle, and its rows against SCORED_* (about
        20,000 rows a minute per organisation), 429 with Retry-After past either. It is not restricted to
        models attested on the ledger: the file scored is the caller's own (`qdsn ai train`, or a
        certification's exported parameters), which the ledger never holds, and the hash only guards
        against a damaged file; the per-request bounds (10,000 rows, 1 MiB, a checked forest) cap each call."""
        from qdsn.compute import monitor

        rows = body.get("rows")
        if isinstance(rows, list) and rows:  # what fails validation later still counts as what it asked
            scoring.take(who, "rows scored for your organisation", cost=min(len(rows), monitor.MAX_ROWS))
        return monitor.answer(body)

    @app.get("/stats/tasks", tags=["statistics"])
    def stats_tasks() -> dict[str, Any]:
        """The aggregation tasks on this node's replica, with the budget spent and the periods released (public)."""
        node.catch_up(recent=PUBLIC_RECENT)
        listed = tasks(node.ledger.state)
        return {"tasks": [{**t.spec, "spent": t.spent, "released": sorted(t.batches)} for t in listed]}

    @app.get("/stats/tasks/{task_id}/periods/{period}", tags=["statistics"])
    def stats_batch(task_id: str, period: int, who: Signer) -> dict[str, Any]:
        """Which reports (id, reporter) a released figure rests on, to check against the root on the
        ledger (the leader's; for the batch's aggregators, its collector and the reporters counted in it)."""
        return aggregator.batch_leaves(node, stats, task_id, period, who)

    inspection.add_routes(app, node, Signer, Message)  # risk classes, inspection plans and results
    mount(app, node)  # the web console, under /console/
    return app
