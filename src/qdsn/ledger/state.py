"""The world state: a deterministic fold over the log.

`authorize` says which key must have signed an envelope; `apply` checks a transaction against the
state and folds it in. Both are pure given the state and the log's tree, so replaying the log from
zero on any node reproduces the same state and the same `digest()`.
"""

from __future__ import annotations

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
        self.origin = origin
        self.dirty: set[str] = set()
        self.dirty_datasets: set[str] = set()
        self.new_cosignatures: list[Cosignature] = []

    def fork(self) -> State:
        """A copy to stage a batch on; the original stays as it was if the batch fails."""
        return State(self.identities, self.origin, self.datasets, self.devices, self.models, self.credentials,
                     self.tasks)  # fmt: skip

    def clean(self) -> None:
        """Forget what changed, once it is persisted."""
        self.dirty.clear()
        self.dirty_datasets.clear()
        self.dirty_devices.clear()
        self.dirty_models.clear()
        self.dirty_credentials.clear()
        self.dirty_tasks.clear()
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
        _APPLY[env.type](self, env, payload, seq, tree)

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
        return sha256(canonical_json(doc))


def _register(state: State, env: tx.Envelope, p: tx.IdentityRegister, seq: int, tree: TreeView) -> None:
    if p.did in state.identities:
        raise Conflict(f"{p.did} is already registered", "use identity.rotate_key to change its key")
    if p.did.startswith("did:key:") and p.did != "did:key:" + p.key:
        raise InvalidInput(f"key {p.key} is not the key of {p.did}")
    key = public_key_from_multikey(p.key)
    state.identities[p.did] = Identity(p.did, p.role, p.name, key, seq, seq)
    state.dirty.add(p.did)


def _rotate(state: State, env: tx.Envelope, p: tx.IdentityRotateKey, seq: int, tree: TreeView) -> None:
    who = state.identities[p.did]
    if multikey_from_public_key(who.key) != p.previous_key:
        raise Conflict(f"previous_key is not the current key of {p.did}", "sign with the current key")
    if p.new_key == p.previous_key:
        raise InvalidInput("new_key equals the current key")
    new = public_key_from_multikey(p.new_key)
    if not verify_key(new).is_valid(b64url_decode(p.proof), tx.rotation_message(p.did, p.previous_key, p.new_key)):
        raise BadSignature("identity.rotate_key: proof is not the new key's signature", "sign with the new key")
    state.identities[p.did] = replace(who, key=new, updated=seq)
    state.dirty.add(p.did)


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


def _supply(state: State, env: tx.Envelope, p: tx.SupplyRelation, seq: int, tree: TreeView) -> None:
    if env.submitter not in (p.supplier, p.customer):
        raise PermissionDenied("a supply relation is declared by one of its two parties, the supplier or the customer")
    if p.supplier == p.customer:
        raise InvalidInput("a supply relation needs two different enterprises", "name the other party")
    for side, did in (("supplier", p.supplier), ("customer", p.customer)):
        who = state.identities.get(did)
        if who is None or who.role != "enterprise":
            raise NotFound(f"the {side} {did} is not a registered enterprise", "ask the regulator to admit it first")


_APPLY: dict[str, Callable[..., None]] = {
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
    "checkpoint.cosign": _cosign,
    "alert.raise": _alert,
    "supply.relation": _supply,
}
