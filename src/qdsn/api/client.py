"""Signed requests to another node's API: RFC 9421 signatures by this node's key, each for the URL
it is sent to (so that no other node accepts it), problem+json answers turned back into our errors."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import orjson

from qdsn.api.signatures import sign
from qdsn.crypto import SigningKey
from qdsn.errors import (
    BadSignature,
    Conflict,
    IntegrityError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    QDSNError,
    RateLimited,
    Unavailable,
)
from qdsn.ledger import tx
from qdsn.ledger.ledger import batch_key

_BY_STATUS: dict[int, type[QDSNError]] = {
    400: InvalidInput, 401: BadSignature, 403: PermissionDenied, 404: NotFound, 409: Conflict, 422: IntegrityError,
    503: Unavailable,
}  # fmt: skip
MAX_WAIT = 10  # seconds between two tries of a submission, whatever Retry-After says
MAX_ANSWER = 256 * 2**20  # bytes (decoded) of one answer read into memory: the other node chooses its size


class NodeClient:
    """Talks to the node at `base_url` as `did`; `verify` is False or an SSL context that trusts the
    node's certificate; `http` may be any httpx client (tests pass the app's)."""

    def __init__(self, base_url: str, key: SigningKey | Callable[[], SigningKey], did: str, *,
                 http: httpx.Client | None = None, verify: bool | ssl.SSLContext = True,
                 timeout: float = 10.0, max_answer: int = MAX_ANSWER) -> None:  # fmt: skip
        self.base_url = node_url(base_url)
        self._key, self.did, self.max_answer = key, did, max_answer
        self.http = http or httpx.Client(verify=verify, timeout=timeout)

    @property
    def key(self) -> SigningKey:
        """The key requests are signed with: given, or (a function, e.g. `NodeHome.key`) this node's current
        key, so that a running node goes on being heard after its key is rotated."""
        return self._key() if callable(self._key) else self._key

    def request(self, method: str, path: str, payload: Any = None, *, signed: bool = True,
                raw: bytes | None = None, headers: Sequence[tuple[str, str]] = ()) -> httpx.Response:  # fmt: skip
        """One request with a JSON `payload`, or `raw` bytes (application/octet-stream); `headers`
        are sent besides (unsigned)."""
        url = str(httpx.URL(self.base_url + path))
        extra = list(headers)
        if raw is not None:
            body, headers = raw, [("content-type", "application/octet-stream")]
        else:
            body = orjson.dumps(payload) if payload is not None else b""
            headers = [("content-type", "application/json")] if payload is not None else []
        if signed:
            headers = sign(method, url, headers, body, self.key, self.did)
        with self.http.stream(method, url, content=body, headers=[*headers, *extra]) as r:
            got = bytearray()
            for chunk in r.iter_bytes():  # decoded: a compressed answer is held to the same bound
                got += chunk
                if len(got) > self.max_answer:
                    raise IntegrityError(f"{self.base_url} answered more than {self.max_answer:,} bytes"
                                         f" to {method} {path}: not read further",
                                         "ask for less, or ask its operator")  # fmt: skip
        kept = [(k, v) for k, v in r.headers.multi_items() if k not in ("content-encoding", "content-length")]
        return httpx.Response(r.status_code, headers=kept, content=bytes(got), request=r.request)

    def call(self, method: str, path: str, payload: Any = None, *, signed: bool = True,
             raw: bytes | None = None) -> Any:  # fmt: skip
        """The JSON, text or bytes answer; a problem+json answer raises the matching error."""
        return self._answer(self.request(method, path, payload, signed=signed, raw=raw))

    @staticmethod
    def _problem(r: httpx.Response) -> tuple[str, str | None]:
        """What a problem+json answer says went wrong, and what to do."""
        try:
            p = r.json()
            return str(p.get("detail") or p.get("title")), p.get("fix")
        except (ValueError, AttributeError):
            return r.text or f"HTTP {r.status_code}", None

    def _answer(self, r: httpx.Response) -> Any:
        if r.status_code >= 400:
            what, fix = self._problem(r)
            if r.status_code == 429:
                wait = r.headers.get("retry-after", "1")
                raise RateLimited(f"{self.base_url}: {what}", fix, retry_after=float(wait) if wait.isdigit() else 1.0)
            raise _BY_STATUS.get(r.status_code, QDSNError)(f"{self.base_url}: {what}", fix)
        kind = r.headers.get("content-type", "")
        if kind.startswith("application/json"):
            return r.json()
        return r.content if kind.startswith("application/octet-stream") else r.text

    def submit(self, envelopes: Sequence[tx.Envelope], *, attempts: int = 6) -> list[dict[str, Any]]:
        """Put a batch on the log through this node; its receipts. When the node or its ordering service
        cannot answer (503, or no answer at all), the same batch is sent again, with its idempotency key,
        after the Retry-After the node asked for: it is written at most once, and a batch that was
        written is answered with its receipts. Still no answer after `attempts`: asks whether it was
        written, and raises Unavailable when that cannot be told either."""
        body = {"transactions": [e.to_json() for e in envelopes]}
        key = [("idempotency-key", f'"{batch_key(envelopes)}"')]
        why = "no attempt"
        for attempt in range(attempts):
            try:
                r = self.request("POST", "/ledger/transactions", body, headers=key)
            except httpx.TransportError as e:  # sent, perhaps taken, never answered
                why, wait = f"no answer: {e}", 1.0
            else:
                if r.status_code != 503:
                    return self._answer(r)["receipts"]  # type: ignore[no-any-return]
                why = self._problem(r)[0]
                wait = float(r.headers["retry-after"]) if r.headers.get("retry-after", "").isdigit() else 1.0
            if attempt + 1 < attempts:
                time.sleep(min(wait, MAX_WAIT))
        again = "send the same batch again later; it is written once"
        try:
            done = self.written(envelopes)
        except (QDSNError, httpx.TransportError) as e:
            raise Unavailable(f"{self.base_url}: the batch got no answer ({why}), and whether it was written "
                              f"cannot be told now: {e}", again) from e  # fmt: skip
        if done is None:
            raise Unavailable(f"{self.base_url}: the batch was not written ({why})", again)
        return done

    def written(self, envelopes: Sequence[tx.Envelope]) -> list[dict[str, Any]] | None:
        """The receipts of a batch the log holds, or None when it holds none of it (a batch is taken or
        refused whole)."""
        out = []
        for env in envelopes:
            try:
                got = self.call("GET", f"/ledger/transactions/{tx.txid(env.leaf())}")
            except NotFound:
                if not out:
                    return None
                raise
            out.append({"seq": got["seq"], "txid": got["txid"]})
        return out

    def close(self) -> None:
        self.http.close()


def node_url(url: str) -> str:
    """`url` as a node's base URL (http or https, a host, no query), or InvalidInput that says so."""
    parts = httpx.URL(url) if "://" in url else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.host or parts.query or parts.fragment:
        raise InvalidInput(f"{url!r} is not a node's URL", "give it as https://HOST:PORT, e.g. https://acme:8421")
    return url.rstrip("/")
