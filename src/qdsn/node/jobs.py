"""The code-request flow on the data owner's node: a certification body asks for a published model
to run on pinned, anchored records under one of its agreements; the owner reads the model and
approves or denies; an approved job runs in the sandbox and its attestation goes on the ledger.

Each request is decided by the agreement at the transfer point (the model's code hash and the
purpose among the constraints it must meet) and each run at the use point, counted on the ledger:
a job runs at most as often as its agreement allows. When the agreement's permission itself names
the code hash (`qdsn:modelHash`), the owner approved that code for that purpose when it made the
offer, and the job runs at once; otherwise it waits for the owner.

A job ends `done`, `denied` or `failed`, and a failed one says why: whatever goes wrong once it is
approved — the run, its attestation, putting either on the ledger — fails the job with its reason.
The approval that runs a job claims it in the database, so that one approval runs it; a job whose
claiming process is gone (the node stopped mid-run) is failed as interrupted when it is next read.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Column, MetaData, String, Table, Text, func, insert, select, update

from qdsn.compute import attest, package, sandbox
from qdsn.compute.job import Owner, Range, Result, execute
from qdsn.errors import Conflict, InvalidInput, NotFound, PermissionDenied, QDSNError
from qdsn.ledger import tx
from qdsn.node.node import Node
from qdsn.node.transfer import record_decision, refuse, uses
from qdsn.policy import Request, decide
from qdsn.policy.odrl import constraints

metadata = MetaData()
jobs = Table(
    "compute_jobs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("requester", String(512), nullable=False, index=True),
    Column("state", String(16), nullable=False),
    Column("body", Text, nullable=False),
    Column("archive", Text, nullable=False),  # base64 of the model's canonical archive
)
STATES = ("pending", "approved", "denied", "done", "failed")
INTERRUPTED = "interrupted: the node stopped while the job ran; ask for it again"
# What one requester may leave waiting for the owner's approval: pending jobs under one agreement, in
# all, and the bytes of their model archives (each up to package.MAX_ARCHIVE_BASE64).
MAX_PENDING_PER_AGREEMENT = 8
MAX_PENDING = 32
MAX_PENDING_BYTES = 64 << 20
RUN_LASTS = sandbox.DEFAULT.wall_seconds + 600  # seconds: a run's wall clock, then time to record it
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """A job request and what became of it."""

    id: str
    requester: str
    agreement: str
    model: str  # id@version
    code_hash: str
    ranges: list[dict[str, Any]]  # [{dataset, first, count}]
    parameters: dict[str, Any]
    purpose: str | None
    nonce: str
    state: str
    created: str
    reason: str | None = None
    result: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def for_requester(self) -> Job:
        """The job as its requester sees it: without the run's `log` (what the model wrote beside its
        output, and what did not fit), which is the owner's alone."""
        if not self.result or "log" not in self.result:
            return self
        return replace(self, result={k: v for k, v in self.result.items() if k != "log"})


def owner(node: Node) -> Owner:
    return Owner(node.ledger, node.vault, node.home.key(), node.did, node.home.path)


def request(node: Node, requester: str, message: dict[str, Any]) -> Job:
    """A certification body's job request: refused with why (and recorded), pending for the owner,
    or — when the agreement names this code hash — run at once."""
    archive = message.get("archive")
    if isinstance(archive, str) and len(archive) > package.MAX_ARCHIVE_BASE64:  # refused before it is decoded
        raise InvalidInput(f"the model archive is {len(archive):,} characters of base64, larger than the "
                           f"{package.MAX_ARCHIVE_BASE64:,} a model archive may be")  # fmt: skip
    try:
        blob = base64.b64decode(message["archive"], validate=True)
        ranges = [Range(r["dataset"], int(r["first"]), int(r["count"])) for r in message["datasets"]]
        agreement_id, nonce = message["agreementId"], message["nonce"]
        parameters = message.get("parameters", {})
    except (KeyError, TypeError, ValueError) as e:
        raise InvalidInput(f"a job request carries agreementId, the model archive (base64), datasets "
                           f"[{{dataset, first, count}}], parameters and a nonce: {e}") from None  # fmt: skip
    if not isinstance(nonce, str) or not 8 <= len(nonce) <= 200 or not isinstance(parameters, dict) or not ranges:
        raise InvalidInput("a job's nonce is 8–200 characters, its parameters an object, and it reads some records")
    # who may ask comes first, and is cheap: the agreement, its consumer and dataset; then the archive's
    # structure and its manifest (every schema keyword a manifest may use is linear-time); the code hash
    # published; and only then are the parameters checked against the model's schema
    code_hash = package.code_hash(blob)
    node.catch_up()
    a = node.policies.agreement(agreement_id)
    purpose = message.get("purpose")
    ask = Request("compute", requester, datetime.now(UTC), role=node.role_of(requester), purpose=purpose,
                  uses=uses(node, a.uid), started=a.finalized, model_hash=code_hash)  # fmt: skip
    if a.consumer != requester:
        refuse(node, a, ask, "transfer", f"agreement {a.uid} was made with another consumer")
    if a.ended:
        refuse(node, a, ask, "transfer", f"agreement {a.uid} has ended: {a.ended}")
    for r in ranges:
        if r.dataset != a.dataset:
            refuse(node, a, ask, "transfer", f"agreement {a.uid} covers dataset {a.dataset}, not {r.dataset}")
    m = package.manifest_of(package.unpack(blob))
    if message.get("model") not in (None, f"{m.id}@{m.version}") or message.get("codeHash") not in (None, code_hash):
        raise InvalidInput("the model named does not match the archive sent")
    published = node.ledger.state.models.get(f"{m.id}@{m.version}")
    if published is None or published.hash != code_hash:
        refuse(node, a, ask, "transfer", f"model {m.id} {m.version} with this code hash is not published on the ledger")
    held = node.ledger.state.suspension("model", code_hash)
    if held is not None:
        refuse(node, a, ask, "transfer", f"model {m.id} {m.version} is suspended by the regulator (regulator.action "
               f"at entry {held.since}: {held.reason})")  # fmt: skip
    held = node.ledger.state.suspension("member", requester)
    if held is not None:
        refuse(node, a, ask, "transfer", f"the requester {requester} is suspended by the regulator (regulator.action "
               f"at entry {held.since}: {held.reason})")  # fmt: skip
    package.check_parameters(m, parameters)  # refused now rather than failed once the owner approves
    store = _store(node)
    with node.deciding:  # the pending jobs counted and the new one stored in one step
        _room(store, requester, a.uid, len(message["archive"]))
        d = decide(a.policy, ask, point="transfer")
        record_decision(node, d.allowed, d.payload(a.dataset, ask, "transfer", agreement=a.uid))
        if not d.allowed:
            raise PermissionDenied(f"the agreement's policy denies this job: {d.reason}")
        job = Job(f"urn:uuid:{uuid.uuid4()}", requester, a.uid, f"{m.id}@{m.version}", code_hash,
                  [asdict(r) for r in ranges], parameters, message.get("purpose"), nonce, "pending",
                  datetime.now(UTC).isoformat())  # fmt: skip
        store.put(job, blob)
    if _preapproved(a.policy, code_hash):
        return approve(node, job.id).for_requester()
    return job


def _room(store: JobStore, requester: str, agreement: str, size: int) -> None:
    """Refuse a job request that would leave more pending jobs (or archive bytes) waiting for the owner
    than one requester may: its archives sit in the owner's database until the owner acts."""
    pending = store.pending(requester)
    mine = sum(1 for a, _ in pending if a == agreement)
    held = sum(n for _, n in pending)
    fix = "wait for the owner to approve or deny your pending jobs (GET /jobs lists them), then ask again"
    if mine >= MAX_PENDING_PER_AGREEMENT:
        raise Conflict(f"{mine} jobs of yours under agreement {agreement} wait for the owner: "
                       f"{MAX_PENDING_PER_AGREEMENT} is the most one agreement may have pending", fix)  # fmt: skip
    if len(pending) >= MAX_PENDING:
        raise Conflict(f"{len(pending)} jobs of yours wait for the owner: {MAX_PENDING} is the most one "
                       "requester may have pending", fix)  # fmt: skip
    if held + size > MAX_PENDING_BYTES:
        raise Conflict(f"your pending jobs hold {held:,} bytes of model archives (base64); with this one's {size:,} "
                       f"they would pass the {MAX_PENDING_BYTES:,} one requester may have waiting", fix)  # fmt: skip


def approve(node: Node, job_id: str, *, progress: Callable[[str], None] | None = None) -> Job:
    """The owner approves: the run is decided as a use (counted on the ledger), run in the sandbox,
    metered with its compute seconds, and an ok run's attestation recorded with `compute.attest`.
    Whatever fails once the job is claimed fails the job, with the reason, never leaving it approved.
    `progress` hears each step: "deciding", "running", "recording".

    `node.deciding` is held for the decision and for recording the use, not for the run: a claimed
    job whose use is not on the ledger yet counts as a use of its agreement (`JobStore.running`), so
    the runs that overlap never exceed what the agreement allows, and other decisions do not wait."""
    step = progress or (lambda _: None)
    store = _store(node)
    job, blob = store.get(job_id)
    if job.state != "pending":
        raise Conflict(f"job {job_id} is {job.state}", "only a pending job can be approved")
    a = node.policies.agreement(job.agreement)
    held = node.ledger.state.suspension("member", job.requester)
    if held is not None:  # suspended since it asked: its job does not run (a suspended model fails in the run)
        return store.end(job, "denied", f"the requester is suspended by the regulator (regulator.action at entry "
                                        f"{held.since}: {held.reason})")  # fmt: skip
    claimed = None
    try:
        step("deciding")
        with node.deciding:
            ask = Request("compute", job.requester, datetime.now(UTC), role=node.role_of(job.requester),
                          purpose=job.purpose, uses=uses(node, a.uid) + store.running(a.uid), started=a.finalized,
                          model_hash=job.code_hash)  # fmt: skip
            d = decide(a.policy, ask, point="use") if not a.ended else None
            if d is None or not d.allowed:
                why = f"agreement {a.uid} has ended: {a.ended}" if d is None else d.reason
                return store.end(job, "denied", why)
            claimed = job = store.claim(job)
        step("running")
        try:
            result = execute(owner(node), blob, job.parameters, [Range(**r) for r in job.ranges], job.nonce,
                             job=job.id, isolation=node.isolation)  # fmt: skip
        except Exception as e:  # the model did not run: no use to meter
            return store.end(job, "failed", f"the job could not run: {_because(e)}")
        step("recording")
        with node.deciding:  # the use on the ledger and the claim no longer counted: one step for other deciders
            try:
                records = sum(r["count"] for r in job.ranges)
                payload = d.payload(a.dataset, ask, "use", agreement=a.uid, records=records,
                                    compute_seconds=result.seconds)  # fmt: skip
                node.submit([node.home.sign("access.decision", payload)])
            except Exception as e:
                return store.end(job, "failed", f"the run could not be recorded on the ledger: {_because(e)}")
            job = store.metered(job)
        if result.status == "ok":
            try:
                record(node, result)
            except Exception as e:  # an attestation not on the ledger does not leave
                why = f"the run's attestation could not be recorded on the ledger: {_because(e)}"
                return store.end(job, "failed", why)
        return store.end(job, "done" if result.status == "ok" else "failed", result.reason or None, result.to_json())
    except BaseException:  # stopped mid-run (a signal, an exit, a failing database): never left approved
        if claimed is not None:
            with contextlib.suppress(Exception):
                store.end(claimed, "failed", INTERRUPTED)
        raise


def _because(e: Exception) -> str:
    """Why a run failed, for the owner and the requester: a QDSN error says it; anything else is
    named and logged in full for the operator."""
    if isinstance(e, QDSNError):
        return str(e)
    log.exception("a job failed")
    return f"the node failed ({type(e).__name__}); its operator finds the details in the node's log"


def deny(node: Node, job_id: str, reason: str) -> Job:
    """The owner refuses a pending job, saying why (the requester reads it)."""
    store = _store(node)
    job, _ = store.get(job_id)
    if job.state != "pending":
        raise Conflict(f"job {job_id} is {job.state}", "only a pending job can be denied")
    if not reason:
        raise InvalidInput("a denial says why")
    return store.end(job, "denied", reason)


def record(node: Node, result: Result) -> tx.Envelope:
    """The `compute.attest` transaction of an ok run, put on the ledger."""
    assert result.attestation is not None
    c = attest.verify(result.attestation, node.ledger, output=result.output)
    env = node.home.sign("compute.attest", {
        "job": result.job, "model": c["measurements"]["model"], "code_hash": c["measurements"]["code_hash"],
        "datasets": [i["dataset"] for i in c["inputs"]], "output_hash": c["output_hash"],
        "binding": c["binding"], "attestation": result.attestation,
    })  # fmt: skip
    node.submit([env])
    return env


def visible(node: Node, who: str) -> list[Job]:
    """The jobs `who` may see: all of them for the owner, its own for a requester (without run logs)."""
    if who == node.did:
        return _store(node).list()
    return [j.for_requester() for j in _store(node).list(who)]


def source(node: Node, job_id: str) -> list[tuple[str, bytes]]:
    """The files of a job's model, for the owner to read before approving."""
    return package.unpack(_store(node).get(job_id)[1])


def _preapproved(policy: dict[str, Any], code_hash: str) -> bool:
    return any(c["leftOperand"] == "qdsn:modelHash" and c["operator"] in ("eq", "isAnyOf")
               and code_hash in (c["rightOperand"] if c["operator"] == "isAnyOf" else [c["rightOperand"]])
               for _, c in constraints(policy))  # fmt: skip


class JobStore:
    """Jobs beside the node's offers and agreements. Each state change is a compare-and-set on the
    state it leaves, so that two processes never both move one job."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        _tables(engine)

    def put(self, job: Job, blob: bytes) -> None:
        with self.engine.begin() as c:
            c.execute(insert(jobs).values(id=job.id, requester=job.requester, state=job.state,
                                          body=orjson.dumps(job.to_json()).decode(),
                                          archive=base64.b64encode(blob).decode()))  # fmt: skip

    def pending(self, requester: str) -> list[tuple[str, int]]:
        """(agreement, archive size in base64) of each pending job of `requester`."""
        q = select(jobs.c.body, func.length(jobs.c.archive).label("size"))
        with self.engine.connect() as c:
            rows = c.execute(q.where(jobs.c.requester == requester, jobs.c.state == "pending")).all()
        return [(orjson.loads(r.body)["agreement"], int(r.size)) for r in rows]

    def get(self, job_id: str) -> tuple[Job, bytes]:
        with self.engine.connect() as c:
            row = c.execute(select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            raise NotFound(f"no job {job_id!r}", "see the jobs: qdsn jobs list")
        return self._settled(row.state, row.body), base64.b64decode(row.archive)

    def claim(self, job: Job) -> Job:
        """pending → approved, by this process (its run is interrupted if the process goes)."""
        return self._move(job, "pending", replace(job, state="approved"), runner=_runner())

    def metered(self, job: Job) -> Job:
        """An approved job whose use is on the ledger: no longer counted by `running`."""
        return self._move(job, "approved", job, runner=_runner(), metered=True)

    def running(self, agreement: str) -> int:
        """How many claimed jobs of `agreement` have run or are running without their use on the ledger yet
        (a job whose claiming process is gone is failed, and not counted)."""
        with self.engine.connect() as c:
            rows = c.execute(select(jobs.c.state, jobs.c.body).where(jobs.c.state == "approved")).all()
        n = 0
        for r in rows:
            doc = orjson.loads(r.body)
            if doc.get("agreement") == agreement and not doc.get("metered"):
                n += self._settled(r.state, r.body).state == "approved"
        return n

    def end(self, job: Job, state: str, reason: str | None = None, result: dict[str, Any] | None = None) -> Job:
        """A pending job denied, or an approved one done or failed."""
        return self._move(job, job.state, replace(job, state=state, reason=reason, result=result))

    def set(self, job: Job, state: str, reason: str | None = None, result: dict[str, Any] | None = None) -> Job:
        """Write a job's state whatever it was (an operator's repair); the flow moves jobs with `claim` and `end`."""
        new = replace(job, state=state, reason=reason, result=result)
        with self.engine.begin() as c:
            body = orjson.dumps(new.to_json()).decode()
            c.execute(update(jobs).where(jobs.c.id == job.id).values(state=state, body=body))
        return new

    def list(self, requester: str | None = None) -> list[Job]:
        q = select(jobs.c.state, jobs.c.body).order_by(jobs.c.id)
        if requester is not None:
            q = q.where(jobs.c.requester == requester)
        with self.engine.connect() as c:
            rows = c.execute(q).all()
        return sorted((self._settled(r.state, r.body) for r in rows), key=lambda j: j.created)

    def _move(self, job: Job, was: str, new: Job, **extra: Any) -> Job:
        body = orjson.dumps(new.to_json() | extra).decode()
        with self.engine.begin() as c:
            moved = c.execute(update(jobs).where(jobs.c.id == job.id, jobs.c.state == was)
                              .values(state=new.state, body=body)).rowcount  # fmt: skip
        if moved != 1:
            now, _ = self.get(job.id)
            raise Conflict(f"job {job.id} is {now.state}", f"only a {was} job can become {new.state}")
        return new

    def _settled(self, state: str, body: str) -> Job:
        """The job in `body`; an approved one whose runner is gone is failed as interrupted."""
        doc = orjson.loads(body)
        job = Job(**{f.name: doc[f.name] for f in fields(Job) if f.name in doc})
        if state != "approved" or _alive(doc.get("runner")):
            return job
        new = replace(job, state="failed", reason=INTERRUPTED)
        with self.engine.begin() as c:  # only if nothing moved it meanwhile
            c.execute(update(jobs).where(jobs.c.id == job.id, jobs.c.state == "approved", jobs.c.body == body)
                      .values(state="failed", body=orjson.dumps(new.to_json()).decode()))  # fmt: skip
            row = c.execute(select(jobs.c.state, jobs.c.body).where(jobs.c.id == job.id)).one()
        return job if row.body == body else self._settled(row.state, row.body)


def _runner() -> dict[str, Any]:
    """This process, so that a reader can tell whether it still lives: boot id, PID namespace, pid,
    start time, and when it claimed the job."""
    pid = os.getpid()
    return {"boot": _boot(), "pidns": _pidns(), "pid": pid, "started": _started(pid), "at": time.time()}


def _alive(runner: Any) -> bool:
    """Whether the process that claimed a job may still run it. A job claimed before runners were
    recorded has none, and cannot be running still; a runner in another PID namespace (another
    container on this host) cannot be looked up, and is taken to live for as long as a run may last."""
    if not isinstance(runner, dict) or runner.get("boot") != _boot():
        return False
    if runner.get("pidns") != _pidns() or not runner.get("started"):
        return time.time() - float(runner.get("at", 0)) < RUN_LASTS
    return runner["started"] == _started(int(runner["pid"]))


def _pidns() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


@cache
def _boot() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "-"


def _started(pid: int) -> str:
    """A process's start time in clock ticks since boot (field 22 of /proc/PID/stat), "" when it is
    gone; with the pid, it names one process even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


@cache
def _tables(engine: Any) -> None:
    """Create the table once per database: a `JobStore` is made for each request."""
    metadata.create_all(engine)


def _store(node: Node) -> JobStore:
    return JobStore(node.policies.engine)
