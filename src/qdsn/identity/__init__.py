"""Who a participant is: DIDs (did:key, did:web), DID documents, the encrypted keystore."""

from __future__ import annotations

from typing import Any

import httpx

from qdsn.errors import InvalidInput
from qdsn.identity.didkey import (
    did_key_from_public_key,
    multikey_from_public_key,
    public_key_from_did_key,
    public_key_from_multikey,
)
from qdsn.identity.didweb import did_web_to_url, resolve_did_web, url_to_did_web
from qdsn.identity.document import did_document, ed25519_keys
from qdsn.identity.keystore import Keystore


def resolve(did: str, client: httpx.Client | None = None) -> dict[str, Any]:
    """The DID document of a did:key (computed) or did:web (fetched over HTTPS) DID."""
    if did.startswith("did:key:"):
        base = did.split("#", 1)[0]
        return did_document(base, public_key_from_did_key(base))
    if did.startswith("did:web:"):
        return resolve_did_web(did, client)
    raise InvalidInput(f"{did!r} uses a DID method QDSN does not resolve", "use did:key or did:web")


__all__ = [
    "Keystore",
    "did_document",
    "did_key_from_public_key",
    "did_web_to_url",
    "ed25519_keys",
    "multikey_from_public_key",
    "public_key_from_did_key",
    "public_key_from_multikey",
    "resolve",
    "resolve_did_web",
    "url_to_did_web",
]
