"""Finding a credential issuer's key, the ways SD-JWT VC verifiers do: a did:key names its key; a
did:web's DID document (over HTTPS) lists it; an HTTPS issuer publishes `/.well-known/jwt-vc-issuer`
with its JWKs. Inside a consortium the ledger is the authority on a member's current key, and is asked
first when a verifier holds a replica."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from qdsn.crypto.jose import PublicKey
from qdsn.errors import BadSignature, InvalidInput, NotFound
from qdsn.identity import ed25519_keys, public_key_from_did_key, resolve_did_web
from qdsn.ledger import Ledger


def resolver(ledger: Ledger | None = None, http: httpx.Client | None = None) -> Any:
    """A `(iss, header) -> key` function for `sdjwt.verify`."""

    def resolve(iss: str, header: dict[str, Any]) -> PublicKey:
        if ledger is not None and iss in ledger.state.identities:
            return ledger.state.identities[iss].key
        if iss.startswith("did:key:"):
            return public_key_from_did_key(iss)
        if iss.startswith("did:web:"):
            keys = ed25519_keys(resolve_did_web(iss, client=http))
            if not keys:
                raise BadSignature(f"the DID document of {iss} lists no Ed25519 assertion key")
            return keys[0]
        if iss.startswith("https://"):
            return metadata_key(iss, header.get("kid"), http)
        raise NotFound(f"no way to find the key of issuer {iss!r}", "issuers are did:key, did:web or https URLs")

    return resolve


def metadata_key(iss: str, kid: str | None, http: httpx.Client | None = None) -> dict[str, Any]:
    """The JWK of `kid` (or the only one) in the issuer's `/.well-known/jwt-vc-issuer` metadata, whose
    `issuer` must be `iss` itself."""
    parts = urlsplit(iss)
    url = f"{parts.scheme}://{parts.netloc}/.well-known/jwt-vc-issuer{parts.path.rstrip('/')}"
    meta = (http or httpx).get(url, timeout=10).raise_for_status().json()
    if meta.get("issuer") != iss:
        raise BadSignature(f"the metadata at {url} is for {meta.get('issuer')!r}, not {iss}")
    keys = meta.get("jwks", {}).get("keys", [])
    chosen = [k for k in keys if kid is None or k.get("kid") == kid]
    if len(chosen) != 1:
        raise InvalidInput(f"the metadata at {url} has {len(chosen)} keys for kid {kid!r}; exactly one is needed")
    return chosen[0]
