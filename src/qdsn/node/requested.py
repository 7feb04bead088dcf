"""The jobs a certification body asked of other nodes, kept in its home: where each runs and the nonce
it was asked with, so that its result is fetched from that node and its attestation checked against
that nonce — never against one the result itself names.

One small JSON file per job under HOME/requested-jobs, written whole (a temporary file renamed into
place), so that a crash leaves the register as it was or with the new job, never half a record. A job's
id is chosen by the node that runs it, so the file is named by a hash of node and id, not by the id.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from qdsn.errors import IntegrityError, InvalidInput, NotFound

FOLDER = "requested-jobs"


AGREEMENTS = "agreements"  # the agreements this node negotiated, by the provider's URL and the agreement's uid
TRANSFERS = "requested-transfers"  # the transfers it started, by URL and the provider's transfer id


def _path(home: Path, url: str, job: str, folder: str = FOLDER) -> Path:
    name = hashlib.sha256(f"{url.rstrip('/')}\n{job}".encode()).hexdigest()[:32]
    return home / folder / f"{name}.json"


def keep(home: Path, folder: str, url: str, key: str, entry: dict[str, Any]) -> None:
    """Keep `entry` under `folder` for the thing `key` that the node at `url` named, written whole."""
    (home / folder).mkdir(mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=home / folder, prefix=".new-")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"url": url.rstrip("/"), "key": key} | entry, f, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, _path(home, url, key, folder))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def kept(home: Path, folder: str, url: str, key: str) -> dict[str, Any] | None:
    """What `keep` kept for `key` at `url`, or None."""
    path = _path(home, url, key, folder)
    try:
        entry = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise InvalidInput(f"{path} is damaged: {e}", "remove it and ask again") from None
    if not isinstance(entry, dict) or entry.get("key") != key:
        raise InvalidInput(f"{path} is not a record of {key}", "remove it and ask again")
    return entry


def record(home: Path, url: str, job: str, nonce: str, **about: Any) -> dict[str, Any]:
    """Keep a job asked of the node at `url` (its id as that node gave it) with its nonce; returns the record."""
    if not isinstance(job, str) or not 0 < len(job) <= 200:
        raise InvalidInput("the node answered a job id that is not 1–200 characters of text")
    entry = {"url": url.rstrip("/"), "job": job, "nonce": nonce} | about
    folder = home / FOLDER
    folder.mkdir(mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".new-")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(entry, f, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, _path(home, url, job))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return entry


def find(home: Path, job: str, url: str | None = None) -> dict[str, Any]:
    """The record of `job` (asked of `url`, when given); NotFound when this node did not ask for it, or
    InvalidInput when two nodes gave the same id and `url` does not say which."""
    if url is not None:
        path = _path(home, url, job)
        if path.exists():
            return _load(path)
        raise NotFound(f"this node asked {url} for no job {job!r}", "see the jobs asked: qdsn jobs requested")
    found = [e for e in entries(home) if e["job"] == job]
    if not found:
        raise NotFound(f"this node asked for no job {job!r}", "see the jobs asked: qdsn jobs requested")
    if len(found) > 1:
        raise InvalidInput(f"job id {job!r} was given by {len(found)} nodes",
                           "name the node: --node " + " or --node ".join(e["url"] for e in found))  # fmt: skip
    return found[0]


def answered(home: Path, claims: dict[str, Any]) -> dict[str, Any]:
    """The job this node asked for that a verified attestation answers, found by what the attesting node
    signed (its job id and nonce), never by what a result file says of itself; IntegrityError when it
    answers none (an old run replayed, or a job another member asked for)."""
    found = [e for e in entries(home) if (e["job"], e["nonce"]) == (claims.get("job"), claims.get("eat_nonce"))]
    if len(found) != 1:
        raise IntegrityError(
            f"the attestation answers no job this node asked for (job {str(claims.get('job'))[:80]}): it may be "
            "an old run replayed, or a run another member asked for",
            "ask for a run yourself (qdsn jobs request) and certify its result (qdsn cert issue --job ID)",
        )
    return found[0]


def entries(home: Path) -> list[dict[str, Any]]:
    """Every job this node asked for, oldest first."""
    folder = home / FOLDER
    if not folder.is_dir():
        return []
    out = [_load(p) for p in folder.glob("*.json")]
    return sorted(out, key=lambda e: str(e.get("requested", "")))


def _load(path: Path) -> dict[str, Any]:
    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InvalidInput(f"{path} is damaged: {e}", "remove it and ask for the job again") from None
    if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("url", "job", "nonce")):
        raise InvalidInput(f"{path} is not a job record", "remove it and ask for the job again")
    return entry


def mismatches(entry: dict[str, Any], claims: dict[str, Any]) -> list[str]:
    """How a verified attestation's claims differ from the job as this node asked for it: another model or
    code, other parameters, other records. The node that ran it chose everything else it signed, so a run
    on a range of its choosing, or of another model, under this job's nonce is caught here."""
    from qdsn.compute.attest import digest

    wrong = []
    m = claims.get("measurements") or {}
    if "code_hash" in entry and m.get("code_hash") != entry["code_hash"]:
        wrong.append(f"code: it ran code {str(m.get('code_hash'))[:16]}…, not the model sent "
                     f"({entry['code_hash'][:16]}…)")  # fmt: skip
    if "parameters" in entry and claims.get("params_hash") != digest(entry["parameters"]):
        wrong.append("parameters: it ran with other parameters than those sent")
    if "count" in entry:
        asked = [(entry.get("dataset"), entry.get("first"), entry.get("count"))]
        ran = [(i.get("dataset"), i.get("first"), i.get("count")) for i in claims.get("inputs") or []
               if isinstance(i, dict)]  # fmt: skip
        if ran != asked:
            wrong.append(f"records: it read {ran}, not the records asked for {asked}")
    return wrong
