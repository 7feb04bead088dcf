"""Sampling-inspection results (监督抽查结果) the regulator records: pass or fail per product, with the
standard tested to and the date; they feed each enterprise's risk class (`risk`)."""

from __future__ import annotations

from datetime import date
from typing import Any

from qdsn.errors import InvalidInput, NotFound, PermissionDenied
from qdsn.ledger import tx


def result_payload(ledger: Any, enterprise: str, product: str, standard: str, passed: bool, day: str,
                   plan: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The `inspection.result` payload, checked against the ledger before it is signed, as every
    replica will check it."""
    try:
        date.fromisoformat(day)
    except ValueError:
        raise InvalidInput(f"--date {day!r} is not a date", "give it as YYYY-MM-DD, e.g. 2026-03-31") from None
    if not product.strip() or not standard.strip():
        raise InvalidInput("the product and the standard must not be empty",
                           "give --product (e.g. 电线电缆 BV 2.5) and --standard (e.g. GB/T 5023.3-2008)")  # fmt: skip
    who = ledger.state.identities.get(enterprise)
    if who is None or who.role != "enterprise":
        raise NotFound(f"{enterprise} is not a registered enterprise on this ledger",
                       "see the members: qdsn member list")  # fmt: skip
    if plan is not None:
        p = ledger.state.plans.get(plan)
        if p is None or p.drawn is None:
            raise NotFound(f"no drawn inspection plan {plan!r} on this ledger",
                           "draw it first (qdsn supervise plan draw), or leave --plan out")  # fmt: skip
        if enterprise not in p.selection:
            raise InvalidInput(f"{enterprise} was not selected by the draw of plan {plan}",
                               "leave --plan out if it was inspected otherwise")  # fmt: skip
    payload: dict[str, Any] = {"enterprise": enterprise, "product": product.strip(), "standard": standard.strip(),
                               "passed": passed, "date": day}  # fmt: skip
    if plan is not None:
        payload["plan"] = plan
    tx.check_payload("inspection.result", payload)
    return payload


def results(ledger: Any, enterprise: str | None = None) -> list[dict[str, Any]]:
    """Recorded results, oldest first; of one enterprise when named."""
    out = []
    for row in ledger.store.rows_of_type("inspection.result"):
        p = tx.from_leaf(row.leaf).payload
        if enterprise is None or p["enterprise"] == enterprise:
            out.append({"entry": row.seq, **p})
    return out


def record(node: Any, enterprise: str, product: str, standard: str, passed: bool, day: str,
           plan: str | None = None) -> tuple[dict[str, Any], list[Any]]:  # fmt: skip
    """Record a result from the regulator's node (`inspection.result`). Returns the payload and receipts."""
    if node.home.role != "regulator":
        raise PermissionDenied(f"this node is a {node.home.role}: only the regulator records inspection results",
                               "run it on the regulator's node (--home)")  # fmt: skip
    payload = result_payload(node.ledger, enterprise, product, standard, passed, day, plan)
    return payload, node.submit([node.home.sign("inspection.result", payload)])
