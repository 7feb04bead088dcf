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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from qdsn.compute import review
from qdsn.errors import InvalidInput

MAX_PACKAGE = 8 << 20  # bytes of source and data a model may ship
MAX_FILES = 256  # files a model may ship
BLOCK = 512
# the largest canonical archive: each file's header and last partial block, the end, the last record
MAX_ARCHIVE = MAX_PACKAGE + MAX_FILES * 2 * BLOCK + 2 * BLOCK + tarfile.RECORDSIZE
MAX_ARCHIVE_BASE64 = -(-MAX_ARCHIVE // 3) * 4
KINDS = ("measurements", "inspections", "compliance", "activity")
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
    def _schema(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        bounded(v, info.field_name or "schema")  # before the metaschema walks it: no $ref, no depth past MAX_DEPTH
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


# What a manifest's schema may say: annotations, and constraints that are checked in time linear in the
# document and keep every value to a declared shape. Everything else is refused rather than reasoned
# about: `pattern` and `patternProperties` (Python's `re` backtracks, and holds the GIL while it does:
# `^(a+)+$` on 30 characters froze a node), `format`, `$ref`/`$defs`/`$dynamicRef` (`"$ref": "#"`
# recursed without end), `not`, `anyOf`/`oneOf`/`allOf`, `if`/`then`/`else`, `uniqueItems`
# (quadratic on unhashable items), `multipleOf` (overflows on floats), `unevaluated*`, `contains`…
_ANNOTATIONS = {"title", "description", "$comment", "default", "examples", "$schema"}
_CONSTRAINTS = {"type", "enum", "const", "properties", "required", "additionalProperties", "items", "minItems",
                "maxItems", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum",
                "exclusiveMaximum"}  # fmt: skip
_OBJECT = {"properties", "required", "additionalProperties"}
_ARRAY = {"items", "minItems", "maxItems"}
_STRING = {"minLength", "maxLength"}
DRAFT = "https://json-schema.org/draft/2020-12/schema"
MAX_DEPTH = 16  # levels of nested schemas in a manifest
MAX_ENUM = 64  # values of one enum


def bounded(schema: Any, where: str = "parameters", depth: int = 0) -> None:
    """Refuse a schema that uses a keyword outside the allowlist above (each is checked in time linear
    in the document), or nests past `MAX_DEPTH`; the error names the schema path."""
    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        raise ValueError(f"{where}: a schema is an object or a boolean")
    if depth > MAX_DEPTH:
        raise ValueError(f"{where}: schemas nest more than {MAX_DEPTH} levels deep")
    kind = "an output schema" if where.startswith("outputs") else "a manifest's schema"
    unknown = sorted(set(schema) - _ANNOTATIONS - _CONSTRAINTS)
    if unknown:
        raise ValueError(f"{where}: {unknown[0]} is not allowed in {kind}; only {', '.join(sorted(_CONSTRAINTS))} "
                         f"(and annotations) are, which are checked in time linear in the document and say exactly "
                         f"what a value may be")  # fmt: skip
    enum = schema.get("enum", [])
    if isinstance(enum, list) and len(enum) > MAX_ENUM:  # each value of the document is compared with each
        raise ValueError(f"{where}: an enum lists at most {MAX_ENUM} values")
    if schema.get("$schema", DRAFT) != DRAFT:
        raise ValueError(f"{where}: $schema must be {DRAFT}, the draft the node checks by")
    if "additionalProperties" in schema:
        bounded(schema["additionalProperties"], f"{where}.additionalProperties", depth + 1)
    props = schema.get("properties", {})
    if not isinstance(props, dict):
        raise ValueError(f"{where}.properties: properties is an object of schemas")
    for name, sub in props.items():
        bounded(sub, f"{where}.properties.{name}", depth + 1)
    if "items" in schema:
        bounded(schema["items"], f"{where}.items", depth + 1)


def closed(schema: Any, where: str = "outputs") -> None:
    """Refuse an output schema under which anything undeclared could leave the node: only the keywords
    `bounded` allows, every object says `additionalProperties: false`, every array its `items` and
    `maxItems`, every string its `maxLength` (or an enum or const fixes the value); the error names
    the schema path."""
    bounded(schema, where)
    _closed_at(schema, where)


def _closed_at(schema: Any, where: str) -> None:
    if schema is False:
        return
    if schema is True:
        raise ValueError(f"{where}: `true` lets anything through; describe the value it may be")
    if "enum" in schema or "const" in schema:
        return  # the value is one the manifest itself spells out
    types = schema.get("type")
    types = {types} if isinstance(types, str) else set(types or ())
    if not types:
        raise ValueError(f"{where}: say what the value is (type, enum or const): an open schema lets anything through")
    if "object" in types or set(schema) & _OBJECT:
        if schema.get("additionalProperties") is not False:
            raise ValueError(f'{where}: an object must say "additionalProperties": false, so that only the '
                             f"properties it declares leave the node")  # fmt: skip
        for name, sub in schema.get("properties", {}).items():
            _closed_at(sub, f"{where}.properties.{name}")
    if "array" in types or set(schema) & _ARRAY:
        if "items" not in schema:
            raise ValueError(f"{where}: an array must say its items, the schema each of them fits")
        if not isinstance(schema.get("maxItems"), int):
            raise ValueError(f"{where}: an array must say its maxItems, how many items may leave the node")
        _closed_at(schema["items"], f"{where}.items")
    if ("string" in types or set(schema) & _STRING) and not isinstance(schema.get("maxLength"), int):
        raise ValueError(f"{where}: a string must say its maxLength, how long it may be")


def check_parameters(m: Manifest, parameters: Any) -> None:
    """Refuse parameters that do not fit the model's schema, with the first misfit: every keyword a
    manifest may use is linear-time, and no more than one error is ever made."""
    error = next(jsonschema.Draft202012Validator(m.parameters).iter_errors(parameters), None)
    if error is not None:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)[:200]
        raise InvalidInput(f"the parameters do not fit {m.id}'s schema{f' at {where[1:]}' if where else ''}: "
                           f"{error.message[:300]}")  # fmt: skip


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
        _check_file(rel, data)
        out.append((rel, data))
    _check_tree([rel for rel, _ in out])
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
        _check_file(path, data)
    _check_tree([path for path, _ in entries])
    raw = dict(entries).get("manifest.json")
    if raw is None:
        raise InvalidInput("the package has no manifest.json")
    try:
        m = Manifest.model_validate(json.loads(raw))
    except RecursionError:
        raise InvalidInput("manifest.json nests too deeply to be a model's manifest") from None
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
        _check_kind(path)
    _check_tree([path for path, _, _ in members])
    out = [(path, blob[at : at + size]) for path, at, size in members]
    for path, data in out:
        _check_file(path, data)
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


# What a package may hold: Python source and plain-text data, named in ASCII — so that what the owner
# reads is what runs. Bytecode (`__pycache__/x.cpython-311.pyc` runs in place of the `x.py` beside
# it), native extensions (`x.so` is imported before `x.py`), zip archives (importable from sys.path)
# and any other binary are refused, as are look-alike names (`mаin.py` with a Cyrillic а) and two
# files that import as one module (`x.py` beside `x/__init__.py`).
_PART = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
SUFFIXES = (".py", ".json", ".txt", ".md", ".csv")


def _check_path(path: str) -> None:
    """A package path is relative and plain: ASCII letters, digits, `_`, `-` and `.` in each part,
    which starts with no `.` (no hidden, `.` or `..` part)."""
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise InvalidInput(f"archive member {review.reveal(path)!r} is not a plain file inside the package: a path "
                           "is relative, with no empty, `.` or `..` parts",
                           "repack it with `qdsn model pack`")  # fmt: skip
    if any(review.hidden(ch) for ch in path):
        raise InvalidInput(f"the path {review.reveal(path)!r} has a control or invisible character",
                           "name package files with visible characters only")  # fmt: skip
    if not all(_PART.fullmatch(p) for p in parts):
        raise InvalidInput(f"the path {path!a} is not plain: a package path is ASCII letters, digits, "
                           f"`_`, `-` and `.` (not first), so that no two names look alike",
                           "rename the file")  # fmt: skip


def _check_kind(path: str) -> None:
    """A package file is Python source or plain-text data: no bytecode, native code or other binary."""
    if "__pycache__" in path.split("/") or path.endswith((".pyc", ".pyo")):
        raise InvalidInput(f"{path} is Python bytecode: Python would run it instead of the source the owner reads",
                           "ship source only (`qdsn model pack` leaves bytecode out)")  # fmt: skip
    if not path.endswith(SUFFIXES):
        raise InvalidInput(f"{path} is not a kind of file a package may hold: only {', '.join(SUFFIXES)} (source "
                           f"and plain-text data the owner can read; no native code, archives or other binaries)",
                           "leave it out of the package")  # fmt: skip


def _check_file(path: str, data: bytes) -> None:
    """A package file's kind and text: UTF-8 without NUL bytes, so that the owner can read all of it."""
    _check_kind(path)
    if b"\0" in data:
        raise InvalidInput(f"{path} holds NUL bytes: a package holds only text (no native code or archives)")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidInput(f"{path} is not UTF-8 text (byte {e.start:,}): a package holds only text") from None
    _check_source(path, data)


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
    """No path twice, none that is both a file and the folder of another, and no two that import as
    one module (`x.py` beside a folder `x`)."""
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
    shadowed = sorted(f for f in files if f.endswith(".py") and f.removesuffix(".py") in folders)
    if shadowed:
        module = shadowed[0].removesuffix(".py")
        raise InvalidInput(f"{shadowed[0]!r} and the folder {module + '/'!r} both import as the module "
                           f"{module.replace('/', '.')!r}: the owner could read one while the other runs",
                           "rename one of them")  # fmt: skip


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
