"""The signed transaction envelope and the registry of transaction types.

A leaf is the RFC 8785 canonical JSON of `{type, payload, submitter, nonce, created, signature}`;
the signature is Ed25519 by the submitter's current key over the canonical JSON of the same object
without `signature`; a transaction's id is SHA-256 of its leaf.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_serializer, model_validator

from qdsn.clock import Clock, format_time, parse_time, system_clock
from qdsn.crypto import SigningKey, canonical_json, sha256
from qdsn.crypto.canonical import is_plain, plain_json
from qdsn.crypto.encoding import b64url_encode
from qdsn.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from qdsn.identity import organization

ROLES = ("enterprise", "certifier", "regulator")
Role = Literal["enterprise", "certifier", "regulator"]
ROLE_WORDS = {"manufacturer": "enterprise"}  # the word people use for a role


def is_did(value: object) -> bool:
    """Whether `value` is a DID of the methods QDSN uses (did:key, did:web)."""
    return isinstance(value, str) and len(value) <= 512 and _DID.fullmatch(value) is not None


def role_named(word: str) -> str:
    """The role a user's word names: a role, or `manufacturer` for enterprise."""
    role = ROLE_WORDS.get(word, word)
    if role not in ROLES:
        raise InvalidInput(f"role {word!r} is not one of {', '.join(ROLES)} (or manufacturer, for enterprise)")
    return role


_NONCE = re.compile(r"^[0-9a-f]{32}$")
_SIG = re.compile(r"^[A-Za-z0-9_-]{85}[AQgw]$")  # 64 bytes: the last character carries 2 zero bits
_DID = re.compile(r"^did:(key|web):[A-Za-z0-9._%:\-]+$")
_FIELDS = ("created", "nonce", "payload", "signature", "submitter", "type")
MAX_LEAF = 64 * 1024


class Payload(BaseModel):
    """Base of every payload schema: strict types, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


@dataclass(frozen=True)
class TxType:
    """A transaction type: its payload schema and who may submit it."""

    name: str
    schema: type[Payload]
    roles: frozenset[str]
    self_only: bool = False  # the payload's `did` must be the submitter
    doc: str = ""


REGISTRY: dict[str, TxType] = {}


def register(
    name: str, roles: tuple[str, ...] = ROLES, *, self_only: bool = False
) -> Callable[[type[Payload]], type[Payload]]:
    """Class decorator: add a payload schema to the registry under `name`."""

    def add(schema: type[Payload]) -> type[Payload]:
        if name in REGISTRY:
            raise ValueError(f"transaction type {name} registered twice")
        REGISTRY[name] = TxType(name, schema, frozenset(roles), self_only, (schema.__doc__ or "").strip())
        return schema

    return add


Multikey = Field(pattern=r"^z6Mk[1-9A-HJ-NP-Za-km-z]{40,50}$")
Did = Field(pattern=_DID.pattern, max_length=512)
Hex32 = Field(pattern=r"^[0-9a-f]{64}$")


@register("identity.register", ("regulator",))
class IdentityRegister(Payload):
    """Admit a participant: its DID, role, display name and Ed25519 key (Multikey), and what the regulator
    records of the organisation: unified social credit code, GB/T 2260 region, GB/T 4754 industry, address
    (checked in form here, the same on every node; see `identity.organization`)."""

    did: str = Did
    role: Role
    name: str = Field(min_length=1, max_length=200)
    key: str = Multikey
    credit_code: str | None = None
    region: str | None = None
    industry: str | None = None
    address: str | None = Field(default=None, min_length=1, max_length=500)

    @field_validator("credit_code")
    @classmethod
    def _credit_code(cls, v: str | None) -> str | None:
        return v if v is None else _formed(organization.credit_code_form, v)

    @field_validator("region")
    @classmethod
    def _region(cls, v: str | None) -> str | None:
        return v if v is None else _formed(organization.region_form, v)

    @field_validator("industry")
    @classmethod
    def _industry(cls, v: str | None) -> str | None:
        return v if v is None else _formed(organization.industry_form, v)


def _formed(check: Callable[[str], str], value: str) -> str:
    """`check(value)`, its refusal as the ValueError pydantic reports."""
    try:
        return check(value)
    except InvalidInput as e:
        raise ValueError(e.what) from None


@register("identity.rotate_key", self_only=True)
class IdentityRotateKey(Payload):
    """Replace the submitter's key; `proof` is the new key's signature over
    canonical {did, previous_key, new_key}, so nobody rotates to a key they do not hold."""

    did: str = Did
    previous_key: str = Multikey
    new_key: str = Multikey
    proof: str = Field(pattern=r"^[A-Za-z0-9_-]{86}$")


@register("identity.endpoint", ("regulator",))
class IdentityEndpoint(Payload):
    """The regulator records where a participant's node serves its API (an https URL, scheme://host[:port]
    and an optional path): the one place other nodes send to on its behalf (PACT answers and
    publications), so no participant can point another's node at a host of its choosing. The latest
    entry for a DID is in force."""

    did: str = Did
    url: str = Field(pattern=r"^https://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~\-/]*)?$", max_length=500)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if "/../" in v + "/" or "/./" in v + "/" or "//" in v.removeprefix("https://"):
            raise ValueError("the node URL's path has empty, . or .. segments")
        return v


@register("checkpoint.cosign")
class CheckpointCosign(Payload):
    """A witness's tlog-cosignature of the log's checkpoint (origin, size, root) at `timestamp`,
    made with the submitter's identity key; recorded so anyone can count cosigners."""

    origin: str = Field(min_length=1, max_length=255)
    size: int = Field(ge=1, lt=2**53)
    root: str = Hex32
    timestamp: int = Field(ge=0, lt=2**53)
    signature: str = Field(pattern=r"^[A-Za-z0-9_-]{86}$")


class Claim(Payload):
    """A participant's signed statement that the log of `origin` had `root` at `size`: its
    tlog-cosignature at `timestamp`, as in `checkpoint.cosign`, or without a timestamp the log
    signer's own Ed25519 signature over the checkpoint text."""

    signer: str = Did
    root: str = Hex32
    timestamp: int | None = Field(default=None, ge=0, lt=2**53)
    signature: str = Field(pattern=r"^[A-Za-z0-9_-]{86}$")


@register("alert.raise")
class AlertRaise(Payload):
    """Evidence of a split view: two participants' signed claims of different roots for the same
    origin and size. Anyone can check it; nobody can raise one without both signatures."""

    kind: Literal["split-view"]
    origin: str = Field(min_length=1, max_length=255)
    size: int = Field(ge=1, lt=2**53)
    claims: list[Claim] = Field(min_length=2, max_length=2)


DatasetId = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")
DATASET_KINDS = ("measurements", "inspections", "nonconformances", "corrective_actions", "compliance")


class CharacteristicSpec(Payload):
    """A characteristic as declared on the ledger: its name, unit and limits, never its data."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)

    name: str = Field(min_length=1, max_length=200)
    unit: str = Field(min_length=1, max_length=20)
    lsl: float | None = None
    usl: float | None = None
    target: float | None = None
    critical: bool = False


@register("dataset.declare", ("enterprise",))
class DatasetDeclare(Payload):
    """The owner declares a dataset it keeps in its own vault: id, title, kind, characteristics.
    Never any of the data."""

    dataset: str = DatasetId
    title: str = Field(min_length=1, max_length=200)
    kind: Literal[
        "measurements", "inspections", "nonconformances", "corrective_actions", "compliance", "activity", "footprints"
    ]
    characteristics: list[CharacteristicSpec] = Field(default_factory=list)


@register("dataset.anchor", ("enterprise",))
class DatasetAnchor(Payload):
    """The owner commits to a batch of records: sequence numbers [first, first + count) and the
    RFC 9162 root over their salted leaves. Batches are contiguous, so none can be left out later."""

    dataset: str = DatasetId
    first: int = Field(ge=0, lt=2**53)
    count: int = Field(ge=1, le=1_000_000)
    root: str = Hex32


@register("dataset.shred", ("enterprise",))
class DatasetShred(Payload):
    """The owner has destroyed the dataset's key: its records can no longer be read by anyone."""

    dataset: str = DatasetId


@register("device.register", ("enterprise",))
class DeviceRegister(Payload):
    """The owner registers a device (a sensor, gauge or gateway) and the Ed25519 key it signs its
    readings with, so their provenance reaches back to the instrument."""

    device: str = DatasetId
    kind: Literal["sensor", "gateway", "gauge", "tester"]
    key: str = Multikey


Action = Literal["use", "compute", "aggregate", "read"]


@register("policy.set", ("enterprise",))
class PolicySet(Payload):
    """The owner puts a usage policy on its dataset: the ODRL offer's uid and the SHA-256 of its RFC 8785
    form. The offer itself is served by the owner's node; agreements name it by this hash."""

    dataset: str = DatasetId
    offer: str = Field(min_length=1, max_length=256)
    hash: str = Hex32


@register("access.decision", ("enterprise",))
class AccessDecision(Payload):
    """The owner's node decided a request against its policy: who asked to do what with which dataset,
    at which point (catalog, negotiation, transfer, use), under which agreement; allowed or not, by
    which rule and why; and, for a use, what it touched and cost — the meters are sums of these."""

    dataset: str = DatasetId
    requester: str = Did
    action: Action
    point: Literal["catalog", "negotiation", "transfer", "use"]
    allowed: bool
    rule: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=1000)
    agreement: str | None = Field(default=None, min_length=1, max_length=256)
    purpose: str | None = Field(default=None, min_length=1, max_length=200)
    records: int = Field(default=0, ge=0, lt=2**53)
    compute_seconds: float = Field(default=0.0, ge=0, lt=1e9)
    price: float = Field(default=0.0, ge=0, lt=1e12)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    count: int = Field(default=1, ge=1, lt=2**53)  # denials alike this entry stands for (repeats collapsed)

    @model_validator(mode="after")
    def _one_if_allowed(self) -> AccessDecision:
        if self.allowed and self.count != 1:
            raise ValueError("an allowed decision is recorded one by one (count 1)")
        return self


@register("model.publish", ("certifier",))
class ModelPublish(Payload):
    """A certification body publishes a certification model: its id, version, the SHA-256 of its
    canonical archive and its manifest (what it reads, takes and may export). Owners approve jobs by
    this hash; attestations name it."""

    model: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    hash: str = Hex32
    manifest: dict[str, Any]


@register("compute.attest", ("enterprise",))
class ComputeAttest(Payload):
    """The owner's node ran a published model on its own anchored data: the attestation (an EAT-shaped
    JWS, never the data), with the fields a verifier looks up by — job, model, code hash, datasets,
    the output hash and the binding."""

    job: str = Field(min_length=1, max_length=200)
    model: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}@\d+\.\d+\.\d+$")
    code_hash: str = Hex32
    datasets: list[str] = Field(min_length=1, max_length=64)
    output_hash: str = Hex32
    binding: str = Field(pattern=r"^[A-Za-z0-9_-]{86}$")
    attestation: str = Field(min_length=1, max_length=48_000)


CredentialStatus = Literal["valid", "invalid", "suspended"]  # the status list's 0, 1 and 2


STATUS_LIST_URL = re.compile(
    r"(?:https://(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])"
    r"|http://(?:127(?:\.[0-9]{1,3}){3}|localhost|\[::1\]))(?::[0-9]{1,5})?/[A-Za-z0-9._~\-/]*"
)


@register("credential.issue", ("certifier",))
class CredentialIssue(Payload):
    """A certification body issued a certificate: its id, type, subject, the SHA-256 of the issued
    SD-JWT's issuer-signed part, where its status lives (list URI and index) and the attestations it
    rests on — never its claims."""

    credential: str = Field(min_length=1, max_length=200)
    vct: str = Field(min_length=1, max_length=300)
    subject: str = Did
    hash: str = Hex32
    status_list: str = Field(min_length=1, max_length=500)
    index: int = Field(ge=0, lt=2**31)
    attestations: list[str] = Field(default_factory=list, max_length=64)

    @field_validator("status_list")
    @classmethod
    def _status_list(cls, v: str) -> str:
        # Every node fetches this URI (from the issuer's recorded node only, `net.outbound`): so an https URL
        # of a host and a path, nothing a URL parser could read two ways; plain http only on loopback, for
        # a consortium tried on one machine
        if STATUS_LIST_URL.fullmatch(v) is None or "/../" in v + "/" or "/./" in v + "/":
            raise ValueError(
                "the status list is an https URL (https://host[:port]/path: no user, query, fragment "
                "or dot segment), served by the certifier's node; plain http only on loopback"
            )
        return v


@register("credential.status", ("certifier",))
class CredentialStatusChange(Payload):
    """The issuer changed a certificate's status (valid, invalid = revoked, suspended), saying why —
    with the `compute.attest` transaction that caused it, when a model run did."""

    credential: str = Field(min_length=1, max_length=200)
    status: CredentialStatus
    reason: str = Field(min_length=1, max_length=1000)
    attestation: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


VDAF_PARAMS: dict[str, tuple[str, ...]] = {
    "Prio3Count": (),
    "Prio3Sum": ("max_measurement",),
    "Prio3SumVec": ("length", "max_measurement", "chunk_length"),
    "Prio3Histogram": ("length", "chunk_length"),
    "Prio3MultihotCountVec": ("length", "max_weight", "chunk_length"),
}
TaskId = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")


class T2Encoding(Payload):
    """What a task's Prio3SumVec vector means when it carries Hotelling T²'s sufficient statistics
    (`privacy/federated.py`): the variables, the grid each reporter quantises onto and the base-2^32
    digits each integer sum is split into."""

    kind: Literal["t2-sums"]
    names: list[str] = Field(min_length=1, max_length=64)
    low: list[float] = Field(min_length=1, max_length=64)
    high: list[float] = Field(min_length=1, max_length=64)
    bits: int = Field(ge=1, le=48)  # quality.multivariate.MAX_BITS
    limbs: int = Field(ge=1, le=4)


@register("aggregate.task", ("regulator",))
class AggregateTaskSpec(Payload):
    """A private-aggregation task (DAP-shaped): what each reporter measures (a Prio3 VDAF and its
    parameters), who aggregates (leader, helper, with their API URLs) and collects, who may report (a
    list of DIDs and/or members' attributes), the period, the minimum batch, and the privacy budget:
    each collection spends `epsilon` of `budget` (discrete Laplace noise from each aggregator)."""

    task: str = TaskId
    title: str = Field(min_length=1, max_length=200)
    vdaf: Literal["Prio3Count", "Prio3Sum", "Prio3SumVec", "Prio3Histogram", "Prio3MultihotCountVec"]
    params: dict[str, int] = Field(default_factory=dict, max_length=4)
    leader: str = Did
    leader_url: str = Field(pattern=r"^https?://[^/\s]+$", max_length=300)
    helper: str = Did
    helper_url: str = Field(pattern=r"^https?://[^/\s]+$", max_length=300)
    collector: str = Did
    reporters: list[str] = Field(default_factory=list, max_length=10_000)
    attributes: dict[str, str] = Field(default_factory=dict, max_length=8)
    start: str = Field(min_length=20, max_length=40)
    period: int = Field(ge=60, lt=2**40)
    min_batch: int = Field(ge=2, le=1_000_000)
    epsilon: float = Field(gt=0, le=100)
    budget: float = Field(gt=0, le=10_000)
    # "none": the aggregators add no noise — for a figure every reporter is owed in full (a model they
    # fit together); its privacy is then Prio3's alone, and epsilon/budget only bound the collections.
    noise: Literal["none"] | None = None
    encoding: T2Encoding | None = None

    @model_serializer(mode="wrap")
    def _without_absent(self, handler: Any) -> dict[str, Any]:
        """A task without the optional fields serializes as it did before they existed (its hash unchanged)."""
        doc: dict[str, Any] = handler(self)
        for name in ("noise", "encoding"):
            if doc.get(name) is None:
                doc.pop(name, None)
        return doc

    @model_validator(mode="after")
    def _parameters(self) -> AggregateTaskSpec:
        wanted = VDAF_PARAMS[self.vdaf]
        if set(self.params) != set(wanted):
            names = ", ".join(wanted) or "none"
            given = ", ".join(sorted(self.params)) or "none"
            raise ValueError(f"{self.vdaf} takes the parameters {names}, not {given}")
        low = {"max_measurement": 1, "length": 1, "chunk_length": 1, "max_weight": 1}
        for name, value in self.params.items():
            if not low[name] <= value < 2**32:
                raise ValueError(f"parameter {name} must be at least {low[name]} and below 2^32")
        if self.vdaf == "Prio3MultihotCountVec" and self.params["max_weight"] > self.params["length"]:
            raise ValueError("max_weight cannot exceed length")
        if self.epsilon > self.budget:
            raise ValueError("epsilon (spent by each collection) cannot exceed the budget")
        if self.leader == self.helper:
            raise ValueError("the leader and the helper must be two different participants")
        if not self.reporters and not self.attributes:
            raise ValueError("name the eligible reporters: a list of DIDs, member attributes, or both")
        if self.encoding is not None:
            e, p = self.encoding, len(self.encoding.names)
            if len(e.low) != p or len(e.high) != p or not all(lo < hi for lo, hi in zip(e.low, e.high, strict=True)):
                raise ValueError("the encoding gives one low and one high bound per variable, low below high")
            size = (1 + p + p * (p + 1) // 2) * e.limbs
            if self.vdaf != "Prio3SumVec" or self.params.get("length") != size \
                    or self.params.get("max_measurement") != 2**32 - 1:  # fmt: skip
                raise ValueError(f"T² sums of {p} variables in {e.limbs} digits are Prio3SumVec of length {size} "
                                 "and max_measurement 4294967295")  # fmt: skip
        return self


@register("aggregate.batch")
class AggregateBatch(Payload):
    """The task's leader releases one period's aggregate to the collector: how many reports it rests
    on, the RFC 9162 root over their leaves ({report id, reporter}), and the privacy budget it spends."""

    task: str = TaskId
    period: int = Field(ge=0, lt=2**40)
    count: int = Field(ge=1, le=10_000_000)
    root: str = Hex32
    epsilon: float = Field(gt=0, le=100)
    collector: str = Did


NotificationState = Literal["CREATED", "SENT", "RECEIVED", "ACKNOWLEDGED", "ACCEPTED", "DECLINED", "CLOSED", "CANCELED"]
Side = Literal["sender", "recipient"]
# The quality notification's state machine (Catena-X CX-0125, as Trace-X implements it): from each
# state, the states it may move to and the side that makes each move. It lives here, beside the
# transaction it rules, because every replica enforces it when it folds the log (so the log never
# holds an illegal move); `qdsn.supervision.notifications` builds on it.
NOTIFICATION_MOVES: dict[str | None, dict[str, Side]] = {
    None: {"CREATED": "sender"},
    "CREATED": {"SENT": "sender", "CANCELED": "sender"},
    # The recipient may decline (with its reason) what it never received or contests, before acknowledging.
    "SENT": {"RECEIVED": "recipient", "ACKNOWLEDGED": "recipient", "DECLINED": "recipient", "CLOSED": "sender"},
    "RECEIVED": {"ACKNOWLEDGED": "recipient", "DECLINED": "recipient", "CLOSED": "sender"},
    "ACKNOWLEDGED": {"ACCEPTED": "recipient", "DECLINED": "recipient", "CLOSED": "sender"},
    "ACCEPTED": {"CLOSED": "sender"},
    "DECLINED": {"CLOSED": "sender"},
    "CLOSED": {},
    "CANCELED": {},
}
NOTIFICATION_REASONED = frozenset({"DECLINED", "CLOSED"})  # a move to these says why
_UNREADABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
NotificationId = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")


def notification_move(current: str | None, new: str, side: str, reason: str | None) -> None:
    """Refuse a move of a quality notification that its state machine does not allow to `side`
    (sender or recipient), or a decline or close without a reason; returns None when allowed."""
    moves = NOTIFICATION_MOVES.get(current)
    if moves is None:
        raise InvalidInput(f"{current!r} is not a notification state")
    if new not in moves:
        if not moves:
            raise Conflict(f"the notification is {current}, which is final", "raise a new notification instead")
        where = f"is {current}" if current else "does not exist yet"
        raise Conflict(f"the notification {where}: it cannot move to {new}; it may move to "
                       f"{', '.join(f'{s} ({who})' for s, who in moves.items())}")  # fmt: skip
    if moves[new] != side:
        raise PermissionDenied(f"only the {moves[new]} moves a notification to {new}, not the {side}")
    if new in NOTIFICATION_REASONED and not (reason and reason.strip()):
        raise InvalidInput(f"a notification moved to {new} needs a reason", "say why")


@register("notification.transition")
class NotificationTransition(Payload):
    """A quality notification (CX-0125) changed state, made by the side the state machine allows:
    its id, the new state, what it is (classification, severity, sender, recipient) and the SHA-256 of
    its canonical content, which travels sealed between the two nodes and never comes here. A decline
    or close says why; `related` names an earlier notification. Neither side can later deny a step."""

    notification: str = NotificationId
    state: NotificationState
    classification: Literal["alert", "investigation"]
    severity: Literal["MINOR", "MAJOR", "CRITICAL", "LIFE-THREATENING"]
    sender: str = Did
    recipient: str = Did
    content: str = Hex32
    reason: str | None = Field(default=None, min_length=1, max_length=1000)
    related: str | None = Field(default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")

    @field_validator("reason")
    @classmethod
    def _readable(cls, v: str | None) -> str | None:
        # every member reads the reason: nothing in it may hide or reorder what a terminal shows
        if v is not None and _UNREADABLE.search(v):
            raise ValueError("the reason holds a control or invisible character")
        return v


@register("regulator.action", ("regulator",))
class RegulatorAction(Payload):
    """The regulator suspends or reinstates a member (its transactions are refused but for answering and
    housekeeping), a certification body's authority to issue (its new certificates are refused), or a
    model by code hash (jobs and attestations of it are refused); with the reason, the quality notification
    it answers, and — for an issuer — certificates issued before that are withdrawn (suspend) or restored
    (reinstate) with it. Every node enforces it; see `supervision.actions`."""

    action: Literal["suspend", "reinstate"]
    scope: Literal["member", "issuer", "model"]
    subject: str = Field(min_length=1, max_length=512)
    reason: str = Field(min_length=1, max_length=1000, pattern=r"\S")
    notification: str | None = Field(default=None, min_length=1, max_length=200)
    credentials: list[str] | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _subject(self) -> RegulatorAction:
        if self.scope == "model":
            if not re.fullmatch(r"[0-9a-f]{64}", self.subject):
                raise ValueError("a model is named by its code hash: 64 lowercase hex digits")
        elif not is_did(self.subject):
            raise ValueError(f"the {self.scope} is named by its DID (did:key or did:web)")
        if self.credentials is not None:
            if self.scope != "issuer":
                raise ValueError("only an issuer's certificates can be named in credentials")
            if len(set(self.credentials)) != len(self.credentials) or not all(
                    0 < len(c) <= 200 for c in self.credentials):  # fmt: skip
                raise ValueError("credentials are distinct certificate numbers of 1–200 characters")
        return self


PlanId = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")
Date = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
RISK_CLASSES = ("A", "B", "C", "D")  # A lowest risk … D highest, as in SAMR's 企业信用风险分类


def _date(value: str) -> str:
    """A calendar date, YYYY-MM-DD."""
    from datetime import date

    try:
        date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a calendar date (YYYY-MM-DD)") from None
    return value


@register("inspection.plan", ("regulator",))
class InspectionPlan(Payload):
    """A sampling-inspection plan (双随机): the SHA-256 commitment to a secret seed, made before the draw,
    and everything the draw depends on — the population (enterprises registered before entry `basis`,
    within `scope`, each with its risk class under `model` as of `as_of`; its size and the SHA-256 of
    its canonical list), the weight of each class, how many to draw, and the inspectors (ids) with how
    many go to each inspection."""

    plan: str = PlanId
    title: str = Field(min_length=1, max_length=200)
    commitment: str = Hex32
    model: str = Field(pattern=r"^qdsn-risk/\d+$")
    basis: int = Field(ge=1, lt=2**53)
    as_of: str = Date
    scope: dict[str, str] = Field(default_factory=dict, max_length=2)
    population: int = Field(ge=1, le=10_000_000)
    population_hash: str = Hex32
    weights: dict[str, int]
    count: int = Field(ge=1, le=1000)
    inspectors: list[str] = Field(default_factory=list, max_length=500)
    per_inspection: int = Field(default=0, ge=0, le=10)

    @field_validator("as_of")
    @classmethod
    def _day(cls, v: str) -> str:
        return _date(v)

    @model_validator(mode="after")
    def _consistent(self) -> InspectionPlan:
        if sorted(self.weights) != list(RISK_CLASSES):
            raise ValueError("weights must give each risk class A, B, C, D its weight")
        if any(not 0 <= w <= 1000 for w in self.weights.values()):
            raise ValueError("a class weight is an integer from 0 to 1000")
        if set(self.scope) - {"region", "industry"}:
            raise ValueError("scope may only name a region (GB/T 2260 prefix) and an industry (GB/T 4754 prefix)")
        if self.count > self.population:
            raise ValueError(f"cannot draw {self.count} of a population of {self.population}")
        ids = self.inspectors
        if len(set(ids)) != len(ids) or any(not 1 <= len(i) <= 64 for i in ids):
            raise ValueError("inspectors are distinct ids of 1 to 64 characters")
        if self.per_inspection > len(ids):
            raise ValueError(f"{self.per_inspection} inspectors per inspection, but only {len(ids)} are named")
        if ids and not self.per_inspection:
            raise ValueError("name how many inspectors go to each inspection (per_inspection)")
        return self


@register("inspection.draw", ("regulator",))
class InspectionDraw(Payload):
    """The draw of a committed plan: the revealed seed (its SHA-256 is the plan's commitment), the
    enterprises selected and the inspectors assigned to each, in draw order. Anyone recomputes them
    from the seed and the plan (`qdsn supervise plan verify`)."""

    plan: str = PlanId
    seed: str = Hex32
    selection: list[str] = Field(min_length=1, max_length=1000)
    inspectors: list[list[str]] = Field(default_factory=list, max_length=1000)

    @field_validator("selection")
    @classmethod
    def _dids(cls, v: list[str]) -> list[str]:
        if not all(is_did(d) for d in v):
            raise ValueError("the selection lists enterprises by their DIDs")
        return v


@register("inspection.result", ("regulator",))
class InspectionResult(Payload):
    """A sampling-inspection result the regulator recorded: which enterprise's product, tested to which
    standard, on which date, passed or failed — under a drawn plan, when it came from one."""

    plan: str | None = Field(default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")
    enterprise: str = Did
    product: str = Field(min_length=1, max_length=200)
    standard: str = Field(min_length=1, max_length=100)
    passed: bool
    date: str = Date

    @field_validator("date")
    @classmethod
    def _day(cls, v: str) -> str:
        return _date(v)


@register("supply.relation", ("enterprise",))
class SupplyRelation(Payload):
    """An enterprise declares that `supplier` supplies `customer` (with `product`, when named); the submitter
    must be one of the two. One side's word is enough to record it — a recall must not wait for the party at
    fault — and the regional graph marks a relation both sides declared as confirmed."""

    supplier: str = Did
    customer: str = Did
    product: str | None = Field(default=None, min_length=1, max_length=200)


@register("supply.withdraw", ("enterprise", "regulator"))
class SupplyWithdraw(Payload):
    """A declared supply relation withdrawn: `relation` is the id of its `supply.relation` entry. Only the
    party that declared it, or the regulator, withdraws it, once; the graph no longer follows it (another
    party's own declaration of the same relation stands)."""

    relation: str = Hex32
    reason: str | None = Field(default=None, min_length=1, max_length=1000)

    @field_validator("reason")
    @classmethod
    def _readable(cls, v: str | None) -> str | None:
        if v is not None and _UNREADABLE.search(v):  # every member reads it
            raise ValueError("the reason holds a control or invisible character")
        return v


def rotation_message(did: str, previous_key: str, new_key: str) -> bytes:
    """What a new key signs to prove possession in `identity.rotate_key`."""
    return canonical_json({"did": did, "previous_key": previous_key, "new_key": new_key})


@dataclass(frozen=True, slots=True)
class Envelope:
    """A signed transaction as it stands in the log."""

    type: str
    payload: dict[str, Any]
    submitter: str
    nonce: str
    created: str
    signature: str

    def body(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "nonce": self.nonce,
            "payload": self.payload,
            "submitter": self.submitter,
            "type": self.type,
        }

    def signing_input(self) -> bytes:
        """The canonical bytes the submitter signed."""
        return canonical_json(self.body())

    def leaf(self) -> bytes:
        """The canonical bytes stored as the Merkle leaf."""
        return canonical_json({**self.body(), "signature": self.signature})

    def encode(self) -> tuple[bytes, bytes]:
        """(signing input, leaf) in one pass: a plain body means a plain leaf, as the signature
        is an ASCII string."""
        body = self.body()
        fields = self.type + self.submitter + self.nonce + self.created + self.signature
        if fields.isascii() and is_plain(self.payload):
            return plain_json(body), plain_json({**body, "signature": self.signature})
        return canonical_json(body), canonical_json({**body, "signature": self.signature})

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "signature": self.signature}


def signing_input_of(leaf: bytes, signature: str) -> bytes:
    """The signing input of a canonical leaf: the leaf without its top-level signature member. That
    member is the last `,"signature":"…"` of the leaf, as only the submitter and the type (no quotes
    in either) follow it in key order."""
    member = b',"signature":"' + signature.encode() + b'"'
    at = leaf.rfind(member)
    if at < 0:
        raise InvalidInput("the leaf does not hold its signature")
    return leaf[:at] + leaf[at + len(member) :]


def txid(leaf: bytes) -> str:
    """A transaction's id: lowercase hex SHA-256 of its leaf."""
    return sha256(leaf).hex()


def sign_tx(
    type: str,
    payload: dict[str, Any],
    key: SigningKey,
    submitter: str,
    *,
    clock: Clock = system_clock,
    nonce: str | None = None,
) -> Envelope:
    """Build and sign an envelope; the payload is checked against its schema first."""
    check_payload(type, payload)
    env = Envelope(type, payload, submitter, nonce or os.urandom(16).hex(), format_time(clock()), "")
    sig = b64url_encode(key.sign(env.signing_input()))
    return Envelope(type, payload, submitter, env.nonce, env.created, sig)


def check_payload(type: str, payload: Any) -> Payload:
    """The payload parsed by its type's schema; InvalidInput names the bad field."""
    tt = REGISTRY.get(type)
    if tt is None:
        raise NotFound(f"unknown transaction type {type!r}", f"known types: {', '.join(sorted(REGISTRY))}")
    if not isinstance(payload, dict):
        raise InvalidInput(f"{type}: payload must be a JSON object")
    try:
        return tt.schema.model_validate(payload)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "payload"
        raise InvalidInput(f"{type}: payload field {where!r}: {err['msg']}", "fix that field and sign again") from None


def from_json(obj: Any) -> Envelope:
    """An envelope from its JSON object, with every envelope field checked (not the signature)."""
    if not isinstance(obj, dict):
        raise InvalidInput("a transaction must be a JSON object")
    missing = [f for f in _FIELDS if f not in obj]
    extra = [f for f in obj if f not in _FIELDS]
    if missing or extra:
        raise InvalidInput(f"transaction fields: missing {missing}, unexpected {extra}")
    return check_envelope(
        Envelope(obj["type"], obj["payload"], obj["submitter"], obj["nonce"], obj["created"], obj["signature"])
    )


def check_envelope(env: Envelope) -> Envelope:
    """Check every envelope field but the signature's validity; returns `env`."""
    for f in ("type", "submitter", "nonce", "created", "signature"):
        if type(getattr(env, f)) is not str:
            raise InvalidInput(f"transaction field {f!r} must be a string")
    if not _DID.match(env.submitter):
        raise InvalidInput(f"submitter {env.submitter!r} is not a did:key or did:web DID")
    if not _NONCE.match(env.nonce):
        raise InvalidInput("nonce must be 32 lowercase hex digits (16 random bytes)")
    try:
        parse_time(env.created)
    except ValueError as e:
        raise InvalidInput(f"created: {e}") from None
    if not _SIG.match(env.signature):
        raise InvalidInput("signature must be 64 bytes of unpadded base64url (86 characters)")
    return env


def from_leaf(leaf: bytes) -> Envelope:
    """Parse a stored leaf; refuses anything that is not exactly the canonical form."""
    if len(leaf) > MAX_LEAF:
        raise InvalidInput(f"transaction is {len(leaf)} bytes; the limit is {MAX_LEAF}")
    try:
        obj = orjson.loads(leaf)
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"transaction is not JSON: {e}") from None
    env = from_json(obj)
    if canonical_json(obj) != leaf:
        raise InvalidInput("transaction is not in RFC 8785 canonical form")
    return env
