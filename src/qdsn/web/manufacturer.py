"""The manufacturer's console (a node of role `enterprise`): its datasets and their charts, uploads,
the jobs inbox, agreements with their meters and invoices, and the certificates it holds."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from qdsn.errors import NotFound
from qdsn.ledger import tx
from qdsn.node import jobs
from qdsn.node.node import Node
from qdsn.web.auth import require
from qdsn.web.pages import ConsoleRoute, NavItem, console_of, render
from qdsn.web.staff import Staff
from qdsn.web.words import N_

PREFIX = "/console/enterprise"
router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=ConsoleRoute)
NAV = [
    NavItem(f"{PREFIX}/overview", N_("Overview")),
]
Viewer = Annotated[Staff, Depends(require("viewer"))]
Engineer = Annotated[Staff, Depends(require("engineer"))]
Approver = Annotated[Staff, Depends(require("approver"))]
LAST_READINGS = 256  # the newest records read to find each device's last reading


def _node(request: Request) -> Node:
    return console_of(request).node


def datasets(node: Node) -> list[dict[str, Any]]:
    """This maker's datasets as the ledger has them: title, kind, records anchored, batches."""
    return [{"id": d.id, "title": d.title, "kind": d.kind, "anchored": d.anchored, "batches": d.batches,
             "shredded": d.shredded} for d in node.ledger.state.datasets.values() if d.owner == node.did]  # fmt: skip


def last_anchors(node: Node, n: int = 8) -> list[dict[str, Any]]:
    """This maker's newest `dataset.anchor` entries: where, which dataset, which records, the root."""
    out = []
    for row in reversed(node.ledger.store.rows_of_type("dataset.anchor")):
        if row.submitter != node.did:
            continue
        p = tx.from_leaf(row.leaf).payload
        out.append({"seq": row.seq, "dataset": p["dataset"], "first": p["first"], "count": p["count"],
                    "root": p["root"]})  # fmt: skip
        if len(out) == n:
            break
    return out


def devices(node: Node) -> list[dict[str, Any]]:
    """This maker's registered devices, each with its last reading found in the newest anchored records."""
    mine = {d.id: {"id": d.id, "kind": d.kind, "registered": d.registered, "last": None}
            for d in node.ledger.state.devices.values() if d.owner == node.did}  # fmt: skip
    for d in datasets(node):
        if d["kind"] != "measurements" or d["shredded"] or not d["anchored"]:
            continue
        try:
            records = node.vault.records(d["id"], max(0, d["anchored"] - LAST_READINGS), d["anchored"])
        except NotFound:
            continue
        for r in records:
            if (dev := r.get("device")) in mine:
                mine[dev]["last"] = r | {"dataset": d["id"]}
    return list(mine.values())


def held(node: Node) -> list[dict[str, Any]]:
    """The certificates the ledger says this maker holds, with their status and issuer."""
    state = node.ledger.state
    return [{"id": c.id, "issuer": c.issuer, "issuer_name": (i.name if (i := state.identities.get(c.issuer)) else "?"),
             "status": c.status, "issued": c.issued}
            for c in state.credentials.values() if c.subject == node.did]  # fmt: skip


@router.get("/overview")
def overview(request: Request, staff: Viewer) -> Response:
    node = _node(request)
    node.catch_up()
    open_jobs = [j for j in jobs.visible(node, node.did) if j.state in ("pending", "approved")]
    return render(request, "enterprise/overview.html", datasets=datasets(node), anchors=last_anchors(node),
                  devices=devices(node), jobs=open_jobs, certificates=held(node),
                  names={d: i.name for d, i in node.ledger.state.identities.items()})  # fmt: skip
