"""One exception tree for QDSN. Every message says what was wrong and what to do next."""

from __future__ import annotations

import math


class QDSNError(Exception):
    """Base of every error QDSN raises on purpose."""

    def __init__(self, what: str, fix: str | None = None) -> None:
        self.what = what
        self.fix = fix
        super().__init__(f"{what}. {fix}" if fix else what)


class InvalidInput(QDSNError, ValueError):
    """Input that does not have the required form (schema, encoding, range)."""


class BadSignature(QDSNError):
    """A signature that does not verify under the key it names."""


class NotFound(QDSNError, LookupError):
    """A thing asked for by name or number that does not exist."""


class Conflict(QDSNError):
    """A write that collides with what is already recorded (a replayed nonce, a duplicate)."""


class IntegrityError(QDSNError):
    """Stored or received data whose hashes or proofs do not add up: tampering or corruption."""


class PermissionDenied(QDSNError, PermissionError):
    """An actor asking for something its role or the owner's policy does not allow."""


class WrongPassphrase(PermissionDenied):
    """A passphrase that does not open the keystore: the user's typing, not tampering."""


class Unavailable(QDSNError):
    """A service this node depends on (the ordering cluster) cannot answer now; the same request may
    succeed later. `retry_after`: seconds worth waiting before asking again."""

    def __init__(self, what: str, fix: str | None = None, retry_after: int = 2) -> None:
        super().__init__(what, fix)
        self.retry_after = retry_after


class RateLimited(QDSNError):
    """Too many requests of one kind from one client for now; `retry_after` is the wait in seconds."""

    def __init__(self, what: str, fix: str | None = None, *, retry_after: float = 1.0) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(what, fix or f"try again in {self.retry_after} s")
