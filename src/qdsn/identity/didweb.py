"""did:web (W3C CCG did:web method): DID ⇄ URL mapping and resolution over HTTPS."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx

from qdsn.errors import IntegrityError, InvalidInput, NotFound


def did_web_to_url(did: str) -> str:
    """The HTTPS URL of a did:web DID's document.

    `did:web:example.com` → `https://example.com/.well-known/did.json`;
    `did:web:example.com%3A8443:org:acme` → `https://example.com:8443/org/acme/did.json`.
    """
    if not isinstance(did, str) or not did.startswith("did:web:"):
        raise InvalidInput(f"{did!r} is not a did:web DID", "a did:web looks like did:web:example.com")
    rest = did[len("did:web:") :].split("#", 1)[0]
    parts = rest.split(":")
    if not parts[0] or any(not p for p in parts):
        raise InvalidInput(f"{did!r} has an empty host or path segment")
    host = unquote(parts[0])
    if "/" in host or "@" in host:
        raise InvalidInput(f"{did!r}: the host {host!r} may not hold '/' or '@'")
    path = "/".join(unquote(p) for p in parts[1:])
    return f"https://{host}/{path}/did.json" if path else f"https://{host}/.well-known/did.json"


def url_to_did_web(url: str) -> str:
    """The did:web DID whose document lives at (or is rooted at) `url`."""
    u = urlsplit(url)
    if u.scheme != "https" or not u.hostname:
        raise InvalidInput(f"{url!r} is not an https URL", "did:web documents are served over HTTPS")
    host = u.hostname + (f"%3A{u.port}" if u.port else "")
    path = u.path
    for suffix in ("/.well-known/did.json", "/did.json"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    segments = [quote(unquote(s), safe="") for s in path.strip("/").split("/") if s]
    return ":".join(["did:web", host, *segments])


def resolve_did_web(did: str, client: httpx.Client | None = None, timeout: float = 10.0) -> dict[str, Any]:
    """Fetch and check the DID document of a did:web DID over HTTPS."""
    url = did_web_to_url(did)
    own = client is None
    client = client or httpx.Client(timeout=timeout, follow_redirects=False)
    try:
        resp = client.get(url, headers={"Accept": "application/did+json, application/json"})
    except httpx.HTTPError as e:
        raise NotFound(f"could not fetch {url} for {did}: {e}", "check the host is reachable over HTTPS") from e
    finally:
        if own:
            client.close()
    if resp.status_code != 200:
        raise NotFound(f"{url} answered HTTP {resp.status_code} for {did}")
    try:
        doc = resp.json()
    except ValueError as e:
        raise InvalidInput(f"{url} did not return JSON") from e
    base = did.split("#", 1)[0]
    if not isinstance(doc, dict) or doc.get("id") != base:
        raise IntegrityError(
            f"the document at {url} is for {doc.get('id') if isinstance(doc, dict) else None!r}, not {base}",
            "a did:web document's id must equal the DID",
        )
    return doc
