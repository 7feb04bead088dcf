"""Certification model packages: a folder with `manifest.json` and the model's Python source.

A model's identity is its code hash: SHA-256 over a canonical archive of the package — a POSIX tar
(ustar) of every file in sorted path order, with owner, group, times and modes fixed — so the same
files give the same hash on any machine, and the archive itself is what a certifier ships. Symbolic
links, special files and anything outside the folder are refused; bytecode caches are left out.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from qdsn.errors import InvalidInput

MAX_PACKAGE = 8 << 20  # bytes of source and data a model may ship
KINDS = ("measurements", "inspections", "compliance")
_SKIP = re.compile(r"(^|/)(__pycache__|\.[^/]*)(/|$)|\.py[co]$")


class Reads(BaseModel):
    """What a model reads: dataset kinds and, optionally, the characteristics it needs."""

    model_config = ConfigDict(extra="forbid")
    kinds: list[str] = Field(min_length=1)
    characteristics: list[str] = []

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, v: list[str]) -> list[str]:
        unknown = sorted(set(v) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown dataset kind(s) {unknown}; known: {', '.join(KINDS)}")
        return v


class Manifest(BaseModel):
    """`manifest.json`: who the model is, what it reads, what it takes and what may leave the node."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    entrypoint: str = Field(pattern=r"^[A-Za-z0-9_/.-]+\.py$")
    description: str = Field(min_length=1, max_length=2000)
    reads: Reads
    parameters: dict[str, Any]  # JSON Schema of the parameters
    outputs: dict[str, Any]  # JSON Schema of the one JSON document the model prints
    exports: list[str] = Field(min_length=1)  # top-level output fields that may leave the node

    @field_validator("parameters", "outputs")
    @classmethod
    def _schema(cls, v: dict[str, Any]) -> dict[str, Any]:
        try:
            jsonschema.Draft202012Validator.check_schema(v)
        except jsonschema.SchemaError as e:
            raise ValueError(f"not a valid JSON Schema: {e.message}") from None
        if v.get("type") != "object":
            raise ValueError('must describe a JSON object ("type": "object")')
        return v

    @model_validator(mode="after")
    def _exports_declared(self) -> Manifest:
        undeclared = sorted(set(self.exports) - set(self.outputs.get("properties", {})))
        if undeclared:
            raise ValueError(f"exports {undeclared} are not properties of the output schema")
        return self


def files(folder: Path) -> list[tuple[str, bytes]]:
    """The package's files as (POSIX path, bytes), sorted; refuses links, special files and size."""
    folder = Path(folder)
    if not (folder / "manifest.json").is_file():
        raise InvalidInput(f"{folder} is not a model package: it has no manifest.json")
    out, total = [], 0
    for p in sorted(folder.rglob("*"), key=lambda p: p.relative_to(folder).as_posix()):
        rel = p.relative_to(folder).as_posix()
        if _SKIP.search(rel):
            continue
        if p.is_symlink():
            raise InvalidInput(f"{rel} is a symbolic link: a package holds only its own files")
        if p.is_dir():
            continue
        if not p.is_file():
            raise InvalidInput(f"{rel} is not a regular file")
        data = p.read_bytes()
        total += len(data)
        if total > MAX_PACKAGE:
            raise InvalidInput(f"the package is larger than {MAX_PACKAGE >> 20} MiB")
        out.append((rel, data))
    return out


def archive(entries: list[tuple[str, bytes]]) -> bytes:
    """The canonical archive: ustar, sorted paths, uid/gid 0, no names, mtime 0, mode 0644."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path, data in sorted(entries):
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = (
                len(data), 0, 0o644, 0, 0, "", "")  # fmt: skip
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def code_hash(blob: bytes) -> str:
    """SHA-256 of the canonical archive, lowercase hex."""
    return hashlib.sha256(blob).hexdigest()


def manifest_of(entries: list[tuple[str, bytes]]) -> Manifest:
    """The package's manifest, checked; its entrypoint must be one of the files."""
    raw = dict(entries).get("manifest.json")
    if raw is None:
        raise InvalidInput("the package has no manifest.json")
    try:
        m = Manifest.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as e:
        first = e.errors()[0] if isinstance(e, ValidationError) else None
        where = ".".join(map(str, first["loc"])) if first else ""
        raise InvalidInput(f"manifest.json: {where + ': ' if where else ''}{first['msg'] if first else e}") from None
    if m.entrypoint not in dict(entries):
        raise InvalidInput(f"manifest.json: the entrypoint {m.entrypoint} is not in the package")
    return m


def unpack(blob: bytes) -> list[tuple[str, bytes]]:
    """The files of a canonical archive; refuses anything `archive` would not have written."""
    out = []
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:") as tar:
            for info in tar:
                path = PurePosixPath(info.name)
                if not info.isreg() or path.is_absolute() or ".." in path.parts:
                    raise InvalidInput(f"archive member {info.name!r} is not a plain file inside the package")
                f = tar.extractfile(info)
                assert f is not None
                out.append((info.name, f.read()))
    except tarfile.TarError as e:
        raise InvalidInput(f"not a model archive: {e}") from None
    if archive(out) != blob:
        raise InvalidInput("the archive is not in canonical form: repack it with `qdsn model pack`")
    return out


def builtin(model: str) -> Path:
    """The folder of one of QDSN's built-in certification models."""
    folder = Path(str(resources.files("qdsn.compute").joinpath("models", model)))
    if not (folder / "manifest.json").is_file():
        known = sorted(p.name for p in folder.parent.iterdir() if (p / "manifest.json").is_file())
        raise InvalidInput(f"no built-in model {model!r}", f"built in: {', '.join(known)}")
    return folder


def load(source: Path) -> tuple[bytes, Manifest]:
    """A package folder or its archive as (canonical archive, manifest)."""
    source = Path(source)
    if source.is_dir():
        entries = files(source)
        blob = archive(entries)
    elif source.is_file():
        blob = source.read_bytes()
        entries = unpack(blob)
    else:
        raise InvalidInput(f"{source} is neither a model folder nor a model archive")
    return blob, manifest_of(entries)
