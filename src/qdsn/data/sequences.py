"""Device sequence numbers: which readings of each device arrived, and which never did.

A device numbers its readings 1, 2, 3, … (`seq`); one that cannot keep its count across restarts names
each count with `boot` and starts again at 1. A number below the highest one seen that never arrived is
a gap: a reading lost on the way (a broker that dropped it, a queue that overflowed). Arrived numbers are
kept as closed ranges, so a stream that loses nothing is one range however long it runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

Ranges = list[tuple[int, int]]  # closed, sorted, disjoint and not touching


def merge(ranges: Ranges, numbers: Iterable[int]) -> Ranges:
    """`ranges` with `numbers` added."""
    spans = sorted([*ranges, *((n, n) for n in set(numbers))])
    out: Ranges = []
    for lo, hi in spans:
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def holes(ranges: Ranges) -> Ranges:
    """The numbers from 1 to the highest in `ranges` that are not in them."""
    out: Ranges = []
    expected = 1
    for lo, hi in ranges:
        if lo > expected:
            out.append((expected, lo - 1))
        expected = hi + 1
    return out


@dataclass
class Stream:
    """The readings of one device (and boot) that arrived in a dataset."""

    device: str
    boot: str | None = None
    seen: Ranges = field(default_factory=list)

    @property
    def last(self) -> int:
        """The highest sequence number that arrived."""
        return self.seen[-1][1] if self.seen else 0

    @property
    def arrived(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.seen)

    @property
    def gaps(self) -> Ranges:
        """Sequence numbers below `last` that never arrived."""
        return holes(self.seen)

    @property
    def missing(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.gaps)

    def to_json(self) -> dict[str, Any]:
        return {
            "device": self.device, "boot": self.boot, "last": self.last, "arrived": self.arrived,
            "missing": self.missing, "gaps": [list(g) for g in self.gaps],
        }  # fmt: skip


def numbered(records: Iterable[dict[str, Any]]) -> dict[tuple[str, str | None], list[int]]:
    """(device, boot) -> the sequence numbers of the records that carry a device and a `seq`."""
    found: dict[tuple[str, str | None], list[int]] = {}
    for r in records:
        seq = r.get("seq")
        if seq is None:
            continue  # most records of a file: one look-up each
        device = r.get("device")
        if isinstance(device, str) and isinstance(seq, int) and not isinstance(seq, bool) and seq >= 1:
            boot = r.get("boot")
            found.setdefault((device, boot if isinstance(boot, str) else None), []).append(seq)
    return found


def describe(gaps: Ranges, limit: int = 5) -> str:
    """Gaps as a person reads them: "1001–3000, 3005" (the first `limit`, then how many more)."""
    shown = [f"{lo}" if lo == hi else f"{lo}–{hi}" for lo, hi in gaps[:limit]]
    more = f" and {len(gaps) - limit} more gaps" if len(gaps) > limit else ""
    return ", ".join(shown) + more
