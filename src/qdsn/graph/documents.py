"""The EPCIS documents members shared with the regulator, kept in its home (`graph/shared/`): one file per
document, named by the SHA-256 of its RFC 8785 form, holding the sharer's DID beside it. Written whole
(temporary file, fsync, rename) and private (0600), since a member shared it with the regulator only."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Container, Iterator
from pathlib import Path
from typing import Any

import orjson

from qdsn.crypto import canonical_json, sha256
from qdsn.errors import IntegrityError

FOLDER = Path("graph") / "shared"


def digest(doc: Any) -> str:
    """A shared document's name: lowercase hex SHA-256 of its canonical JSON."""
    return sha256(canonical_json(doc)).hex()


def save(home: Path, doc: Any, sharer: str) -> str:
    """Keep `doc` as shared by `sharer`; returns its digest (the same document twice is kept once)."""
    folder = home / FOLDER
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    name = digest(doc)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps({"shared_by": sharer, "document": doc}))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, folder / f"{name}.json")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return name


def shared(home: Path, known: Container[str] = ()) -> Iterator[tuple[str, str, Any]]:
    """(digest, sharer, document) of every document kept but those named in `known`, in name order; a file
    altered since it was written (its name no longer its digest) is an integrity error naming it."""
    folder = home / FOLDER
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.json")):
        if path.stem in known:
            continue
        try:
            kept = orjson.loads(path.read_bytes())
            sharer, doc = kept["shared_by"], kept["document"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as e:
            raise IntegrityError(f"{path} is not a shared document as QDSN keeps them ({e})",
                                 "remove it and import the member's file again with `qdsn graph build --epcis`"
                                 ) from None  # fmt: skip
        if digest(doc) != path.stem:
            raise IntegrityError(f"{path} was changed after it was kept: its content is not its name's",
                                 "remove it and import the member's file again with `qdsn graph build --epcis`"
                                 )  # fmt: skip
        yield path.stem, str(sharer), doc
