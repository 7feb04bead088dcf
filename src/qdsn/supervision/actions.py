"""Regulator actions (`regulator.action`): the regulator suspends or reinstates a member, a certification
body's authority to issue, or a model (by code hash), each with its reason and the quality notification it
answers. Every node enforces them in the ledger's fold (`ledger.state`: a suspended member's transactions,
a suspended issuer's certificates, attestations of a suspended model are refused); verifiers read them from
the ledger they trust (`credentials.certificate.authority`); jobs refuse a suspended model. This module
builds the payload and reads the history; it never decides what the fold decides."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from qdsn.errors import InvalidInput, NotFound, PermissionDenied
from qdsn.ledger import Ledger, tx
from qdsn.ledger.state import Standing, State
from qdsn.ledger.store import Row

ACTIONS = ("suspend", "reinstate")
SCOPES = ("member", "issuer", "model")
SCOPE_WORDS = {"member": "成员资格 membership", "issuer": "发证资格 authority to issue", "model": "模型 model"}
_MODEL = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}@\d+\.\d+\.\d+$")


@dataclass(frozen=True)
class Action:
    """One `regulator.action` as the log holds it."""

    seq: int
    txid: str
    created: str
    regulator: str
    action: str
    scope: str
    subject: str
    reason: str
    notification: str | None = None
    credentials: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"credentials": list(self.credentials)}


def subject_of(state: State, scope: str, subject: str) -> str:
    """The subject as the ledger names it: a DID, or for a model its code hash (given as such, or as the
    published `id@version`)."""
    subject = subject.strip()
    if scope == "model" and _MODEL.match(subject):
        m = state.models.get(subject)
        if m is None:
            raise NotFound(f"no model {subject} is published on the ledger", "name a published model (id@version) "
                           "or its code hash")  # fmt: skip
        return m.hash
    return subject


def payload(state: State, action: str, scope: str, subject: str, reason: str | None,
            notification: str | None = None, credentials: Iterable[str] = ()) -> dict[str, Any]:  # fmt: skip
    """The `regulator.action` payload, in the form every node checks; its effect is checked by the fold."""
    if action not in ACTIONS:
        raise InvalidInput(f"action {action!r} is not one of {', '.join(ACTIONS)}")
    if scope not in SCOPES:
        raise InvalidInput(f"scope {scope!r} is not one of {', '.join(SCOPES)}",
                           "member (all its transactions), issuer (a certification body's authority to issue) or "
                           "model (by code hash or id@version)")  # fmt: skip
    if reason is None or not reason.strip():
        raise InvalidInput("a regulator's action says why", "give --reason, e.g. --reason '抽查不合格 failed sampling'")
    doc: dict[str, Any] = {"action": action, "scope": scope, "subject": subject_of(state, scope, subject),
                           "reason": reason.strip()}  # fmt: skip
    if notification:
        doc["notification"] = notification.strip()
    named = [c.strip() for c in credentials if c.strip()]
    if named:
        doc["credentials"] = named
    tx.check_payload("regulator.action", doc)
    return doc


def act(node: Any, action: str, scope: str, subject: str, reason: str | None, notification: str | None = None,
        credentials: Iterable[str] = ()) -> tuple[tx.Envelope, Any]:  # fmt: skip
    """Sign and submit a regulator's action from `node` (a `node.Node`, the regulator's): through its one
    write path; returns the envelope and its receipt. Refused, with why, by every node's fold."""
    if node.home.role != "regulator":
        raise PermissionDenied(f"this node is a {node.home.role}: only the regulator suspends or reinstates",
                               "run it on the regulator's node (--home)")  # fmt: skip
    node.catch_up()
    doc = payload(node.ledger.state, action, scope, subject, reason, notification, credentials)
    env = node.home.sign("regulator.action", doc)
    receipts = node.submit([env])
    return env, receipts[0] if receipts else None


def action_of(row: Row) -> Action:
    """A log entry of type `regulator.action`, read."""
    env = tx.from_leaf(row.leaf)
    p = env.payload
    return Action(row.seq, row.txid, env.created, env.submitter, p["action"], p["scope"], p["subject"], p["reason"],
                  p.get("notification"), tuple(p.get("credentials") or ()))  # fmt: skip


def history(ledger: Ledger, subject: str | None = None) -> list[Action]:
    """Every regulator action on the ledger, in log order; only those on `subject` when given."""
    out = [action_of(r) for r in ledger.store.rows_of_type("regulator.action")]
    return [a for a in out if subject in (None, a.subject)]


def in_force(state: State) -> list[Standing]:
    """The suspensions in force and the certificates withdrawn, from the world state."""
    return [s for _, s in sorted(state.standings.items()) if s.suspended or s.withdrawn]
