"""The newest checkpoint a node has seen, kept outside the database it protects.

A replica replaced by an older copy is internally consistent, so auditing it alone believes it. The
node therefore remembers, in a small file of its home (`checkpoint.latest`, written atomically and
fsync'd), the newest checkpoint signed by the log that it saw while following, witnessing or
verifying, with the log key that signed it and when; a replica smaller than that, or with another
root at that size, was rolled back or forked.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from qdsn.clock import format_time, system_clock
from qdsn.crypto import VerifyKey
from qdsn.errors import QDSNError
from qdsn.ledger import keys, merkle, tx
from qdsn.ledger.checkpoint import ED25519, Checkpoint, NoteVerifier, open_checkpoint, parse_note, parse_verifier
from qdsn.ledger.integrity import Damaged, Incomplete
from qdsn.ledger.store import Store

FILE = "checkpoint.latest"


@dataclass(frozen=True)
class Seen:
    """A checkpoint the node saw: the signed note, the key it verified under, and when."""

    checkpoint: Checkpoint
    note: str
    log_key: str
    at: str


def load(home: Path) -> Seen | None:
    """The remembered checkpoint, re-verified under the key it was remembered with; None if there is
    none. A file that does not verify is reported as damaged, never ignored."""
    path = Path(home) / FILE
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text())
        cp, _ = open_checkpoint(doc["note"], parse_verifier(doc["log_key"]))
        return Seen(cp, doc["note"], doc["log_key"], str(doc["at"]))
    except (QDSNError, ValueError, KeyError, TypeError) as e:
        raise Damaged(str(path), f"the remembered checkpoint does not verify ({e})") from None


def remember(home: Path, note: str, log_key: NoteVerifier, proof_source: merkle.NodeSource | None = None) -> bool:
    """Keep `note` (verified under `log_key`) if it is newer than the one remembered; returns whether
    it was kept. With `proof_source` (a replica holding both sizes) the new checkpoint must be
    consistent with the old one; a different root at the same size is always refused."""
    cp, _ = open_checkpoint(note, log_key)
    old = load(home)
    if old is not None and old.checkpoint.origin == cp.origin:
        if cp.size < old.checkpoint.size:
            return False
        if cp.size == old.checkpoint.size:
            if cp.root != old.checkpoint.root:
                raise Damaged(f"checkpoint of size {cp.size}", "its root differs from the one this node saw before")
            return False
        if proof_source is not None:
            proof = merkle.consistency_proof(old.checkpoint.size, cp.size, proof_source)
            merkle.verify_consistency(old.checkpoint.size, cp.size, old.checkpoint.root, cp.root, proof)
    doc = {"note": note, "log_key": log_key.text(), "at": format_time(system_clock())}
    _write_atomically(Path(home) / FILE, json.dumps(doc, indent=1).encode())
    return True


def check(seen: Seen, size: int, root_at) -> None:  # type: ignore[no-untyped-def]
    """Raise if a replica of `size` entries (roots from `root_at`) is behind or off `seen`."""
    cp = seen.checkpoint
    if size < cp.size:
        raise Incomplete(
            f"the replica is at size {size}, behind the checkpoint of size {cp.size} this node saw at {seen.at}: "
            "it was rolled back or replaced by an older copy",
            "restore it from a peer (qdsn node start --operator URL catches up) or a newer backup",
        )
    if root_at(cp.size) != cp.root:
        raise Damaged(f"entries 0–{cp.size - 1}",
                      f"the replica's root at size {cp.size} is not the one in the checkpoint seen at "
                      f"{seen.at}")  # fmt: skip


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".checkpoint-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dirfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


def guard(home: Path | None, store: Store, log_key: NoteVerifier | None = None, peer_notes: Sequence[str] = ()) -> None:
    """Check a replica against the checkpoint this node remembers and against peers' current checkpoints
    (raising Incomplete when it is behind, Damaged when its root differs), then remember the newest
    checkpoint among them that verifies under the log key (`log_key`, else the remembered one, else the
    replica's own)."""
    seen = load(home) if home is not None else None
    if log_key is None and seen is not None:
        log_key = parse_verifier(seen.log_key)
    if log_key is None and (text := store.get_meta("log_key")):
        log_key = parse_verifier(text)
    if log_key is None and store.size:  # the regulator that started the log, with its key as the replica has it
        genesis = tx.from_leaf(store.leaves(0, 1)[0]).submitter
        origin = store.get_meta("origin") or ""
        log_key = NoteVerifier(origin, VerifyKey(store.identities()[genesis].key), ED25519)
    if seen is not None:
        check(seen, store.size, store.root_at)
    for note in peer_notes:
        if log_key is None:
            raise Incomplete("a peer's checkpoint cannot be checked: the log key is unknown", "pass --log-key")
        cp, _ = open_checkpoint(note, key_for(store, log_key, note))
        if cp.size > store.size:
            raise Incomplete(f"the replica is at size {store.size}, behind the peer's checkpoint of size {cp.size}: "
                             "it was rolled back or has not caught up", "follow the log (qdsn node start)")  # fmt: skip
        if store.root_at(cp.size) != cp.root:
            raise Damaged(f"entries 0–{cp.size - 1}", f"the replica's root at size {cp.size} is not the peer's")
    if log_key is None or home is None:
        return
    own = [store.last_checkpoint(), store.witnessed(log_key.name)]
    for note in [*(x[-1] for x in own if x is not None), *peer_notes]:
        with contextlib.suppress(QDSNError):  # a note under a key the log no longer uses is not newer news
            remember(home, note, key_for(store, log_key, note), store)


def key_for(store: Store, log_key: NoteVerifier, note: str) -> NoteVerifier:
    """The key `note` must verify under: `log_key`, or — once the log rotated its key — the key of the
    note's size in the replica's key history, when that history holds `log_key` (each rotation is signed
    by the key before it, so the chain is anchored in the key the caller trusts)."""
    genesis = store.identities().get(tx.from_leaf(store.leaves(0, 1)[0]).submitter) if store.size else None
    spans = keys.history(store, genesis) if genesis is not None else []
    if log_key.key.raw not in [s.key for s in spans]:
        return log_key
    size = Checkpoint.parse(parse_note(note)[0]).size
    return NoteVerifier(log_key.name, VerifyKey(keys.key_at(spans, max(size, 1))), ED25519)
