"""Compact JWS (RFC 7515) through `joserfc`, signed with a node's Ed25519 key ("EdDSA", RFC 8037) or
a P-256 key (ES256) — the two algorithms SD-JWT VC wallets and verifiers meet in practice.

RFC 9864's fully specified "Ed25519" names the same signature as "EdDSA"; joserfc's warning about the
older name is silenced here, where the choice is made. Verification, the hot path of credential
checks, goes straight to `cryptography` with each public key parsed once: profiled, joserfc's
deserialization and key import were 60 % of verifying a presentation.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc import jws
from joserfc.jwk import ECKey, OKPKey

from qdsn.crypto.encoding import b64url_decode, b64url_encode
from qdsn.crypto.keys import SigningKey
from qdsn.errors import BadSignature, InvalidInput

ALG = "EdDSA"
ALGS = ("EdDSA", "ES256")
PrivateKey = SigningKey | ec.EllipticCurvePrivateKey
PublicKey = bytes | ec.EllipticCurvePublicKey | dict[str, Any]  # raw Ed25519, a P-256 key, or a public JWK


def alg_of(key: PrivateKey) -> str:
    """The JWS algorithm of a private key."""
    if isinstance(key, SigningKey):
        return "EdDSA"
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    raise InvalidInput("keys are Ed25519 (EdDSA) or P-256 (ES256)")


def public_jwk(key: PrivateKey | PublicKey) -> dict[str, Any]:
    """The public JWK of a key (for `cnf`, `jwks` and DID documents)."""
    if type(key) is dict:  # first: a holder's cnf key on every key binding, and the abc checks below are slow
        kty, crv = key.get("kty"), key.get("crv")
        members = ("x",) if (kty, crv) == ("OKP", "Ed25519") else ("x", "y") if (kty, crv) == ("EC", "P-256") else ()
        if members and all(isinstance(key.get(m), str) for m in members):
            return {"kty": kty, "crv": crv} | {m: key[m] for m in members}
        raise InvalidInput(f"the JWK is not an Ed25519 or P-256 public key (kty {kty!r}, crv {crv!r})")
    if isinstance(key, SigningKey):
        key = key.verify_key.raw
    if isinstance(key, bytes):
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(key)}
    if isinstance(key, ec.EllipticCurvePrivateKey):
        key = key.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {k: v for k, v in ECKey.import_key(key).as_dict(private=False).items() if k in ("kty", "crv", "x", "y")}
    raise InvalidInput("not a public key QDSN can verify with: Ed25519 or P-256")


def sign_jws(claims: dict[str, Any], key: PrivateKey, *, typ: str, kid: str | None = None) -> str:
    """`claims` as a compact JWS with header {alg, typ[, kid]}."""
    protected = {"alg": alg_of(key), "typ": typ} | ({"kid": kid} if kid else {})
    return sign_compact(protected, orjson.dumps(claims), key)


def sign_compact(protected: dict[str, Any], payload: bytes, key: PrivateKey) -> str:
    """Any payload as a compact JWS under `protected` (whose alg must be the key's)."""
    if protected.get("alg") != alg_of(key):
        raise InvalidInput(f"a {alg_of(key)} key cannot sign alg {protected.get('alg')!r}")
    if isinstance(key, SigningKey):
        jwk: Any = OKPKey.import_key(public_jwk(key) | {"d": b64url_encode(key.seed())})
    else:
        jwk = ECKey.import_key(key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return jws.serialize_compact(protected, payload, jwk, algorithms=list(ALGS))


def header(token: str) -> dict[str, Any]:
    """The protected header, unverified (to find the key that must have signed)."""
    if not isinstance(token, str):
        raise InvalidInput("not a compact JWS: a JWS is text")
    return _protected(token.split(".", 1)[0])


def _protected(segment: str) -> dict[str, Any]:
    try:
        protected = orjson.loads(b64url_decode(segment))
    except (InvalidInput, orjson.JSONDecodeError) as e:
        raise InvalidInput(f"not a compact JWS: its header is not base64url JSON: {e}") from None
    if not isinstance(protected, dict):
        raise InvalidInput("not a compact JWS: its header is not a JSON object")
    return protected


def crit_problem(protected: dict[str, Any]) -> str | None:
    """Why a header's `crit` makes the JWS unacceptable (RFC 7515 §4.1.11), or None when it has none.
    QDSN implements no JWS extension, so every extension marked critical is one it does not
    understand; an empty or non-array `crit` is malformed."""
    if "crit" not in protected:
        return None
    crit = protected["crit"]
    if not isinstance(crit, list) or not crit or not all(isinstance(c, str) for c in crit):
        return f"crit is {str(crit)[:40]!r}; it must be a non-empty array of header parameter names"
    return f"the header makes {', '.join(repr(c[:40]) for c in crit[:5])} critical, an extension not understood here"


def verify_compact(token: str, key: PublicKey) -> tuple[dict[str, Any], bytes]:
    """(header, payload) of a compact JWS whose EdDSA or ES256 signature holds under `key`; every
    segment strict base64url, the header an object with no critical extension."""
    jwk = public_jwk(key)
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        raise InvalidInput("not a compact JWS: it is three base64url segments joined by '.'")
    head, body, sig = parts
    protected = _protected(head)
    try:
        payload, signature = b64url_decode(body), b64url_decode(sig)
    except InvalidInput as e:
        raise InvalidInput(f"not a compact JWS: {e}") from None
    problem = crit_problem(protected)
    if problem:
        raise InvalidInput(f"the JWS is refused: {problem}")
    check_signature(protected, f"{head}.{body}".encode("ascii"), signature, jwk)
    return protected, payload


def check_signature(protected: dict[str, Any], message: bytes, signature: bytes, jwk: dict[str, Any]) -> None:
    """Raise BadSignature unless `signature` over `message` holds under the public `jwk` with the
    header's alg, which must be the key's own (never one algorithm for another's key)."""
    wanted = "EdDSA" if jwk["kty"] == "OKP" else "ES256"
    if protected.get("alg") != wanted:
        raise BadSignature(f"the JWS is signed with alg {str(protected.get('alg'))[:20]!r}; its key signs {wanted}")
    pub = _public(jwk["kty"], jwk["crv"], jwk["x"], jwk.get("y"))
    try:
        if wanted == "EdDSA":
            pub.verify(signature, message)
        else:
            if len(signature) != 64:
                raise InvalidSignature
            r, s_ = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            pub.verify(encode_dss_signature(r, s_), message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise BadSignature("the JWS signature does not hold") from None


@lru_cache(maxsize=4096)
def _public(kty: str, crv: str, x: str, y: str | None) -> Any:
    """A public key object from its JWK members, built once per key."""
    try:
        if (kty, crv) == ("OKP", "Ed25519"):
            return Ed25519PublicKey.from_public_bytes(b64url_decode(x))
        if (kty, crv) == ("EC", "P-256") and y is not None:
            nums = ec.EllipticCurvePublicNumbers(int.from_bytes(b64url_decode(x), "big"),
                                                 int.from_bytes(b64url_decode(y), "big"), ec.SECP256R1())  # fmt: skip
            return nums.public_key()
    except ValueError as e:
        raise InvalidInput(f"not a valid {crv} public key: {e}") from None
    raise InvalidInput(f"keys are Ed25519 or P-256, not {kty} {crv}")


def verify_jws(token: str, public_key: PublicKey, *, typ: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of a JWS whose signature holds under `public_key` and whose typ is `typ`
    (None: any)."""
    protected, payload = verify_compact(token, public_key)
    if typ is not None and protected.get("typ") != typ:
        raise InvalidInput(f"the JWS is of type {protected.get('typ')!r}, not {typ!r}")
    try:
        claims = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise InvalidInput("the JWS payload is not JSON") from None
    if not isinstance(claims, dict):
        raise InvalidInput("the JWS payload is not a JSON object")
    return protected, claims
