"""Time as QDSN writes it: UTC, RFC 3339, second precision, passed in as a clock."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")


def system_clock() -> datetime:
    """The machine's time in UTC; the only place QDSN reads the wall clock."""
    return datetime.now(UTC)


def format_time(t: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, to the second."""
    if t.tzinfo is None:
        raise ValueError("naive datetime: pass an aware UTC time")
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(s: str) -> datetime:
    """Parse an RFC 3339 timestamp; raises ValueError naming the bad value."""
    if not isinstance(s, str) or not _RFC3339.match(s):
        raise ValueError(f"{s!r} is not an RFC 3339 timestamp like 2026-01-31T08:00:00Z")
    return datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(UTC)
