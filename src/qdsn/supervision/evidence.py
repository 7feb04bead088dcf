"""The risk model's evidence read off a ledger replica: each enterprise's certificates and their status
history, attested runs, quality notifications, sampling-inspection results (and its industry's) and its
last anchored batch, up to a point of the log. The scoring itself is pure, in `risk`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from qdsn.clock import parse_time
from qdsn.ledger import tx
from qdsn.supervision.risk import SEVERITY, Evidence, Notice, industry_rate


def enterprises(ledger: Any, upto: int | None = None, scope: Mapping[str, str] | None = None) -> dict[str, dict]:
    """The enterprises registered before entry `upto` (all when None), within `scope` (a GB/T 2260 region
    prefix and/or a GB/T 4754 industry prefix): DID → its `identity.register` payload."""
    scope = scope or {}
    out: dict[str, dict] = {}
    for row in _rows(ledger, "identity.register", upto):
        p = tx.from_leaf(row.leaf).payload
        if p.get("role") != "enterprise":
            continue
        if any(not str(p.get(k, "")).startswith(v) for k, v in scope.items()):
            continue
        out[p["did"]] = p
    return out


def _rows(ledger: Any, type: str, upto: int | None) -> Iterable[Any]:
    """Entries of one type before `upto`; nothing while the type is unknown to this log."""
    for row in ledger.store.rows_of_type(type):
        if upto is not None and row.seq >= upto:
            break
        yield row


def read(
    ledger: Any, as_of: date, upto: int | None = None, scope: Mapping[str, str] | None = None
) -> dict[str, Evidence]:
    """Each enterprise's evidence from the ledger's entries before `upto`; inspections dated after
    `as_of` and anchors made after it are left out."""
    firms = enterprises(ledger, upto, scope)
    c: dict[str, dict[str, Any]] = {d: defaultdict(int) for d in firms}
    notices: dict[str, dict[str, dict[str, Any]]] = {d: {} for d in firms}
    roles = {d: i.role for d, i in ledger.state.identities.items()}
    last: dict[str, date] = {}
    subject_of: dict[str, str] = {}
    passed: dict[str, set[str]] = defaultdict(set)
    failed: dict[str, set[str]] = defaultdict(set)
    for row in _rows(ledger, "credential.issue", upto):
        p = tx.from_leaf(row.leaf).payload
        subject_of[p["credential"]] = p["subject"]
        if p["subject"] in c:
            c[p["subject"]]["certificates"] += 1
            passed[p["subject"]].update(p.get("attestations", []))
    for row in _rows(ledger, "credential.status", upto):
        p = tx.from_leaf(row.leaf).payload
        who = subject_of.get(p["credential"])
        if who not in c:
            continue
        if p["status"] == "suspended":
            c[who]["suspensions"] += 1
        elif p["status"] == "invalid":
            c[who]["revocations"] += 1
        if p.get("attestation"):
            (failed if p["status"] != "valid" else passed)[who].add(p["attestation"])
    for row in _rows(ledger, "compute.attest", upto):
        if row.submitter in c:
            c[row.submitter]["runs"] += 1
    for row in _rows(ledger, "notification.transition", upto):
        p = tx.from_leaf(row.leaf).payload
        own = p.get("classification") == "alert"  # an alert is about the sender's products
        who = p.get("sender") if own else p.get("recipient")
        if who in notices and isinstance(p.get("notification"), str) and p.get("severity") in SEVERITY:
            n = notices[who].setdefault(p["notification"], {"severity": str(p.get("severity")), "states": set(),
                                                            "sender": str(p.get("sender")), "own": own})  # fmt: skip
            n["states"].add(str(p.get("state")))
    division = {d: _division(p.get("industry")) for d, p in enterprises(ledger, upto).items()}
    by_industry: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in _rows(ledger, "inspection.result", upto):
        p = tx.from_leaf(row.leaf).payload
        if date.fromisoformat(p["date"]) > as_of:
            continue
        if division.get(p["enterprise"]):
            by_industry[division[p["enterprise"]]][0] += 1
            by_industry[division[p["enterprise"]]][1] += not p["passed"]
        if p["enterprise"] in c:
            c[p["enterprise"]]["inspections"] += 1
            c[p["enterprise"]]["inspections_failed"] += not p["passed"]
    for row in _rows(ledger, "dataset.anchor", upto):
        if row.submitter in c:
            day = parse_time(tx.from_leaf(row.leaf).created).date()
            if day <= as_of and (row.submitter not in last or day > last[row.submitter]):
                last[row.submitter] = day
    out = {}
    for did in sorted(firms):
        judged_failed = failed[did]
        out[did] = Evidence(
            did, runs_failed=len(judged_failed), runs_passed=len(passed[did] - judged_failed),
            notices=tuple(Notice(n["severity"], tuple(sorted(n["states"])), n["sender"], roles.get(n["sender"], ""),
                                 n["own"]) for _, n in sorted(notices[did].items())),
            last_anchor=last.get(did), industry=division[did],
            industry_rate=industry_rate(*by_industry[division[did]]) if division[did] else None, **c[did],
        )  # fmt: skip
    return out


def _division(industry: object) -> str | None:
    """The GB/T 4754 division of an industry code (section letter and two digits: C3831 → C38)."""
    return industry[:3] if isinstance(industry, str) and len(industry) >= 3 else None
