"""The PACT v3 REST API of a node (Technical Specifications v3, rest-api.md and openapi.yaml):
`POST /auth/token` (OAuth 2.0 client credentials), `/.well-known/openid-configuration`, `GET
/3/footprints`, `GET /3/footprints/{id}` and `POST /3/events`, over HTTPS only. Errors are the spec's
`{code, message}` objects with its status codes; the token endpoint answers as RFC 6749 §5.2. What each
action decides and records is in `node/pact.py`."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from qdsn.api.signatures import Throttle
from qdsn.errors import InvalidInput, NotFound, PermissionDenied, QDSNError, RateLimited
from qdsn.node import pact
from qdsn.node.node import Node

MEDIA = "application/cloudevents+json"
# Requests one organisation may make (burst, per second), whatever credentials it uses, and all together:
# checked before a use is decided, so a recipient cannot make this node sign ledger entries at will.
PER_COUNTERPART = (100.0, 20.0)
OVERALL = (400.0, 100.0)
# Token requests from one client address (burst, per second), and from all, before their client is known:
# a bucket of their own, since a client id is whatever the caller sends until its secret is checked.
TOKEN_ATTEMPTS_PER_ADDRESS = (60.0, 10.0)
TOKEN_ATTEMPTS = (300.0, 50.0)


def _error(code: str, message: str, status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status, headers=headers)


def _refused(e: pact.Refused) -> JSONResponse:
    message = f"{e.what}. {e.fix}" if e.fix else e.what
    challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if e.status == 401 else None
    # a missing or unknown token: 401 as index.md says, with a code of the spec's Error enum (it has none
    # for it; "in all other cases" rest-api.md names BadRequest)
    code = "BadRequest" if e.code == "Unauthorized" else e.code
    return _error(code, message, e.status, challenge)


def _failed(e: QDSNError) -> JSONResponse:
    """Any other refusal of ours in the spec's error format."""
    if isinstance(e, pact.Refused):
        return _refused(e)
    if isinstance(e, RateLimited):  # the spec has no code for it: 429 as RFC 6585, BadRequest "in all other cases"
        return _error("BadRequest", f"{e.what}. {e.fix}", 429, {"Retry-After": str(e.retry_after)})
    for cls, code in ((PermissionDenied, "AccessDenied"), (NotFound, "NotFound"), (InvalidInput, "BadRequest")):
        if isinstance(e, cls):
            return _error(code, f"{e.what}. {e.fix}" if e.fix else e.what, pact.Refused.STATUS[code])
    return _error("InternalError", f"the host could not answer now: {e.what}", 500)


def _oauth(error: str, description: str, status: int = 400) -> JSONResponse:
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="pact"'
    return JSONResponse({"error": error, "error_description": description}, status_code=status, headers=headers)


def plain_http(request: Request) -> bool:
    """Whether `request` came over plain HTTP (every PACT action, and issuing credentials, is refused so)."""
    return request.url.scheme != "https"


PLAIN = "PACT actions are served over HTTPS only; this request came over plain HTTP"
PLAIN_FIX = "call the host's https:// URL (a node serves HTTPS with --tls-cert and --tls-key)"


def router(node: Node, *, own: Callable[[Request], tuple[str, str]] | None = None,
           throttle: Throttle | None = None, attempts: Throttle | None = None) -> APIRouter:  # fmt: skip
    """The PACT routes of `node`. `own` gives (scheme, authority) of this node as it knows itself (its
    public URL, else the address it serves on): the OpenID issuer is that, never the request's Host.
    `throttle` bounds the requests of each organisation once its credentials are checked (default
    PER_COUNTERPART and OVERALL); `attempts` the token requests per client address before that (default
    TOKEN_ATTEMPTS_PER_ADDRESS and TOKEN_ATTEMPTS), apart, so strangers never spend the members' budget."""
    r = APIRouter(tags=["pact"])
    limits = throttle or Throttle(PER_COUNTERPART, OVERALL)
    strangers = attempts or Throttle(TOKEN_ATTEMPTS_PER_ADDRESS, TOKEN_ATTEMPTS)

    def too_many(e: RateLimited) -> JSONResponse:
        return JSONResponse(
            {"error": "invalid_request", "error_description": f"{e.what}. {e.fix}"},
            status_code=429,
            headers={"Retry-After": str(e.retry_after), "Cache-Control": "no-store"},
        )

    def client_of(request: Request) -> pact.Client:
        if plain_http(request):
            raise pact.Refused("BadRequest", PLAIN, PLAIN_FIX)
        client = pact.bearer(node, request.headers.get("authorization"))
        limits.take(client.counterpart, "PACT requests from your organisation")
        return client

    @r.get("/.well-known/openid-configuration")
    def openid_configuration(request: Request) -> Any:
        # The issuer and token endpoint are this node's own URL: taken from the Host header, one request
        # could make a shared cache hand every recipient a token endpoint of the sender's choosing.
        if plain_http(request):
            return _error("BadRequest", f"{PLAIN}. {PLAIN_FIX}", 400, {"Cache-Control": "no-store"})
        scheme, authority = own(request) if own is not None else ("", "")
        if scheme != "https":
            return _error("InternalError", "this node does not know its public https URL, so it names no issuer. "
                          "Its operator sets public_url in node.toml's [service] (or --public-url)", 500,
                          {"Cache-Control": "no-store"})  # fmt: skip
        base = f"https://{authority}"
        config = {"issuer": base, "token_endpoint": f"{base}/auth/token",
                  "grant_types_supported": ["client_credentials"],
                  "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"]}  # fmt: skip
        return JSONResponse(config, headers={"Cache-Control": "public, max-age=300"})

    @r.post("/auth/token")
    async def token(request: Request) -> Any:
        if plain_http(request):
            return _oauth("invalid_request", f"{PLAIN}: the client secret was sent in clear, replace it")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            return _oauth("invalid_request", "the token request is application/x-www-form-urlencoded (RFC 6749 §4.4.2)")
        try:
            pairs = parse_qsl((await request.body()).decode("ascii"), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError):
            return _oauth("invalid_request", "the body is not a form")
        form = dict(pairs)
        if len(form) != len(pairs):  # RFC 6749 §3.2: a parameter is sent at most once
            return _oauth("invalid_request", "a parameter is given more than once")
        client_id, secret = form.get("client_id"), form.get("client_secret")
        basic = request.headers.get("authorization", "")
        if basic[:6].lower() == "basic ":
            try:
                user, _, password = base64.b64decode(basic[6:].strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return _oauth("invalid_client", "the Basic credentials do not decode", 401)
            if client_id not in (None, unquote_plus(user)):
                return _oauth("invalid_request", "two different client ids were sent")
            client_id, secret = unquote_plus(user), unquote_plus(password)  # form-encoded first (§2.3.1)
        if not client_id or secret is None:
            return _oauth("invalid_client", "no client credentials: send them with HTTP Basic (RFC 6749 §2.3.1)", 401)
        try:  # the client id is the caller's word until its secret is checked: limited by address
            strangers.take(request.client.host if request.client else "", "token requests from this address")
        except RateLimited as e:
            return too_many(e)

        def admit(counterpart: str) -> None:  # each token is a row: asked for at the pace of its other requests
            limits.take(counterpart, "PACT requests from your organisation")

        try:
            answer = pact.issue_token(node, client_id, secret, form.get("grant_type"), admit=admit)
        except pact.OAuthError as e:
            return _oauth(e.error, e.what, e.status)
        except RateLimited as e:
            return too_many(e)
        return JSONResponse(answer, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    @r.get("/3/footprints")
    def list_footprints(request: Request) -> Any:
        try:
            client = client_of(request)
            q = request.query_params
            limit, offset = _count(q, "limit", pact.DEFAULT_LIMIT), _count(q, "offset", 0, zero=True)
            page, more = pact.list_page(node, client, pact.criteria(q), offset, min(limit, pact.MAX_LIMIT))
        except QDSNError as e:
            return _failed(e)
        headers = {}
        if more:
            host = request.headers.get("host", "")
            kept = [(k, v) for k, v in q.multi_items() if k != "offset"]
            query = urlencode([*kept, ("offset", str(offset + len(page)))])
            headers["Link"] = f'<https://{host}/3/footprints?{query}>; rel="next"'
        return Response(orjson.dumps({"data": page}), media_type="application/json", headers=headers)

    @r.get("/3/footprints/{pf_id}")
    def get_footprint(pf_id: str, request: Request) -> Any:
        try:
            client = client_of(request)
            return Response(orjson.dumps({"data": pact.get(node, client, pf_id)}), media_type="application/json")
        except QDSNError as e:
            return _failed(e)

    @r.post("/3/events")
    async def post_event(request: Request) -> Any:
        from fastapi.concurrency import run_in_threadpool

        try:
            client = client_of(request)
            if request.headers.get("content-type", "").split(";")[0].strip().lower() != MEDIA:
                raise pact.Refused("BadRequest", f"events are sent as {MEDIA} (CloudEvents structured mode)")
            try:
                event = orjson.loads(await request.body())
            except orjson.JSONDecodeError as e:
                raise pact.Refused("BadRequest", f"the body is not JSON: {e}") from None
            await run_in_threadpool(pact.receive_event, node, client, event)
        except QDSNError as e:
            return _failed(e)
        return Response(status_code=200)

    return r


def _count(q: Any, name: str, default: int, *, zero: bool = False) -> int:
    vals = q.getlist(name)
    if not vals:
        return default
    v = vals[0]
    if len(vals) > 1 or not v.isdigit() or len(v) > 9 or (int(v) == 0 and not zero):
        raise pact.Refused("BadRequest", f"{name} must be a {'non-negative' if zero else 'positive'} integer, "
                           f"not {v[:20]!r}")  # fmt: skip
    return int(v)


# -- the data recipient's side -----------------------------------------------------------------------


def fetch(base: str, client_id: str, secret: str, criteria: list[tuple[str, str]], *, verify: Any = True,
          pf_id: str | None = None, limit: int = 100, max_pages: int = 1000) -> list[dict[str, Any]]:  # fmt: skip
    """A recipient's fetch from a PACT host at `base`: a token by client credentials (HTTP Basic), then
    GetFootprint `pf_id` or ListFootprints with `criteria`, following next links. Every footprint is
    checked against the spec's schema; an https base URL only, and links only to the same host."""
    import httpx

    from qdsn.data.pact import validate_footprint
    from qdsn.errors import IntegrityError, PermissionDenied, Unavailable

    u = urlsplit(base)
    if u.scheme != "https" or not u.hostname:
        raise InvalidInput(f"{base[:200]!r} is not an https URL", "PACT hosts are reached over HTTPS only")
    root = f"https://{u.netloc}{u.path.rstrip('/')}"

    def failed(r: httpx.Response, what: str) -> QDSNError:
        try:
            body = r.json()
            said = str(body.get("message") or body.get("error_description") or body.get("error"))[:300]
        except ValueError:
            said = r.text[:200]
        kind = {401: PermissionDenied, 403: PermissionDenied, 404: NotFound}.get(r.status_code, InvalidInput)
        if r.status_code >= 500:
            kind = Unavailable
        return kind(f"{what}: the host answered {r.status_code}: {said!r}")

    with httpx.Client(verify=verify, timeout=30, follow_redirects=False) as http:
        r = http.post(f"{root}/auth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
        if r.status_code != 200:
            raise failed(r, "the token request was refused")
        token = r.json().get("access_token")
        if not isinstance(token, str):
            raise IntegrityError("the host's token answer holds no access_token")
        auth = {"authorization": f"Bearer {token}"}
        if pf_id is not None:
            r = http.get(f"{root}/3/footprints/{pf_id}", headers=auth)
            if r.status_code != 200:
                raise failed(r, f"footprint {pf_id}")
            pfs = [r.json().get("data")]
        else:
            pfs, url = [], f"{root}/3/footprints?{urlencode([*criteria, ('limit', str(limit))])}"
            for _ in range(max_pages):
                r = http.get(url, headers=auth)
                if r.status_code != 200:
                    raise failed(r, "listing footprints")
                data = r.json().get("data")
                if not isinstance(data, list):
                    raise IntegrityError("the host's listing holds no data array")
                pfs += data
                nxt = r.links.get("next", {}).get("url")
                if not nxt:
                    break
                if urlsplit(nxt).scheme != "https" or urlsplit(nxt).netloc != u.netloc:
                    raise IntegrityError(f"the host's next link leads elsewhere: {nxt[:200]!r}")
                url = nxt
    for i, pf in enumerate(pfs):
        try:
            validate_footprint(pf, lifecycle=False)
        except InvalidInput as e:
            raise IntegrityError(f"footprint {i} the host sent is not valid PACT v3: {e.what}") from None
    return pfs


def send_event(events_url: str, event: dict[str, Any], client_id: str, secret: str, *, verify: Any = True,
               policy: Any = None) -> None:  # fmt: skip
    """Send a CloudEvent to a PACT host's events endpoint (https only), with an access token from that
    host's token endpoint: the one its OpenID configuration names on the same origin, else /auth/token.
    The host is reached through the outbound policy (`net.outbound`; default: the environment's): public
    addresses unless the operator allows others, at the address checked, and nowhere else."""
    from qdsn.data.pact import validate_event
    from qdsn.errors import PermissionDenied, Unavailable
    from qdsn.net import outbound

    validate_event(event)
    u = urlsplit(events_url)
    if u.scheme != "https" or not u.hostname:
        raise InvalidInput(f"{events_url[:200]!r} is not an https URL", "PACT hosts are reached over HTTPS only")
    origin = f"https://{u.netloc}"
    with outbound.client(events_url, policy or outbound.Policy.of({}), verify=verify, timeout=30) as http:
        token_url = f"{origin}/auth/token"
        conf = http.get(f"{origin}/.well-known/openid-configuration")
        named = conf.json().get("token_endpoint") if conf.status_code == 200 else None
        if isinstance(named, str) and urlsplit(named).scheme == "https" and urlsplit(named).netloc == u.netloc:
            token_url = named
        r = http.post(token_url, data={"grant_type": "client_credentials"}, auth=(client_id, secret))
        if r.status_code != 200 or not isinstance(r.json().get("access_token"), str):
            raise PermissionDenied(f"{origin} refused the token request ({r.status_code}): {r.text[:200]!r}")
        r = http.post(
            events_url,
            content=orjson.dumps(event),
            headers={"authorization": f"Bearer {r.json()['access_token']}", "content-type": f"{MEDIA}; charset=UTF-8"},
        )
        if r.status_code != 200:
            kind = Unavailable if r.status_code >= 500 else InvalidInput
            raise kind(f"{events_url} did not accept the event ({r.status_code}): {r.text[:300]!r}")
