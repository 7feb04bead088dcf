"""SD-JWT (RFC 9901) and SD-JWT VC (draft-ietf-oauth-sd-jwt-vc): issuing, presenting, verifying.

An issuer hides each selectively disclosable claim behind the digest of a Disclosure — the base64url
of `[salt, name, value]`, or `[salt, value]` for an array element — listed in `_sd` (or, for an
element, as `{"...": digest}`), with decoy digests so the count of hidden claims does not show. The
serialization is `<issuer JWT>~<disclosure>~…~[<KB-JWT>]`. A holder presents a subset of the
disclosures and, when the credential is bound to its key (`cnf`), a Key Binding JWT over the
presentation's `sd_hash`, the verifier's nonce and audience.

The verifier checks what a careful verifier must, each failure with its own reason (`Reason`): the
issuer's signature and `typ`; the times, with a clock skew; every disclosure referenced by exactly one
digest, no digest twice, no claim name repeated or reserved; the key binding's signature, `sd_hash`,
nonce, audience and freshness. The status list is checked by `credentials.status`.

Written here rather than taken from a library: the reference `sd-jwt` package is the interoperability
yardstick in the tests, and verification sits on the certificate hot path that must outrun it.
"""

from __future__ import annotations

import base64
import hashlib
import multiprocessing
import os
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

from qdsn.crypto.jose import PrivateKey, PublicKey, header, public_jwk, sign_jws, verify_compact
from qdsn.errors import BadSignature, IntegrityError, InvalidInput

TYPES = ("dc+sd-jwt", "vc+sd-jwt")  # vc+sd-jwt: the earlier media type, accepted on input
KB_TYP = "kb+jwt"
SKEW = 60  # seconds of clock difference tolerated
KB_MAX_AGE = 300  # a key binding older than this is stale
Resolver = Callable[[str, dict[str, Any]], PublicKey]  # (iss, JWS header) -> the issuer's public key


class Reason(IntegrityError):
    """Why a presentation was refused: `code` names the check (signature, typ, expired, …)."""

    def __init__(self, code: str, what: str) -> None:
        super().__init__(f"{code}: {what}")
        self.code = code


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def disclosure_digest(disclosure: str) -> str:
    """base64url(SHA-256(the disclosure's ASCII text)) — over the encoded string, not its JSON."""
    return _b64(hashlib.sha256(disclosure.encode("ascii")).digest())


def make_disclosure(value: Any, name: str | None = None, salt: str | None = None) -> str:
    """A disclosure for an object property (`name`) or an array element (no name)."""
    salt = salt or _b64(secrets.token_bytes(16))
    return _b64(orjson.dumps([salt, name, value] if name is not None else [salt, value]))


# -- issuing ---------------------------------------------------------------------------------------


def issue(
    claims: dict[str, Any],
    issuer_key: PrivateKey,
    disclosable: Iterable[str] = (),
    holder_jwk: dict[str, Any] | None = None,
    typ: str = "dc+sd-jwt",
    *,
    kid: str | None = None,
    decoys: int = 2,
) -> str:
    """An SD-JWT of `claims` signed by `issuer_key`. `disclosable` names claims by path: "site",
    "indicators.cpk" (a nested property), "standards[]" (each element of an array); a path and its
    parent may both be disclosable (recursive disclosure). `holder_jwk` binds it to a holder key
    (`cnf`); each `_sd` array gets up to `decoys` decoy digests."""
    paths = set(disclosable)
    disclosures: list[str] = []
    payload = _hide(claims, "", paths, disclosures, decoys)
    unknown = paths - set(_paths(claims, ""))
    if unknown:
        raise InvalidInput(f"no claim at {', '.join(sorted(unknown))} to make disclosable")
    payload["_sd_alg"] = "sha-256"
    if holder_jwk is not None:
        payload["cnf"] = {"jwk": public_jwk(holder_jwk)}
    jwt = sign_jws(payload, issuer_key, typ=typ, kid=kid)
    return "~".join([jwt, *disclosures, ""])


def _hide(value: Any, path: str, paths: set[str], out: list[str], decoys: int) -> Any:
    if isinstance(value, dict):
        shown, digests = {}, []
        for k, v in value.items():
            if k in ("_sd", "...", "_sd_alg"):
                raise InvalidInput(f"{k!r} is a name SD-JWT reserves")
            sub = f"{path}.{k}" if path else k
            inner = _hide(v, sub, paths, out, decoys)
            if sub in paths:
                d = make_disclosure(inner, k)
                out.append(d)
                digests.append(disclosure_digest(d))
            else:
                shown[k] = inner
        if digests:
            digests += [_b64(secrets.token_bytes(32)) for _ in range(secrets.randbelow(decoys + 1))]
            shown["_sd"] = sorted(digests)  # sorted: the order must not reveal which claim is which
        return shown
    if isinstance(value, list):
        items = []
        for v in value:
            inner = _hide(v, f"{path}[]", paths, out, decoys)
            if f"{path}[]" in paths:
                d = make_disclosure(inner)
                out.append(d)
                items.append({"...": disclosure_digest(d)})
            else:
                items.append(inner)
        return items
    return value


def _paths(value: Any, path: str) -> Iterable[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            sub = f"{path}.{k}" if path else k
            yield sub
            yield from _paths(v, sub)
    elif isinstance(value, list):
        yield f"{path}[]"
        for v in value:
            yield from _paths(v, f"{path}[]")


# -- presenting ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Parsed:
    """An SD-JWT or presentation split into its parts."""

    jwt: str
    disclosures: list[str]
    kb: str | None

    @property
    def sd_jwt(self) -> str:
        """The part a key binding signs: the issuer JWT and disclosures, ending in `~`."""
        return "~".join([self.jwt, *self.disclosures, ""])


def parse(serialized: str) -> Parsed:
    """Split `<JWT>~<D>~…~[<KB-JWT>]`; refuses what is not that form."""
    if not isinstance(serialized, str) or "~" not in serialized:
        raise Reason("format", "an SD-JWT is <issuer JWT>~<disclosure>~…~ with an optional key binding JWT")
    parts = serialized.split("~")
    jwt, middle, last = parts[0], parts[1:-1], parts[-1]
    if jwt.count(".") != 2 or any(not d for d in middle):
        raise Reason("format", "the issuer JWT or a disclosure is empty or malformed")
    return Parsed(jwt, middle, last or None)


def present(
    sd_jwt: str,
    disclose: Iterable[str] = (),
    holder_key: PrivateKey | None = None,
    aud: str | None = None,
    nonce: str | None = None,
    *,
    now: datetime | None = None,
) -> str:
    """A presentation revealing the claims at `disclose` (paths as in `issue`; a path reveals all that
    lies under it, "standards[]" every element) with the disclosures they need, and a key binding when
    `holder_key` is given."""
    p = parse(sd_jwt)
    wanted = set(disclose)
    by_digest = {disclosure_digest(d): d for d in p.disclosures}
    payload = orjson.loads(base64.urlsafe_b64decode(p.jwt.split(".")[1] + "=="))
    chosen: list[str] = []
    _choose(payload, "", wanted, by_digest, chosen)
    out = "~".join([p.jwt, *chosen, ""])
    if holder_key is None:
        return out
    if aud is None or nonce is None:
        raise InvalidInput("a key binding names the verifier (aud) and carries its nonce")
    iat = int((now or datetime.now(UTC)).timestamp())
    kb = sign_jws({"iat": iat, "aud": aud, "nonce": nonce, "sd_hash": disclosure_digest(out)}, holder_key, typ=KB_TYP)
    return out + kb


def _choose(value: Any, path: str, wanted: set[str], by_digest: dict[str, str], chosen: list[str]) -> None:
    """Pick the disclosures whose claim is wanted or holds one that is."""

    def needed(p: str) -> bool:  # p is wanted, holds something wanted, or lies inside something wanted
        return any(w == p or w.startswith((p + ".", p + "[]")) or p.startswith((w + ".", w + "[]")) for w in wanted)

    if isinstance(value, dict):
        for digest in value.get("_sd", []):
            d = by_digest.get(digest)
            if d is None:
                continue  # a decoy, or a claim the holder was never given
            _, name, inner = orjson.loads(base64.urlsafe_b64decode(d + "=="))
            sub = f"{path}.{name}" if path else name
            if needed(sub):
                chosen.append(d)
                _choose(inner, sub, wanted, by_digest, chosen)
        for k, v in value.items():
            if k not in ("_sd", "_sd_alg"):
                _choose(v, f"{path}.{k}" if path else k, wanted, by_digest, chosen)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and set(item) == {"..."}:
                d = by_digest.get(item["..."])
                if d is not None and needed(f"{path}[]"):
                    chosen.append(d)
                    _choose(orjson.loads(base64.urlsafe_b64decode(d + "=="))[1], f"{path}[]", wanted, by_digest, chosen)
            else:
                _choose(item, f"{path}[]", wanted, by_digest, chosen)


# -- verifying -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verified:
    """A presentation that passed: the issuer, its header, the claims disclosed (with the always
    visible ones), how many disclosures were shown, and whether a key binding held."""

    issuer: str
    header: dict[str, Any]
    claims: dict[str, Any]
    disclosed: int
    key_bound: bool


def verify(
    presentation: str,
    issuer_key_resolver: Resolver,
    aud: str | None = None,
    nonce: str | None = None,
    now: datetime | None = None,
    *,
    skew: int = SKEW,
    require_binding: bool | None = None,
) -> Verified:
    """Check a presentation and return its disclosed claims, or raise `Reason` with the check that
    failed. A key binding is required when `aud` or `nonce` is given (or `require_binding`)."""
    p = parse(presentation)
    h = _header(p.jwt)
    if h.get("typ") not in TYPES:
        raise Reason("typ", f"typ is {h.get('typ')!r}; an SD-JWT VC is {' or '.join(TYPES)}")
    try:
        unverified = orjson.loads(base64.urlsafe_b64decode(p.jwt.split(".")[1] + "=="))
        iss = unverified["iss"]
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise Reason("format", "the issuer JWT's payload names no issuer (iss)") from None
    try:
        jwk = public_jwk(issuer_key_resolver(iss, h))
        raw = _issuer_signed(p.jwt, tuple(sorted(jwk.items())))
    except BadSignature as e:
        raise Reason("signature", e.what) from None
    payload = orjson.loads(raw)
    if payload.get("_sd_alg", "sha-256") != "sha-256":
        raise Reason("sd-alg", f"_sd_alg {payload.get('_sd_alg')!r} is not sha-256")
    t = int((now or datetime.now(UTC)).timestamp())
    if isinstance(payload.get("exp"), int | float) and t > payload["exp"] + skew:
        raise Reason("expired", f"it expired at {_when(payload['exp'])}")
    if isinstance(payload.get("nbf"), int | float) and t < payload["nbf"] - skew:
        raise Reason("not-yet-valid", f"it is valid from {_when(payload['nbf'])}")
    if isinstance(payload.get("iat"), int | float) and t < payload["iat"] - skew:
        raise Reason("issued-in-future", f"it was issued at {_when(payload['iat'])}, after now")
    claims = _reveal(payload, p.disclosures)
    bound = p.kb is not None
    wanted = require_binding if require_binding is not None else (aud is not None or nonce is not None)
    if wanted and not bound:
        raise Reason("kb-missing", "the verifier asked for key binding and the presentation has none")
    if bound:
        _key_binding(p, payload, aud, nonce, t, skew)
    claims.pop("_sd_alg", None)
    return Verified(iss, h, claims, len(p.disclosures), bound)


@lru_cache(maxsize=4096)
def _issuer_signed(jwt: str, jwk: tuple[tuple[str, Any], ...]) -> bytes:
    """The payload of an issuer JWT whose signature holds under `jwk`. A certificate is presented many
    times; its issuer's signature over the same bytes under the same key is checked once. (The key
    binding, fresh in every presentation, is always checked.)"""
    return verify_compact(jwt, dict(jwk))[1]


def _header(jwt: str) -> dict[str, Any]:
    try:
        return header(jwt)
    except InvalidInput as e:
        raise Reason("format", e.what) from None


def _reveal(payload: dict[str, Any], disclosures: list[str]) -> dict[str, Any]:
    """The payload with every presented disclosure put back where its digest is; refuses unreferenced,
    repeated or reserved ones (RFC 9901 §7.1)."""
    by_digest: dict[str, list[Any]] = {}
    for d in disclosures:
        digest = disclosure_digest(d)
        if digest in by_digest:
            raise Reason("disclosure-duplicate", f"disclosure {d[:16]}… is presented twice")
        try:
            decoded = orjson.loads(base64.urlsafe_b64decode(d + "=" * (-len(d) % 4)))
        except (ValueError, orjson.JSONDecodeError):
            raise Reason("disclosure-malformed", f"disclosure {d[:16]}… is not base64url JSON") from None
        if not isinstance(decoded, list) or len(decoded) not in (2, 3) or not isinstance(decoded[0], str):
            raise Reason("disclosure-malformed", f"disclosure {d[:16]}… is not [salt, (name,) value]")
        by_digest[digest] = decoded
    seen: set[str] = set()
    out = _fill(payload, by_digest, seen)
    unreferenced = set(by_digest) - seen
    if unreferenced:
        raise Reason("disclosure-unreferenced", f"{len(unreferenced)} disclosure(s) match no digest in the credential")
    return out


def _fill(value: Any, by_digest: dict[str, list[Any]], seen: set[str]) -> Any:
    if isinstance(value, dict):
        out = {}
        for digest in value.get("_sd", []):
            if digest in seen:
                raise Reason("digest-duplicate", f"digest {digest[:16]}… appears twice")
            d = by_digest.get(digest)
            if d is None:
                continue
            seen.add(digest)
            if len(d) != 3:
                raise Reason("disclosure-malformed", "an array-element disclosure sits in an _sd list")
            _, name, v = d
            if not isinstance(name, str) or name in ("_sd", "...") or name in value or name in out:
                raise Reason("disclosure-name", f"disclosed claim name {name!r} is reserved or already present")
            out[name] = _fill(v, by_digest, seen)
        for k, v in value.items():
            if k != "_sd":
                out[k] = _fill(v, by_digest, seen)
        return out
    if isinstance(value, list):
        items = []
        for item in value:
            if isinstance(item, dict) and set(item) == {"..."}:
                digest = item["..."]
                if digest in seen:
                    raise Reason("digest-duplicate", f"digest {str(digest)[:16]}… appears twice")
                d = by_digest.get(digest)
                if d is None:
                    continue  # an element not disclosed is left out
                seen.add(digest)
                if len(d) != 2:
                    raise Reason("disclosure-malformed", "an object-property disclosure sits in an array")
                items.append(_fill(d[1], by_digest, seen))
            else:
                items.append(_fill(item, by_digest, seen))
        return items
    return value


def _key_binding(p: Parsed, payload: dict[str, Any], aud: str | None, nonce: str | None, t: int, skew: int) -> None:
    cnf = payload.get("cnf", {}).get("jwk") if isinstance(payload.get("cnf"), dict) else None
    if cnf is None:
        raise Reason("kb-no-cnf", "a key binding is presented, but the credential names no holder key (cnf)")
    assert p.kb is not None
    try:
        h, raw = verify_compact(p.kb, cnf)
    except (BadSignature, InvalidInput) as e:
        raise Reason("kb-signature", e.what) from None
    if h.get("typ") != KB_TYP:
        raise Reason("kb-typ", f"the key binding's typ is {h.get('typ')!r}, not {KB_TYP}")
    kb = orjson.loads(raw)
    if kb.get("sd_hash") != disclosure_digest(p.sd_jwt):
        raise Reason("kb-sd-hash", "the key binding signs another presentation (sd_hash)")
    if nonce is not None and kb.get("nonce") != nonce:
        raise Reason("kb-nonce", "the key binding carries another nonce")
    if aud is not None and kb.get("aud") != aud:
        raise Reason("kb-aud", f"the key binding is for {kb.get('aud')!r}, not {aud!r}")
    iat = kb.get("iat")
    if not isinstance(iat, int | float) or iat > t + skew or iat < t - KB_MAX_AGE - skew:
        raise Reason("kb-stale", f"the key binding was made at {iat!r}, not within {KB_MAX_AGE} s of now")


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


# -- many at once -----------------------------------------------------------------------------------

_POOL: ProcessPoolExecutor | None = None


def verify_many(
    presentations: Sequence[str],
    keys: Mapping[str, PublicKey],
    *,
    aud: str | None = None,
    nonces: Sequence[str | None] | None = None,
    now: datetime | None = None,
) -> list[Verified | Reason]:
    """Verify independent presentations on every core: `keys` maps each issuer to its public key; the
    result for each is its `Verified` or the `Reason` it was refused."""
    nonces = list(nonces) if nonces is not None else [None] * len(presentations)
    jobs = list(zip(presentations, nonces, strict=True))
    cores = os.cpu_count() or 1
    if cores == 1 or len(jobs) < 64:
        return _verify_chunk(jobs, dict(keys), aud, now)
    global _POOL
    if _POOL is None:  # one pool per process, started clean (forkserver) and kept for later batches
        _POOL = ProcessPoolExecutor(cores - 1, mp_context=multiprocessing.get_context("forkserver"))
    size = -(-len(jobs) // cores)
    chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
    futures = [_POOL.submit(_verify_chunk_wire, c, dict(keys), aud, now) for c in chunks[1:]]
    out = _verify_chunk(chunks[0], dict(keys), aud, now)
    for f in futures:
        out += [Reason(*r) if isinstance(r, tuple) else r for r in f.result()]
    return out


def _verify_chunk(
    jobs: list[tuple[str, str | None]], keys: dict[str, PublicKey], aud: str | None, now: datetime | None
) -> list[Verified | Reason]:
    out: list[Verified | Reason] = []
    for presentation, nonce in jobs:
        try:
            out.append(verify(presentation, lambda iss, h: _known(keys, iss), aud=aud, nonce=nonce, now=now))
        except Reason as e:
            out.append(e)
    return out


def _verify_chunk_wire(jobs, keys, aud, now):  # type: ignore[no-untyped-def]
    """In a worker: as `_verify_chunk`, with refusals as (code, what) so that they cross the pipe."""
    return [
        (r.code, r.what.split(": ", 1)[1]) if isinstance(r, Reason) else r for r in _verify_chunk(jobs, keys, aud, now)
    ]


def _known(keys: dict[str, PublicKey], iss: str) -> PublicKey:
    if iss not in keys:
        raise BadSignature(f"issuer {iss} is not one this verifier knows")
    return keys[iss]
