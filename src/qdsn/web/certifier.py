"""The certification body's console (a node of role `certifier`): members' catalogs and negotiation, the
jobs it asked for with their attested results (Cpk, pass or fail), issuing a certificate from a passing
result, its certificate register with suspend and reinstate, and the models it published.

Every action is the one the CLI takes, through the same node services: `consumer.negotiate` after the
ledger says whose dataset it is, a job asked with a fresh nonce kept in the home (`requested.record`), the
result verified against this node's replica and that nonce (`attest.verify`, `requested.mismatches`),
`certify.issue` and `certify.set_status` — each recorded in the staff audit log with its ledger entry.
Everything another node answers is that organisation's word: read for its shape and shown escaped."""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from qdsn.api.app import origin
from qdsn.api.client import NodeClient
from qdsn.compute import attest, package, results
from qdsn.errors import IntegrityError, InvalidInput, NotFound, QDSNError, Unavailable
from qdsn.ledger.ledger import Receipt
from qdsn.node import certify, requested
from qdsn.node.consumer import negotiate
from qdsn.node.node import Node
from qdsn.web.auth import require
from qdsn.web.pages import ConsoleRoute, NavItem, console_of, render
from qdsn.web.staff import Staff
from qdsn.web.words import N_

PREFIX = "/console/certifier"
router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=ConsoleRoute)
NAV = [
    NavItem(f"{PREFIX}/overview", N_("Overview")),
    NavItem(f"{PREFIX}/catalog", N_("Catalogs")),
    NavItem(f"{PREFIX}/jobs", N_("Jobs")),
    NavItem(f"{PREFIX}/certificates", N_("Certificate register")),
    NavItem(f"{PREFIX}/models", N_("Models")),
]
VERDICTS = [N_("pass"), N_("fail")]  # shown from an attested result, listed for the catalog
Viewer = Annotated[Staff, Depends(require("viewer"))]
Engineer = Annotated[Staff, Depends(require("engineer"))]
Approver = Annotated[Staff, Depends(require("approver"))]
Url = Annotated[str, Form(max_length=300)]
NO_PUBLIC_URL = (
    N_("this node has no public URL, so a certificate's status list would have no address its holders and "
       "verifiers can reach"),
    N_("set public_url in the [service] table of the node's node.toml (or start it with --public-url, e.g. "
       "https://cert.example.cn), restart the node, then issue"),
)  # fmt: skip


def _node(request: Request) -> Node:
    return console_of(request).node


def _member_url(url: str) -> str:
    """A member node's URL as typed by a person: scheme://host[:port], nothing else."""
    url = url.strip().rstrip("/")
    origin(url)  # InvalidInput naming what is wrong
    return url


def _peer(node: Node, url: str) -> NodeClient:
    return NodeClient(url, node.home.key, node.did)  # its current key at each request


def _call(node: Node, url: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """A signed request to another member's node; a node that cannot be reached is one clear error."""
    try:
        return _peer(node, url).call(method, path, body) if body is not None else _peer(node, url).call(method, path)
    except httpx.HTTPError as e:
        raise Unavailable(f"cannot reach {url}: {e or type(e).__name__}",
                          "check the URL and that the member's node runs there") from None  # fmt: skip


def _object(x: Any, what: str) -> dict[str, Any]:
    if not isinstance(x, dict):
        raise IntegrityError(f"the node answered something other than {what}")
    return x


def catalog_datasets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The catalog's datasets, each with the offers that are offers of it (one targeting another dataset is
    the catalog's word against itself, and is left out)."""
    out = []
    listed = doc.get("dcat:dataset")
    for d in listed if isinstance(listed, list) else []:
        if not isinstance(d, dict):
            continue
        found = d.get("odrl:hasPolicy")
        offers = [o for o in (found if isinstance(found, list) else []) if isinstance(o, dict)
                  and o.get("target") == d.get("@id")]  # fmt: skip
        out.append({"id": str(d.get("@id", "")).removeprefix("urn:qdsn:dataset:"), "title": str(d.get("dct:title", "")),
                    "offers": offers})  # fmt: skip
    return out


def terms(offer: dict[str, Any]) -> list[str]:
    """An offer's permissions, one line each: action, for whom, under which constraints."""
    out = []
    rules = offer.get("permission")
    for p in rules if isinstance(rules, list) else []:
        if not isinstance(p, dict):
            continue
        cs = p.get("constraint")
        said = [f"{c.get('leftOperand')} {c.get('operator')} {c.get('rightOperand')}"
                for c in (cs if isinstance(cs, list) else []) if isinstance(c, dict)]  # fmt: skip
        out.append(f"{p.get('action')} → {p.get('assignee') or '*'}" + (f" ({'; '.join(said)})" if said else ""))
    return out


def _models(node: Node) -> list[dict[str, Any]]:
    """The models this node published, newest first, with their manifests from `model.publish`."""
    from qdsn.ledger import tx

    mine = sorted((m for m in node.ledger.state.models.values() if m.publisher == node.did),
                  key=lambda m: m.published, reverse=True)  # fmt: skip
    out = []
    for m in mine:
        p = tx.from_leaf(node.ledger.store.entry(m.published).leaf).payload
        out.append({"key": m.key, "hash": m.hash, "entry": m.published, "manifest": p.get("manifest", {})})
    return out


@router.get("/overview")
def overview(request: Request, staff: Viewer) -> Response:
    node = _node(request)
    register = certify.register(node)
    statuses: dict[str, int] = {}
    for r in register:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    due = sorted((r for r in register if r["next_run"]), key=lambda r: r["next_run"])[:10]
    asked = requested.entries(node.home.path)
    return render(request, "certifier/overview.html", statuses=statuses, due=due, jobs=asked[-10:][::-1],
                  models=_models(node), issued=len(register))  # fmt: skip


@router.get("/catalog")
def catalog(request: Request, staff: Viewer, url: Annotated[str | None, Query(max_length=300)] = None) -> Response:
    node = _node(request)
    found = None
    if url:
        url = _member_url(url)
        doc = _object(_call(node, url, "POST", "/catalog/request", {}), "a DCAT catalog")
        found = catalog_datasets(doc)
    agreements = _agreements(node)
    return render(request, "certifier/catalog.html", url=url or "", datasets=found, terms=terms,
                  agreements=agreements)  # fmt: skip


def _agreements(node: Node) -> list[dict[str, Any]]:
    folder = node.home.path / requested.AGREEMENTS
    out = []
    for p in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            out.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            continue
    return out


@router.post("/negotiate")
def negotiate_offer(
    request: Request, staff: Engineer, url: Url, offer: Annotated[str, Form(max_length=256)]
) -> Response:
    """Negotiate an offer of a member's catalog, as `qdsn negotiate` does: the offer as published, made by the
    member the ledger says declared the dataset, the agreement verified and kept in the home."""
    console = console_of(request)
    node = console.node
    with console.staff.attempt(staff, "negotiate", offer, url=url[:300]):
        url = _member_url(url)
        doc = _object(_call(node, url, "POST", "/catalog/request", {}), "a DCAT catalog")
        chosen = next((o for d in catalog_datasets(doc) for o in d["offers"] if o.get("uid") == offer), None)
        if chosen is None:
            raise NotFound(f"the catalog at {url} holds no offer {offer[:100]!r} for this node", "reload the catalog")
        dataset = str(chosen.get("target", "")).removeprefix("urn:qdsn:dataset:")
        node.catch_up()
        declared = node.ledger.state.datasets.get(dataset)
        if declared is None or declared.owner != chosen.get("assigner"):
            owner = declared.owner if declared else "nobody"
            raise IntegrityError(
                f"offer {offer[:100]} is made by {str(chosen.get('assigner'))[:100]}, but the ledger "
                f"says {dataset[:100]} was declared by {owner}"
            )
        try:
            contract = negotiate(_peer(node, url), chosen, node.did)
        except httpx.HTTPError as e:
            raise Unavailable(f"cannot reach {url}: {e or type(e).__name__}") from None
        requested.keep(node.home.path, requested.AGREEMENTS, url, contract["uid"],
                       {"dataset": dataset, "uid": contract["uid"], "url": url, "offer": offer})  # fmt: skip
    console.staff.record(staff, "negotiate", contract["uid"], url=url, offer=offer, dataset=dataset)
    return RedirectResponse(f"{PREFIX}/jobs?agreement={quote(contract['uid'])}&url={quote(url)}&dataset="
                            f"{quote(dataset)}", status_code=303)  # fmt: skip


@router.get("/jobs")
def jobs_page(request: Request, staff: Viewer, agreement: Annotated[str, Query(max_length=256)] = "",
              url: Annotated[str, Query(max_length=300)] = "",
              dataset: Annotated[str, Query(max_length=128)] = "") -> Response:  # fmt: skip
    node = _node(request)
    asked = requested.entries(node.home.path)[::-1]
    return render(request, "certifier/jobs.html", asked=asked, models=_models(node), agreements=_agreements(node),
                  form={"agreement": agreement, "url": url, "dataset": dataset})  # fmt: skip


@router.post("/jobs")
def request_job(request: Request, staff: Engineer, url: Url, model: Annotated[str, Form(max_length=200)],
                dataset: Annotated[str, Form(max_length=128)], agreement: Annotated[str, Form(max_length=256)],
                parameters: Annotated[str, Form(max_length=4000)] = "{}",
                purpose: Annotated[str, Form(max_length=200)] = "certification") -> Response:  # fmt: skip
    """Ask a member's node to run a published model on its anchored records, as `qdsn jobs request` does: the
    records this node's replica says are anchored, a fresh nonce kept in the home with the job."""
    console = console_of(request)
    node = console.node
    with console.staff.attempt(staff, "job.request", model, url=url[:300], dataset=dataset, agreement=agreement):
        url = _member_url(url)
        try:
            params = json.loads(parameters or "{}")
        except ValueError as e:
            raise InvalidInput(
                f"the parameters are not JSON: {e}", 'give an object, e.g. {"threshold": 1.33}'
            ) from None
        if not isinstance(params, dict):
            raise InvalidInput('the parameters are a JSON object, e.g. {"threshold": 1.33}')
        mine = {m["key"]: m for m in _models(node)}
        if model not in mine:
            raise NotFound(f"this node published no model {model[:100]!r}", "publish it first: qdsn model publish")
        blob, manifest = package.load(package.builtin(model.split("@")[0]))
        if package.code_hash(blob) != mine[model]["hash"]:
            raise IntegrityError(f"the model {model} this node has is not the one it published (code hash differs)")
        node.catch_up()
        declared = node.ledger.state.datasets.get(dataset.removeprefix("urn:qdsn:dataset:"))
        if declared is None or declared.anchored < 1:
            raise NotFound(f"this node's replica of the ledger holds no anchored records of {dataset[:100]}",
                           "wait for the node to follow the log, then ask again")  # fmt: skip
        nonce = secrets.token_urlsafe(24)
        job = _object(_call(node, url, "POST", "/jobs", {
            "agreementId": agreement, "archive": base64.b64encode(blob).decode(), "parameters": params, "nonce": nonce,
            "purpose": purpose, "datasets": [{"dataset": dataset, "first": 0, "count": declared.anchored}],
        }), "a job")  # fmt: skip
        if not isinstance(job.get("id"), str):
            raise IntegrityError("the node took the job but answered no job id")
        requested.record(
            node.home.path,
            url,
            job["id"],
            nonce,
            agreement=agreement,
            model=f"{manifest.id}@{manifest.version}",
            code_hash=package.code_hash(blob),
            parameters=params,
            dataset=dataset,
            first=0,
            count=declared.anchored,
            requested=datetime.now(UTC).isoformat(timespec="seconds"),
        )
    console.staff.record(staff, "job.request", job["id"], url=url, model=model, dataset=dataset, agreement=agreement)
    return RedirectResponse(f"{PREFIX}/jobs/{quote(job['id'], safe='')}?url={quote(url)}", status_code=303)


def verified_result(node: Node, url: str, job: str) -> tuple[dict[str, Any], dict[str, Any], results.JobResult]:
    """(the job as its node answers it, the verified claims, the result) of a job this node asked for: the
    attestation checked against this replica and the nonce kept when asking, never one the result names."""
    asked = requested.find(node.home.path, job, url)
    doc = _object(_call(node, url, "GET", f"/jobs/{quote(job, safe=':@')}"), "a job")
    if doc.get("state") != "done":
        return doc, {}, None  # type: ignore[return-value]
    result = results.from_json(doc, f"job {job} at {url}")
    if result.output is None:
        raise IntegrityError(f"job {job} at {url} has an attestation but no output")
    node.catch_up()
    claims = attest.verify(result.attestation, node.ledger, output=result.output, nonce=asked["nonce"])
    wrong = ([f"the attestation is of job {str(claims.get('job'))[:80]}"] if claims.get("job") != job else []) + (
        requested.mismatches(asked, claims))  # fmt: skip
    if wrong:
        raise IntegrityError(f"the run is not the one asked for: {'; '.join(wrong)}")
    return doc, claims, result


@router.get("/jobs/{job}")
def job_page(request: Request, staff: Viewer, job: str, url: Annotated[str, Query(max_length=300)]) -> Response:
    node = _node(request)
    url = _member_url(url)
    asked = requested.find(node.home.path, job, url)
    doc, claims, result = verified_result(node, url, job)
    figures = results.rows(result.output) if result else []
    passed = bool(result and result.output.get("pass"))
    holder = node.ledger.state.identities.get(str(claims.get("iss"))) if claims else None
    return render(request, "certifier/job.html", job=job, url=url, asked=asked, doc=doc, claims=claims,
                  figures=figures, passed=passed, holder=holder,
                  status_list=status_list_of(node), no_public_url=NO_PUBLIC_URL)  # fmt: skip


@router.post("/certificates")
def issue(request: Request, staff: Approver, url: Url, job: Annotated[str, Form(max_length=200)],
          number: Annotated[str, Form(min_length=1, max_length=200)], standards: Annotated[str, Form(max_length=500)],
          category: Annotated[str, Form(min_length=1, max_length=200)],
          scope: Annotated[str, Form(min_length=1, max_length=500)],
          site: Annotated[str, Form(min_length=1, max_length=200)], status_list: Annotated[str, Form(max_length=500)],
          days: Annotated[int, Form(ge=1, le=3650)] = 365) -> Response:  # fmt: skip
    """Issue a certificate from a passing result of a job this node asked for, as `qdsn cert issue --job` does."""
    console = console_of(request)
    node = console.node
    with console.staff.attempt(staff, "certificate.issue", number, job=job, url=url[:300]):
        issued = _issue(node, url, job, number, standards, category, scope, site, status_list, days)
    console.staff.record(staff, "certificate.issue", issued.number, entry=issued.receipt.seq, txid=issued.receipt.txid,
                         job=job, holder=issued.holder)  # fmt: skip
    return RedirectResponse(f"{PREFIX}/certificates?issued={quote(issued.number)}", status_code=303)


@dataclass(frozen=True)
class _Issued:
    number: str
    holder: str
    receipt: Receipt


def status_list_of(node: Node) -> str | None:
    """The status list this node's console issues into: on its public URL, never the Host a request named."""
    return f"{node.public_url.rstrip('/')}/status-lists/1" if node.public_url else None


def _issue(node: Node, url: str, job: str, number: str, standards: str, category: str, scope: str, site: str,
           status_list: str, days: int) -> _Issued:  # fmt: skip
    if not node.public_url:
        raise InvalidInput(NO_PUBLIC_URL[0], NO_PUBLIC_URL[1])
    status_list = status_list.strip()
    if not status_list.startswith(f"{node.public_url.rstrip('/')}/status-lists/"):
        raise InvalidInput(f"status list {status_list[:200]!r} is not one this node serves",
                           f"give one under {node.public_url.rstrip('/')}/status-lists/")  # fmt: skip
    url = _member_url(url)
    _, claims, result = verified_result(node, url, job)
    if result is None:
        raise InvalidInput(f"job {job} has not run yet: there is no result to certify", "wait until it is done")
    listed = [s.strip() for s in standards.split(",") if s.strip()]
    if not listed:
        raise InvalidInput("a certificate names at least one standard", "e.g. GB/T 5023")
    subject = certify.Subject(number.strip(), listed, category, scope, site, None, days)
    done = certify.issue_recorded(node, {"output": result.output, "attestation": result.attestation}, subject,
                                  status_list, note=node.trusted_checkpoint())  # fmt: skip
    return _Issued(subject.number, claims["iss"], done.receipt)


@router.get("/certificates")
def register(request: Request, staff: Viewer) -> Response:
    node = _node(request)
    rows = certify.register(node)
    claims = footprint_claims(node, {r["holder"] for r in rows if r.get("scheme") == "product-footprint"})
    return render(request, "certifier/certificates.html", register=[r | {"claim": claims.get(r["certificate"])}
                  for r in rows], issued=request.query_params.get("issued"),
                  changed=request.query_params.get("changed"))  # fmt: skip


def footprint_claims(node: Node, holders: set[str]) -> dict[str, str]:
    """The footprint claim (kg CO2e per declared unit ≤ threshold, the product) of each low-carbon
    certificate this node issued to `holders`, by number, read from its own copy with every disclosure."""
    from qdsn.credentials import certificate, sdjwt

    out = {}
    for holder in sorted(holders):
        for sd in certify.held_by(node, holder):
            try:
                claims = sdjwt.verify(sd, lambda iss, _h: node.ledger.state.identities[iss].key,
                                      vct=certificate.VCT).claims  # fmt: skip
            except (QDSNError, KeyError):  # no longer verifiable here (a key rotated): the register still lists it
                continue
            if claims.get("scheme") == "product-footprint":
                i = claims.get("indicators") or {}
                out[str(claims.get("certificate_number"))] = (f"{i.get('pcf')} kg CO2e / {i.get('declared_unit')} ≤ "
                                                              f"{i.get('threshold')} ({i.get('product')})")  # fmt: skip
    return out


@router.post("/certificates/{number}/status")
def change_status(request: Request, staff: Approver, number: str, status: Annotated[str, Form(max_length=16)],
                  reason: Annotated[str, Form(min_length=1, max_length=1000)]) -> Response:  # fmt: skip
    """Suspend or reinstate a certificate this node issued: `credential.status` and its status list entry."""
    console = console_of(request)
    node = console.node
    action = f"certificate.{'suspend' if status == 'suspended' else 'reinstate' if status == 'valid' else 'status'}"
    with console.staff.attempt(staff, action, number, status=status[:20], reason=reason):
        if status not in ("suspended", "valid"):
            raise InvalidInput(f"the console suspends or reinstates, not {status[:20]!r}",
                               "revoke with qdsn cert revoke")  # fmt: skip
        receipt = certify.set_status(node, number, status, reason)
    console.staff.record(staff, action, number, entry=receipt.seq, txid=receipt.txid, reason=reason)
    return RedirectResponse(f"{PREFIX}/certificates?changed={quote(number)}", status_code=303)


@router.get("/models")
def models(request: Request, staff: Viewer) -> Response:
    return render(request, "certifier/models.html", models=_models(_node(request)))
