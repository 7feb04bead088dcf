"""The world state: a deterministic fold over the log.

`authorize` says which key must have signed an envelope; `apply` checks a transaction against the
state and folds it in. Both are pure given the state and the log's tree, so replaying the log from
zero on any node reproduces the same state and the same `digest()`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from qdsn.clock import parse_time
from qdsn.crypto import canonical_json, sha256, verify_key
from qdsn.crypto.encoding import b64url_decode
from qdsn.errors import BadSignature, Conflict, IntegrityError, InvalidInput, NotFound, PermissionDenied
from qdsn.identity.didkey import multikey_from_public_key, public_key_from_multikey
from qdsn.ledger import tx
from qdsn.ledger.checkpoint import Checkpoint, cosigned_message


@dataclass(frozen=True, slots=True)
class Identity:
    """A registered participant and its current key."""

    did: str
    role: str
    name: str
    key: bytes  # current Ed25519 public key
    registered: int  # seq of identity.register
    updated: int  # seq of the last change


@dataclass(frozen=True, slots=True)
class Dataset:
    """A declared dataset: its owner and how many records are anchored."""

    id: str
    owner: str
    title: str
    kind: str
    anchored: int  # records committed so far; the next anchor starts here
    batches: int
    shredded: bool
    declared: int  # seq of dataset.declare
    updated: int  # seq of the last change


@dataclass(frozen=True, slots=True)
class Device:
    """A registered device and the key it signs readings with."""

    id: str
    owner: str
    kind: str
    key: bytes
    registered: int


@dataclass(frozen=True, slots=True)
class Model:
    """A published certification model version: who published it and its code hash."""

    key: str  # "id@version"
    publisher: str
    hash: str
    published: int  # seq of model.publish


@dataclass(frozen=True, slots=True)
class Credential:
    """An issued certificate as the ledger knows it: issuer, subject, status list entry, status."""

    id: str
    issuer: str
    subject: str
    hash: str
    status_list: str
    index: int
    status: str  # valid, invalid (revoked, final) or suspended
    issued: int  # seq of credential.issue
    updated: int


@dataclass(frozen=True, slots=True)
class AggregateTask:
    """A private-aggregation task as the ledger knows it: its specification (the `aggregate.task`
    payload), the privacy budget spent so far, and the periods released: period → (count, root, seq)."""

    id: str
    spec: dict[str, Any]
    spent: float
    batches: dict[int, tuple[int, str, int]]
    created: int  # seq of aggregate.task

    def to_json(self) -> dict[str, Any]:
        return {"spec": self.spec, "spent": self.spent, "created": self.created,
                "batches": [[p, c, r, s] for p, (c, r, s) in sorted(self.batches.items())]}  # fmt: skip

    @classmethod
    def from_json(cls, id: str, doc: dict[str, Any]) -> AggregateTask:
        batches = {int(p): (int(c), str(r), int(s)) for p, c, r, s in doc["batches"]}
        return cls(id, doc["spec"], float(doc["spent"]), batches, int(doc["created"]))


@dataclass(frozen=True, slots=True)
class Notice:
    """A quality notification as the ledger knows it: who sent it to whom, what it is, the hash of its
    sealed content, its state, and where it was created and last moved."""

    id: str
    sender: str
    recipient: str
    classification: str
    severity: str
    content: str
    state: str
    created: int  # seq of its CREATED transition
    updated: int


@dataclass(frozen=True, slots=True)
class Standing:
    """What the regulator's actions (`regulator.action`) say of one member, issuer or model now: whether it
    is suspended, since which entry (the last action on it), why, the notification it answers, and — for an
    issuer — the certificates withdrawn with it (refused by every verifier until restored)."""

    scope: str  # member, issuer or model
    subject: str  # a DID, or a model's code hash
    suspended: bool
    reason: str
    since: int  # seq of the regulator.action that set `suspended`
    notification: str | None = None
    withdrawn: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"scope": self.scope, "subject": self.subject, "suspended": self.suspended, "reason": self.reason,
                "since": self.since, "notification": self.notification, "withdrawn": list(self.withdrawn)}  # fmt: skip

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Standing:
        return cls(str(doc["scope"]), str(doc["subject"]), bool(doc["suspended"]), str(doc["reason"]),
                   int(doc["since"]), doc.get("notification"), tuple(doc.get("withdrawn", ())))  # fmt: skip


def standing_key(scope: str, subject: str) -> str:
    """The key of a standing in `State.standings`: scope and subject."""
    return f"{scope} {subject}"


# What a suspended member may still put on the log: answering quality notifications, keeping its key and
# the log honest (rotation, cosignatures, split-view alerts), destroying its data's key, recording refusals
# and suspending or revoking certificates it issued. Reading needs no transaction and is never refused.
WHILE_SUSPENDED = frozenset({"notification.transition", "identity.rotate_key", "checkpoint.cosign", "alert.raise",
                             "dataset.shred", "access.decision", "credential.status"})  # fmt: skip
# Of notification moves, a suspended member may only answer and settle: it raises no new one.
RAISES_NOTIFICATION = frozenset({"CREATED", "SENT"})
# Notifications one sender may hold open towards one recipient at a time (not CLOSED, CANCELED or DECLINED):
# a recipient declines what it never received, and the sender closes or cancels before raising more.
MAX_OPEN_PER_PAIR = 100
SETTLED_NOTICES = frozenset({"CLOSED", "CANCELED", "DECLINED"})


@dataclass(frozen=True, slots=True)
class InspectionPlan:
    """A sampling-inspection plan as the ledger knows it: who planned it, its commitment, how many it
    draws from how many, its inspectors; and once drawn, the draw's entry and selection."""

    id: str
    planner: str
    commitment: str
    count: int
    inspectors: tuple[str, ...]
    per_inspection: int
    planned: int  # seq of inspection.plan
    drawn: int | None = None  # seq of inspection.draw
    selection: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"planner": self.planner, "commitment": self.commitment, "count": self.count,
                "inspectors": list(self.inspectors), "per_inspection": self.per_inspection,
                "planned": self.planned, "drawn": self.drawn, "selection": list(self.selection)}  # fmt: skip

    @classmethod
    def from_json(cls, id: str, d: dict[str, Any]) -> InspectionPlan:
        return cls(id, str(d["planner"]), str(d["commitment"]), int(d["count"]), tuple(d["inspectors"]),
                   int(d["per_inspection"]), int(d["planned"]), d["drawn"], tuple(d["selection"]))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Supply:
    """A declared supply relation (by the id of its `supply.relation` entry): who supplies whom, what, who
    declared it at which entry; and once withdrawn, at which entry and by whom."""

    id: str
    supplier: str
    customer: str
    product: str | None
    declarer: str
    declared: int
    withdrawn: int | None = None
    withdrawn_by: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"supplier": self.supplier, "customer": self.customer, "product": self.product,
                "declarer": self.declarer, "declared": self.declared, "withdrawn": self.withdrawn,
                "withdrawn_by": self.withdrawn_by}  # fmt: skip

    @classmethod
    def from_json(cls, id: str, d: dict[str, Any]) -> Supply:
        return cls(id, str(d["supplier"]), str(d["customer"]), d["product"], str(d["declarer"]), int(d["declared"]),
                   d["withdrawn"], d["withdrawn_by"])  # fmt: skip


@dataclass(frozen=True, slots=True)
class Cosignature:
    """A witness cosignature recorded on the ledger."""

    seq: int
    origin: str
    size: int
    root: bytes
    cosigner: str
    timestamp: int


class TreeView:
    """What `apply` may ask of the log itself: the root at a committed size."""

    def __init__(self, size: int, root_at: Callable[[int], bytes]) -> None:
        self.size = size
        self.root_at = root_at


class State:
    """Identities, datasets and recorded cosignatures; `dirty`, `dirty_datasets` and
    `new_cosignatures` say what to persist."""

    def __init__(
        self,
        identities: dict[str, Identity] | None = None,
        origin: str = "",
        datasets: dict[str, Dataset] | None = None,
        devices: dict[str, Device] | None = None,
        models: dict[str, Model] | None = None,
        credentials: dict[str, Credential] | None = None,
        tasks: dict[str, AggregateTask] | None = None,
        retired: dict[bytes, str] | None = None,
        notices: dict[str, Notice] | None = None,
        standings: dict[str, Standing] | None = None,
        plans: dict[str, InspectionPlan] | None = None,
        supplies: dict[str, Supply] | None = None,
    ) -> None:
        self.identities: dict[str, Identity] = dict(identities or {})
        self.datasets: dict[str, Dataset] = dict(datasets or {})
        self.devices: dict[str, Device] = dict(devices or {})
        self.dirty_devices: set[str] = set()
        self.models: dict[str, Model] = dict(models or {})
        self.dirty_models: set[str] = set()
        self.credentials: dict[str, Credential] = dict(credentials or {})
        self.dirty_credentials: set[str] = set()
        self.tasks: dict[str, AggregateTask] = dict(tasks or {})
        self.dirty_tasks: set[str] = set()
        self.retired: dict[bytes, str] = dict(retired or {})  # every key rotated out, with its DID
        self.new_retired: list[tuple[bytes, str, int]] = []
        self.notices: dict[str, Notice] = dict(notices or {})
        self.dirty_notices: set[str] = set()
        self.standings: dict[str, Standing] = dict(standings or {})
        self.dirty_standings: set[str] = set()
        self.plans: dict[str, InspectionPlan] = dict(plans or {})
        self.dirty_plans: set[str] = set()
        self.supplies: dict[str, Supply] = dict(supplies or {})  # supply relations by their entry's id
        self.dirty_supplies: set[str] = set()
        self.origin = origin
        self.dirty: set[str] = set()
        self.dirty_datasets: set[str] = set()
        self.new_cosignatures: list[Cosignature] = []
        self._open_pairs: Counter[tuple[str, str]] | None = None  # derived from `notices` on first need

    def fork(self) -> State:
        """A copy to stage a batch on; the original stays as it was if the batch fails."""
        out = State(self.identities, self.origin, self.datasets, self.devices, self.models, self.credentials,
                    self.tasks, retired=self.retired, notices=self.notices, standings=self.standings,
                    plans=self.plans, supplies=self.supplies)  # fmt: skip
        out._open_pairs = None if self._open_pairs is None else Counter(self._open_pairs)
        return out

    def open_between(self, sender: str, recipient: str) -> int:
        """How many notifications `sender` holds open towards `recipient` (not CLOSED, CANCELED or DECLINED)."""
        if self._open_pairs is None:
            self._open_pairs = Counter((n.sender, n.recipient) for n in self.notices.values()
                                       if n.state not in SETTLED_NOTICES)  # fmt: skip
        return self._open_pairs[(sender, recipient)]

    def clean(self) -> None:
        """Forget what changed, once it is persisted."""
        self.dirty.clear()
        self.dirty_datasets.clear()
        self.dirty_devices.clear()
        self.dirty_models.clear()
        self.dirty_credentials.clear()
        self.dirty_tasks.clear()
        self.new_retired.clear()
        self.dirty_notices.clear()
        self.dirty_standings.clear()
        self.dirty_plans.clear()
        self.dirty_supplies.clear()
        self.new_cosignatures.clear()

    def authorize(self, env: tx.Envelope) -> bytes:
        """The public key that must have signed `env`, once its submitter and role are allowed."""
        tt = tx.REGISTRY.get(env.type)
        if tt is None:
            raise NotFound(f"unknown transaction type {env.type!r}", f"known: {', '.join(sorted(tx.REGISTRY))}")
        if not self.identities:
            p = env.payload
            if env.type != "identity.register" or p.get("did") != env.submitter or p.get("role") != "regulator":
                raise PermissionDenied(
                    "the first transaction of a log must be a regulator registering itself",
                    "start the log with `qdsn init --role regulator`",
                )
            return public_key_from_multikey(str(p.get("key")))
        who = self.identities.get(env.submitter)
        if who is None:
            raise PermissionDenied(
                f"submitter {env.submitter} is not registered on this ledger",
                "ask the regulator to register it with identity.register",
            )
        if who.role not in tt.roles:
            raise PermissionDenied(f"role {who.role} may not submit {env.type}; allowed: {', '.join(sorted(tt.roles))}")
        if tt.self_only and env.payload.get("did") != env.submitter:
            raise PermissionDenied(f"{env.type} may only be submitted by the identity it changes")
        return who.key

    def apply(self, env: tx.Envelope, payload: tx.Payload, seq: int, tree: TreeView) -> None:
        """Check `env` against the state and fold it in, or raise without changing anything."""
        if self.standings:
            self._unsuspended(env)
        _APPLY[env.type](self, env, payload, seq, tree)

    def suspension(self, scope: str, subject: str) -> Standing | None:
        """The regulator's suspension of a member, issuer or model in force now, if any."""
        s = self.standings.get(standing_key(scope, subject))
        return s if s is not None and s.suspended else None

    def _unsuspended(self, env: tx.Envelope) -> None:
        """Refuse what a regulator's suspension forbids: a suspended member's transactions (but those of
        WHILE_SUSPENDED), a suspended issuer's certificates, attestations of a suspended model."""
        p, t = env.payload, env.type
        gives = (t == "access.decision" and p.get("allowed") is True) or (
            t == "credential.status" and p.get("status") == "valid")  # fmt: skip
        raises = t == "notification.transition" and p.get("state") in RAISES_NOTIFICATION
        member = self.suspension("member", env.submitter)
        if member is not None and (t not in WHILE_SUSPENDED or gives or raises):
            raise PermissionDenied(
                f"{env.submitter} is suspended by the regulator (regulator.action at entry {member.since}: "
                f"{member.reason}); it may not submit {t}" + (" granting anything" if gives else "")
                + (f" {p.get('state')}: it raises no new notification" if raises else ""),
                "it may still answer quality notifications, rotate its key, cosign, record refusals and suspend or "
                "revoke its certificates; the regulator reinstates it with `qdsn supervise reinstate`")  # fmt: skip
        issuer = self.suspension("issuer", env.submitter)
        if issuer is not None and (t == "credential.issue" or (t == "credential.status" and gives)):
            raise PermissionDenied(
                f"the authority of {env.submitter} to issue certificates is suspended by the regulator "
                f"(regulator.action at entry {issuer.since}: {issuer.reason})",
                "no certificate can be issued or reinstated until the regulator reinstates the authority")  # fmt: skip
        if t == "compute.attest":
            model = self.suspension("model", str(p.get("code_hash")))
            if model is not None:
                raise PermissionDenied(
                    f"model {p.get('model')} (code hash {str(p.get('code_hash'))[:16]}…) is suspended by the "
                    f"regulator (regulator.action at entry {model.since}: {model.reason})",
                    "its runs are not attested until the regulator reinstates it")  # fmt: skip

    def digest(self) -> bytes:
        """A hash of the whole state, equal on every node that folded the same log."""
        ids = [
            [i.did, i.role, i.name, multikey_from_public_key(i.key), i.registered, i.updated]
            for i in sorted(self.identities.values(), key=lambda i: i.did)
        ]
        sets = [
            [d.id, d.owner, d.title, d.kind, d.anchored, d.batches, d.shredded, d.declared, d.updated]
            for d in sorted(self.datasets.values(), key=lambda d: d.id)
        ]
        devs = [
            [d.id, d.owner, d.kind, multikey_from_public_key(d.key), d.registered]
            for d in sorted(self.devices.values(), key=lambda d: d.id)
        ]
        doc: dict[str, Any] = {"identities": ids, "datasets": sets, "devices": devs}
        if self.models:  # absent while empty, so logs without models keep their digests
            doc["models"] = [[m.key, m.publisher, m.hash, m.published] for _, m in sorted(self.models.items())]
        if self.credentials:
            doc["credentials"] = [
                [c.id, c.issuer, c.subject, c.hash, c.status_list, c.index, c.status, c.issued, c.updated]
                for _, c in sorted(self.credentials.items())
            ]
        if self.tasks:
            doc["tasks"] = [[t.id, t.to_json()] for _, t in sorted(self.tasks.items())]
        if self.retired:
            doc["retired"] = sorted([multikey_from_public_key(k), d] for k, d in self.retired.items())
        if self.notices:
            doc["notices"] = [[n.id, n.sender, n.recipient, n.classification, n.severity, n.content, n.state,
                               n.created, n.updated] for _, n in sorted(self.notices.items())]  # fmt: skip
        if self.standings:
            doc["standings"] = [s.to_json() for _, s in sorted(self.standings.items())]
        if self.plans:
            doc["plans"] = [[p.id, p.to_json()] for _, p in sorted(self.plans.items())]
        if self.supplies:
            doc["supplies"] = [[r.id, r.to_json()] for _, r in sorted(self.supplies.items())]
        return sha256(canonical_json(doc))


def _register(state: State, env: tx.Envelope, p: tx.IdentityRegister, seq: int, tree: TreeView) -> None:
    if p.did in state.identities:
        raise Conflict(f"{p.did} is already registered", "use identity.rotate_key to change its key")
    if p.did.startswith("did:key:") and p.did != "did:key:" + p.key:
        raise InvalidInput(f"key {p.key} is not the key of {p.did}")
    key = public_key_from_multikey(p.key)
    if key in state.retired:
        raise Conflict(f"key {p.key} was retired by {state.retired[key]}: a key rotated out never speaks again",
                       "register the participant with a key of its own")  # fmt: skip
    state.identities[p.did] = Identity(p.did, p.role, p.name, key, seq, seq)
    state.dirty.add(p.did)


def _endpoint(state: State, env: tx.Envelope, p: tx.IdentityEndpoint, seq: int, tree: TreeView) -> None:
    if p.did not in state.identities:  # read off the log where needed (`node.pact.node_url`), not kept here
        raise NotFound(f"{p.did} is not a participant on this ledger", "register it first (identity.register)")


def _rotate(state: State, env: tx.Envelope, p: tx.IdentityRotateKey, seq: int, tree: TreeView) -> None:
    who = state.identities[p.did]
    if multikey_from_public_key(who.key) != p.previous_key:
        raise Conflict(f"previous_key is not the current key of {p.did}", "sign with the current key")
    if p.new_key == p.previous_key:
        raise InvalidInput("new_key equals the current key")
    new = public_key_from_multikey(p.new_key)
    if new in state.retired:
        raise Conflict(f"new_key was retired by {state.retired[new]}: a key rotated out never speaks again",
                       "generate a new key (qdsn did rotate does)")  # fmt: skip
    if any(i.key == new for i in state.identities.values()):
        raise Conflict("new_key is the key of a registered participant", "generate a new key (qdsn did rotate does)")
    if not verify_key(new).is_valid(b64url_decode(p.proof), tx.rotation_message(p.did, p.previous_key, p.new_key)):
        raise BadSignature("identity.rotate_key: proof is not the new key's signature", "sign with the new key")
    state.identities[p.did] = replace(who, key=new, updated=seq)
    state.dirty.add(p.did)
    state.retired[who.key] = p.did
    state.new_retired.append((who.key, p.did, seq))


def _cosign(state: State, env: tx.Envelope, p: tx.CheckpointCosign, seq: int, tree: TreeView) -> None:
    if state.origin and p.origin != state.origin:
        raise InvalidInput(f"checkpoint origin {p.origin!r} is not this log ({state.origin!r})")
    if p.size > tree.size:
        raise InvalidInput(f"cosigned size {p.size} is beyond the log's committed size {tree.size}")
    root = bytes.fromhex(p.root)
    if tree.root_at(p.size) != root:
        raise IntegrityError(f"cosigned root for size {p.size} is not this log's root: a split view")
    text = Checkpoint(p.origin, p.size, root).text()
    key = state.identities[env.submitter].key
    if not verify_key(key).is_valid(b64url_decode(p.signature), cosigned_message(text, p.timestamp)):
        raise BadSignature("checkpoint.cosign: the cosignature does not verify under the submitter's key")
    state.new_cosignatures.append(Cosignature(seq, p.origin, p.size, root, env.submitter, p.timestamp))


def _alert(state: State, env: tx.Envelope, p: tx.AlertRaise, seq: int, tree: TreeView) -> None:
    if state.origin and p.origin != state.origin:
        raise InvalidInput(f"alert about {p.origin!r}, not this log ({state.origin!r})")
    a, b = p.claims
    if a.root == b.root:
        raise InvalidInput("the two claims name the same root: no split view")
    for c in p.claims:
        who = state.identities.get(c.signer)
        if who is None:
            raise NotFound(f"claim signer {c.signer} is not a participant")
        text = Checkpoint(p.origin, p.size, bytes.fromhex(c.root)).text()
        signed = text.encode() if c.timestamp is None else cosigned_message(text, c.timestamp)
        if not verify_key(who.key).is_valid(b64url_decode(c.signature), signed):
            raise BadSignature(f"alert.raise: the claim of {c.signer} does not verify under its key")


def _owned(state: State, env: tx.Envelope, dataset: str) -> Dataset:
    ds = state.datasets.get(dataset)
    if ds is None:
        raise NotFound(f"dataset {dataset!r} is not declared on the ledger", "declare it with dataset.declare first")
    if ds.owner != env.submitter:
        raise PermissionDenied(f"dataset {dataset!r} belongs to {ds.owner}, not to the submitter")
    if ds.shredded:
        raise Conflict(f"dataset {dataset!r} was shredded; its records can no longer change")
    return ds


def _declare(state: State, env: tx.Envelope, p: tx.DatasetDeclare, seq: int, tree: TreeView) -> None:
    if p.dataset in state.datasets:
        raise Conflict(f"dataset {p.dataset!r} is already declared", "choose another dataset id")
    state.datasets[p.dataset] = Dataset(p.dataset, env.submitter, p.title, p.kind, 0, 0, False, seq, seq)
    state.dirty_datasets.add(p.dataset)


def _anchor(state: State, env: tx.Envelope, p: tx.DatasetAnchor, seq: int, tree: TreeView) -> None:
    ds = _owned(state, env, p.dataset)
    if p.first != ds.anchored:
        raise Conflict(
            f"dataset {p.dataset!r} has {ds.anchored} anchored records; the next batch starts at {ds.anchored}, "
            f"not {p.first}",
            "anchor batches in order, without gaps or overlaps",
        )
    state.datasets[p.dataset] = replace(ds, anchored=ds.anchored + p.count, batches=ds.batches + 1, updated=seq)
    state.dirty_datasets.add(p.dataset)


def _shred(state: State, env: tx.Envelope, p: tx.DatasetShred, seq: int, tree: TreeView) -> None:
    ds = _owned(state, env, p.dataset)
    state.datasets[p.dataset] = replace(ds, shredded=True, updated=seq)
    state.dirty_datasets.add(p.dataset)


def _device(state: State, env: tx.Envelope, p: tx.DeviceRegister, seq: int, tree: TreeView) -> None:
    if p.device in state.devices:
        raise Conflict(f"device {p.device!r} is already registered", "give each device its own id")
    state.devices[p.device] = Device(p.device, env.submitter, p.kind, public_key_from_multikey(p.key), seq)
    state.dirty_devices.add(p.device)


def _policy(state: State, env: tx.Envelope, p: tx.PolicySet, seq: int, tree: TreeView) -> None:
    _owned(state, env, p.dataset)


def _decision(state: State, env: tx.Envelope, p: tx.AccessDecision, seq: int, tree: TreeView) -> None:
    # Only the owner's node decides about its data; a shredded dataset still gets its denials recorded.
    ds = state.datasets.get(p.dataset)
    if ds is None:
        raise NotFound(f"dataset {p.dataset!r} is not declared on the ledger")
    if ds.owner != env.submitter:
        raise PermissionDenied(f"only the owner of {p.dataset!r} records access decisions about it")
    if p.allowed and ds.shredded:
        raise Conflict(f"dataset {p.dataset!r} was shredded: no access to it can be allowed")


def _model(state: State, env: tx.Envelope, p: tx.ModelPublish, seq: int, tree: TreeView) -> None:
    key = f"{p.model}@{p.version}"
    if key in state.models:
        raise Conflict(f"model {key} is already published", "publish a changed model under a new version")
    if p.manifest.get("id") != p.model or p.manifest.get("version") != p.version:
        raise InvalidInput("the manifest's id and version must be the model's")
    state.models[key] = Model(key, env.submitter, p.hash, seq)
    state.dirty_models.add(key)


def _attest(state: State, env: tx.Envelope, p: tx.ComputeAttest, seq: int, tree: TreeView) -> None:
    for d in p.datasets:
        _owned(state, env, d)
    model = state.models.get(p.model)
    if model is None or model.hash != p.code_hash:
        raise NotFound(f"model {p.model} with code hash {p.code_hash[:16]}… is not published on this ledger")


def _issue(state: State, env: tx.Envelope, p: tx.CredentialIssue, seq: int, tree: TreeView) -> None:
    if p.credential in state.credentials:
        raise Conflict(f"credential {p.credential!r} is already issued", "give each certificate its own number")
    if p.subject not in state.identities:
        raise NotFound(f"the certificate's subject {p.subject} is not registered on the ledger")
    # A status list belongs to the certifier that first named it: its tokens are checked with that
    # certifier's key, so another's entry in it could be neither kept nor trusted.
    owner = next((c.issuer for c in state.credentials.values() if c.status_list == p.status_list), env.submitter)
    if owner != env.submitter:
        raise PermissionDenied(f"status list {p.status_list} belongs to {owner}, the certifier that first used it",
                               "name a status list of your own")  # fmt: skip
    taken = next((c.id for c in state.credentials.values() if (c.status_list, c.index) == (p.status_list, p.index)),
                 None)  # fmt: skip
    if taken is not None:
        raise Conflict(f"status list entry {p.status_list}#{p.index} already belongs to {taken}")
    state.credentials[p.credential] = Credential(p.credential, env.submitter, p.subject, p.hash, p.status_list,
                                                 p.index, "valid", seq, seq)  # fmt: skip
    state.dirty_credentials.add(p.credential)


def _status(state: State, env: tx.Envelope, p: tx.CredentialStatusChange, seq: int, tree: TreeView) -> None:
    c = state.credentials.get(p.credential)
    if c is None:
        raise NotFound(f"no credential {p.credential!r} on the ledger")
    if c.issuer != env.submitter:
        raise PermissionDenied(f"only its issuer changes the status of {p.credential}")
    if c.status == "invalid":
        raise Conflict(f"{p.credential} was revoked; revocation is final", "issue a new certificate")
    if c.status == p.status:
        raise Conflict(f"{p.credential} is already {p.status}")
    state.credentials[p.credential] = replace(c, status=p.status, updated=seq)
    state.dirty_credentials.add(p.credential)


def _task(state: State, env: tx.Envelope, p: tx.AggregateTaskSpec, seq: int, tree: TreeView) -> None:
    if p.task in state.tasks:
        raise Conflict(f"aggregation task {p.task!r} already exists", "give each task its own id")
    for role, did in (("leader", p.leader), ("helper", p.helper), ("collector", p.collector)):
        if did not in state.identities:
            raise NotFound(f"the task's {role} {did} is not registered on the ledger", "register it first")
    for did in p.reporters:
        who = state.identities.get(did)
        if who is None or who.role != "enterprise":
            raise InvalidInput(f"reporter {did} is not a registered enterprise", "name registered manufacturers only")
    try:
        parse_time(p.start)
    except ValueError as e:
        raise InvalidInput(f"aggregate.task start: {e}") from None
    state.tasks[p.task] = AggregateTask(p.task, p.model_dump(mode="json"), 0.0, {}, seq)
    state.dirty_tasks.add(p.task)


def _batch(state: State, env: tx.Envelope, p: tx.AggregateBatch, seq: int, tree: TreeView) -> None:
    t = state.tasks.get(p.task)
    if t is None:
        raise NotFound(f"no aggregation task {p.task!r} on the ledger")
    spec = t.spec
    if env.submitter != spec["leader"]:
        raise PermissionDenied(f"only the task's leader {spec['leader']} releases its batches")
    if p.collector != spec["collector"]:
        raise PermissionDenied(f"the task's collector is {spec['collector']}, not {p.collector}")
    if p.period in t.batches:
        raise Conflict(f"period {p.period} of task {p.task} was already collected", "collect each period once")
    if p.count < spec["min_batch"]:
        raise PermissionDenied(f"a batch of {p.count} reports is below the task's minimum of {spec['min_batch']}",
                               "wait for more reports before collecting")  # fmt: skip
    if p.epsilon != spec["epsilon"]:
        raise InvalidInput(f"each collection of task {p.task} spends epsilon {spec['epsilon']}, not {p.epsilon}")
    if t.spent + p.epsilon > spec["budget"] * (1 + 1e-12):
        raise PermissionDenied(f"task {p.task} has spent epsilon {t.spent:g} of its budget {spec['budget']:g}; "
                               f"another {p.epsilon:g} would exceed it",
                               "no more collections of this task")  # fmt: skip
    state.tasks[p.task] = replace(t, spent=t.spent + p.epsilon, batches={**t.batches, p.period: (p.count, p.root, seq)})
    state.dirty_tasks.add(p.task)


def _notification(state: State, env: tx.Envelope, p: tx.NotificationTransition, seq: int, tree: TreeView) -> None:
    n = state.notices.get(p.notification)
    if env.submitter not in (p.sender, p.recipient):
        raise PermissionDenied(f"only the sender or the recipient of notification {p.notification} moves it")
    if n is None:
        if p.sender == p.recipient:
            raise InvalidInput("a notification's sender and recipient must be two participants")
        if p.recipient not in state.identities:
            raise NotFound(f"the notification's recipient {p.recipient} is not registered on the ledger")
        if p.related is not None and p.related not in state.notices:
            raise NotFound(f"the related notification {p.related!r} is not on the ledger")
    else:
        fixed = {"sender": n.sender, "recipient": n.recipient, "classification": n.classification,
                 "severity": n.severity, "content": n.content}  # fmt: skip
        changed = [k for k, v in fixed.items() if getattr(p, k) != v]
        if changed:
            raise InvalidInput(f"notification {p.notification}: {', '.join(changed)} cannot change after it was "
                               "created", "name them as created; raise a new notification for new content")  # fmt: skip
    side = "sender" if env.submitter == p.sender else "recipient"
    tx.notification_move(n.state if n else None, p.state, side, p.reason)
    held = state.open_between(p.sender, p.recipient)
    if n is None and held >= MAX_OPEN_PER_PAIR:
        raise Conflict(f"{p.sender} holds {held} notifications open towards {p.recipient}, the most one sender may",
                       "close or cancel those settled before raising another; the recipient may decline what it "
                       "never received")  # fmt: skip
    was_open = n is not None and n.state not in SETTLED_NOTICES
    if (p.state not in SETTLED_NOTICES) != was_open:
        assert state._open_pairs is not None
        state._open_pairs[(p.sender, p.recipient)] += 1 if not was_open else -1
    if n is None:
        n = Notice(p.notification, p.sender, p.recipient, p.classification, p.severity, p.content, p.state, seq, seq)
    state.notices[p.notification] = replace(n, state=p.state, updated=seq)
    state.dirty_notices.add(p.notification)


def _action(state: State, env: tx.Envelope, p: tx.RegulatorAction, seq: int, tree: TreeView) -> None:
    if p.scope == "model":
        if not any(m.hash == p.subject for m in state.models.values()):
            raise NotFound(f"no model with code hash {p.subject[:16]}… is published on the ledger",
                           "name a published model by its code hash")  # fmt: skip
    else:
        who = state.identities.get(p.subject)
        if who is None:
            raise NotFound(f"{p.subject} is not registered on the ledger",
                           "name a member by its DID (qdsn member list)")  # fmt: skip
        if who.role == "regulator":
            raise PermissionDenied(f"{p.subject} is a regulator, and a regulator.action does not suspend a regulator")
        if p.scope == "issuer" and who.role != "certifier":
            raise InvalidInput(f"{p.subject} is a {who.role}, not a certification body: it has no authority to issue",
                               "suspend it as a member (scope member)")  # fmt: skip
    named = list(p.credentials or ())
    for number in named:
        c = state.credentials.get(number)
        if c is None:
            raise NotFound(f"no certificate {number!r} on the ledger")
        if c.issuer != p.subject:
            raise InvalidInput(f"certificate {number!r} was issued by {c.issuer}, not by {p.subject}")
    key = standing_key(p.scope, p.subject)
    now = state.standings.get(key)
    withdrawn = now.withdrawn if now is not None else ()
    suspended = now is not None and now.suspended
    if p.action == "suspend":
        again = [n for n in named if n in withdrawn]
        if again:
            raise Conflict(f"certificate {again[0]!r} is already withdrawn")
        if suspended and not named:
            raise Conflict(f"{p.scope} {p.subject} is already suspended (regulator.action at entry {now.since})",
                           "reinstate it first, or name the certificates to withdraw with it")  # fmt: skip
        since = now.since if suspended and now is not None else seq
        new = Standing(p.scope, p.subject, True, p.reason, since, p.notification, (*withdrawn, *named))
    else:
        kept = [n for n in named if n not in withdrawn]
        if kept:
            raise Conflict(f"certificate {kept[0]!r} is not withdrawn: there is nothing to restore")
        if not suspended and not named:
            raise Conflict(f"{p.scope} {p.subject} is not suspended: there is nothing to reinstate")
        new = Standing(p.scope, p.subject, False, p.reason, seq, p.notification,
                       tuple(n for n in withdrawn if n not in named))  # fmt: skip
    state.standings[key] = new
    state.dirty_standings.add(key)


def _plan(state: State, env: tx.Envelope, p: tx.InspectionPlan, seq: int, tree: TreeView) -> None:
    if p.plan in state.plans:
        raise Conflict(f"inspection plan {p.plan!r} already exists", "give each plan its own id")
    if p.basis > seq:
        raise InvalidInput(f"the plan's population is taken at entry {p.basis}, after the plan itself ({seq})",
                           "take the population from the log as it stands before the plan")  # fmt: skip
    state.plans[p.plan] = InspectionPlan(p.plan, env.submitter, p.commitment, p.count, tuple(p.inspectors),
                                         p.per_inspection, seq)  # fmt: skip
    state.dirty_plans.add(p.plan)


def _draw(state: State, env: tx.Envelope, p: tx.InspectionDraw, seq: int, tree: TreeView) -> None:
    plan = state.plans.get(p.plan)
    if plan is None:
        raise NotFound(f"no inspection plan {p.plan!r} on the ledger",
                       "commit the plan (inspection.plan) before its draw")  # fmt: skip
    if plan.planner != env.submitter:
        raise PermissionDenied(f"plan {p.plan} was committed by {plan.planner}; only it reveals the seed")
    if plan.drawn is not None:
        raise Conflict(f"plan {p.plan} was drawn at entry {plan.drawn}; a plan is drawn once",
                       "commit a new plan for another draw")  # fmt: skip
    if sha256(bytes.fromhex(p.seed)).hex() != plan.commitment:
        raise IntegrityError(f"the revealed seed does not match the commitment of plan {p.plan}",
                             "reveal the seed whose SHA-256 the plan committed to")  # fmt: skip
    if len(p.selection) != plan.count or len(set(p.selection)) != plan.count:
        raise InvalidInput(f"plan {p.plan} draws {plan.count} distinct enterprises, not {len(p.selection)}")
    if plan.inspectors:
        ok = len(p.inspectors) == plan.count and all(
            len(team) == plan.per_inspection and len(set(team)) == len(team) and set(team) <= set(plan.inspectors)
            for team in p.inspectors
        )
        if not ok:
            raise InvalidInput(f"plan {p.plan} assigns {plan.per_inspection} of its own inspectors to each selected "
                               "enterprise")  # fmt: skip
    elif p.inspectors:
        raise InvalidInput(f"plan {p.plan} names no inspectors to assign")
    state.plans[p.plan] = replace(plan, drawn=seq, selection=tuple(p.selection))
    state.dirty_plans.add(p.plan)


def _inspected(state: State, env: tx.Envelope, p: tx.InspectionResult, seq: int, tree: TreeView) -> None:
    who = state.identities.get(p.enterprise)
    if who is None or who.role != "enterprise":
        raise NotFound(f"{p.enterprise} is not a registered enterprise", "record results of registered manufacturers")
    if p.plan is not None:
        plan = state.plans.get(p.plan)
        if plan is None or plan.drawn is None:
            raise NotFound(f"no drawn inspection plan {p.plan!r} on the ledger", "draw the plan first, or leave it out")
        if p.enterprise not in plan.selection:
            raise InvalidInput(f"{p.enterprise} was not selected by the draw of plan {p.plan}",
                               "record it without --plan if it was inspected otherwise")  # fmt: skip


def _supply(state: State, env: tx.Envelope, p: tx.SupplyRelation, seq: int, tree: TreeView) -> None:
    if env.submitter not in (p.supplier, p.customer):
        raise PermissionDenied("a supply relation is declared by one of its two parties, the supplier or the customer")
    if p.supplier == p.customer:
        raise InvalidInput("a supply relation needs two different enterprises", "name the other party")
    for side, did in (("supplier", p.supplier), ("customer", p.customer)):
        who = state.identities.get(did)
        if who is None or who.role != "enterprise":
            raise NotFound(f"the {side} {did} is not a registered enterprise", "ask the regulator to admit it first")
    id = tx.txid(env.leaf())
    state.supplies[id] = Supply(id, p.supplier, p.customer, p.product, env.submitter, seq)
    state.dirty_supplies.add(id)


def _withdraw(state: State, env: tx.Envelope, p: tx.SupplyWithdraw, seq: int, tree: TreeView) -> None:
    r = state.supplies.get(p.relation)
    if r is None:
        raise NotFound(f"no supply relation {p.relation} on the ledger",
                       "name it by the id of its supply.relation entry (qdsn graph relations)")  # fmt: skip
    who = state.identities.get(env.submitter)
    if env.submitter != r.declarer and (who is None or who.role != "regulator"):
        raise PermissionDenied(f"supply relation {p.relation} was declared by {r.declarer}: only it, or the "
                               "regulator, withdraws it")  # fmt: skip
    if r.withdrawn is not None:
        raise Conflict(f"supply relation {p.relation} was withdrawn already (entry {r.withdrawn})")
    state.supplies[p.relation] = replace(r, withdrawn=seq, withdrawn_by=env.submitter)
    state.dirty_supplies.add(p.relation)


_APPLY: dict[str, Callable[..., None]] = {
    "notification.transition": _notification,
    "regulator.action": _action,
    "inspection.plan": _plan,
    "inspection.draw": _draw,
    "inspection.result": _inspected,
    "aggregate.task": _task,
    "aggregate.batch": _batch,
    "model.publish": _model,
    "credential.issue": _issue,
    "credential.status": _status,
    "compute.attest": _attest,
    "policy.set": _policy,
    "access.decision": _decision,
    "device.register": _device,
    "dataset.declare": _declare,
    "dataset.anchor": _anchor,
    "dataset.shred": _shred,
    "identity.register": _register,
    "identity.rotate_key": _rotate,
    "identity.endpoint": _endpoint,
    "checkpoint.cosign": _cosign,
    "alert.raise": _alert,
    "supply.relation": _supply,
    "supply.withdraw": _withdraw,
}
