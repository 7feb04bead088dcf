"""Running a certification model on the owner's own data, and attesting the result.

The node checks the model is the one published on the ledger, the parameters against its manifest,
and that every record read lies in a batch anchored on the ledger; decrypts only the pinned ranges;
runs the model in the sandbox; keeps exactly one JSON document from its output, valid against the
manifest's output schema — closed at every depth, so that a field it does not declare, at any depth,
fails the run — and of it only the top-level fields the manifest exports: every other one is dropped
and named; and signs an attestation over what ran, on what, to what result.
"""

from __future__ import annotations

import math
import reprlib
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
    held = owner.ledger.state.suspension("model", code_hash)
    if held is not None:
        raise PermissionDenied(
            f"model {m.id} {m.version} is suspended by the regulator (regulator.action at "
            f"entry {held.since}: {held.reason})",
            "it runs again once the regulator reinstates it",
        )
    package.check_parameters(m, parameters)
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
    seconds = float(math.ceil(run.seconds))  # whole seconds: the requester and the meter see no finer timing
    if not run.ok:
        return Result(job, run.status, _why(run), seconds=seconds,
                      log=f"exit code {run.exit_code} after {run.seconds:.3f} s\n{run.stderr}".strip())  # fmt: skip
    try:
        doc = orjson.loads(run.stdout)
    except orjson.JSONDecodeError as e:  # where it broke is the model's choice: the owner's log says it
        return Result(job, "invalid-output", "the model's output is not exactly one JSON document",
                      seconds=seconds, log=f"{e}\n{run.stderr}".strip())  # fmt: skip
    misfit = _misfit(doc, m.outputs)
    if misfit is not None:
        why, detail = misfit
        return Result(job, "invalid-output", why, seconds=seconds, log=f"{detail}\n{run.stderr}".strip())
    # the schema is closed at every depth (`package.closed`), so a document that fits it holds nothing
    # undeclared; of its top-level fields only the exports leave
    output = {k: v for k, v in doc.items() if k in m.exports}
    dropped = sorted(set(doc) - set(output))
    # what the run went without (only ever under --isolation=process) is part of what is attested
    config = {"isolation": run.isolation, "unenforced": list(run.unenforced), **asdict(limits)}
    measurements = {"model": f"{m.id}@{m.version}", "code_hash": code_hash, "runner": f"qdsn/{__version__}",
                    "isolation": run.isolation, "unenforced": list(run.unenforced),
                    "config_hash": attest.digest(config)}  # fmt: skip
    trained = output.get("parameters_sha256")
    if isinstance(trained, str) and len(trained) == 64 and all(ch in "0123456789abcdef" for ch in trained):
        # the fitted parameters a model exported are named in the attestation itself (already exported,
        # so this adds nothing the manifest did not let leave)
        measurements["trained"] = {"sha256": trained, "format": str(output.get("parameters_format", ""))[:16]}
    claims = attest.claims_for(owner.did, nonce, measurements, inputs, parameters, output, start,
                               format_time(system_clock()), job, int(system_clock().timestamp()), dropped)  # fmt: skip
    token = attest.attest(owner.key, owner.did, claims)
    return Result(job, "ok", output=output, dropped=dropped, attestation=token, seconds=seconds)


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
    """Why the output does not fit the manifest's closed output schema, or None if it fits: a reason
    for the requester that holds only the schema's own names, indices and rules — never a name or
    value the model chose — and the detail for the owner's log. The document is first walked against
    the schema by `_shape`, which stops at the first undeclared field or bound passed, so that only a
    document bounded by the schema reaches jsonschema; of that, only the first error is made."""
    misfit = _shape(doc, schema, [])
    if misfit is None:
        e = next(jsonschema.Draft202012Validator(schema).iter_errors(doc), None)
        if e is None:
            return None
        misfit = list(e.absolute_path), str(e.validator), e.message[:4096]
    path, rule, detail = misfit
    where = _field(path)
    if rule == "additionalProperties":
        return f"output has an undeclared field{f' in {where}' if where else ''}", detail
    what = f"output field {where}" if where else "the output"
    return f"{what} does not fit the manifest's schema (its {rule} rule)", detail


_short = reprlib.Repr()  # what the owner's log shows of a value: bounded, however large the value
_short.maxstring, _short.maxother, _short.maxlist, _short.maxdict, _short.maxlevel = 200, 200, 10, 10, 3
_TYPES: dict[str, Any] = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
                          "number": (int, float), "integer": int}  # fmt: skip


def _shape(value: Any, schema: Any, path: list[Any]) -> tuple[list[Any], str, str] | None:
    """The first place where `value` leaves the shape of a closed schema (`package.closed`): a type
    not declared, an undeclared field, an array past its maxItems, a string past its maxLength — as
    (path of declared names and indices, rule, detail for the owner). Written by hand because
    jsonschema makes every error of a document before any can be looked at inside `items`, and
    checks bounds after it has walked what they bound: 1 MiB of output cost 1.5 GB and 15 s."""
    if schema is False:
        return path, "false", "no value is allowed here"
    if not isinstance(schema, dict) or "enum" in schema or "const" in schema:
        return None  # a fixed value: compared by jsonschema, in time bounded by the manifest's own value
    types = schema.get("type")
    types = [types] if isinstance(types, str) else list(types or ())
    if types and not any(_is(value, t) for t in types):
        return path, "type", f"{_short.repr(value)} is not of type {' or '.join(types)}"
    if isinstance(value, dict):
        declared = schema.get("properties", {})
        for name in value:
            if name not in declared:
                return path, "additionalProperties", f"undeclared field {name[:200]!r}"
        for name, sub in value.items():
            misfit = _shape(sub, declared[name], [*path, name])
            if misfit is not None:
                return misfit
    elif isinstance(value, list):
        if len(value) > schema.get("maxItems", len(value)):
            return path, "maxItems", f"{len(value):,} items, more than {schema['maxItems']}"
        for i, item in enumerate(value):
            misfit = _shape(item, schema.get("items", True), [*path, i])
            if misfit is not None:
                return misfit
    elif isinstance(value, str) and len(value) > schema.get("maxLength", len(value)):
        return path, "maxLength", f"{len(value):,} characters, more than {schema['maxLength']}"
    return None


def _is(value: Any, kind: str) -> bool:
    """Whether a JSON value is of a JSON Schema type (a bool is no number; 1.0 is an integer)."""
    if isinstance(value, bool):
        return kind == "boolean"
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES.get(kind, ()))


def _field(path: list[Any]) -> str:
    """A path into a JSON document as `characteristics[0].values`; only ever of names the schema declares."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else ("." if out else "") + str(p)
    return out


def _why(run: sandbox.Run) -> str:
    """Why a run failed, in the sandbox's words only: its exit code (a byte the model chose) is for the owner's log."""
    return {"timeout": "it ran past its wall-clock limit", "cpu-limit": "it used up its CPU time",
            "output-too-large": "it printed more than its output limit", "killed": "a signal or limit killed it",
            "memory-limit": "it used up its memory",
            "failed": "it exited with an error"}.get(run.status, f"it ended {run.status}")  # fmt: skip
