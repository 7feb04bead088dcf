"""Quality notifications after Catena-X CX-0125, as Trace-X implements them: the notification, its
state machine (each move made by its side, sender or recipient) and a fold of the ledger's
`notification.transition` entries. Pure logic, no I/O.

An *alert* goes downstream of a problem (to those who received the affected parts or data); an
*investigation* goes upstream (to the source, asking it to look into the cause). The content —
description, target date, affected items — travels sealed between the two nodes; the ledger holds
each move with the SHA-256 of the canonical content, so neither side can later deny a step.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from qdsn.clock import format_time
from qdsn.crypto import canonical_json, sha256
from qdsn.errors import InvalidInput
from qdsn.ledger import tx
from qdsn.ledger.tx import NOTIFICATION_MOVES, NOTIFICATION_REASONED, notification_move

STATES = tuple(s for s in NOTIFICATION_MOVES if s is not None)
FINAL = frozenset(s for s, moves in NOTIFICATION_MOVES.items() if s is not None and not moves)
CLASSIFICATIONS = ("alert", "investigation")
SEVERITIES = ("MINOR", "MAJOR", "CRITICAL", "LIFE-THREATENING")
MAX_CONTENT = 64 * 1024  # bytes of a notification's canonical content
MAX_ITEMS = 200  # affected items of one kind
# Control characters (C0 but tab and newline, DEL, C1), bidirectional overrides and invisible format
# characters: refused in anything a person reads, so no text can hide or reorder what is shown.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
_ITEM = Field(min_length=1, max_length=200)


def _plain(value: str, *, lines: bool = False) -> str:
    """`value`, or ValueError when it holds a character that could hide or reorder what is shown
    (tab and newline only where `lines`)."""
    bad = _UNSAFE.search(value) or (None if lines else re.search("[\t\n]", value))
    if bad:
        raise ValueError(f"holds the control or invisible character {bad.group()!r}")
    return value


class Affected(BaseModel):
    """What a notification concerns: datasets, batches (dataset#first+count or a maker's lot),
    serial numbers, products and certificates."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    datasets: list[str] = Field(default_factory=list, max_length=MAX_ITEMS)
    batches: list[str] = Field(default_factory=list, max_length=MAX_ITEMS)
    serials: list[str] = Field(default_factory=list, max_length=MAX_ITEMS)
    products: list[str] = Field(default_factory=list, max_length=MAX_ITEMS)
    certificates: list[str] = Field(default_factory=list, max_length=MAX_ITEMS)

    @field_validator("datasets", "batches", "serials", "products", "certificates")
    @classmethod
    def _items(cls, items: list[str]) -> list[str]:
        for i in items:
            if not 1 <= len(i) <= 200:
                raise ValueError("each item is 1 to 200 characters")
            _plain(i)
        return items

    def count(self) -> int:
        return sum(len(getattr(self, k)) for k in type(self).model_fields)


class Notification(BaseModel):
    """A quality notification's content: what the sender seals to the recipient and the ledger hashes."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")
    sender: str = Field(pattern=r"^did:(key|web):[A-Za-z0-9._%:\-]+$", max_length=512)
    recipient: str = Field(pattern=r"^did:(key|web):[A-Za-z0-9._%:\-]+$", max_length=512)
    classification: Literal["alert", "investigation"]
    severity: Literal["MINOR", "MAJOR", "CRITICAL", "LIFE-THREATENING"]
    description: str = Field(min_length=1, max_length=8000)
    target_date: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    related: str | None = Field(default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")
    affected: Affected = Field(default_factory=Affected)
    created: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")

    @field_validator("description")
    @classmethod
    def _description(cls, v: str) -> str:
        return _plain(v, lines=True)

    @field_validator("target_date")
    @classmethod
    def _date(cls, v: str | None) -> str | None:
        if v is not None:
            datetime.strptime(v, "%Y-%m-%d")  # ValueError names a date that does not exist
        return v

    def canonical(self) -> bytes:
        """The RFC 8785 bytes that are sealed and hashed."""
        return canonical_json(self.model_dump(mode="json"))

    def digest(self) -> str:
        """The content hash the ledger holds: lowercase hex SHA-256 of `canonical()`."""
        return sha256(self.canonical()).hex()

    def transition(self, state: str, reason: str | None = None) -> dict[str, Any]:
        """The `notification.transition` payload of a move of this notification to `state`."""
        p: dict[str, Any] = {"notification": self.id, "state": state, "classification": self.classification,
                             "severity": self.severity, "sender": self.sender, "recipient": self.recipient,
                             "content": self.digest()}  # fmt: skip
        if reason:
            p["reason"] = reason
        if self.related and state == "CREATED":
            p["related"] = self.related
        return p


def new(sender: str, recipient: str, classification: str, severity: str, description: str, *, now: datetime,
        target_date: str | None = None, related: str | None = None, affected: dict[str, list[str]] | None = None,
        id: str | None = None) -> Notification:  # fmt: skip
    """A new notification, every field checked; InvalidInput names the first bad one."""
    return parse({"id": id or f"qn-{uuid.uuid4()}", "sender": sender, "recipient": recipient,
                  "classification": classification, "severity": severity, "description": description,
                  "target_date": target_date, "related": related, "affected": affected or {},
                  "created": format_time(now)})  # fmt: skip


def parse(doc: Any) -> Notification:
    """A notification from its JSON form (another node's word: checked whole, bounded)."""
    if not isinstance(doc, dict):
        raise InvalidInput("a notification is a JSON object")
    if doc.get("sender") and doc.get("sender") == doc.get("recipient"):
        raise InvalidInput("a notification's sender and recipient must be two participants")
    try:
        n = Notification.model_validate(doc)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "notification"
        raise InvalidInput(f"notification field {where!r}: {err['msg']}", "fix that field") from None
    if len(n.canonical()) > MAX_CONTENT:
        raise InvalidInput(f"the notification is over {MAX_CONTENT // 1024} KiB", "shorten its description or items")
    return n


def moves(state: str | None, side: str) -> list[str]:
    """The states `side` (sender or recipient) may move a notification in `state` to."""
    return [s for s, who in NOTIFICATION_MOVES.get(state, {}).items() if who == side]


def move(state: str | None, new_state: str, side: str, reason: str | None = None) -> str:
    """The state after `side` moves a notification from `state` to `new_state`; Conflict when the state
    machine has no such move, PermissionDenied when it is the other side's, InvalidInput when a decline
    or close gives no reason."""
    notification_move(state, new_state, side, reason)
    return new_state


def reason_required(state: str) -> bool:
    """Whether a move to `state` must say why."""
    return state in NOTIFICATION_REASONED


@dataclass
class Folded:
    """A notification as the ledger's moves tell it: parties, what it is, its state and its history
    [(state, at, seq, reason)]."""

    id: str
    sender: str
    recipient: str
    classification: str
    severity: str
    content: str
    state: str
    related: str | None = None
    history: list[tuple[str, str, int, str | None]] = field(default_factory=list)

    def side_of(self, did: str) -> str | None:
        """`sender`, `recipient`, or None for a participant that is neither."""
        return "sender" if did == self.sender else "recipient" if did == self.recipient else None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "sender": self.sender, "recipient": self.recipient,
                "classification": self.classification, "severity": self.severity, "content": self.content,
                "state": self.state, "related": self.related,
                "history": [{"state": s, "at": at, "seq": q, "reason": r} for s, at, q, r in self.history]}  # fmt: skip


def fold(envelopes: Iterable[Any]) -> dict[str, Folded]:
    """Every notification of a run of log entries: per id its parties, classification, severity, state
    and history. Takes envelopes (numbered in the order given), (seq, envelope) pairs or the store's
    rows (`Ledger.store.rows_of_type("notification.transition")`); other types are passed over, and a
    move the state machine refuses is left out, as every replica left it out of the log."""
    out: dict[str, Folded] = {}
    for i, item in enumerate(envelopes):
        seq, env = _numbered(i, item)
        if env.type != "notification.transition":
            continue
        p = env.payload
        n = out.get(p["notification"])
        side = "sender" if env.submitter == p["sender"] else "recipient" if env.submitter == p["recipient"] else None
        try:
            if side is None:
                continue
            if n is not None and (p["sender"], p["recipient"], p["content"]) != (n.sender, n.recipient, n.content):
                continue
            notification_move(n.state if n else None, p["state"], side, p.get("reason"))
        except Exception:
            continue
        if n is None:
            n = out[p["notification"]] = Folded(p["notification"], p["sender"], p["recipient"], p["classification"],
                                                p["severity"], p["content"], p["state"], p.get("related"))  # fmt: skip
        n.state = p["state"]
        n.history.append((p["state"], env.created, seq, p.get("reason")))
    return out


def _numbered(i: int, item: Any) -> tuple[int, tx.Envelope]:
    if isinstance(item, tx.Envelope):
        return i, item
    if isinstance(item, tuple):
        return int(item[0]), item[1]
    return int(item.seq), tx.from_leaf(item.leaf)  # a store row


def counts(notes: Iterable[Folded]) -> dict[str, dict[str, int]]:
    """How many notifications there are by state, classification and severity (what the regulator sees
    of those it is not party to)."""
    out: dict[str, dict[str, int]] = {"state": {}, "classification": {}, "severity": {}}
    for n in notes:
        for k in out:
            v = getattr(n, k)
            out[k][v] = out[k].get(v, 0) + 1
    return out
