"""Why a credential presentation or a status list token was refused: one closed set of codes, so that
the verifier, its report, an API answer and a test all name the same check."""

from __future__ import annotations

from enum import StrEnum

from qdsn.errors import IntegrityError, InvalidInput


class Code(StrEnum):
    """The check that refused: each names one class of fault, and the message says which part."""

    FORMAT = "format"  # not <issuer JWT>~<disclosure>~…~[<KB-JWT>], a JWS not 3 segments, nesting too deep
    ENCODING = "encoding"  # a segment (header, payload, signature, disclosure) not strict base64url or not JSON
    HEADER = "header"  # a JWS header that is not a JSON object
    CRIT = "crit"  # a JWS header with `crit`: an extension not understood here, or a malformed `crit`
    TYP = "typ"  # the issuer JWT is not typ dc+sd-jwt
    SIGNATURE = "signature"  # the issuer is unknown, or its signature does not hold
    CLAIMS = "claims"  # the payload not an object; iss missing; a registered claim of the wrong type
    VCT = "vct"  # no vct, or not the credential type the verifier expects
    SD_ALG = "sd-alg"  # a digest algorithm other than sha-256
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    ISSUED_IN_FUTURE = "issued-in-future"
    DIGEST_MALFORMED = "digest-malformed"  # `_sd` not an array, a digest not a string, `...` not alone
    DIGEST_DUPLICATE = "digest-duplicate"  # one digest twice anywhere, disclosed or not (RFC 9901 §7.1)
    DISCLOSURE_MALFORMED = "disclosure-malformed"  # not [salt, name, value] / [salt, value], or in the wrong place
    DISCLOSURE_DUPLICATE = "disclosure-duplicate"  # the same disclosure presented twice
    DISCLOSURE_UNREFERENCED = "disclosure-unreferenced"  # a disclosure no digest refers to
    DISCLOSURE_NAME = "disclosure-name"  # a reserved name (_sd, ...) or one already at its level
    DISCLOSURE_FORBIDDEN = "disclosure-forbidden"  # iss, exp, nbf, cnf, vct, status, … made disclosable
    KB_REQUEST = "kb-request"  # the verifier asked for key binding with only one of aud and nonce
    KB_MISSING = "kb-missing"
    KB_NO_CNF = "kb-no-cnf"
    KB_SIGNATURE = "kb-signature"
    KB_TYP = "kb-typ"
    KB_SD_HASH = "kb-sd-hash"
    KB_NONCE = "kb-nonce"
    KB_AUD = "kb-aud"
    KB_STALE = "kb-stale"  # iat missing, not a number, or outside the window
    STATUS_TOKEN = "status-token"  # a Status List Token of the wrong form, type or subject
    STATUS_IAT = "status-iat"  # a Status List Token without a numeric iat, or issued in the future
    STATUS_EXPIRED = "status-expired"
    STATUS_LIST = "status-list"  # the list is not zlib data, or larger than a verifier takes


class Reason(IntegrityError):
    """A refusal: `code` names the check (a `Code`), `why` says what was wrong."""

    def __init__(self, code: Code | str, why: str, fix: str | None = None) -> None:
        self.code = Code(code)
        self.why = why
        super().__init__(f"{self.code}: {why}", fix)

    def __reduce__(self) -> tuple[type[Reason], tuple[str, str, str | None]]:  # so that it crosses a process pipe
        return (type(self), (self.code.value, self.why, self.fix))


class BadRequest(Reason, InvalidInput):
    """A verification asked for wrongly (key binding with only one of aud and nonce): refused with its
    code, and invalid input to whoever asked — never checked half."""
