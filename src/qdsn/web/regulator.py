"""The regulator's console (a node of role `regulator`): an overview of the consortium, the member registry
(admitting a member is the same `identity.register` as `qdsn member add`), the ledger explorer, the
consortium's certificates and the regional statistics.

Every page reads one page of an index (`ledger.explorer`, `ledger.registry`), so it costs what it shows,
whatever the log holds; the overview's count of entries by type is kept per process and brought up to
date with the entries appended since it was last shown."""

from __future__ import annotations

import json
import threading
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from qdsn.errors import InvalidInput
from qdsn.ledger import explorer, registry, tx
from qdsn.ledger.store import Store
from qdsn.node.node import Node
from qdsn.privacy.task import tasks
from qdsn.web import region as regional
from qdsn.web import supervision
from qdsn.web.auth import require
from qdsn.web.pages import ConsoleRoute, NavItem, console_of, render
from qdsn.web.staff import Staff
from qdsn.web.words import N_

PREFIX = "/console/regulator"
router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=ConsoleRoute)
NAV = [
    NavItem(f"{PREFIX}/overview", N_("Overview")),
    NavItem(f"{PREFIX}/members", N_("Members")),
    NavItem(f"{PREFIX}/ledger", N_("Ledger")),
    NavItem(f"{PREFIX}/certificates", N_("Certificates")),
    NavItem(f"{PREFIX}/statistics", N_("Regional statistics")),
]
NAV += supervision.NAV + regional.NAV
LEVELS = [N_("province"), N_("prefecture"), N_("county")]  # shown from data, listed for the catalog
Viewer = Annotated[Staff, Depends(require("viewer"))]
Approver = Annotated[Staff, Depends(require("approver"))]
Cursor = Annotated[int | None, Query(ge=0, lt=2**53)]
Word = Annotated[str | None, Query(max_length=512)]
_tally: dict[int, dict[str, Any]] = {}  # id(store) -> explorer.type_counts, kept between requests
_tally_lock = threading.Lock()


def _node(request: Request) -> Node:
    return console_of(request).node


def _store(request: Request) -> Store:
    return _node(request).ledger.store


def type_counts(store: Store) -> dict[str, Any]:
    """Entries per type, counting only what was appended since the last time (see `explorer.type_counts`)."""
    with _tally_lock:
        _tally[id(store)] = explorer.type_counts(store, _tally.get(id(store)))
        return _tally[id(store)]


def _names(node: Node, dids: set[str]) -> dict[str, str]:
    ids = node.ledger.state.identities
    return {d: ids[d].name for d in dids if d in ids}


def _blank(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None


@router.get("/overview")
def overview(request: Request, staff: Viewer) -> Response:
    node = _node(request)
    store = node.ledger.store
    state = node.ledger.state
    roles: dict[str, int] = {}
    for i in state.identities.values():
        roles[i.role] = roles.get(i.role, 0) + 1
    statuses: dict[str, int] = {}
    for c in state.credentials.values():
        statuses[c.status] = statuses.get(c.status, 0) + 1
    latest = explorer.checkpoints_page(store, limit=1).items
    watch = explorer.witnesses(store, limit=explorer.MAX_LIMIT)
    recent = explorer.entries_page(store, limit=10).items
    counts = type_counts(store)
    return render(request, "regulator/overview.html", size=store.size, roles=roles, statuses=statuses,
                  checkpoint=latest[0] if latest else None, witnesses=watch.items, types=counts["types"],
                  recent=recent, names=_names(node, {e["submitter"] for e in recent}), tasks=len(state.tasks),
                  regions=registry.by_region(store)[:10])  # fmt: skip


@router.get("/members")
def members(request: Request, staff: Viewer, region: Word = None, industry: Word = None, role: Word = None,
            q: Word = None, before: Cursor = None, after: Cursor = None) -> Response:  # fmt: skip
    region, industry, role, q = _blank(region), _blank(industry), _blank(role), _blank(q)
    page = registry.members_page(_store(request), region=region, industry=industry, role=role, search=q,
                                 before=before, after=after, limit=50)  # fmt: skip
    filters = {k: v for k, v in (("region", region), ("industry", industry), ("role", role), ("q", q)) if v}
    return render(request, "regulator/members.html", page=page, filters=filters, roles=registry.ROLES,
                  added=request.query_params.get("added"), form={}, error=None)  # fmt: skip


@router.post("/members")
def add_member(request: Request, staff: Approver, did: Annotated[str, Form(max_length=512)],
               role: Annotated[str, Form(max_length=32)], name: Annotated[str, Form(max_length=200)],
               credit_code: Annotated[str, Form(max_length=40)] = "", region: Annotated[str, Form(max_length=12)] = "",
               industry: Annotated[str, Form(max_length=12)] = "", address: Annotated[str, Form(max_length=500)] = "",
               key: Annotated[str, Form(max_length=80)] = "") -> Response:  # fmt: skip
    """Admit an organisation: the same checked `identity.register` as `qdsn member add`, signed by this node and
    recorded in the staff audit log with the entry it landed at."""
    console = console_of(request)
    node = console.node
    form = {"did": did, "role": role, "name": name, "credit_code": credit_code, "region": region,
            "industry": industry, "address": address, "key": key}  # fmt: skip
    try:
        payload = registry.registration(did, role, name, _blank(key), _blank(credit_code), _blank(region),
                                        _blank(industry), _blank(address))  # fmt: skip
    except InvalidInput as e:
        console.staff.record(staff, "member.add", did[:512], outcome="refused", why=f"{e.what}. {e.fix or ''}"[:500])
        page = registry.members_page(node.ledger.store, limit=50)
        return render(request, "regulator/members.html", status=400, page=page, filters={}, roles=registry.ROLES,
                      added=None, form=form, error=f"{e.what}. {e.fix}" if e.fix else e.what)  # fmt: skip
    with console.staff.attempt(staff, "member.add", payload["did"], name=payload["name"]):
        (receipt,) = node.submit([node.home.sign("identity.register", payload)])
    console.staff.record(staff, "member.add", payload["did"], entry=receipt.seq, txid=receipt.txid,
                         name=payload["name"])  # fmt: skip
    return RedirectResponse(f"{PREFIX}/members/{payload['did']}?added={receipt.seq}", status_code=303)


@router.get("/members/{did}")
def member(request: Request, staff: Viewer, did: str, before: Cursor = None) -> Response:
    node = _node(request)
    record = registry.member(node.ledger.store, did)
    certificates = [c for c in node.ledger.state.credentials.values() if c.subject == did or c.issuer == did]
    entries = explorer.entries_page(node.ledger.store, submitter=did, before=before, limit=20)
    names = _names(node, {c.issuer for c in certificates} | {c.subject for c in certificates})
    return render(request, "regulator/member.html", m=record, certificates=certificates, entries=entries,
                  names=names, added=request.query_params.get("added"))  # fmt: skip


@router.get("/ledger")
def ledger(request: Request, staff: Viewer, type: Word = None, submitter: Word = None, before: Cursor = None,
           after: Cursor = None) -> Response:  # fmt: skip
    node = _node(request)
    type, submitter = _blank(type), _blank(submitter)
    page = explorer.entries_page(node.ledger.store, type=type, submitter=submitter, before=before, after=after,
                                 limit=50)  # fmt: skip
    filters = {k: v for k, v in (("type", type), ("submitter", submitter)) if v}
    return render(request, "regulator/ledger.html", page=page, filters=filters, types=sorted(tx.REGISTRY),
                  size=node.ledger.store.size, names=_names(node, {e["submitter"] for e in page.items}))  # fmt: skip


@router.get("/ledger/entries/{ref}")
def entry(request: Request, staff: Viewer, ref: str) -> Response:
    node = _node(request)
    e = explorer.entry(node.ledger.store, ref[:80])
    shown = json.dumps(e["payload"], indent=2, ensure_ascii=False, sort_keys=True)
    return render(request, "regulator/entry.html", e=e, payload=shown, names=_names(node, {e["submitter"]}))


@router.get("/ledger/checkpoints")
def checkpoints(request: Request, staff: Viewer, before: Cursor = None, size: Cursor = None) -> Response:
    node = _node(request)
    page = explorer.checkpoints_page(node.ledger.store, before=before, limit=20)
    cosigs = explorer.cosignatures_page(node.ledger.store, size=size, limit=100) if size is not None else None
    names = _names(node, {c["cosigner"] for c in cosigs.items} if cosigs else set())
    return render(request, "regulator/checkpoints.html", page=page, size=size, cosigs=cosigs, names=names)


@router.get("/ledger/witnesses")
def witnesses(request: Request, staff: Viewer, after: Word = None) -> Response:
    node = _node(request)
    page = explorer.witnesses(node.ledger.store, after=after or "", limit=100)
    return render(request, "regulator/witnesses.html", page=page,
                  names=_names(node, {w["cosigner"] for w in page.items}))  # fmt: skip


@router.get("/ledger/alerts")
def alerts(request: Request, staff: Viewer, before: Cursor = None) -> Response:
    node = _node(request)
    page = explorer.alerts_page(node.ledger.store, before=before, limit=20)
    return render(request, "regulator/alerts.html", page=page, names=_names(node, {e["submitter"] for e in page.items}))


@router.get("/certificates")
def certificates(request: Request, staff: Viewer, status: Word = None) -> Response:
    node = _node(request)
    state = node.ledger.state
    listed = sorted(state.credentials.values(), key=lambda c: c.issued, reverse=True)
    if status:
        listed = [c for c in listed if c.status == status]
    names = _names(node, {c.issuer for c in listed} | {c.subject for c in listed})
    return render(request, "regulator/certificates.html", certificates=listed[:500], total=len(listed), names=names,
                  chosen=status)  # fmt: skip


@router.get("/statistics")
def statistics(request: Request, staff: Viewer, level: Annotated[str, Query(max_length=16)] = "prefecture") -> Response:
    node = _node(request)
    listed = tasks(node.ledger.state)
    regions = registry.by_region(node.ledger.store, level)
    names = _names(node, {t.leader for t in listed} | {t.helper for t in listed})
    return render(request, "regulator/statistics.html", tasks=listed, regions=regions, level=level, names=names,
                  created=request.query_params.get("created"), **regional.figures_context(node))  # fmt: skip


# Plain routers, their paths put under this router's prefix (the PREFIX their links and redirects name).
router.include_router(supervision.router)
router.include_router(regional.router)
