"""The decision a policy makes about one request: allowed or denied, with the rule that decided.

A request is allowed when some permission covers its action (`use` covers `compute`, `aggregate`
and `read`), names no other assignee, and has every constraint satisfied — and no prohibition that
covers it has all of its own. At the negotiation point, constraints that only a use can answer
(purpose, count, elapsed time, model hash) are deferred to the use; who, which role and when are
decided there. A denial says which rule's which constraint failed, so a failed
negotiation or transfer never has to be guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from qdsn.errors import InvalidInput
from qdsn.policy.odrl import load, operand

COVERS = {"use": {"use", "compute", "aggregate", "read"}}


@dataclass(frozen=True)
class Request:
    """Who wants to do what, for which purpose, when; `uses` is how often the agreement was used
    before (the request would be use number uses + 1), `started` when the agreement began."""

    action: str
    assignee: str
    at: datetime
    role: str | None = None
    purpose: str | None = None
    uses: int = 0
    started: datetime | None = None
    model_hash: str | None = None


@dataclass(frozen=True)
class Decision:
    """The outcome, the rule that decided (e.g. "permission[0]"), why, and the duties that come with it."""

    allowed: bool
    rule: str
    reason: str
    duties: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "rule": self.rule, "reason": self.reason, "duties": self.duties}

    def payload(
        self,
        dataset: str,
        request: Request,
        point: str,
        *,
        agreement: str | None = None,
        records: int = 0,
        compute_seconds: float = 0.0,
    ) -> dict[str, Any]:
        """The `access.decision` payload that records this decision; an allowed use carries the
        price of its compensate duty."""
        out: dict[str, Any] = {
            "dataset": dataset, "requester": request.assignee, "action": request.action, "point": point,
            "allowed": self.allowed, "rule": self.rule, "reason": self.reason[:1000],
        }  # fmt: skip
        if agreement is not None:
            out["agreement"] = agreement
        if request.purpose is not None:
            out["purpose"] = request.purpose
        if self.allowed and point == "use":
            out |= {"records": records, "compute_seconds": float(compute_seconds)}
            for duty in self.duties:
                if duty["action"] != "compensate":
                    continue
                for r in duty.get("refinement", []):
                    out["price"] = float(r["rightOperand"])
                    if r.get("unit"):
                        out["currency"] = r["unit"]
        return out


AT_USE = {"purpose", "count", "elapsedTime", "qdsn:modelHash"}


def decide(policy: dict[str, Any], request: Request, point: str = "use") -> Decision:
    """Evaluate `policy` (an Offer or Agreement in QDSN's profile) for `request` at `point`
    ("negotiation", "transfer" or "use")."""
    load(policy)
    if request.at.tzinfo is None:
        raise InvalidInput("the request time needs its UTC offset")
    grant: tuple[int, dict[str, Any]] | None = None
    reasons = []
    for i, rule in enumerate(policy["permission"]):
        failed = _fails(rule, policy, request, point)
        if failed is None:
            grant = (i, rule)
            break
        reasons.append(f"permission[{i}]: {failed}")
    if grant is None:
        return Decision(False, reasons[0].split(":")[0] if len(reasons) == 1 else "permission", "; ".join(reasons))
    for j, rule in enumerate(policy.get("prohibition", [])):
        if _fails(rule, policy, request, point) is None:
            return Decision(False, f"prohibition[{j}]", f"prohibition[{j}] forbids {request.action} here")
    i, rule = grant
    duties = [{"action": "log"}, *[d for d in rule.get("duty", []) if d["action"] != "log"]]
    return Decision(True, f"permission[{i}]", f"permission[{i}] allows {request.action}", duties)


def _fails(rule: dict[str, Any], policy: dict[str, Any], r: Request, point: str) -> str | None:
    """Why `rule` does not apply to the request, or None when it does."""
    if r.action not in COVERS.get(rule["action"], {rule["action"]}):
        return f"covers {rule['action']}, not {r.action}"
    assignee = rule.get("assignee") or policy.get("assignee")
    if assignee is not None and assignee != r.assignee:
        return f"is granted to {assignee}, not {r.assignee}"
    return _unmet(rule.get("constraint", []), r, "and", point)


def _unmet(items: list[dict[str, Any]], r: Request, logic: str, point: str) -> str | None:
    failures = []
    for c in items:
        if "and" in c or "or" in c:
            inner = "and" if "and" in c else "or"
            why = _unmet(c[inner], r, inner, point)
        elif point == "negotiation" and c["leftOperand"] in AT_USE:
            why = None  # deferred to the use
        else:
            why = _check(c, r)
        if logic == "and" and why is not None:
            return why
        if logic == "or" and why is None:
            return None
        if why is not None:
            failures.append(why)
    return None if logic == "and" else "none of: " + "; ".join(failures)


def _check(c: dict[str, Any], r: Request) -> str | None:
    left, op, right = c["leftOperand"], c["operator"], c["rightOperand"]
    actual = _actual(left, r)
    if actual is None:
        return f"{left} must be {op} {right!r}, and the request does not say"
    wanted = [operand(left, v) for v in right] if op == "isAnyOf" else operand(left, right)
    ok = {
        "eq": lambda: actual == wanted,
        "neq": lambda: actual != wanted,
        "lt": lambda: actual < wanted,
        "lteq": lambda: actual <= wanted,
        "gt": lambda: actual > wanted,
        "gteq": lambda: actual >= wanted,
        "isAnyOf": lambda: actual in wanted,
    }[op]()
    return None if ok else f"{left} must be {op} {right!r}, was {_show(actual)}"


def _actual(left: str, r: Request) -> Any:
    if left == "purpose":
        return r.purpose
    if left == "dateTime":
        return r.at
    if left == "count":  # this request would be use number uses + 1
        return r.uses + 1
    if left == "elapsedTime":
        return None if r.started is None else max(r.at - r.started, timedelta(0))
    if left == "qdsn:role":
        return r.role
    return r.model_hash  # qdsn:modelHash


def _show(v: Any) -> str:
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, timedelta):
        return f"{v.total_seconds():g} s"
    return repr(v)
