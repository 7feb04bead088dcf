"""SD-JWT (RFC 9901) and SD-JWT VC (draft-ietf-oauth-sd-jwt-vc): issuing, presenting, verifying.

An issuer hides each selectively disclosable claim behind the digest of a Disclosure — the base64url
of `[salt, name, value]`, or `[salt, value]` for an array element — listed in `_sd` (or, for an
element, as `{"...": digest}`), with decoy digests so the count of hidden claims does not show. The
serialization is `<issuer JWT>~<disclosure>~…~[<KB-JWT>]`. A holder presents a subset of the
disclosures and, when the credential is bound to its key (`cnf`), a Key Binding JWT over the
presentation's `sd_hash`, the verifier's nonce and audience.

The verifier checks what a careful verifier must, each failure a `Reason` with its `Code`: every
segment strict base64url, headers objects with no critical extension; the issuer's signature and
`typ`; the structure the issuer controls (`_sd` arrays of string digests, `...` alone in an element,
disclosures of the right form, nesting depth); every disclosure referenced by exactly one digest, no
digest twice anywhere, no claim name repeated or reserved, none of the claims SD-JWT VC keeps always
visible hidden; the registered claims' types and `vct`; the times, with a clock skew, on the
processed payload; the key binding's `typ`, signature, `sd_hash`, nonce, audience and freshness. The
status list is checked by `credentials.status`.

Written here rather than taken from a library: the reference `sd-jwt` package is the interoperability
yardstick in the tests, and verification sits on the certificate hot path that must outrun it.
"""

from __future__ import annotations

import base64
import hashlib
import multiprocessing
import os
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

from qdsn.credentials.reasons import BadRequest, Code, Reason
from qdsn.crypto.encoding import b64url_decode
from qdsn.crypto.jose import PrivateKey, PublicKey, check_signature, crit_problem, public_jwk, sign_jws
from qdsn.errors import BadSignature, InvalidInput, QDSNError

__all__ = ["Code", "Reason", "Verified", "disclosure_digest", "issue", "make_disclosure", "parse", "present", "verify",
           "verify_many"]  # fmt: skip

TYP = "dc+sd-jwt"  # the only media type taken on input; the earlier vc+sd-jwt is refused
KB_TYP = "kb+jwt"
SKEW = 60  # seconds of clock difference tolerated
KB_MAX_AGE = 300  # a key binding older than this is stale
MAX_DEPTH = 64  # claims nested deeper than this are refused, before Python's own recursion limit
RESERVED = ("_sd", "...")  # never a disclosed claim's name (RFC 9901 §4.2.1)
# Claims an SD-JWT VC keeps always visible (draft-ietf-oauth-sd-jwt-vc §3.2.2): a holder must not be
# able to hide when a credential expires, who issued it, its type, holder key or status. QDSN adds
# iat, whose time check must see what the issuer signed, and _sd_alg, which says how digests are made.
ALWAYS_VISIBLE = frozenset({"iss", "nbf", "exp", "iat", "cnf", "vct", "vct#integrity", "status", "_sd_alg"})
Resolver = Callable[[str, dict[str, Any]], PublicKey]  # (iss, JWS header) -> the issuer's public key


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
    *,
    kid: str | None = None,
    decoys: int = 2,
) -> str:
    """An SD-JWT of `claims` signed by `issuer_key`. `disclosable` names claims by path: "site",
    "indicators.cpk" (a nested property), "standards[]" (each element of an array); a path and its
    parent may both be disclosable (recursive disclosure). `holder_jwk` binds it to a holder key
    (`cnf`); each `_sd` array gets up to `decoys` decoy digests."""
    paths = set(disclosable)
    if not isinstance(claims, dict) or not isinstance(claims.get("iss"), str) or not isinstance(claims.get("vct"), str):
        raise InvalidInput("an SD-JWT VC names its issuer (iss) and its credential type (vct), as strings")
    visible = sorted(p for p in paths if re.split(r"[.\[]", p, maxsplit=1)[0] in ALWAYS_VISIBLE)
    if visible:
        raise InvalidInput(f"{', '.join(visible)} must stay visible in an SD-JWT VC", "make other claims disclosable")
    disclosures: list[str] = []
    payload = _hide(claims, "", paths, disclosures, decoys)
    unknown = paths - set(_paths(claims, ""))
    if unknown:
        raise InvalidInput(f"no claim at {', '.join(sorted(unknown))} to make disclosable")
    payload["_sd_alg"] = "sha-256"
    if holder_jwk is not None:
        payload["cnf"] = {"jwk": public_jwk(holder_jwk)}
    jwt = sign_jws(payload, issuer_key, typ=TYP, kid=kid)
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
        raise Reason(Code.FORMAT, "an SD-JWT is <issuer JWT>~<disclosure>~…~ with an optional key binding JWT")
    if not serialized.isascii():
        raise Reason(Code.ENCODING, "an SD-JWT is ASCII text: base64url segments joined by '.' and '~'")
    parts = serialized.split("~")
    jwt, middle, last = parts[0], parts[1:-1], parts[-1]
    if jwt.count(".") != 2 or any(not d for d in middle):
        raise Reason(Code.FORMAT, "the issuer JWT or a disclosure is empty or malformed")
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
    by_digest = {disclosure_digest(d): (d, _disclosure(d)) for d in p.disclosures}
    payload = _json_object(_segments(p.jwt, "the issuer JWT")[1], "the issuer JWT's payload")
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


def _choose(value: Any, path: str, wanted: set[str], by_digest: dict[str, tuple[str, _Disclosure]],
            chosen: list[str]) -> None:  # fmt: skip
    """Pick the disclosures whose claim is wanted or holds one that is."""

    def needed(p: str) -> bool:  # p is wanted, holds something wanted, or lies inside something wanted
        return any(w == p or w.startswith((p + ".", p + "[]")) or p.startswith((w + ".", w + "[]")) for w in wanted)

    if isinstance(value, dict):
        sd = value.get("_sd")
        for digest in sd if isinstance(sd, list) else []:
            text, d = by_digest.get(digest, (None, None)) if isinstance(digest, str) else (None, None)
            if text is None or d is None or d.name is None:
                continue  # a decoy, or a claim the holder was never given
            sub = f"{path}.{d.name}" if path else d.name
            if needed(sub):
                chosen.append(text)
                _choose(d.value, sub, wanted, by_digest, chosen)
        for k, v in value.items():
            if k not in ("_sd", "_sd_alg"):
                _choose(v, f"{path}.{k}" if path else k, wanted, by_digest, chosen)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and set(item) == {"..."}:
                text, d = by_digest.get(item["..."], (None, None)) if isinstance(item["..."], str) else (None, None)
                if text is not None and d is not None and needed(f"{path}[]"):
                    chosen.append(text)
                    _choose(d.value, f"{path}[]", wanted, by_digest, chosen)
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
    vct: str | None = None,
) -> Verified:
    """Check a presentation and return its disclosed claims, or raise `Reason` with the check that
    failed. A verifier that asks for key binding gives both its `aud` and a fresh `nonce` (RFC 9901
    §7.3); `vct`, when given, is the only credential type accepted."""
    asked = _binding_asked(aud, nonce)
    p = parse(presentation)
    h, iss = _KNOWN.get(p.jwt) or _issuer_header(p.jwt)
    try:
        jwk = public_jwk(issuer_key_resolver(iss, dict(h)))
    except (QDSNError, LookupError) as e:  # the resolver knows no key for it
        raise Reason(Code.SIGNATURE, f"no key for issuer {iss[:80]!r}: {getattr(e, 'what', e)}") from None
    payload = _issuer_signed(p.jwt, tuple(sorted(jwk.items())))
    if payload.get("_sd_alg", "sha-256") != "sha-256":
        raise Reason(Code.SD_ALG, f"_sd_alg {str(payload.get('_sd_alg'))[:20]!r} is not sha-256")
    claims = _reveal(payload, p.disclosures)  # the processed payload: every check below reads it (§7.1)
    _registered(claims, vct)
    t = int((now or datetime.now(UTC)).timestamp())
    if "exp" in claims and t > claims["exp"] + skew:
        raise Reason(Code.EXPIRED, f"it expired at {_when(claims['exp'])}")
    if "nbf" in claims and t < claims["nbf"] - skew:
        raise Reason(Code.NOT_YET_VALID, f"it is valid from {_when(claims['nbf'])}")
    if "iat" in claims and t < claims["iat"] - skew:
        raise Reason(Code.ISSUED_IN_FUTURE, f"it was issued at {_when(claims['iat'])}, after now")
    if asked and p.kb is None:
        raise Reason(Code.KB_MISSING, "the verifier asked for key binding and the presentation has none")
    if p.kb is not None:  # a key binding shown is checked, asked for or not
        _key_binding(p, claims, aud, nonce, t, skew)
    claims.pop("_sd_alg", None)
    return Verified(iss, dict(h), claims, len(p.disclosures), p.kb is not None)


def _binding_asked(aud: str | None, nonce: str | None) -> bool:
    """Whether the verifier asks for key binding; it must give both aud and nonce, or neither: a key
    binding checked against only one of them can be replayed to another verifier or another time."""
    for name, value in (("aud", aud), ("nonce", nonce)):
        if value is not None and (not isinstance(value, str) or not value):
            raise BadRequest(Code.KB_REQUEST, f"{name} is a non-empty string")
    if (aud is None) != (nonce is None):
        missing = "nonce" if nonce is None else "aud"
        raise BadRequest(Code.KB_REQUEST, "key binding is asked for with both an audience (aud) and a fresh nonce, "
                         "or with neither", f"give {missing} as well (RFC 9901 §7.3)")  # fmt: skip
    return aud is not None


def _segments(jws: str, what: str) -> tuple[dict[str, Any], bytes, bytes, bytes]:
    """(header, payload, signature, signing input) of a compact JWS, decoded strictly, unverified;
    the header an object with no critical extension."""
    parts = jws.split(".")
    if len(parts) != 3:
        raise Reason(Code.FORMAT, f"{what} is not three base64url segments joined by '.'")
    decoded = []
    for name, part in zip(("header", "payload", "signature"), parts, strict=True):
        try:
            decoded.append(b64url_decode(part))
        except InvalidInput as e:
            raise Reason(Code.ENCODING, f"{what}'s {name}: {e.what}") from None
    try:
        h = orjson.loads(decoded[0])
    except orjson.JSONDecodeError:
        raise Reason(Code.ENCODING, f"{what}'s header is not JSON") from None
    if not isinstance(h, dict):
        raise Reason(Code.HEADER, f"{what}'s header is not a JSON object")
    problem = crit_problem(h)
    if problem:
        raise Reason(Code.CRIT, f"{what}: {problem}")
    return h, decoded[1], decoded[2], f"{parts[0]}.{parts[1]}".encode("ascii")


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Reason(Code.ENCODING, f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise Reason(Code.CLAIMS, f"{what} is not a JSON object")
    return value


def _issuer_header(jwt: str) -> tuple[dict[str, Any], str]:
    """The issuer JWT's header and its iss, unverified: what finds the key that must have signed."""
    h, body, _, _ = _segments(jwt, "the issuer JWT")
    if h.get("typ") != TYP:
        raise Reason(Code.TYP, f"typ is {str(h.get('typ'))[:40]!r}; an SD-JWT VC is {TYP}")
    iss = _json_object(body, "the issuer JWT's payload").get("iss")
    if not isinstance(iss, str) or not iss:
        raise Reason(Code.CLAIMS, "the issuer JWT's payload names no issuer (iss, a string)")
    return h, iss


@lru_cache(maxsize=4096)
def _issuer_signed(jwt: str, jwk: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    """The payload of an issuer JWT whose signature holds under `jwk`. A certificate is presented many
    times; its issuer's signature over the same bytes under the same key is checked once (a refusal
    is not cached). The payload is shared: readers copy, never change it."""
    h, body, signature, signed = _segments(jwt, "the issuer JWT")
    try:
        check_signature(h, signed, signature, dict(jwk))
    except (BadSignature, InvalidInput) as e:
        raise Reason(Code.SIGNATURE, e.what) from None
    payload = _json_object(body, "the issuer JWT's payload")
    if len(_KNOWN) >= 4096:
        _KNOWN.clear()
    _KNOWN[jwt] = (h, str(payload.get("iss")))
    return payload


# The header and issuer of issuer JWTs whose signature held once (each fully checked then), so that a
# certificate presented again is not parsed again before its key is looked up. Never an unsigned one.
_KNOWN: dict[str, tuple[dict[str, Any], str]] = {}


@dataclass(frozen=True)
class _Disclosure:
    salt: str
    name: str | None  # None: an array element
    value: Any


def _disclosure(d: str) -> _Disclosure:
    try:
        decoded = orjson.loads(b64url_decode(d))
    except InvalidInput as e:
        raise Reason(Code.ENCODING, f"disclosure {d[:16]!r}…: {e.what}") from None
    except orjson.JSONDecodeError:
        raise Reason(Code.DISCLOSURE_MALFORMED, f"disclosure {d[:16]!r}… is not JSON") from None
    if (not isinstance(decoded, list) or len(decoded) not in (2, 3) or not isinstance(decoded[0], str)
            or (len(decoded) == 3 and not isinstance(decoded[1], str))):  # fmt: skip
        raise Reason(Code.DISCLOSURE_MALFORMED, f"disclosure {d[:16]!r}… is not [salt, name, value] or [salt, value]")
    salt, *name, value = decoded
    return _Disclosure(salt, name[0] if name else None, value)


def _reveal(payload: dict[str, Any], disclosures: list[str]) -> dict[str, Any]:
    """The processed payload (RFC 9901 §7.1): every presented disclosure put back where its digest is,
    every digest in sight seen once only, no disclosure left unreferenced."""
    by_digest: dict[str, _Disclosure] = {}
    for d in disclosures:
        decoded = _disclosure(d)
        digest = disclosure_digest(d)
        if digest in by_digest:
            raise Reason(Code.DISCLOSURE_DUPLICATE, f"disclosure {d[:16]!r}… is presented twice")
        by_digest[digest] = decoded
    seen: set[str] = set()
    out = _Filler(by_digest, seen).fill(payload, 0, top=True, fixed=False)
    unreferenced = set(by_digest) - seen
    if unreferenced:
        raise Reason(Code.DISCLOSURE_UNREFERENCED, f"{len(unreferenced)} disclosure(s) match no digest in sight")
    return out


@dataclass
class _Filler:
    by_digest: dict[str, _Disclosure]
    seen: set[str]

    def see(self, digest: Any) -> _Disclosure | None:
        if not isinstance(digest, str):
            raise Reason(Code.DIGEST_MALFORMED, f"a digest is {type(digest).__name__}, not a string")
        if digest in self.seen:
            raise Reason(Code.DIGEST_DUPLICATE, f"digest {digest[:16]!r}… appears twice")
        self.seen.add(digest)
        return self.by_digest.get(digest)

    def fill(self, value: Any, depth: int, *, top: bool = False, fixed: bool) -> Any:
        """A copy of `value` with its disclosures put in; `fixed`: under a claim that must stay visible."""
        if depth > MAX_DEPTH:
            raise Reason(Code.FORMAT, f"the claims nest deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            if "..." in value:
                raise Reason(Code.DIGEST_MALFORMED, "'...' is an array element's only key, never a claim name")
            sd = value.get("_sd", [])
            if not isinstance(sd, list):
                raise Reason(Code.DIGEST_MALFORMED, f"_sd is {type(sd).__name__}, not an array of digests")
            if sd and fixed:
                raise Reason(Code.DISCLOSURE_FORBIDDEN, "a claim that must stay visible holds disclosable parts")
            out = {k: self.fill(v, depth + 1, fixed=fixed or (top and k in ALWAYS_VISIBLE))
                   if isinstance(v, dict | list) else v for k, v in value.items() if k != "_sd"}  # fmt: skip
            for digest in sd:
                d = self.see(digest)
                if d is None:
                    continue  # a decoy, or a claim not disclosed
                if d.name is None:
                    raise Reason(Code.DISCLOSURE_MALFORMED, "an array-element disclosure is referred to from _sd")
                if top and d.name in ALWAYS_VISIBLE:
                    raise Reason(Code.DISCLOSURE_FORBIDDEN, f"{d.name!r} must not be selectively disclosable")
                if d.name in RESERVED or d.name in out:
                    raise Reason(Code.DISCLOSURE_NAME, f"disclosed claim name {d.name[:40]!r} is reserved or already "
                                                       "present")  # fmt: skip
                out[d.name] = self.fill(d.value, depth + 1, fixed=False)
            return out
        if isinstance(value, list):
            items = []
            for item in value:
                if isinstance(item, dict) and "..." in item:
                    if len(item) != 1:
                        raise Reason(Code.DIGEST_MALFORMED, "an array element with '...' has other keys")
                    if fixed:
                        raise Reason(Code.DISCLOSURE_FORBIDDEN, "a claim that must stay visible holds disclosable "
                                                                "parts")  # fmt: skip
                    d = self.see(item["..."])
                    if d is None:
                        continue  # an element not disclosed is left out
                    if d.name is not None:
                        raise Reason(Code.DISCLOSURE_MALFORMED, "an object-property disclosure is referred to from "
                                                                "an array")  # fmt: skip
                    items.append(self.fill(d.value, depth + 1, fixed=False))
                else:
                    items.append(self.fill(item, depth + 1, fixed=fixed) if isinstance(item, dict | list) else item)
            return items
        return value


def _registered(c: dict[str, Any], vct: str | None) -> None:
    """The registered claims of the processed payload have their types; vct is there (and the one
    expected)."""
    for name in ("exp", "nbf", "iat"):
        if name in c and not _number(c[name]):
            raise Reason(Code.CLAIMS, f"{name} is {str(c[name])[:40]!r}, not a NumericDate")
    if not isinstance(c.get("vct"), str) or not c["vct"]:
        raise Reason(Code.VCT, "an SD-JWT VC names its credential type (vct, a string)")
    if vct is not None and c["vct"] != vct:
        raise Reason(Code.VCT, f"the credential is of type {c['vct'][:80]!r}, not {vct}")
    if "vct#integrity" in c and not isinstance(c["vct#integrity"], str):
        raise Reason(Code.CLAIMS, "vct#integrity is not a string")
    if "cnf" in c:
        cnf = c["cnf"]
        if not isinstance(cnf, dict):
            raise Reason(Code.CLAIMS, "cnf is not an object holding the holder's public key (jwk)")
        if "jwk" in cnf:
            try:
                public_jwk(cnf["jwk"] if isinstance(cnf["jwk"], dict) else {})
            except InvalidInput as e:
                raise Reason(Code.CLAIMS, f"cnf.jwk: {e.what}") from None
    if "status" in c:
        st = c["status"]
        sl = st.get("status_list") if isinstance(st, dict) else None
        if not isinstance(st, dict) or ("status_list" in st and (
                not isinstance(sl, dict) or not isinstance(sl.get("uri"), str)
                or type(sl.get("idx")) is not int or sl["idx"] < 0)):  # fmt: skip
            raise Reason(Code.CLAIMS, "status is not an object whose status_list is {idx: index ≥ 0, uri: string}")


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _key_binding(p: Parsed, claims: dict[str, Any], aud: str | None, nonce: str | None, t: int, skew: int) -> None:
    """RFC 9901 §7.3: signed by the holder key the credential names, typ kb+jwt, over this very
    presentation (sd_hash), for this verifier and nonce, made just now."""
    jwk = claims.get("cnf", {}).get("jwk")
    if jwk is None:
        raise Reason(Code.KB_NO_CNF, "a key binding is presented, but the credential names no holder key (cnf.jwk)")
    assert p.kb is not None
    h, body, signature, signed = _segments(p.kb, "the key binding JWT")
    if h.get("typ") != KB_TYP:
        raise Reason(Code.KB_TYP, f"the key binding's typ is {str(h.get('typ'))[:40]!r}, not {KB_TYP}")
    try:
        check_signature(h, signed, signature, public_jwk(jwk))
    except (BadSignature, InvalidInput) as e:
        raise Reason(Code.KB_SIGNATURE, e.what) from None
    kb = _json_object(body, "the key binding JWT's payload")
    if kb.get("sd_hash") != disclosure_digest(p.sd_jwt):
        raise Reason(Code.KB_SD_HASH, "the key binding signs another presentation (sd_hash)")
    iat = kb.get("iat")
    if not _number(iat) or iat > t + skew or iat < t - KB_MAX_AGE - skew:
        raise Reason(Code.KB_STALE, f"the key binding was made at {str(iat)[:40]!r}, not within {KB_MAX_AGE} s of now")
    if not isinstance(kb.get("nonce"), str) or (nonce is not None and kb["nonce"] != nonce):
        raise Reason(Code.KB_NONCE, "the key binding carries another nonce, or none")
    if not isinstance(kb.get("aud"), str) or (aud is not None and kb["aud"] != aud):
        raise Reason(Code.KB_AUD, f"the key binding is for {str(kb.get('aud'))[:80]!r}, not {aud!r}")


def _when(ts: float) -> str:
    try:
        return datetime.fromtimestamp(ts, UTC).isoformat()
    except (OverflowError, ValueError, OSError):
        return f"{ts!r} (seconds since 1970)"


# -- many at once -----------------------------------------------------------------------------------

_POOL: ProcessPoolExecutor | None = None


def verify_many(
    presentations: Sequence[str],
    keys: Mapping[str, PublicKey],
    *,
    aud: str | None = None,
    nonces: Sequence[str | None] | None = None,
    now: datetime | None = None,
    vct: str | None = None,
) -> list[Verified | Reason]:
    """Verify independent presentations on every core: `keys` maps each issuer to its public key; the
    result for each is its `Verified` or the `Reason` it was refused — one presentation's fault never
    stops the others. With `aud`, each presentation has its nonce in `nonces`; without, none has."""
    nonces = list(nonces) if nonces is not None else [None] * len(presentations)
    if len(nonces) != len(presentations):
        raise InvalidInput(f"{len(presentations)} presentations and {len(nonces)} nonces: one nonce each")
    for x in nonces:  # the request is whole before any work starts
        _binding_asked(aud, x)
    jobs = list(zip(presentations, nonces, strict=True))
    cores = os.cpu_count() or 1
    if cores == 1 or len(jobs) < 64:
        return _verify_chunk(jobs, dict(keys), aud, now, vct)
    global _POOL
    if _POOL is None:  # one pool per process, started clean (forkserver) and kept for later batches
        _POOL = ProcessPoolExecutor(cores - 1, mp_context=multiprocessing.get_context("forkserver"))
    size = -(-len(jobs) // cores)
    chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
    futures = [_POOL.submit(_verify_chunk, c, dict(keys), aud, now, vct) for c in chunks[1:]]
    out = _verify_chunk(chunks[0], dict(keys), aud, now, vct)
    for f in futures:
        out += f.result()
    return out


def _verify_chunk(jobs: list[tuple[str, str | None]], keys: dict[str, PublicKey], aud: str | None,
                  now: datetime | None, vct: str | None) -> list[Verified | Reason]:  # fmt: skip
    out: list[Verified | Reason] = []
    for presentation, nonce in jobs:
        try:
            out.append(verify(presentation, lambda iss, h: _known(keys, iss), aud=aud, nonce=nonce, now=now, vct=vct))
        except Reason as e:
            out.append(e)
    return out


def _known(keys: dict[str, PublicKey], iss: str) -> PublicKey:
    if iss not in keys:
        raise BadSignature(f"issuer {iss} is not one this verifier knows")
    return keys[iss]
