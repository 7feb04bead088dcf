"""A certification body's node: certificates issued from verified attestations, their status kept in a
status list and on the ledger, and continuous certification — the model run again on new data, a
failing attested run suspending the certificate and a passing one reinstating it.
"""

from __future__ import annotations

import base64
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import orjson
from sqlalchemy import Column, Integer, MetaData, String, Table, Text, insert, select

from qdsn.compute import attest, package
from qdsn.credentials import certificate, schemes, sdjwt
from qdsn.credentials.status import INVALID, SUSPENDED, VALID, StatusLists
from qdsn.crypto import sha256
from qdsn.crypto.encoding import b64url_decode
from qdsn.crypto.jose import public_jwk
from qdsn.errors import Conflict, IntegrityError, InvalidInput, NotFound, PermissionDenied, QDSNError, Unavailable
from qdsn.ledger import tx
from qdsn.ledger.ledger import Receipt
from qdsn.node import notify, requested
from qdsn.node.follow import Operator
from qdsn.node.node import Node

metadata = MetaData()
issued = Table(
    "issued_certificates",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("holder", String(512), nullable=False, index=True),
    Column("status_list", String(500), nullable=False),
    Column("sd_jwt", Text, nullable=False),
)
CODES = {"valid": VALID, "invalid": INVALID, "suspended": SUSPENDED}


@cache
def _tables(engine: Any) -> None:
    """Create this module's tables once per database, not on every call (run_due is in every round)."""
    metadata.create_all(engine)


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Subject:
    """What the certificate says beyond the evidence: who, where, what, to which standards."""

    number: str
    standards: list[str]
    product_category: str
    scope: str
    site: str
    credit_code: str | None = None
    valid_days: int = 365


def status_lists(node: Node) -> StatusLists:
    return StatusLists(node.policies.engine)


def attestation_entry(node: Node, job: str, attester: str | None = None, attestation: str | None = None) -> tx.Envelope:
    """The `compute.attest` entry of a job on this node's replica — recorded by `attester` and holding
    `attestation`, when given: job ids are chosen by each node, so another node's run may share one."""
    node.catch_up()
    for row in reversed(node.ledger.store.rows_of_type("compute.attest")):
        env = tx.from_leaf(row.leaf)
        if env.payload["job"] == job and attester in (None, env.submitter) and attestation in (
                None, env.payload["attestation"]):  # fmt: skip
            return env
    raise NotFound(f"no compute.attest for job {job} on the ledger", "wait for the owner's node to record it")


@dataclass(frozen=True)
class Issued:
    """A certificate issued: the SD-JWT for its holder and where its `credential.issue` landed on the log."""

    sd_jwt: str
    receipt: Receipt


def issue(node: Node, result: dict[str, Any], subject: Subject, status_list: str, *, note: str) -> str:
    """A certificate from a job's result (see `issue_recorded`). Returns the SD-JWT for the holder."""
    return issue_recorded(node, result, subject, status_list, note=note).sd_jwt


def issue_recorded(node: Node, result: dict[str, Any], subject: Subject, status_list: str, *, note: str) -> Issued:
    """A certificate from a job's result (its output and attestation): the attestation verified against
    this replica, the run recorded on the ledger and under the checkpoint `note`, a random status entry,
    `credential.issue` recorded. Returns the SD-JWT and the receipt of its `credential.issue`."""
    _check_result(result)
    node.catch_up()
    for scope in ("member", "issuer"):  # refused before a status entry is taken; the ledger refuses it too
        held = node.ledger.state.suspension(scope, node.did)
        if held is not None:
            raise PermissionDenied(f"this node's {'membership' if scope == 'member' else 'authority to issue'} is "
                                   f"suspended by the regulator (regulator.action at entry {held.since}: "
                                   f"{held.reason})", "no certificate can be issued until the regulator reinstates "
                                   "it")  # fmt: skip
    claims_a = attest.verify(result["attestation"], node.ledger, output=result["output"])
    if not result["output"].get("pass"):
        raise InvalidInput("the attested run did not pass: there is nothing to certify")
    env = attestation_entry(node, claims_a["job"], claims_a["iss"], result["attestation"])
    _unused(node, tx.txid(env.leaf()), claims_a["job"])
    holder = node.ledger.state.identities[claims_a["iss"]]
    owner = next((c.issuer for c in node.ledger.state.credentials.values() if c.status_list == status_list), None)
    if owner not in (None, node.did):
        raise Conflict(f"status list {status_list} belongs to {owner} on the ledger", "use a status list of your own")
    model = claims_a["measurements"]["model"].split("@")[0]
    seq, (cp, _) = node.ledger.store.entry(txid=tx.txid(env.leaf())).seq, node.ledger.open_checkpoint(note)
    if seq >= cp.size:
        raise NotFound(f"the run's attestation (entry {seq}) is not yet under a checkpoint this node cosigned (the "
                       f"latest covers {cp.size} entries)", "wait for this node's next witness round (qdsn node "
                       "start runs them), then issue again")  # fmt: skip
    ev = certificate.evidence(node.ledger, [tx.txid(env.leaf())], note, node.ledger.log_key, [result["output"]])
    for item in ev["attestations"]:  # the checks every verifier makes, made before anything is allocated
        try:
            claims = {"enterprise": {"did": holder.did}, "scheme": model}
            certificate.judged(item["output"], certificate.backs(item, claims, node.ledger), claims)
        except IntegrityError as e:
            raise InvalidInput(f"the attested run cannot back this certificate: {e.what}") from None
    lists = status_lists(node)
    if status_list not in lists.uris():  # made once the run is known to back a certificate
        lists.create(status_list)
    index = lists.allocate(status_list, subject.number)
    now = datetime.now(UTC)
    until = now + timedelta(days=subject.valid_days)
    indicators = certificate.indicators(result["output"])
    enterprise = {"name": holder.name, "did": holder.did} | ({"credit_code": subject.credit_code}
                                                             if subject.credit_code else {})  # fmt: skip
    claims = {
        "iss": node.did, "iat": int(now.timestamp()), "exp": int(until.timestamp()),
        "certificate_number": subject.number, "scheme": model, "standards": subject.standards,
        "enterprise": enterprise, "site": subject.site, "product_category": subject.product_category,
        "scope": subject.scope, "indicators": indicators,
        "volumes": {"records": sum(i["count"] for i in claims_a["inputs"])},
        "valid_from": now.isoformat(), "valid_until": until.isoformat(),
        "evidence": ev, "status": {"status_list": {"idx": index, "uri": status_list}},
    }  # fmt: skip
    try:
        sd = certificate.issue(claims, node.home.key(), public_jwk(holder.key), kid=node.did)
        issuer_jwt = sdjwt.parse(sd).jwt
        (receipt,) = node.submit([node.home.sign("credential.issue", {
            "credential": subject.number, "vct": certificate.VCT, "subject": holder.did,
            "hash": sha256(issuer_jwt.encode()).hex(), "status_list": status_list, "index": index,
            "attestations": [tx.txid(env.leaf())],
        })])  # fmt: skip
    except Unavailable:
        raise  # the issue may have been written: its status entry stays taken
    except Exception:
        lists.release(status_list, index)  # refused: nothing on the ledger names the entry
        raise
    _tables(node.policies.engine)
    with node.policies.engine.begin() as c:
        c.execute(insert(issued).values(id=subject.number, holder=holder.did, status_list=status_list, sd_jwt=sd))
    return Issued(sd, receipt)


def _unused(node: Node, attestation: str, job: str) -> None:
    """Refuse a run that already backs one of this issuer's certificates: one run, one certificate."""
    for row in node.ledger.store.rows_of_type("credential.issue"):
        p = tx.from_leaf(row.leaf).payload
        if row.submitter == node.did and attestation in p["attestations"]:
            raise Conflict(
                f"the run of job {job} already backs certificate {p['credential']} (entry {row.seq})",
                f"see it with `qdsn cert show {p['credential']}`; a new certificate needs a new run",
            )


def set_status(node: Node, number: str, status: str, reason: str, *, attestation: str | None = None) -> Receipt:
    """Suspend, reinstate or revoke a certificate: the status list entry and `credential.status` (its receipt)."""
    if status not in CODES:
        raise InvalidInput(f"a certificate's status is valid, suspended or invalid (revoked), not {status!r}")
    node.catch_up()
    c = node.ledger.state.credentials.get(number)
    if c is None or c.issuer != node.did:
        raise NotFound(f"this node issued no certificate {number!r}")
    if c.status == status:
        raise Conflict(f"{number} is already {status}")
    payload = {"credential": number, "status": status, "reason": reason} | (
        {"attestation": attestation} if attestation else {})  # fmt: skip
    (receipt,) = node.submit([node.home.sign("credential.status", payload)])  # the ledger refuses what may not change
    status_lists(node).set(c.status_list, c.index, CODES[status])
    return receipt


def held_by(node: Node, holder: str) -> list[str]:
    """The certificates this node issued to `holder`, as SD-JWTs."""
    _tables(node.policies.engine)
    with node.policies.engine.connect() as c:
        return [r.sd_jwt for r in c.execute(select(issued.c.sd_jwt).where(issued.c.holder == holder))]


def recheck(node: Node, number: str, result: dict[str, Any], asked: dict[str, Any] | None = None, *,
            url: str | None = None) -> str:  # fmt: skip
    """Continuous certification: judge a new attested run of the certificate's model by its scheme's
    criteria. A failing run suspends a valid certificate and raises a quality notification to its holder
    (delivered to `url`, the holder's API, when known); a passing run reinstates a suspended one;
    either way the `compute.attest` that caused it is named on the ledger. A run of another model
    judges nothing. `asked`, the job this node's round asked for (`requested`), binds the run to it: its
    nonce, job, code, parameters and records. Returns the status afterwards."""
    _check_result(result)
    node.catch_up()
    for scope in ("member", "issuer"):  # refused before a status entry is taken; the ledger refuses it too
        held = node.ledger.state.suspension(scope, node.did)
        if held is not None:
            raise PermissionDenied(f"this node's {'membership' if scope == 'member' else 'authority to issue'} is "
                                   f"suspended by the regulator (regulator.action at entry {held.since}: "
                                   f"{held.reason})", "no certificate can be issued until the regulator reinstates "
                                   "it")  # fmt: skip
    claims_a = attest.verify(result["attestation"], node.ledger, output=result["output"],
                             nonce=asked["nonce"] if asked else None)  # fmt: skip
    if asked is not None:
        wrong = requested.mismatches(asked, claims_a)
        if claims_a.get("job") != asked["job"]:
            wrong.append(f"job: it is of job {str(claims_a.get('job'))[:80]}")
        if wrong:
            raise IntegrityError(f"the run is not the one this node asked for: {'; '.join(wrong)}")
    c = node.ledger.state.credentials.get(number)
    if c is None or c.issuer != node.did:
        raise NotFound(f"this node issued no certificate {number!r}")
    if claims_a["iss"] != c.subject:
        raise IntegrityError(f"the run was attested by {claims_a['iss']}, not by the certificate's holder")
    scheme = _scheme_of(node, number)
    model = claims_a["measurements"]["model"].split("@")[0]
    if model != schemes.model_of(scheme):
        raise InvalidInput(f"the run is of model {model!r}; certificate {number} of scheme {scheme!r} is judged by "
                           f"{schemes.model_of(scheme)!r} runs")  # fmt: skip
    cause = tx.txid(attestation_entry(node, claims_a["job"], claims_a["iss"], result["attestation"]).leaf())
    short = schemes.shortfalls(scheme, result["output"])
    passed = not short  # a laxer threshold's "pass" does not reinstate
    if not passed and c.status == "valid":
        why = f"a new attested run failed (job {claims_a['job']})"
        set_status(node, number, "suspended", why, attestation=cause)
        notify.on_suspension(node, number, why, cause, claims_a["inputs"], short, url=url)
        return "suspended"
    if passed and c.status == "suspended":
        set_status(node, number, "valid", f"a new attested run passed (job {claims_a['job']})", attestation=cause)
        return "valid"
    return c.status


def _check_result(result: Any) -> None:
    if not (isinstance(result, dict) and isinstance(result.get("attestation"), str)
            and isinstance(result.get("output"), dict)):  # fmt: skip
        raise InvalidInput('a job\'s result is {"output": {…}, "attestation": "<JWS>"}', "take it from GET /jobs/ID")


def _scheme_of(node: Node, number: str) -> str:
    """The scheme of a certificate this node issued, from the certificate as issued."""
    _tables(node.policies.engine)
    with node.policies.engine.connect() as c:
        row = c.execute(select(issued.c.sd_jwt).where(issued.c.id == number)).first()
    if row is None:
        raise NotFound(f"this node keeps no copy of certificate {number!r}")
    return str(orjson.loads(b64url_decode(sdjwt.parse(row.sd_jwt).jwt.split(".")[1])).get("scheme"))


# -- continuous certification on a schedule --------------------------------------------------------

schedules = Table(
    "recheck_schedules",
    metadata,
    Column("id", String(200), primary_key=True),  # the certificate number
    Column("maker", String(500), nullable=False),  # the holder's node API
    Column("agreement", String(256), nullable=False),
    Column("archive", Text, nullable=False),  # base64 of the model's canonical archive
    Column("parameters", Text, nullable=False),
    Column("every", Integer, nullable=False),  # seconds
    Column("due", Integer, nullable=False),  # unix time of the next run
    Column("pending", String(200), nullable=True),  # a job waiting for the owner's approval
)


def schedule(node: Node, number: str, maker: str, agreement: str, archive: bytes, parameters: dict[str, Any],
             every: int) -> None:  # fmt: skip
    """Run the certificate's model again every `every` seconds on whatever was anchored since."""
    if every < 60:
        raise InvalidInput("a recheck runs at most once a minute")
    _tables(node.policies.engine)
    row = {"id": number, "maker": maker, "agreement": agreement, "archive": base64.b64encode(archive).decode(),
           "parameters": orjson.dumps(parameters).decode(), "every": every, "due": int(time.time())}  # fmt: skip
    with node.policies.engine.begin() as c:
        c.execute(schedules.delete().where(schedules.c.id == number))
        c.execute(insert(schedules).values(**row))


def rerun(node: Node, number: str, maker: Operator, agreement: str, archive: bytes, parameters: dict[str, Any],
          pending: str | None = None, url: str | None = None) -> tuple[str, str | None]:  # fmt: skip
    """One round of continuous certification: ask the holder's node to run the model on the records
    anchored since the last attested run (the normal job flow) and judge the result with `recheck`.
    Returns (status, the job still pending the owner's approval, if any)."""
    node.catch_up()
    kept = f"certificate:{number}"  # the register of requests keeps each round's job and nonce under it
    if pending is not None:
        asked = requested.find(node.home.path, pending, kept)
        job = maker.call("GET", f"/jobs/{pending}")
    else:
        dataset, first = _next_range(node, number)
        anchored = node.ledger.state.datasets[dataset].anchored
        if anchored <= first:
            return node.ledger.state.credentials[number].status, None  # nothing new to judge
        nonce, span = secrets.token_urlsafe(16), {"dataset": dataset, "first": first, "count": anchored - first}
        job = maker.call("POST", "/jobs", {
            "agreementId": agreement, "archive": base64.b64encode(archive).decode(), "parameters": parameters,
            "nonce": nonce, "purpose": "certification", "datasets": [span],
        })  # fmt: skip
        if not isinstance(job, dict) or not isinstance(job.get("id"), str):
            raise IntegrityError("the holder's node answered the job with no job id")
        asked = requested.record(node.home.path, kept, job["id"], nonce, code_hash=package.code_hash(archive),
                                 parameters=parameters, **span)  # fmt: skip
    if not isinstance(job, dict) or job.get("id") != asked["job"]:
        raise IntegrityError(f"the holder's node answered another job than {asked['job']}")
    if job["state"] == "pending":  # type: ignore[index]
        return node.ledger.state.credentials[number].status, job["id"]  # type: ignore[index]
    if job["state"] != "done":  # type: ignore[index]
        return node.ledger.state.credentials[number].status, None
    return recheck(node, number, job["result"], asked, url=url), None  # type: ignore[index]


def run_due(node: Node, links: Callable[[str], Operator], now: int | None = None) -> list[tuple[str, str]]:
    """The rechecks whose time has come (the node's rounds call this); returns (certificate, status)."""
    _tables(node.policies.engine)
    t = int(time.time()) if now is None else now
    with node.policies.engine.connect() as c:
        due = c.execute(select(schedules).where(schedules.c.due <= t)).all()
    out = []
    for r in due:
        try:
            status, pending = rerun(node, r.id, links(r.maker), r.agreement, base64.b64decode(r.archive),
                                    orjson.loads(r.parameters), r.pending, r.maker)  # fmt: skip
        except QDSNError as e:  # the holder's answer judges nothing; the next round asks again
            log.warning("continuous certification of %s: %s", r.id, e)
            status, pending = node.ledger.state.credentials[r.id].status, None
        with node.policies.engine.begin() as c:
            c.execute(schedules.update().where(schedules.c.id == r.id).values(due=t + r.every, pending=pending))
        out.append((r.id, status))
    return out


def _next_range(node: Node, number: str) -> tuple[str, int]:
    """The dataset the certificate's evidence reads, and the first record after its latest attested run."""
    rows = node.ledger.store.rows_of_type("credential.issue") + node.ledger.store.rows_of_type("credential.status")
    latest = None
    for row in sorted(rows, key=lambda r: r.seq):
        p = tx.from_leaf(row.leaf).payload
        if p["credential"] == number:
            latest = (p.get("attestations") or [p.get("attestation")])[-1] or latest
    if latest is None:
        raise NotFound(f"no attested run behind certificate {number}")
    entry = node.ledger.store.entry(txid=latest)
    claims = attest.verify(tx.from_leaf(entry.leaf).payload["attestation"], node.ledger, at=entry.seq)
    (i,) = claims["inputs"]
    return i["dataset"], i["first"] + i["count"]


def register(node: Node) -> list[dict[str, Any]]:
    """The certificates this node issued, oldest first: holder, status on the ledger, validity, status
    entry, and the continuous-certification schedule (next run, interval, a job pending approval)."""
    _tables(node.policies.engine)
    with node.policies.engine.connect() as c:
        kept = {r.id: r for r in c.execute(select(issued))}
        planned = {r.id: r for r in c.execute(select(schedules))}
    out = []
    for cred in node.ledger.state.credentials.values():
        if cred.issuer != node.did:
            continue
        holder = node.ledger.state.identities.get(cred.subject)
        row = kept.get(cred.id)
        claims = orjson.loads(b64url_decode(sdjwt.parse(row.sd_jwt).jwt.split(".")[1])) if row else {}
        plan = planned.get(cred.id)
        out.append({
            "certificate": cred.id, "holder": cred.subject, "holder_name": holder.name if holder else None,
            "status": cred.status, "scheme": claims.get("scheme"), "valid_until": claims.get("valid_until"),
            "status_entry": f"{cred.status_list}#{cred.index}",
            "next_run": datetime.fromtimestamp(plan.due, UTC).isoformat() if plan else None,
            "every_seconds": plan.every if plan else None, "pending_job": plan.pending if plan else None,
        })  # fmt: skip
    return out
