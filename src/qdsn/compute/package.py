"""Certification model packages: a folder with `manifest.json` and the model's Python source.

A model's identity is its code hash: SHA-256 over a canonical archive of the package — a POSIX tar
(ustar) of every file in sorted path order, with owner, group, times and modes fixed — so the same
files give the same hash on any machine, and the archive itself is what a certifier ships. Symbolic
links, special files and anything outside the folder are refused; bytecode caches are left out.

An archive from another organisation is read header by header, and refused — for a member that is
not a plain ustar file, a size past the package limit, a path that is not plain or collides with
another — before a byte of any member is read.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import tokenize
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from qdsn.compute import review
from qdsn.errors import InvalidInput

MAX_PACKAGE = 8 << 20  # bytes of source and data a model may ship
MAX_FILES = 256  # files a model may ship
BLOCK = 512
# the largest canonical archive: each file's header and last partial block, the end, the last record
MAX_ARCHIVE = MAX_PACKAGE + MAX_FILES * 2 * BLOCK + 2 * BLOCK + tarfile.RECORDSIZE
MAX_ARCHIVE_BASE64 = -(-MAX_ARCHIVE // 3) * 4
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

    @field_validator("outputs")
    @classmethod
    def _closed(cls, v: dict[str, Any]) -> dict[str, Any]:
        closed(v)
        return v

    @model_validator(mode="after")
    def _exports_declared(self) -> Manifest:
        undeclared = sorted(set(self.exports) - set(self.outputs.get("properties", {})))
        if undeclared:
            raise ValueError(f"exports {undeclared} are not properties of the output schema")
        return self


# What an output schema may say: annotations, and constraints that keep every value to a declared
# shape. Everything else — patternProperties, unevaluated*, propertyNames, prefixItems, contains,
# not, if/then/else, $ref, dependentSchemas — is refused rather than reasoned about.
_ANNOTATIONS = {"title", "description", "$comment", "default", "examples", "deprecated", "readOnly", "writeOnly",
                "$schema", "$id", "format"}  # fmt: skip
_CONSTRAINTS = {"type", "enum", "const", "properties", "required", "additionalProperties", "minProperties",
                "maxProperties", "dependentRequired", "items", "minItems", "maxItems", "uniqueItems", "minLength",
                "maxLength", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
                "anyOf", "oneOf", "allOf"}  # fmt: skip
_OBJECT = {"properties", "required", "additionalProperties", "minProperties", "maxProperties", "dependentRequired"}
_ARRAY = {"items", "minItems", "maxItems", "uniqueItems"}
_STRING = {"minLength", "maxLength", "pattern"}
_BRANCHES = ("anyOf", "oneOf", "allOf")


def closed(schema: Any, where: str = "outputs") -> None:
    """Refuse an output schema under which anything undeclared could leave the node: every object
    says `additionalProperties: false`, every array its `items` and `maxItems`, every string its
    `maxLength` (or an enum or const fixes the value); the error names the schema path."""
    if schema is False:
        return
    if not isinstance(schema, dict):
        raise ValueError(f"{where}: `true` lets anything through; describe the value it may be")
    unknown = sorted(set(schema) - _ANNOTATIONS - _CONSTRAINTS)
    if unknown:
        raise ValueError(f"{where}: {unknown[0]} is not allowed in an output schema; only closed forms (objects "
                         f'with "additionalProperties": false, arrays with items and maxItems, strings with '
                         f"maxLength, numbers, booleans, enum, const, and anyOf/oneOf/allOf of these) say exactly "
                         f"what may leave the node")  # fmt: skip
    for key in _BRANCHES:
        for i, branch in enumerate(schema.get(key, [])):
            closed(branch, f"{where}.{key}[{i}]")
    if "enum" in schema or "const" in schema:
        return  # the value is one the manifest itself spells out
    types = schema.get("type")
    types = {types} if isinstance(types, str) else set(types or ())
    if not types and not any(k in schema for k in _BRANCHES):
        raise ValueError(f"{where}: say what the value is (type, enum or const): an open schema lets anything through")
    if "object" in types or (types and set(schema) & _OBJECT):
        if schema.get("additionalProperties") is not False:
            raise ValueError(f'{where}: an object must say "additionalProperties": false, so that only the '
                             f"properties it declares leave the node")  # fmt: skip
        for name, sub in schema.get("properties", {}).items():
            closed(sub, f"{where}.properties.{name}")
    if "array" in types or (types and set(schema) & _ARRAY):
        if "items" not in schema:
            raise ValueError(f"{where}: an array must say its items, the schema each of them fits")
        if not isinstance(schema.get("maxItems"), int):
            raise ValueError(f"{where}: an array must say its maxItems, how many items may leave the node")
        closed(schema["items"], f"{where}.items")
    if ("string" in types or (types and set(schema) & _STRING)) and not isinstance(schema.get("maxLength"), int):
        raise ValueError(f"{where}: a string must say its maxLength, how long it may be")


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
        _check_path(rel)
        if len(out) == MAX_FILES:
            raise InvalidInput(f"the package has more than {MAX_FILES} files")
        total += p.stat().st_size  # before it is read
        if total > MAX_PACKAGE:
            raise InvalidInput(f"the package is larger than {MAX_PACKAGE >> 20} MiB")
        data = p.read_bytes()
        if len(data) > p.stat().st_size:  # it grew as it was read
            raise InvalidInput(f"{rel} changed while it was read")
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
            try:
                tar.addfile(info, io.BytesIO(data))
            except ValueError as e:  # a path too long for a ustar header
                raise InvalidInput(f"{path} cannot be packed: {e}") from None
    return buf.getvalue()


def code_hash(blob: bytes) -> str:
    """SHA-256 of the canonical archive, lowercase hex."""
    return hashlib.sha256(blob).hexdigest()


def manifest_of(entries: list[tuple[str, bytes]]) -> Manifest:
    """The package's manifest, checked; its entrypoint must be one of the files."""
    for path, data in entries:
        _check_path(path)
        _check_source(path, data)
    _check_tree([path for path, _ in entries])
    raw = dict(entries).get("manifest.json")
    if raw is None:
        raise InvalidInput("the package has no manifest.json")
    try:
        m = Manifest.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as e:
        first = e.errors()[0] if isinstance(e, ValidationError) else None
        where = ".".join(map(str, first["loc"])) if first else ""
        msg = str(first["msg"]).removeprefix("Value error, ") if first else str(e)
        where = f"{where}: " if where and not msg.startswith(where) else ""
        raise InvalidInput(f"manifest.json: {where}{msg}") from None
    if m.entrypoint not in dict(entries):
        raise InvalidInput(f"manifest.json: the entrypoint {m.entrypoint} is not in the package")
    return m


def unpack(blob: bytes) -> list[tuple[str, bytes]]:
    """The files of a canonical archive; refuses anything `archive` would not have written, and
    checks every header (kind, size, path) before it reads any member."""
    members = _members(blob)
    for path, _, _ in members:
        _check_path(path)
    _check_tree([path for path, _, _ in members])
    out = [(path, blob[at : at + size]) for path, at, size in members]
    for path, data in out:
        _check_source(path, data)
    if archive(out) != blob:
        raise InvalidInput("the archive is not in canonical form: repack it with `qdsn model pack`")
    return out


# Why not `tarfile`: as it iterates, it follows pax and GNU long-name records and GNU sparse maps,
# and a sparse member reads back as its declared real size — 1.5 KiB of archive became 129 MiB of
# zeros. A canonical archive uses none of that: plain ustar headers, so they are read here, and
# anything else is refused before a byte of member data is touched.
_KINDS = {b"1": "a hard link", b"2": "a symbolic link", b"3": "a character device", b"4": "a block device",
          b"5": "a directory", b"6": "a FIFO", b"7": "a contiguous file", b"x": "a pax extended header",
          b"g": "a pax global header", b"L": "a GNU long name", b"K": "a GNU long link name",
          b"S": "a GNU sparse file", b"D": "a GNU directory dump", b"M": "a GNU multi-volume part",
          b"N": "a GNU long name (old form)", b"V": "a GNU volume label"}  # fmt: skip


def _members(blob: bytes) -> list[tuple[str, int, int]]:
    """Each member's (path, offset of its data, size), from the headers alone; refuses what is not
    a plain ustar file and a total declared size past `MAX_PACKAGE`."""
    if len(blob) > MAX_ARCHIVE:
        raise InvalidInput(f"the archive is {len(blob):,} bytes, larger than the {MAX_ARCHIVE:,} a model "
                           f"archive may be")  # fmt: skip
    if len(blob) % BLOCK:
        raise InvalidInput(f"not a model archive: a tar archive is whole {BLOCK}-byte blocks")
    out, total, at = [], 0, 0
    while True:
        if at + BLOCK > len(blob):
            raise InvalidInput("not a model archive: it ends without its end-of-archive blocks")
        h = blob[at : at + BLOCK]
        if not any(h):
            return out
        if _octal(h[148:156], "checksum") != sum(h[:148]) + 8 * 32 + sum(h[156:]):
            raise InvalidInput(f"not a model archive: the header at byte {at:,} has a wrong checksum")
        name = _name(h)
        kind = h[156:157]
        if kind != tarfile.REGTYPE:
            what = _KINDS.get(kind, f"of tar type {kind!r}")
            if kind == tarfile.XHDTYPE and b"GNU.sparse" in blob[at + BLOCK : at + 2 * BLOCK]:
                what = "a GNU sparse file (in pax form)"
            raise InvalidInput(f"archive member {name!r} is {what}: a package holds only plain files",
                               "repack it with `qdsn model pack`")  # fmt: skip
        if h[257:265] != b"ustar\x0000":
            raise InvalidInput(f"archive member {name!r} is not a POSIX ustar header",
                               "repack it with `qdsn model pack`")  # fmt: skip
        size = _octal(h[124:136], f"size of {name!r}")
        total += size
        if size > MAX_PACKAGE:
            raise InvalidInput(f"archive member {name!r} declares {size:,} bytes, more than the "
                               f"{MAX_PACKAGE >> 20} MiB a package may hold")  # fmt: skip
        if total > MAX_PACKAGE:
            raise InvalidInput(f"the archive's members declare {total:,} bytes, more than the "
                               f"{MAX_PACKAGE >> 20} MiB a package may hold")  # fmt: skip
        if len(out) == MAX_FILES:
            raise InvalidInput(f"the archive holds more than the {MAX_FILES} files a package may hold")
        if at + BLOCK + size > len(blob):
            raise InvalidInput(f"archive member {name!r} declares {size:,} bytes, past the end of the archive")
        out.append((name, at + BLOCK, size))
        at += BLOCK + -(-size // BLOCK) * BLOCK


def _octal(field: bytes, what: str) -> int:
    digits = field.rstrip(b"\0 ")
    if not digits or any(c not in b"01234567" for c in digits):
        raise InvalidInput(f"not a model archive: the {what} is not an octal number")
    return int(digits, 8)


def _name(h: bytes) -> str:
    name, prefix = h[:100].split(b"\0", 1)[0], h[345:500].split(b"\0", 1)[0]
    try:
        return (prefix.decode() + "/" if prefix else "") + name.decode()
    except UnicodeDecodeError:
        raise InvalidInput(f"not a model archive: a member's name is not UTF-8: {prefix + name!r}") from None


def _check_path(path: str) -> None:
    """A package path is relative and plain: no empty, `.` or `..` parts, nothing hidden in it."""
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise InvalidInput(f"archive member {path!r} is not a plain file inside the package: a path is relative, "
                           "with no empty, `.` or `..` parts",
                           "repack it with `qdsn model pack`")  # fmt: skip
    if any(review.hidden(ch) for ch in path):
        raise InvalidInput(f"the path {review.reveal(path)!r} has a control or invisible character",
                           "name package files with visible characters only")  # fmt: skip


def _check_source(path: str, data: bytes) -> None:
    """Python source is UTF-8: a coding cookie (`# coding: utf-7`) would make Python run other text than
    the owner reads before approving."""
    if not path.endswith(".py"):
        return
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as e:
        raise InvalidInput(f"{path} has a source encoding declaration Python cannot read: {e}",
                           "model source is UTF-8, without another coding declaration") from None  # fmt: skip
    if encoding not in ("utf-8", "utf-8-sig"):
        raise InvalidInput(f"{path} declares the source encoding {encoding}: Python would run other text than the "
                           f"owner reads", "model source is UTF-8, without another coding declaration")  # fmt: skip


def _check_tree(paths: list[str]) -> None:
    """No path twice, and none that is both a file and the folder of another."""
    files, folders = set(), set()
    for path in paths:
        if path in files:
            raise InvalidInput(f"{path!r} is in the package twice")
        files.add(path)
        parts = path.split("/")
        folders.update("/".join(parts[:i]) for i in range(1, len(parts)))
    both = sorted(files & folders)
    if both:
        raise InvalidInput(f"{both[0]!r} is both a file and a folder in the package")


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
        if source.stat().st_size > MAX_ARCHIVE:  # before it is read
            raise InvalidInput(f"{source} is larger than the {MAX_ARCHIVE:,} bytes a model archive may be")
        blob = source.read_bytes()
        entries = unpack(blob)
    else:
        raise InvalidInput(f"{source} is neither a model folder nor a model archive")
    return blob, manifest_of(entries)
