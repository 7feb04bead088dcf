"""Signed requests to another node's API: RFC 9421 signatures by this node's key, each for the URL
it is sent to (so that no other node accepts it), problem+json answers turned back into our errors."""

from __future__ import annotations

import ssl
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
)

_BY_STATUS: dict[int, type[QDSNError]] = {
    400: InvalidInput, 401: BadSignature, 403: PermissionDenied, 404: NotFound, 409: Conflict, 422: IntegrityError,
}  # fmt: skip


class NodeClient:
    """Talks to the node at `base_url` as `did`; `verify` is False or an SSL context that trusts the
    node's certificate; `http` may be any httpx client (tests pass the app's)."""

    def __init__(self, base_url: str, key: SigningKey, did: str, *, http: httpx.Client | None = None,
                 verify: bool | ssl.SSLContext = True, timeout: float = 10.0) -> None:  # fmt: skip
        self.base_url = base_url.rstrip("/")
        self.key, self.did = key, did
        self.http = http or httpx.Client(verify=verify, timeout=timeout)

    def request(self, method: str, path: str, payload: Any = None, *, signed: bool = True,
                raw: bytes | None = None) -> httpx.Response:  # fmt: skip
        """One request with a JSON `payload`, or `raw` bytes (application/octet-stream)."""
        url = str(httpx.URL(self.base_url + path))
        if raw is not None:
            body, headers = raw, [("content-type", "application/octet-stream")]
        else:
            body = orjson.dumps(payload) if payload is not None else b""
            headers = [("content-type", "application/json")] if payload is not None else []
        if signed:
            headers = sign(method, url, headers, body, self.key, self.did)
        return self.http.request(method, url, content=body, headers=headers)

    def call(self, method: str, path: str, payload: Any = None, *, signed: bool = True,
             raw: bytes | None = None) -> Any:  # fmt: skip
        """The JSON, text or bytes answer; a problem+json answer raises the matching error."""
        r = self.request(method, path, payload, signed=signed, raw=raw)
        if r.status_code >= 400:
            try:
                p = r.json()
                what, fix = p.get("detail") or p.get("title"), p.get("fix")
            except ValueError:
                what, fix = r.text or f"HTTP {r.status_code}", None
            if r.status_code == 429:
                wait = r.headers.get("retry-after", "1")
                raise RateLimited(f"{self.base_url}: {what}", retry_after=float(wait) if wait.isdigit() else 1.0)
            raise _BY_STATUS.get(r.status_code, QDSNError)(f"{self.base_url}: {what}", fix)
        kind = r.headers.get("content-type", "")
        if kind.startswith("application/json"):
            return r.json()
        return r.content if kind.startswith("application/octet-stream") else r.text

    def close(self) -> None:
        self.http.close()
