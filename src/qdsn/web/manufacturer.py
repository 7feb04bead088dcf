"""The manufacturer's console (a node of role `enterprise`): its datasets and their charts, uploads,
the jobs inbox, agreements with their meters and invoices, and the certificates it holds."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from qdsn.errors import NotFound, QDSNError
from qdsn.ledger import tx
from qdsn.node import jobs, notify
from qdsn.node.node import Node
from qdsn.web import green
from qdsn.web.auth import require
from qdsn.web.pages import ConsoleRoute, NavItem, console_of, render
from qdsn.web.staff import Staff
from qdsn.web.words import N_

PREFIX = "/console/enterprise"
router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=ConsoleRoute)
NAV = [
    NavItem(f"{PREFIX}/overview", N_("Overview")),
    NavItem(f"{PREFIX}/upload", N_("Upload records"), "engineer"),
    NavItem(f"{PREFIX}/jobs", N_("Jobs inbox")),
    NavItem(f"{PREFIX}/agreements", N_("Agreements and invoices")),
    NavItem(f"{PREFIX}/certificates", N_("Certificates")),
    NavItem(f"{PREFIX}/audit", N_("Audit log"), "approver"),
]
Viewer = Annotated[Staff, Depends(require("viewer"))]
Engineer = Annotated[Staff, Depends(require("engineer"))]
Approver = Annotated[Staff, Depends(require("approver"))]
APPROVE_STEPS = ["deciding", "running", "recording"]  # what `jobs.approve` reports, in order
STEP_WORDS = [N_("deciding the use under the agreement"), N_("running the model in the sandbox"),
              N_("recording the use and the attestation on the ledger")]  # fmt: skip
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
    notices = sorted(notify.listing(node)["notifications"], key=lambda n: -n["history"][-1]["seq"])[:20]
    return render(request, "enterprise/overview.html", datasets=datasets(node), anchors=last_anchors(node),
                  devices=devices(node), jobs=open_jobs, certificates=held(node), notices=notices,
                  level=level(node), names={d: i.name for d, i in node.ledger.state.identities.items()})  # fmt: skip


def level(node: Node) -> Any:
    """This enterprise's indicators and MIIT capability level, as `qdsn indicators enterprise` gives them on its
    own node (its attested outputs verified); None while it is not registered on the ledger."""
    from qdsn.clock import system_clock
    from qdsn.supervision import indicators

    if node.did not in node.ledger.state.identities:
        return None
    done = [j.result for j in jobs.visible(node, node.did) if j.state == "done" and j.result]
    return indicators.enterprise(node.ledger, node.did, system_clock(), indicators.verified_outputs(node.ledger, done))


# -- datasets and their charts ----------------------------------------------------------------------

warm = green.warm  # the chart libraries, loaded in the background when the console starts (web.mount)
MAX_POINTS = 200_000  # the newest records a chart reads; limits come from them, a window is shown
WINDOWS = (50, 200, 1000, 0)  # points shown; 0: all
# Capability sixpacks drawn, by node, dataset, characteristic and records anchored: drawing one takes
# seconds, and moving the chart's window does not change it.
_SIXPACKS: dict[tuple[str, str, str, int], str] = {}


def _declared(node: Node, dataset: str) -> dict[str, Any]:
    ds = node.ledger.state.datasets.get(dataset)
    if ds is None or ds.owner != node.did:
        raise NotFound(f"no dataset {dataset!r} of this node", "the overview lists them")
    return node.ledger.declaration(dataset)


def series(node: Node, dataset: str, characteristic: str) -> tuple[list[float], list[str], int]:
    """(values, times, index of the first) of one characteristic's readings among the newest anchored records."""
    ds = node.ledger.state.datasets[dataset]
    first = max(0, ds.anchored - MAX_POINTS)
    records = node.vault.records(dataset, first, ds.anchored) if ds.anchored else []
    rows = [r for r in records if r.get("characteristic") == characteristic and isinstance(r.get("value"), int | float)]
    return [float(r["value"]) for r in rows], [str(r.get("time", "")) for r in rows], first


@router.get("/datasets/{dataset}")
def dataset_page(request: Request, dataset: str, staff: Viewer, characteristic: str | None = None,
                 window: int = 200, start: str = "") -> Response:  # fmt: skip
    """One dataset: its declared characteristics; for a measurement, its I-MR chart with the run rules'
    tests labelled (limits from the whole series, a window of it shown) and capability with its sixpack."""
    from qdsn import quality
    from qdsn.quality import render as pictures

    node = _node(request)
    node.catch_up()
    spec = _declared(node, dataset)
    chars = spec.get("characteristics", [])
    ds = node.ledger.state.datasets[dataset]
    chosen = next((c for c in chars if c["name"] == characteristic), chars[0] if chars else None)
    view: dict[str, Any] = {}
    if chosen is not None and ds.kind == "measurements" and not ds.shredded:
        values, times, _ = series(node, dataset, chosen["name"])
        if len(values) >= 3:
            whole = quality.imr(values)
            window = window if window in WINDOWS else 200
            n = len(values) if window == 0 else min(window, len(values))
            first = int(start) if start.strip().isdigit() else None  # the point to start at, from 1; none: the newest
            begin = len(values) - n if first is None else min(max(0, first - 1), len(values) - n)
            shown = quality.imr(values[begin : begin + n], limits=whole.limits) if n < len(values) else whole
            title = f"{chosen['name']} ({chosen.get('unit', '')}) · {begin + 1}–{begin + n} / {len(values)}"
            chart_svg = pictures.svg(pictures.draw_chart(shown, title=title, lsl=chosen.get("lsl"),
                                                         usl=chosen.get("usl")))  # fmt: skip
            cap = quality.capability(whole, lsl=chosen.get("lsl"), usl=chosen.get("usl"))
            drawn = (node.did, dataset, chosen["name"], ds.anchored)  # the same records: the same picture
            sixpack = _SIXPACKS.get(drawn)
            if sixpack is None:
                sixpack = pictures.svg(pictures.draw_sixpack(whole, values, cap, title=chosen["name"]))
                _SIXPACKS[drawn] = sixpack
                while len(_SIXPACKS) > 16:
                    _SIXPACKS.pop(next(iter(_SIXPACKS)))
            tests = sorted({(v.rule, v.index + begin + 1) for v in shown.violations}, key=lambda t: t[1])
            view = {"svg": chart_svg, "sixpack": sixpack, "n": len(values), "begin": begin, "count": n,
                    "window": window, "tests": tests[:200], "cap": cap, "last_time": times[-1],
                    "center": float(whole.center), "lcl": float(whole.lcl), "ucl": float(whole.ucl)}  # fmt: skip
    return render(request, "enterprise/dataset.html", dataset=ds, spec=spec, chars=chars, chosen=chosen, view=view,
                  windows=WINDOWS)  # fmt: skip


# -- the jobs inbox ---------------------------------------------------------------------------------


def _lines(text: str) -> list[list[tuple[str, bool]]]:
    """Text another party wrote, line by line, as (part, escaped) segments: every control, bidirectional or
    invisible character written as its escape and marked (`compute.review`)."""
    from qdsn.compute import review

    return [review.segments(line) for line in text.split("\n")]


@router.get("/jobs")
def jobs_page(request: Request, staff: Viewer) -> Response:
    node = _node(request)
    listed = sorted(jobs.visible(node, node.did), key=lambda j: j.created, reverse=True)
    return render(request, "enterprise/jobs.html", jobs=listed,
                  names={d: i.name for d, i in node.ledger.state.identities.items()})  # fmt: skip


@router.get("/jobs/{job_id}")
def job_page(request: Request, job_id: str, staff: Viewer, task: str = "") -> Response:
    """One job: who asked, under which agreement, for what; the model's manifest and every source file
    with hidden characters escaped and listed first — what the owner reads before approving."""
    from qdsn.compute import review

    node = _node(request)
    job = next((j for j in jobs.visible(node, node.did) if j.id == job_id), None)
    if job is None:
        raise NotFound(f"no job {job_id[:80]!r} on this node", "the jobs inbox lists them")
    files = []
    for path, data in jobs.source(node, job_id):
        text = data.decode("utf-8", errors="replace")
        files.append({"path": path, "lines": _lines(text), "findings": [str(f) for f in review.findings(text)]})
    files.sort(key=lambda f: (f["path"] != "manifest.json", f["path"]))
    return render(request, "enterprise/job.html", job=job, files=files, steps=APPROVE_STEPS, step_words=STEP_WORDS,
                  task=console_of(request).tasks.get(task[:64], staff.name) if task else None,
                  requester=(i.name if (i := node.ledger.state.identities.get(job.requester)) else "?"))  # fmt: skip


@router.post("/jobs/{job_id}/approve")
async def job_approve(request: Request, job_id: str, staff: Approver) -> Response:
    """Approve: the same as `qdsn jobs approve` — decided as a use, run in the sandbox, attested on the ledger —
    in a task of the node, whose progress and outcome the job's page shows."""
    from urllib.parse import quote

    from fastapi.responses import RedirectResponse

    from qdsn.errors import Conflict

    console = console_of(request)
    node = console.node
    with console.staff.attempt(staff, "job.approve", job_id):
        job = next((j for j in jobs.visible(node, node.did) if j.id == job_id), None)
        if job is None:
            raise NotFound(f"no job {job_id[:80]!r} on this node", "the jobs inbox lists them")
        if job.state != "pending":
            raise Conflict(f"job {job_id[:80]} is {job.state}", "only a pending job can be approved")

    def work(task: Any) -> dict[str, Any]:
        def step(name: str) -> None:
            task.stage, task.done, task.total = name, APPROVE_STEPS.index(name), len(APPROVE_STEPS)

        with console.staff.attempt(staff, "job.approve", job_id):
            ran = jobs.approve(node, job_id, progress=step)
        attested = _attest_entry(node, ran)
        console.staff.record(staff, "job.approve", job_id, outcome=ran.state, reason=ran.reason, entry=attested)
        task.done = len(APPROVE_STEPS)
        return {"state": ran.state, "reason": ran.reason, "entry": attested}

    task = console.tasks.start(f"approve {job_id[:80]}", staff.name, work)
    return RedirectResponse(f"{PREFIX}/jobs/{quote(job_id, safe='')}?task={task.id}", status_code=303)


@router.post("/jobs/{job_id}/deny")
async def job_deny(request: Request, job_id: str, staff: Approver) -> Response:
    from fastapi.responses import RedirectResponse

    console = console_of(request)
    form = await request.form()
    reason = str(form.get("reason") or "").strip()
    if not reason:
        from qdsn.errors import InvalidInput

        raise InvalidInput("say why the job is denied", "the certification body reads the reason")
    job = jobs.deny(console.node, job_id, reason[:1000])
    console.staff.record(staff, "job.deny", job_id, outcome=job.state, reason=reason[:1000])
    return RedirectResponse(f"{PREFIX}/jobs/{job_id}", status_code=303)


def _attest_entry(node: Node, job: jobs.Job) -> int | None:
    """The log position of a done job's `compute.attest`, found by its attestation."""
    attestation = (job.result or {}).get("attestation")
    if not attestation:
        return None
    for row in reversed(node.ledger.store.rows_of_type("compute.attest")):
        if row.submitter == node.did and tx.from_leaf(row.leaf).payload.get("attestation") == attestation:
            return row.seq
    return None


# -- uploads ----------------------------------------------------------------------------------------

MAX_BAD_ROWS = 200  # bad rows shown; the count says how many there were


@router.get("/upload")
def upload_page(request: Request, staff: Engineer) -> Response:
    node = _node(request)
    return render(request, "enterprise/upload.html", datasets=[d for d in datasets(node) if not d["shredded"]],
                  task=None)  # fmt: skip


@router.post("/upload")
async def upload(request: Request, staff: Engineer) -> Response:
    """A file of records for a dataset: kept aside (0600), checked whole — nothing is written while a row is
    bad, and the bad rows are shown — then sealed and anchored batch by batch in a task of the node, whose
    progress the page shows."""
    import os
    import tempfile
    from pathlib import Path

    from fastapi.responses import RedirectResponse
    from starlette.datastructures import UploadFile

    from qdsn.data.ingest import KIND_MODELS, Layout, ingest, validate
    from qdsn.errors import InvalidInput

    console = console_of(request)
    node = console.node
    form = await request.form()
    dataset, file, tz = str(form.get("dataset") or ""), form.get("file"), str(form.get("tz") or "").strip() or None
    _declared(node, dataset)
    if not isinstance(file, UploadFile) or not file.filename:
        raise InvalidInput("choose a file to upload", "CSV, JSON or JSON Lines records of the dataset's kind")
    suffix = Path(file.filename).suffix.lower()
    if suffix not in (".csv", ".json", ".jsonl", ".ndjson"):
        raise InvalidInput(f"{file.filename[:80]!r} is not a CSV, JSON or JSON Lines file")
    kind = node.vault.kind(dataset)
    if kind not in KIND_MODELS:
        raise InvalidInput(f"dataset {dataset!r} holds {kind}, which a file cannot bring")
    inbox = node.home.path / "uploads"
    inbox.mkdir(mode=0o700, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=inbox, suffix=suffix)  # 0600: plant data
    with os.fdopen(fd, "wb") as out:
        while chunk := await file.read(1 << 20):
            out.write(chunk)
    path = Path(name)
    units = {c["name"]: c["unit"] for c in node.ledger.declaration(dataset).get("characteristics", ())}
    layout = Layout(tz=tz)
    shown_name = file.filename[:120]

    def work(task: Any) -> dict[str, Any]:
        try:
            good, bad = validate(path, kind, layout=layout, characteristics=list(units))
            if bad:
                rows = [{"place": b.place(), "field": b.field, "reason": b.reason} for b in bad[:MAX_BAD_ROWS]]
                console.staff.record(staff, "dataset.upload", dataset, outcome="refused", file=shown_name, bad=len(bad))
                return {"file": shown_name, "written": False, "bad": rows, "bad_count": len(bad), "good": len(good)}
            task.total = len(good)

            def progress(done: int, total: int) -> None:
                task.done, task.total = done, total

            summary = ingest(path, node.vault, dataset, kind, node.anchor, progress=progress, lookup=node.find_anchor,
                             characteristics=list(units), layout=layout)  # fmt: skip
            entries = [node.ledger.store.entry(txid=txid).seq for _, txid in summary.batches]
            console.staff.record(staff, "dataset.upload", dataset, outcome="stored", file=shown_name,
                                 accepted=summary.accepted, already=summary.already,
                                 entries=sorted(entries))  # fmt: skip
            return {"file": shown_name, "written": True, "accepted": summary.accepted, "already": summary.already,
                    "batches": len(summary.batches), "entries": sorted(entries)}  # fmt: skip
        finally:
            path.unlink(missing_ok=True)

    task = console.tasks.start(f"upload {shown_name} to {dataset}", staff.name, work)
    return RedirectResponse(f"{PREFIX}/upload/{task.id}", status_code=303)


@router.get("/upload/{task_id}")
def upload_task(request: Request, task_id: str, staff: Engineer) -> Response:
    task = console_of(request).tasks.get(task_id, staff.name)
    if task is None:
        raise NotFound("no such upload of yours", "uploads are kept for an hour after they end")
    return render(request, "enterprise/upload.html", datasets=[], task=task)


# -- agreements, meters and invoices ----------------------------------------------------------------


@router.get("/agreements")
def agreements_page(request: Request, staff: Viewer) -> Response:
    from qdsn.policy.meter import invoice, usage

    node = _node(request)
    node.catch_up()
    ms = usage(node.ledger, node.did)
    by_agreement: dict[str | None, list[Any]] = {}
    for m in ms:
        by_agreement.setdefault(m.agreement, []).append(m)
    listed = node.policies.agreements(active=False)
    return render(request, "enterprise/agreements.html", agreements=listed, meters=by_agreement, invoice=invoice(ms),
                  names={d: i.name for d, i in node.ledger.state.identities.items()})  # fmt: skip


# -- certificates held, and presenting one ----------------------------------------------------------


def _wallet(node: Node) -> Any:
    from pathlib import Path

    folder = Path(node.home.path) / "certificates"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def kept(node: Node) -> dict[str, str]:
    """The certificates this node keeps (`certificates/` in its home), by number: each one held, as
    `qdsn cert fetch` checks it, when it was put there."""
    out = {}
    for f in sorted(_wallet(node).glob("*.sd-jwt")):
        out[f.stem] = f.read_text().strip()
    return out


@router.get("/certificates")
def certificates_page(request: Request, staff: Viewer) -> Response:
    node = _node(request)
    node.catch_up()
    keys = {}
    for key, text in kept(node).items():
        try:
            keys[holds(node, text)] = key
        except QDSNError:
            continue  # no longer holds (its issuer's record changed): not offered for presenting
    return render(request, "enterprise/certificates.html", certificates=held(node), kept_keys=keys)


@router.post("/certificates/keep")
async def certificate_keep(request: Request, staff: Engineer) -> Response:
    """Keep a certificate handed over as a file or text, once it holds: signed by its issuer's key on this
    node's ledger, recorded by that issuer's `credential.issue`, and issued to this node (as `cert fetch`)."""
    from fastapi.responses import RedirectResponse
    from starlette.datastructures import UploadFile

    from qdsn.crypto import sha256
    from qdsn.errors import InvalidInput

    console = console_of(request)
    node = console.node
    form = await request.form()
    text = str(form.get("certificate") or "").strip()
    file = form.get("file")
    if isinstance(file, UploadFile) and file.filename:
        text = (await file.read(256 * 1024)).decode("utf-8", errors="replace").strip()
    if not text:
        raise InvalidInput("give the certificate (SD-JWT) as a file or text")
    text = text.split("~")[0] + "~" + "~".join(p for p in text.split("~")[1:] if p and "." not in p) + "~"
    node.catch_up()
    number = holds(node, text)
    name = sha256(number.encode()).hex()[:32]  # the number is the issuer's choice: never a path
    path = _wallet(node) / f"{name}.sd-jwt"
    path.write_text(text + "\n")
    path.chmod(0o600)
    console.staff.record(staff, "certificate.keep", number)
    return RedirectResponse(f"{PREFIX}/certificates", status_code=303)


def holds(node: Node, sd_jwt: str) -> str:
    """The number of a certificate handed to this node, once it holds (see `held_claims`)."""
    return str(held_claims(node, sd_jwt)["certificate_number"])


def held_claims(node: Node, sd_jwt: str) -> dict[str, Any]:
    """The claims of a certificate of this node's, every disclosure applied, once it holds: signed by the key
    its issuer has on this node's ledger (never a key it names itself), recorded by that issuer's
    credential.issue, and issued to this node; otherwise the QDSNError that says which fails."""
    from qdsn.credentials import certificate, sdjwt
    from qdsn.errors import IntegrityError

    def member_key(iss: str, _header: dict[str, Any]) -> bytes:
        ident = node.ledger.state.identities.get(iss)
        if ident is None:
            raise NotFound(f"its issuer {iss[:80]} is no member on this node's replica of the ledger")
        return ident.key

    v = sdjwt.verify(sd_jwt, member_key, vct=certificate.VCT)
    certificate.recorded(v.claims, sdjwt.parse(sd_jwt).jwt, node.ledger)
    holder = (v.claims.get("enterprise") or {}).get("did")
    if holder != node.did:
        raise IntegrityError(f"it is issued to {str(holder)[:80]}, not to this node")
    return v.claims


def _certificate(node: Node, key: str) -> tuple[str, dict[str, Any]]:
    text = kept(node).get(key)
    if text is None:
        raise NotFound("no such certificate kept on this node", "keep it first on the certificates page")
    return text, held_claims(node, text)


@router.get("/certificates/{key}/present")
def present_page(request: Request, key: str, staff: Engineer) -> Response:
    from qdsn.credentials import certificate

    node = _node(request)
    _, claims = _certificate(node, key)
    return render(request, "enterprise/present.html", key=key, number=claims.get("certificate_number"),
                  paths=certificate.disclosable(claims), shown=None, qr=None, link=None)  # fmt: skip


@router.post("/certificates/{key}/present")
async def present(request: Request, key: str, staff: Engineer) -> Response:
    """A presentation showing only the claims chosen, bound to this node's key when the verifier's aud and
    nonce are given — as `qdsn cert present`; shown as text, as a QR code (SVG) when it fits one, and
    for download."""
    import segno

    from qdsn.credentials import sdjwt

    console = console_of(request)
    node = console.node
    form = await request.form()
    text, claims = _certificate(node, key)
    chosen = [str(p) for p in form.getlist("disclose")]
    aud, nonce = str(form.get("aud") or "").strip() or None, str(form.get("nonce") or "").strip() or None
    holder = node.home.key() if aud and nonce else None
    shown = sdjwt.present(text, chosen, holder, aud=aud, nonce=nonce)
    link = None
    try:
        code = segno.make(shown, error="l", micro=False)
    except segno.DataOverflowError:  # a presentation is kilobytes: the QR code carries where it is published
        base = (node.public_url or str(request.base_url)).rstrip("/")
        link = f"{base}{PREFIX}/presentations/{publish_presentation(node, shown)}"
        code = segno.make(link, error="m", micro=False)
    qr = code.svg_inline(scale=2 if link is None else 4, omitsize=True)
    qr_png = code.png_data_uri(scale=8)  # to print on a label or send: the verify page reads it back
    console.staff.record(staff, "certificate.present", str(claims.get("certificate_number")), disclosed=chosen,
                         aud=aud, bound=holder is not None)  # fmt: skip
    return render(request, "enterprise/present.html", key=key, number=claims.get("certificate_number"), paths=chosen,
                  shown=shown, qr=qr, qr_png=qr_png, link=link)  # fmt: skip


@router.post("/certificates/download")
async def present_download(request: Request, staff: Engineer) -> Response:
    """The presentation just made, as a file (the browser saves it)."""
    form = await request.form()
    shown = str(form.get("presentation") or "")
    return Response(shown + "\n", media_type="text/plain; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="presentation.txt"',
                             "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})  # fmt: skip


# -- presentations published for a QR code ----------------------------------------------------------

PUBLISHED = re.compile(r"[A-Za-z0-9_-]{22}")


def publish_presentation(node: Node, shown: str) -> str:
    """Keep a presentation in the home (`presented/`, 0600) under a random name, which only its QR code
    and whoever it is handed to know; returns the name."""
    import secrets

    folder = node.home.path / "presented"
    folder.mkdir(mode=0o700, exist_ok=True)
    name = secrets.token_urlsafe(16)
    path = folder / f"{name}.txt"
    path.write_text(shown + "\n")
    path.chmod(0o600)
    return name


@router.get("/presentations/{name}")
def presentation_published(request: Request, name: str) -> Response:
    """A presentation the holder published for its QR code (public: what the holder chose to show)."""
    path = _node(request).home.path / "presented" / f"{name}.txt"
    if not PUBLISHED.fullmatch(name) or not path.exists():
        raise NotFound("no such presentation here", "ask the holder for the presentation or its QR code again")
    return Response(path.read_text(), media_type="text/plain; charset=utf-8")


# -- the audit log ----------------------------------------------------------------------------------


@router.get("/audit")
def audit_page(request: Request, staff: Approver) -> Response:
    """The node's audit log: which staff account did what, and where it landed on the ledger."""
    from datetime import UTC, datetime

    lines = console_of(request).staff.trail(200)
    for line in lines:
        line["when"] = datetime.fromtimestamp(line["at"], UTC).isoformat(timespec="seconds")
    return render(request, "audit.html", lines=lines)


router.include_router(green.router)  # a plain router, its paths put under this router's prefix
NAV += green.NAV
