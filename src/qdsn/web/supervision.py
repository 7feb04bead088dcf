"""The regulator's market supervision in the console: quality notifications (those it is party to, and
counts of the others), its actions (suspend and reinstate a member, an issuer or a model), the
enterprises' risk classes A–D, and inspection plans (commit, draw, verify, record a result).

Every page calls the node services `qdsn notify` and `qdsn supervise` call (`node.notify`,
`supervision.actions`, `supervision.risk`, `supervision.draw`, `supervision.inspections`), with the
same checks; a write is an approver's, signed by this node and recorded in the staff audit log."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any
from weakref import WeakKeyDictionary

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from qdsn.clock import system_clock
from qdsn.errors import InvalidInput
from qdsn.ledger.store import Store
from qdsn.node import notify
from qdsn.node.node import Node
from qdsn.supervision import actions, draw, evidence, inspections, risk
from qdsn.supervision import notifications as qn
from qdsn.web.auth import require
from qdsn.web.pages import ConsoleRoute, NavItem, console_of, render
from qdsn.web.staff import Staff
from qdsn.web.words import N_

PREFIX = "/console/regulator"  # where web/regulator.py includes `router`: what its links and redirects name
router = APIRouter(include_in_schema=False, route_class=ConsoleRoute)
NAV = [
    NavItem(f"{PREFIX}/notifications", N_("Notifications")),
    NavItem(f"{PREFIX}/actions", N_("Regulator actions")),
    NavItem(f"{PREFIX}/risk", N_("Risk classes")),
    NavItem(f"{PREFIX}/plans", N_("Inspection plans")),
]
WORDS = [N_("alert"), N_("investigation"), N_("sender"), N_("recipient"), N_("suspend"), N_("reinstate"),
         N_("member"), N_("issuer"), N_("model"), N_("CREATED"), N_("SENT"), N_("RECEIVED"), N_("ACKNOWLEDGED"),
         N_("ACCEPTED"), N_("DECLINED"), N_("CLOSED"), N_("CANCELED"), N_("verified"), N_("damaged"),
         N_("incomplete")]  # shown from data  # fmt: skip
Viewer = Annotated[Staff, Depends(require("viewer"))]
Approver = Annotated[Staff, Depends(require("approver"))]
Word = Annotated[str | None, Query(max_length=512)]
Short = Annotated[str, Form(max_length=512)]
Text = Annotated[str, Form(max_length=2000)]


@dataclass(frozen=True)
class Ranking:
    """The enterprises of a scope at one log size and day, highest risk first (score, then DID): all of
    them ("") and those of each class A–D, with the evidence each is explained from."""

    ranked: dict[str, list[str]]
    evidence: dict[str, risk.Evidence]


PAGE = 50  # enterprises per page of the risk classes
# Each replica's risk evidence, folded once and then brought up to date with the entries appended since
# (`evidence.Tally`); and the ranking of one log size, day and scope: every enterprise scored in one quick
# pass (`risk.score`), only the page shown explained (`risk.assess`).
# Both are kept by the store object itself (weakly), never by its id: another replica may get a closed one's id.
_tallies: WeakKeyDictionary[Store, evidence.Tally] = WeakKeyDictionary()
_classes: WeakKeyDictionary[Store, dict[tuple[int, date, tuple], Ranking]] = WeakKeyDictionary()
_classes_lock = threading.Lock()
RANKINGS_KEPT = 16  # scopes and days ranked at once per replica


def _node(request: Request) -> Node:
    return console_of(request).node


def _names(node: Node, dids: set[str]) -> dict[str, str]:
    ids = node.ledger.state.identities
    return {d: ids[d].name for d in dids if d in ids}


def _blank(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None


def _scope(region: str | None, industry: str | None) -> dict[str, str]:
    """A GB/T 2260 region prefix and a GB/T 4754 industry prefix, checked as `qdsn supervise` checks them."""
    scope = {k: v for k, v in (("region", _blank(region)), ("industry", _blank(industry))) if v}
    if "region" in scope and not scope["region"].isdigit():
        raise InvalidInput(f"region {region!r} is not a GB/T 2260 code prefix", "give digits, e.g. 33 or 330106")
    if "industry" in scope and not scope["industry"][:1].isalpha():
        raise InvalidInput(f"industry {industry!r} is not a GB/T 4754 code prefix", "e.g. C or C3831")
    return {k: v.upper() for k, v in scope.items()}


# -- quality notifications ----------------------------------------------------------------------------


def _answerable(n: dict[str, Any]) -> list[dict[str, Any]]:
    """The moves this node may make on a notification from the console (SENT and RECEIVED are made by
    delivering it), each with whether the state machine wants a reason."""
    return [{"state": s, "reason": qn.reason_required(s)} for s in n["moves"] if s in notify.MOVE_WORDS.values()]


@router.get("/notifications")
def notifications(request: Request, staff: Viewer) -> Response:
    node = _node(request)
    node.catch_up()
    doc = notify.listing(node)
    mine = sorted(doc["notifications"], key=lambda n: n["history"][-1]["seq"], reverse=True)
    others = doc.get("others") or qn.counts([])
    return render(request, "regulator/notifications.html", notifications=mine, others=others,
                  others_total=sum(others["state"].values()))  # fmt: skip


@router.get("/notifications/{notification}")
def notification(request: Request, staff: Viewer, notification: str) -> Response:
    node = _node(request)
    node.catch_up()
    n = notify.show(node, notification[:200])
    return render(request, "regulator/notifications_one.html", n=n, moves=_answerable(n),
                  moved=request.query_params.get("moved"))  # fmt: skip


@router.post("/notifications/{notification}")
def move_notification(request: Request, staff: Approver, notification: str, state: Annotated[str, Form(max_length=32)],
                      reason: Text = "") -> Response:  # fmt: skip
    """Move a notification this node is party to: the same `notify.answer` as `qdsn notify ack|accept|…`,
    refused as the state machine refuses it."""
    console = console_of(request)
    node = console.node
    got = notify.answer(node, notification[:200], state, _blank(reason))
    entry = got.history[-1][2]
    console.staff.record(staff, "notification.move", got.id, entry=entry, state=state)
    return RedirectResponse(f"{PREFIX}/notifications/{got.id}?moved={entry}", status_code=303)


# -- regulator actions --------------------------------------------------------------------------------


@router.get("/actions")
def regulator_actions(request: Request, staff: Viewer, subject: Word = None) -> Response:
    node = _node(request)
    node.catch_up()
    done = list(reversed(actions.history(node.ledger, _blank(subject))))
    held = actions.in_force(node.ledger.state)
    names = _names(node, {a.subject for a in done} | {s.subject for s in held})
    return render(request, "regulator/supervision_actions.html", done=done, held=held, names=names,
                  subject=_blank(subject) or "", scopes=actions.SCOPES, taken=request.query_params.get("taken"),
                  form={}, error=None)  # fmt: skip


@router.post("/actions")
def take_action(request: Request, staff: Approver, action: Annotated[str, Form(max_length=16)],
                scope: Annotated[str, Form(max_length=16)], subject: Short, reason: Text = "",
                notification: Annotated[str, Form(max_length=128)] = "",
                credentials: Text = "") -> Response:  # fmt: skip
    """Suspend or reinstate: the same `actions.act` as `qdsn supervise suspend|reinstate`, refused by the
    ledger's fold as it refuses it there (an unknown member, one already suspended, …)."""
    console = console_of(request)
    node = console.node
    named = [c for c in credentials.replace(",", "\n").splitlines() if c.strip()]
    env, receipt = actions.act(node, action, scope, subject, _blank(reason), _blank(notification), named)
    p = env.payload
    console.staff.record(staff, f"regulator.{action}", p["subject"], entry=receipt.seq, txid=receipt.txid,
                         scope=scope, reason=p["reason"])  # fmt: skip
    return RedirectResponse(f"{PREFIX}/actions?taken={receipt.seq}", status_code=303)


# -- risk classes -------------------------------------------------------------------------------------


def assessed(node: Node, day: date, scope: dict[str, str]) -> Ranking:
    """The enterprises ranked as `qdsn supervise risk` ranks them (the same evidence, the same scores), kept for
    the log size they were ranked at; the evidence of the log is folded once per process, then only what
    was appended since."""
    store = node.ledger.store
    key = (store.size, day, tuple(sorted(scope.items())))
    with _classes_lock:
        kept = _classes.setdefault(store, {})
        got = kept.get(key)
        if got is None:
            tally = _tallies[store] = _tallies.get(store, evidence.Tally()).fold(store)
            found = tally.evidence(node.ledger, day, scope)
            scores = {did: risk.score(ev, day) for did, ev in found.items()}
            order = sorted(scores, key=lambda did: (-scores[did], did))
            classes = {did: risk.classify(scores[did]) for did in order}
            got = Ranking({"": order} | {c: [d for d in order if classes[d] == c] for c in "ABCD"}, found)
            for old in [k for k in kept if k[0] != store.size]:
                del kept[old]  # an older size of this replica: never shown again
            while len(kept) >= RANKINGS_KEPT:
                del kept[next(iter(kept))]  # the scope ranked longest ago makes room
            kept[key] = got
        return got


@router.get("/risk")
def risk_classes(request: Request, staff: Viewer, region: Word = None, industry: Word = None,
                 as_of: Annotated[str | None, Query(max_length=10)] = None,
                 cls: Annotated[str | None, Query(alias="class", max_length=1)] = None,
                 start: Annotated[int, Query(ge=0, lt=2**31)] = 0) -> Response:  # fmt: skip
    node = _node(request)
    node.catch_up()
    day = risk.as_of_date(_blank(as_of), system_clock().date())
    scope = _scope(region, industry)
    cls = _blank(cls)
    if cls and cls not in "ABCD":
        raise InvalidInput(f"class {cls!r} is not one of A, B, C, D")
    ranking = assessed(node, day, scope)
    rows = ranking.ranked[cls or ""]
    shown = [risk.assess(ranking.evidence[did], day) for did in rows[start : start + PAGE]]  # only these explained
    filters = {k: v for k, v in (("region", _blank(region)), ("industry", _blank(industry)), ("as_of", _blank(as_of)),
                                 ("class", cls)) if v}  # fmt: skip
    return render(request, "regulator/risk.html", rows=shown, total=len(rows), start=start, size=PAGE, day=day,
                  counts={c: len(ranking.ranked[c]) for c in "ABCD"}, filters=filters,
                  names=_names(node, {a.enterprise for a in shown}), weights=risk.WEIGHTS,
                  factor_names=risk.FACTOR_NAMES, class_names=risk.CLASS_NAMES, model=risk.MODEL)  # fmt: skip


# -- inspection plans and results ---------------------------------------------------------------------


@router.get("/plans")
def plans(request: Request, staff: Viewer) -> Response:
    node = _node(request)
    node.catch_up()
    listed = list(reversed(draw.plans(node.ledger)))
    return render(request, "regulator/plans.html", plans=listed, form={}, error=None,
                  weights=draw.DEFAULT_WEIGHTS)  # fmt: skip


@router.post("/plans")
def create_plan(request: Request, staff: Approver, plan: Annotated[str, Form(max_length=128)], title: Text,
                count: Annotated[int, Form(ge=1, le=100_000)], region: Annotated[str, Form(max_length=12)] = "",
                industry: Annotated[str, Form(max_length=12)] = "", as_of: Annotated[str, Form(max_length=10)] = "",
                weights: Annotated[str, Form(max_length=64)] = "A=1,B=2,C=4,D=8", inspectors: Text = "",
                per_inspection: Annotated[int, Form(ge=0, le=100)] = 2) -> Response:  # fmt: skip
    """Commit a plan: the same `draw.create_plan` as `qdsn supervise plan create` (the seed kept in the home,
    its commitment on the ledger)."""
    console = console_of(request)
    node = console.node
    node.catch_up()
    if not _blank(plan) or not _blank(title):
        raise InvalidInput("a plan has an id and a title", "e.g. 2026-Q1-wire, 电线电缆 2026 年第一季度")
    day = risk.as_of_date(_blank(as_of), system_clock().date())
    team = [i.strip() for i in inspectors.splitlines() if i.strip()]
    payload, receipts = draw.create_plan(node, plan.strip(), title.strip(), as_of=day, count=count,
                                         scope=_scope(region, industry), weights=draw.parse_weights(weights),
                                         inspectors=team, per_inspection=per_inspection if team else 0)  # fmt: skip
    console.staff.record(staff, "inspection.plan", payload["plan"], entry=receipts[0].seq, txid=receipts[0].txid,
                         commitment=payload["commitment"])  # fmt: skip
    return RedirectResponse(f"{PREFIX}/plans/{payload['plan']}", status_code=303)


@router.get("/plans/{plan}")
def plan_page(request: Request, staff: Viewer, plan: str) -> Response:
    """One plan: what it committed, and once drawn its selection and the draw re-run on this replica."""
    node = _node(request)
    node.catch_up()
    spec, txid = draw.planned(node.ledger, plan[:128])
    p = node.ledger.state.plans[spec["plan"]]
    row = next(r for r in draw.plans(node.ledger) if r["plan"] == p.id)
    verdict = draw.verify(node.ledger, p.id) if p.drawn is not None else None
    results = [r for r in inspections.results(node.ledger) if r.get("plan") == p.id]
    names = _names(node, set(row.get("selection", [])) | {r["enterprise"] for r in results})
    return render(request, "regulator/plans_plan.html", plan=row, spec=spec, txid=txid, verdict=verdict,
                  verified=verdict is not None and verdict.ok, results=results,
                  names=names, today=system_clock().date().isoformat())  # fmt: skip


@router.post("/plans/{plan}/draw")
def draw_plan(request: Request, staff: Approver, plan: str) -> Response:
    """Reveal the seed and draw: the same `draw.draw_plan` as `qdsn supervise plan draw`."""
    console = console_of(request)
    node = console.node
    node.catch_up()
    payload, _, receipts = draw.draw_plan(node, plan[:128])
    console.staff.record(staff, "inspection.draw", payload["plan"], entry=receipts[0].seq, txid=receipts[0].txid,
                         selection=payload["selection"])  # fmt: skip
    return RedirectResponse(f"{PREFIX}/plans/{payload['plan']}", status_code=303)


@router.post("/inspections")
def record_result(request: Request, staff: Approver, enterprise: Short, product: Short, standard: Short,
                  result: Annotated[str, Form(max_length=8)], day: Annotated[str, Form(max_length=10)],
                  plan: Annotated[str, Form(max_length=128)] = "") -> Response:  # fmt: skip
    """Record a sampling-inspection result: the same `inspections.record` as `qdsn supervise inspect`."""
    console = console_of(request)
    node = console.node
    if result not in ("pass", "fail"):
        raise InvalidInput(f"the result is pass or fail, not {result!r}")
    node.catch_up()
    payload, receipts = inspections.record(node, enterprise.strip(), product, standard, result == "pass", day.strip(),
                                           _blank(plan))  # fmt: skip
    console.staff.record(staff, "inspection.result", payload["enterprise"], entry=receipts[0].seq,
                         txid=receipts[0].txid, passed=payload["passed"], product=payload["product"])  # fmt: skip
    back = f"{PREFIX}/plans/{payload['plan']}" if payload.get("plan") else f"{PREFIX}/risk"
    return RedirectResponse(back, status_code=303)
