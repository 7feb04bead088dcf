"""Meters, read off the ledger: every use the owner's node allowed is an `access.decision` there,
with what it touched and cost, so owner and consumer compute the same figures from the same log."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from qdsn.clock import parse_time
from qdsn.ledger import Ledger, tx


@dataclass
class Meter:
    """One agreement's use of one dataset by one consumer."""

    agreement: str | None
    dataset: str
    requester: str
    uses: int = 0  # allowed uses
    denied: int = 0  # denied requests, at any point
    records: int = 0
    compute_seconds: float = 0.0
    charges: dict[str, float] = field(default_factory=dict)  # ISO 4217 code → amount
    first: str | None = None  # time of the first decision counted
    last: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def meters(log: Iterable[tx.Envelope], *, agreement: str | None = None, since: datetime | None = None) -> list[Meter]:
    """Meters per (agreement, dataset, requester) from the `access.decision` entries of `log`, in the
    order each first appears; only those of `agreement`, and from `since` on, when given."""
    out: dict[tuple[str | None, str, str], Meter] = {}
    for env in log:
        if env.type != "access.decision":
            continue
        p = env.payload
        if agreement is not None and p.get("agreement") != agreement:
            continue
        if since is not None and parse_time(env.created) < since:
            continue
        key = (p.get("agreement"), p["dataset"], p["requester"])
        m = out.setdefault(key, Meter(*key))
        m.first = m.first or env.created
        m.last = env.created
        if not p["allowed"]:
            m.denied += p.get("count", 1)  # repeated denials are recorded once with their count
        elif p["point"] == "use":
            m.uses += 1
            m.records += p.get("records", 0)
            m.compute_seconds += p.get("compute_seconds", 0.0)
            if p.get("price"):
                currency = p.get("currency") or "no currency"  # the offer priced a use without a unit
                m.charges[currency] = m.charges.get(currency, 0.0) + p["price"]
    return list(out.values())


def usage(ledger: Ledger, who: str, *, agreement: str | None = None, since: datetime | None = None,
          party_only: bool = False) -> list[Meter]:  # fmt: skip
    """The meters `who` may see on `ledger`: those of its own datasets and of its own requests (a
    regulator sees all, unless `party_only`: then only those it is a party to, as on an invoice)."""
    log = (tx.from_leaf(r.leaf) for r in ledger.store.rows_of_type("access.decision"))
    ident = ledger.state.identities.get(who)
    everything = ident is not None and ident.role == "regulator" and not party_only
    return [
        m for m in meters(log, agreement=agreement, since=since)
        if everything or m.requester == who or ledger.state.datasets[m.dataset].owner == who
    ]  # fmt: skip


def invoice(meters_: Iterable[Meter]) -> dict[str, Any]:
    """Lines per agreement with a charge, and totals per currency."""
    lines = [
        {"agreement": m.agreement, "dataset": m.dataset, "consumer": m.requester, "uses": m.uses, "amount": amount,
         "currency": currency}
        for m in meters_
        for currency, amount in sorted(m.charges.items())
    ]  # fmt: skip
    totals: dict[str, float] = {}
    for line in lines:
        totals[line["currency"]] = totals.get(line["currency"], 0.0) + line["amount"]
    return {"lines": lines, "totals": totals}
