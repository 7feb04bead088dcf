"""Errors as RFC 9457 problem details: a type, a title, a status, what happened and what to do."""

from __future__ import annotations

from typing import Any

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

MEDIA_TYPE = "application/problem+json"
_KINDS: list[tuple[type[QDSNError], int, str, str]] = [  # most specific first
    (BadSignature, 401, "bad-signature", "The request's signature does not hold"),
    (PermissionDenied, 403, "permission-denied", "Not allowed"),
    (NotFound, 404, "not-found", "Not found"),
    (Conflict, 409, "conflict", "Conflicts with what is recorded"),
    (IntegrityError, 422, "integrity", "Hashes or proofs do not add up"),
    (InvalidInput, 400, "invalid-input", "The request is not valid"),
    (Unavailable, 503, "unavailable", "Unavailable for now: try again later"),
    (RateLimited, 429, "rate-limited", "Too many requests"),
]


def problem(status: int, kind: str, title: str, detail: str, fix: str | None = None, **extra: Any) -> dict[str, Any]:
    """A problem+json document; `type` is a URN under urn:qdsn:problem."""
    body = {"type": f"urn:qdsn:problem:{kind}", "title": title, "status": status, "detail": detail}
    if fix:
        body["fix"] = fix
    return body | extra


def from_error(e: QDSNError) -> dict[str, Any]:
    """The problem for one of our errors."""
    for cls, status, kind, title in _KINDS:
        if isinstance(e, cls):
            return problem(status, kind, title, e.what, e.fix)
    return problem(500, "internal", "Internal error", e.what, e.fix)
