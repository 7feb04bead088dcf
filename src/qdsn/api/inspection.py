"""The risk-based inspection endpoints (双随机, 一公开) of a node's API: risk classes for the regulator (and each
enterprise its own), plans and their verification for anyone, and the regulator's own node committing,
drawing and recording results — the same functions the CLI calls. (No `from __future__ import annotations`:
FastAPI reads the routes' annotations, which name the app's own dependencies, at definition.)"""

from typing import Any

from fastapi import FastAPI

from qdsn.errors import InvalidInput, NotFound, PermissionDenied
from qdsn.node.node import PUBLIC_RECENT


def _field(body: dict[str, Any], name: str, kind: type, required: bool = False) -> Any:
    """A body field of the type it must have; a clear refusal otherwise."""
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidInput(f"the body has no {name!r}", f"send {name} as a JSON {kind.__name__}")
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidInput(f"{name!r} must be a JSON {kind.__name__}")
    return value


def add_routes(app: FastAPI, node: Any, signer: Any, message: Any) -> None:
    """Add the inspection endpoints; `signer` and `message` are the app's dependencies (the request's signer,
    its JSON body)."""
    from qdsn.clock import system_clock
    from qdsn.ledger.integrity import Outcome
    from qdsn.supervision import draw, evidence, inspections, risk

    def role(who: str) -> str:
        ident = node.ledger.state.identities.get(who)
        return ident.role if ident else ""

    def own(who: str) -> None:
        if who != node.did:
            raise PermissionDenied("only this node's own operator commits plans, draws them and records results here",
                                   "sign the request with this node's key (qdsn supervise on its home)")  # fmt: skip

    def visible(who: str, enterprise: str | None) -> str | None:
        """The enterprise a signer may see: any (None: all) for the regulator, only itself for an enterprise."""
        if role(who) == "regulator":
            return enterprise
        if role(who) == "enterprise" and enterprise in (None, who):
            return who
        raise PermissionDenied("risk classes and results are the regulator's to see, and each enterprise's own",
                               "ask for your own (enterprise = your DID)")  # fmt: skip

    @app.get("/supervision/risk", tags=["supervision"])
    def supervision_risk(who: signer, enterprise: str | None = None, as_of: str | None = None) -> dict[str, Any]:
        """Risk classes A–D with each factor's weight and contribution: every enterprise for the regulator, its
        own for an enterprise."""
        node.catch_up()
        wanted = visible(who, enterprise)
        day = risk.as_of_date(as_of, system_clock().date())
        ev = evidence.read(node.ledger, day)
        if wanted is not None:
            if wanted not in ev:
                raise NotFound(f"{wanted} is not a registered enterprise")
            ev = {wanted: ev[wanted]}
        found = sorted(risk.assess_all(ev, day).values(), key=lambda a: (-a.score, a.enterprise))
        return {"as_of": day.isoformat(), "model": risk.MODEL, "assessments": [a.to_json() for a in found]}

    @app.get("/supervision/plans", tags=["supervision"])
    def supervision_plans() -> dict[str, Any]:
        """Every inspection plan with its commitment and, once drawn, its seed and selection (public: 一公开)."""
        node.catch_up(recent=PUBLIC_RECENT)
        return {"plans": draw.plans(node.ledger)}

    verified: dict[str, dict[str, Any]] = {}  # a drawn plan's verdict never changes: computed once per plan

    @app.get("/supervision/plans/{plan}/verification", tags=["supervision"])
    def supervision_verify(plan: str) -> dict[str, Any]:
        """Re-run a plan's draw from its revealed seed on this node's replica (public)."""
        if plan in verified:
            return verified[plan]
        node.catch_up(recent=PUBLIC_RECENT)
        v = draw.verify(node.ledger, plan)
        out = {"plan": plan, "outcome": Outcome(v.outcome).name.lower(), "message": v.message, "where": v.where}
        if node.ledger.state.plans[plan].drawn is not None and v.outcome is not Outcome.INCOMPLETE:
            verified[plan] = out
        return out

    plan_body = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["plan", "title", "count"], "properties": {
            "plan": {"type": "string"}, "title": {"type": "string"}, "count": {"type": "integer"},
            "as_of": {"type": "string"}, "region": {"type": "string"}, "industry": {"type": "string"},
            "weights": {"type": "object"}, "inspectors": {"type": "array", "items": {"type": "string"}},
            "per_inspection": {"type": "integer"}}}}}}}  # fmt: skip

    @app.post("/supervision/plans", tags=["supervision"], status_code=201, openapi_extra=plan_body)
    def supervision_plan(who: signer, body: message) -> dict[str, Any]:
        """Commit a plan from this (the regulator's) node: its seed kept here until the draw (own node only)."""
        own(who)
        node.catch_up()
        weights = _field(body, "weights", dict)
        inspectors = _field(body, "inspectors", list) or []
        if not all(isinstance(i, str) for i in inspectors):
            raise InvalidInput("'inspectors' must be a list of ids (strings)")
        scope = {k: v for k in ("region", "industry") if (v := _field(body, k, str))}
        payload, receipts = draw.create_plan(
            node, _field(body, "plan", str, True), _field(body, "title", str, True),
            as_of=risk.as_of_date(_field(body, "as_of", str), system_clock().date()),
            count=_field(body, "count", int, True), scope=scope, weights=weights, inspectors=inspectors,
            per_inspection=_field(body, "per_inspection", int) or (2 if inspectors else 0),
        )  # fmt: skip
        return payload | {"entry": receipts[0].seq}

    @app.post("/supervision/plans/{plan}/draw", tags=["supervision"], openapi_extra={"requestBody": {
        "required": False, "content": {"application/json": {"schema": {"type": "object"}}}}})  # fmt: skip
    def supervision_draw(plan: str, who: signer) -> dict[str, Any]:
        """Draw a committed plan: reveal its seed with the selection (own node only)."""
        own(who)
        node.catch_up()
        payload, classes, receipts = draw.draw_plan(node, plan)
        return payload | {"classes": [classes[d] for d in payload["selection"]], "entry": receipts[0].seq}

    result_body = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["enterprise", "product", "standard", "passed", "date"], "properties": {
            "enterprise": {"type": "string"}, "product": {"type": "string"}, "standard": {"type": "string"},
            "passed": {"type": "boolean"}, "date": {"type": "string"}, "plan": {"type": "string"}}}}}}}  # fmt: skip

    @app.post("/supervision/inspections", tags=["supervision"], status_code=201, openapi_extra=result_body)
    def supervision_record(who: signer, body: message) -> dict[str, Any]:
        """Record a sampling-inspection result from this (the regulator's) node (own node only)."""
        own(who)
        node.catch_up()
        payload, receipts = inspections.record(
            node, _field(body, "enterprise", str, True), _field(body, "product", str, True),
            _field(body, "standard", str, True), _field(body, "passed", bool, True), _field(body, "date", str, True),
            _field(body, "plan", str),
        )  # fmt: skip
        return payload | {"entry": receipts[0].seq}

    @app.get("/supervision/inspections", tags=["supervision"])
    def supervision_results(who: signer, enterprise: str | None = None) -> dict[str, Any]:
        """Sampling-inspection results: all for the regulator, its own for an enterprise."""
        node.catch_up()
        return {"results": inspections.results(node.ledger, visible(who, enterprise))}
