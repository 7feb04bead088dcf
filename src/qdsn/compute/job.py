"""Running a certification model on the owner's own data, and attesting the result.

The node checks the model is the one published on the ledger, the parameters against its manifest,
and that every record read lies in a batch anchored on the ledger; decrypts only the pinned ranges;
runs the model in the sandbox; keeps exactly one JSON document from its output, valid against the
manifest's output schema — closed at every depth, so that a field it does not declare, at any depth,
fails the run — and of it only the top-level fields the manifest exports: every other one is dropped
and named; and signs an attestation over what ran, on what, to what result.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import orjson

from qdsn import __version__
from qdsn.clock import format_time, system_clock
from qdsn.compute import attest, package, sandbox
from qdsn.compute.sandbox import Limits
from qdsn.crypto import SigningKey
from qdsn.data.vault import Vault
from qdsn.errors import InvalidInput, NotFound, PermissionDenied
from qdsn.ledger import Ledger


@dataclass(frozen=True)
class Owner:
    """The data owner's side of a run: its replica, vault and key, and the home the model must not see."""

    ledger: Ledger
    vault: Vault
    key: SigningKey
    did: str
    home: Path


@dataclass(frozen=True)
class Range:
    """Records [first, first + count) of one dataset."""

    dataset: str
    first: int
    count: int


@dataclass(frozen=True)
class Result:
    """How a job ended: `status` ok, or the sandbox's status, or invalid-output; what left the node."""

    job: str
    status: str
    reason: str = ""
    output: dict[str, Any] | None = None  # the exported fields only
    dropped: list[str] = field(default_factory=list)
    attestation: str | None = None
    seconds: float = 0.0
    log: str = ""  # the model's stderr and what did not fit, for the owner only: `reason` reaches the requester

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def execute(
    owner: Owner,
    blob: bytes,
    parameters: dict[str, Any],
    ranges: Sequence[Range],
    nonce: str,
    *,
    job: str,
    isolation: str = "bwrap",
    limits: Limits = sandbox.DEFAULT,
) -> Result:
    """Run the model archive `blob` on `ranges` of the owner's datasets; attest an ok run."""
    entries = package.unpack(blob)
    m = package.manifest_of(entries)
    code_hash = package.code_hash(blob)
    published = owner.ledger.state.models.get(f"{m.id}@{m.version}")
    if published is None or published.hash != code_hash:
        raise PermissionDenied(f"model {m.id} {m.version} with code hash {code_hash[:16]}… is not published",
                               "run only models a certification body has published on the ledger")  # fmt: skip
    try:
        jsonschema.validate(parameters, m.parameters)
    except jsonschema.ValidationError as e:
        raise InvalidInput(f"the parameters do not fit {m.id}'s schema: {e.message}") from None
    datasets, inputs = [], []
    for r in ranges:
        kind, records, batches = _read(owner, r)
        if kind not in m.reads.kinds:
            raise InvalidInput(f"{m.id} reads {', '.join(m.reads.kinds)}, and {r.dataset} holds {kind}")
        decl = owner.ledger.declaration(r.dataset)
        datasets.append({"id": r.dataset, "kind": kind, "characteristics": decl.get("characteristics", []),
                         "records": records})  # fmt: skip
        inputs.append({"dataset": r.dataset, "first": r.first, "count": r.count, "batches": batches})
    start = format_time(system_clock())
    with tempfile.TemporaryDirectory(prefix="qdsn-model-") as folder:
        for path, data in entries:
            (Path(folder) / path).parent.mkdir(parents=True, exist_ok=True)
            (Path(folder) / path).write_bytes(data)
        run = sandbox.run(Path(folder), m.entrypoint, orjson.dumps({"parameters": parameters, "datasets": datasets}),
                          isolation=isolation, limits=limits, secrets=[owner.home])  # fmt: skip
    if not run.ok:
        return Result(job, run.status, _why(run), seconds=run.seconds, log=run.stderr)
    try:
        doc = orjson.loads(run.stdout)
    except orjson.JSONDecodeError as e:
        return Result(job, "invalid-output", f"the model's output is not exactly one JSON document: {e}",
                      seconds=run.seconds, log=run.stderr)  # fmt: skip
    misfit = _misfit(doc, m.outputs)
    if misfit is not None:
        why, detail = misfit
        return Result(job, "invalid-output", why, seconds=run.seconds, log=f"{detail}\n{run.stderr}".strip())
    # the schema is closed at every depth (`package.closed`), so a document that fits it holds nothing
    # undeclared; of its top-level fields only the exports leave
    output = {k: v for k, v in doc.items() if k in m.exports}
    dropped = sorted(set(doc) - set(output))
    # what the run went without (only ever under --isolation=process) is part of what is attested
    config = {"isolation": run.isolation, "unenforced": list(run.unenforced), **asdict(limits)}
    measurements = {"model": f"{m.id}@{m.version}", "code_hash": code_hash, "runner": f"qdsn/{__version__}",
                    "isolation": run.isolation, "unenforced": list(run.unenforced),
                    "config_hash": attest.digest(config)}  # fmt: skip
    claims = attest.claims_for(owner.did, nonce, measurements, inputs, parameters, output, start,
                               format_time(system_clock()), job, int(system_clock().timestamp()), dropped)  # fmt: skip
    token = attest.attest(owner.key, owner.did, claims)
    return Result(job, "ok", output=output, dropped=dropped, attestation=token, seconds=run.seconds)


def _read(owner: Owner, r: Range) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """A range's kind, records and anchored batches; refuses records in no anchored batch."""
    if r.count < 1 or r.first < 0:
        raise InvalidInput(f"a range of {r.dataset} names at least one record from 0 on")
    ds = owner.ledger.state.datasets.get(r.dataset)
    if ds is None or ds.owner != owner.did:
        raise NotFound(f"dataset {r.dataset!r} is not this node's")
    if r.first + r.count > ds.anchored:
        raise InvalidInput(f"records {r.first}–{r.first + r.count - 1} of {r.dataset} are not all anchored "
                           f"({ds.anchored} are)")  # fmt: skip
    records, batches = [], []
    for b, txid, leaves in owner.vault.covering(r.dataset, r.first, r.first + r.count):
        if txid is None:
            raise InvalidInput(f"the batch at record {b.first} of {r.dataset} is not anchored yet")
        lo, hi = max(r.first, b.first) - b.first, min(r.first + r.count, b.first + b.count) - b.first
        for x in leaves[lo:hi]:
            leaf = orjson.loads(x)
            # a reading whose device signature was verified on arrival keeps it in its leaf
            records.append(leaf["record"] | {"signed": True} if "sig" in leaf else leaf["record"])
        batches.append({"anchor": txid, "first": b.first, "count": b.count, "root": b.root.hex()})
    return owner.vault.kind(r.dataset), records, batches


def _misfit(doc: Any, schema: dict[str, Any]) -> tuple[str, str] | None:
    """Why the output does not fit the manifest's closed output schema, naming the field but never a
    value the model chose (the requester reads it), and the validator's full message for the owner;
    None if it fits."""
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(doc))
    if not errors:
        return None
    extra = [e for e in errors if e.validator == "additionalProperties"]
    if extra:
        e = min(extra, key=lambda e: len(e.absolute_path))
        declared = e.schema.get("properties", {}) if isinstance(e.schema, dict) else {}
        name = sorted(k for k in e.instance if k not in declared)[0]
        return f"output has undeclared field {_field([*e.absolute_path, name])}", e.message[:4096]
    e = jsonschema.exceptions.best_match(errors)
    where = _field(list(e.absolute_path))
    what = f"output field {where}" if where else "the output"
    return f"{what} does not fit the manifest's schema (its {e.validator} rule)", e.message[:4096]


def _field(path: list[Any]) -> str:
    """A path into a JSON document as `characteristics[0].raw_values`; odd names quoted, long ones cut."""
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            name = p if p.isidentifier() and len(p) <= 40 else orjson.dumps(p[:40]).decode()  # a name, not a channel
            out += ("." if out else "") + name
    return out


def _why(run: sandbox.Run) -> str:
    what = {"timeout": "it ran past its wall-clock limit", "cpu-limit": "it used up its CPU time",
            "output-too-large": "it printed more than its output limit", "killed": "a signal or limit killed it",
            "failed": "it exited with an error"}.get(run.status, run.status)  # fmt: skip
    return f"{what} (exit {run.exit_code})"  # what it wrote stays in the owner's `log`
