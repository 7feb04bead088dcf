"""The risk model's evidence read off a ledger replica: each enterprise's certificates and their status
history, attested runs, quality notifications, sampling-inspection results (and its industry's) and its
last anchored batch, up to a point of the log. The scoring itself is pure, in `risk`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson
from sqlalchemy import func, select

from qdsn.clock import parse_time
from qdsn.ledger import tx
from qdsn.ledger.store import entries
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
    return Tally().fold(ledger.store, upto).evidence(ledger, as_of, scope)


ANCHOR_HEAD = 64  # bytes of a dataset.anchor leaf read for its time: {"created":"<RFC 3339>", … (keys sorted)
_CREATED = b'{"created":"'


@dataclass
class Tally:
    """What `read` needs of the log, folded from its entries before `size` in one pass per type: brought up to a
    longer log by folding only the entries appended since (`fold`), so that a replica kept by a process pays
    for the whole log once and then for the new entries. Kept for every submitter and subject; the scope and
    the day are applied when the evidence is made (`evidence`)."""

    size: int = 0
    firms: dict[str, dict[str, Any]] = field(default_factory=dict)  # enterprise DID -> its registration payload
    counts: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    subject_of: dict[str, str] = field(default_factory=dict)  # credential -> its subject
    passed: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    failed: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    notices: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: defaultdict(dict))
    inspections: list[tuple[str, date, bool]] = field(default_factory=list)  # (enterprise, day, passed)
    last_anchor: dict[str, str] = field(default_factory=dict)  # submitter -> its newest anchor's day (ISO)
    newest: str = ""  # the newest anchor day of all (ISO), "" before any

    def fold(self, store: Any, upto: int | None = None) -> Tally:
        """Fold the entries [size, upto) (to the end of the log when None) into the tally; returns it."""
        end = store.size if upto is None else min(upto, store.size)
        if end <= self.size:
            return self
        for p in _payloads(store, "identity.register", self.size, end):
            if p.get("role") == "enterprise":
                self.firms[p["did"]] = p
        for p in _payloads(store, "credential.issue", self.size, end):
            self.subject_of[p["credential"]] = p["subject"]
            self.counts[p["subject"]]["certificates"] += 1
            self.passed[p["subject"]].update(p.get("attestations", []))
        for p in _payloads(store, "credential.status", self.size, end):
            who = self.subject_of.get(p["credential"])
            if who is None:
                continue
            if p["status"] == "suspended":
                self.counts[who]["suspensions"] += 1
            elif p["status"] == "invalid":
                self.counts[who]["revocations"] += 1
            if p.get("attestation"):
                (self.failed if p["status"] != "valid" else self.passed)[who].add(p["attestation"])
        for submitter, n in _submitters(store, "compute.attest", self.size, end):
            self.counts[submitter]["runs"] += n
        for p in _payloads(store, "notification.transition", self.size, end):
            own = p.get("classification") == "alert"  # an alert is about the sender's products
            who = p.get("sender") if own else p.get("recipient")
            if isinstance(who, str) and isinstance(p.get("notification"), str) and p.get("severity") in SEVERITY:
                sender = str(p.get("sender"))
                n = self.notices[who].setdefault(p["notification"], {"severity": str(p["severity"]), "states": set(),
                                                                     "sender": sender, "own": own})  # fmt: skip
                n["states"].add(str(p.get("state")))
        for p in _payloads(store, "inspection.result", self.size, end):
            self.inspections.append((p["enterprise"], date.fromisoformat(p["date"]), bool(p["passed"])))
        for submitter, day in _anchor_days(store, self.size, end):
            if day > self.last_anchor.get(submitter, ""):
                self.last_anchor[submitter] = day
                self.newest = max(self.newest, day)
        self.size = end
        return self

    def evidence(self, ledger: Any, as_of: date, scope: Mapping[str, str] | None = None) -> dict[str, Evidence]:
        """Each enterprise's evidence at this size (as `read` gives it), within `scope`, on day `as_of`."""
        scope = scope or {}
        firms = {d: p for d, p in self.firms.items() if all(str(p.get(k, "")).startswith(v) for k, v in scope.items())}
        roles = {d: i.role for d, i in ledger.state.identities.items()}
        division = {d: _division(p.get("industry")) for d, p in self.firms.items()}
        by_industry: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        inspected: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for who, day, passed in self.inspections:
            if day > as_of:
                continue
            if division.get(who):
                by_industry[division[who]][0] += 1
                by_industry[division[who]][1] += not passed
            inspected[who][0] += 1
            inspected[who][1] += not passed
        if as_of.isoformat() >= self.newest:  # no anchor after the day: each firm's newest is its last
            last = {d: date.fromisoformat(self.last_anchor[d]) for d in firms if d in self.last_anchor}
        else:  # a day in the past: the anchors up to it, read again
            last = _last_anchors(ledger.store, self.size, as_of, firms)
        out = {}
        for did in sorted(firms):
            judged_failed = self.failed.get(did, set())
            counts = self.counts.get(did, {})
            n, bad = inspected.get(did, (0, 0))
            out[did] = Evidence(
                did, runs_failed=len(judged_failed), runs_passed=len(self.passed.get(did, set()) - judged_failed),
                notices=tuple(Notice(x["severity"], tuple(sorted(x["states"])), x["sender"],
                                     roles.get(x["sender"], ""), x["own"])
                              for _, x in sorted(self.notices.get(did, {}).items())),
                last_anchor=last.get(did), industry=division[did],
                industry_rate=industry_rate(*by_industry[division[did]]) if division[did] else None,
                inspections=n, inspections_failed=bad, **{k: v for k, v in counts.items()},
            )  # fmt: skip
        return out


def _payloads(store: Any, type: str, start: int, end: int) -> Iterator[dict[str, Any]]:
    """The payloads of the entries of one type in [start, end), in log order. The store holds only leaves
    the validator accepted, so they are parsed as plain JSON (`tx.from_leaf` checks the canonical form again)."""
    q = select(entries.c.leaf).where(entries.c.type == type, entries.c.seq >= start, entries.c.seq < end)
    with store.engine.connect() as c:
        for (leaf,) in c.execute(q.order_by(entries.c.seq)):
            yield orjson.loads(leaf)["payload"]


def _submitters(store: Any, type: str, start: int, end: int) -> list[tuple[str, int]]:
    """How many entries of one type each submitter made in [start, end)."""
    q = select(entries.c.submitter, func.count()).where(entries.c.type == type, entries.c.seq >= start,
                                                       entries.c.seq < end).group_by(entries.c.submitter)  # fmt: skip
    with store.engine.connect() as c:
        return [(s, n) for s, n in c.execute(q)]


def _anchor_days(store: Any, start: int, end: int) -> Iterator[tuple[str, str]]:
    """(submitter, UTC day of its `created`, ISO) of every dataset.anchor in [start, end). Only the head of each
    leaf is read: a canonical leaf's keys are sorted, so it begins with its `created` (a million anchors are
    read in about a second, where whole leaves take several)."""
    q = select(entries.c.seq, entries.c.submitter, func.substr(entries.c.leaf, 1, ANCHOR_HEAD)).where(
        entries.c.type == "dataset.anchor", entries.c.seq >= start, entries.c.seq < end)  # fmt: skip
    with store.engine.connect() as c:
        for seq, submitter, head in c.execute(q):
            head = bytes(head)
            close = head.find(b'"', len(_CREATED))
            if head.startswith(_CREATED) and close > 0:
                created = head[len(_CREATED) : close].decode()
            else:  # not the form every stored leaf has: the whole entry says
                created = tx.from_leaf(store.entry(seq).leaf).created
            if created.endswith("Z") and len(created) >= 20:
                yield submitter, created[:10]
            else:
                yield submitter, parse_time(created).date().isoformat()


def _last_anchors(store: Any, end: int, as_of: date, firms: Mapping[str, Any]) -> dict[str, date]:
    """Each firm's newest anchor day up to `as_of`, from the anchors before `end`."""
    day = as_of.isoformat()
    last: dict[str, str] = {}
    for submitter, made in _anchor_days(store, 0, end):
        if submitter in firms and made <= day and made > last.get(submitter, ""):
            last[submitter] = made
    return {d: date.fromisoformat(x) for d, x in last.items()}


def _division(industry: object) -> str | None:
    """The GB/T 4754 division of an industry code (section letter and two digits: C3831 → C38)."""
    return industry[:3] if isinstance(industry, str) and len(industry) >= 3 else None
