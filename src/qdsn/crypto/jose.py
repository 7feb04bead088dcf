"""Compact JWS (RFC 7515) signed with a node's Ed25519 key, through `joserfc`.

The algorithm is named "EdDSA" (RFC 8037), as EAT and SD-JWT verifiers expect today; RFC 9864's
fully specified "Ed25519" means the same signature, and joserfc's warning about the older name is
silenced here, where the choice is made.
"""

from __future__ import annotations

import warnings
from typing import Any

import orjson
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from qdsn.crypto.encoding import b64url_encode
from qdsn.crypto.keys import SigningKey
from qdsn.errors import BadSignature, InvalidInput

ALG = "EdDSA"


def sign_jws(claims: dict[str, Any], key: SigningKey, *, typ: str, kid: str) -> str:
    """`claims` as a compact JWS with header {alg: EdDSA, typ, kid}."""
    return sign_compact({"alg": ALG, "typ": typ, "kid": kid}, orjson.dumps(claims), key)


def sign_compact(protected: dict[str, Any], payload: bytes, key: SigningKey) -> str:
    """Any payload as a compact JWS under `protected` (which names alg EdDSA)."""
    jwk = OKPKey.import_key({"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(key.verify_key.raw),
                             "d": b64url_encode(key.seed())})  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return jws.serialize_compact(protected, payload, jwk, algorithms=[ALG])


def header(token: str) -> dict[str, Any]:
    """The protected header, unverified (to find the key that must have signed)."""
    try:
        return jws.extract_compact(token.encode()).protected
    except (JoseError, ValueError) as e:
        raise InvalidInput(f"not a compact JWS: {e}") from None


def verify_jws(token: str, public_key: bytes, *, typ: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of a JWS whose EdDSA signature holds under `public_key` and whose typ is `typ`
    (None: any)."""
    jwk = OKPKey.import_key({"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(public_key)})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = jws.deserialize_compact(token, jwk, algorithms=[ALG])
    except JoseError as e:
        raise BadSignature(f"the JWS signature does not hold: {e.description or e.error}") from None
    except ValueError as e:
        raise InvalidInput(f"not a compact JWS: {e}") from None
    if typ is not None and obj.protected.get("typ") != typ:
        raise InvalidInput(f"the JWS is of type {obj.protected.get('typ')!r}, not {typ!r}")
    try:
        claims = orjson.loads(obj.payload)
    except orjson.JSONDecodeError:
        raise InvalidInput("the JWS payload is not JSON") from None
    if not isinstance(claims, dict):
        raise InvalidInput("the JWS payload is not a JSON object")
    return obj.protected, claims
