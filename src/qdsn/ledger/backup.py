"""A self-verifying backup of a ledger replica: `export` writes every entry with the replica's size,
root and signed checkpoints; `restore` replays every entry into a fresh replica — each signature,
schema, role and replay check again — and adopts it only when the root and every checkpoint hold.

Format (gzip'd lines): a JSON header `{"format", "origin", "size", "root", "checkpoints"}`, then one
leaf per line (canonical JSON never holds a raw newline).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from pathlib import Path

import orjson

from qdsn.errors import Conflict, IntegrityError, InvalidInput
from qdsn.ledger import merkle, tx
from qdsn.ledger.checkpoint import NoteVerifier, open_checkpoint
from qdsn.ledger.ledger import Ledger

FORMAT = "qdsn-ledger-export/1"
CHUNK = 2000

Progress = Callable[[int], None]


def export(ledger: Ledger, out: Path, progress: Progress | None = None) -> int:
    """Write the replica to `out` (through a temporary file, so a failure leaves no partial backup);
    returns how many entries."""
    size = ledger.size
    header = {"format": FORMAT, "origin": ledger.origin, "size": size, "root": ledger.root_at(size).hex(),
              "checkpoints": [n for s, n in ledger.store.checkpoint_notes() if s <= size]}  # fmt: skip
    part = out.with_name(out.name + ".partial")
    with gzip.open(part, "wb", compresslevel=6) as f:
        f.write(orjson.dumps(header) + b"\n")
        for start in range(0, size, CHUNK):
            leaves = ledger.store.leaves(start, min(size, start + CHUNK))
            f.write(b"\n".join(leaves) + b"\n")
            if progress:
                progress(start + len(leaves))
    os.replace(part, out)
    return size


def restore(source: Path, target: str, log_key: Callable[[Ledger], NoteVerifier],
            progress: Progress | None = None, origin: str | None = None) -> Ledger:  # fmt: skip
    """Replay the backup at `source` into a new SQLite replica at `target` and check it; the file
    appears only when everything holds. `log_key` names the key checkpoints must be signed with;
    `origin`, the log the backup must be of."""
    if Path(target).exists():
        held = Ledger.open(target)
        size = held.size
        held.close()
        if size:
            raise Conflict(f"{target} holds {size} entries already", "restore into a new home, or move it aside")
    part = target + ".partial"
    for leftover in (part, part + "-wal", part + "-shm"):
        Path(leftover).unlink(missing_ok=True)
    try:
        with gzip.open(source, "rb") as f:
            try:
                header = orjson.loads(f.readline())
            except (orjson.JSONDecodeError, OSError) as e:
                raise InvalidInput(f"{source} is not a QDSN ledger export: {e}") from None
            if not isinstance(header, dict) or header.get("format") != FORMAT:
                raise InvalidInput(f"{source} is not a QDSN ledger export ({FORMAT})")
            if origin is not None and header["origin"] != origin:
                raise InvalidInput(f"the backup is of the log {header['origin']}, not {origin}")
            ledger = Ledger.open(part, origin=header["origin"])
            try:
                _replay(f, ledger, progress)
                _check(ledger, header, log_key(ledger))
            except BaseException:
                ledger.close()
                raise
        ledger.close()
    except BaseException:
        for leftover in (part, part + "-wal", part + "-shm"):
            Path(leftover).unlink(missing_ok=True)
        raise
    os.replace(part, target)
    return Ledger.open(target)


def _replay(f: gzip.GzipFile, ledger: Ledger, progress: Progress | None) -> None:
    batch: list[tx.Envelope] = []
    try:
        for line in f:
            batch.append(tx.from_leaf(line.rstrip(b"\n")))
            if len(batch) == CHUNK:
                ledger.append(batch)
                batch = []
                if progress:
                    progress(ledger.size)
    except (EOFError, OSError) as e:  # a cut or damaged gzip stream
        raise IntegrityError(f"the export is damaged after entry {ledger.size + len(batch)}: {e}") from None
    if batch:
        ledger.append(batch)
    if progress:
        progress(ledger.size)


def _check(ledger: Ledger, header: dict, key: NoteVerifier) -> None:
    if ledger.size != header["size"]:
        raise IntegrityError(f"the export announces {header['size']} entries and holds {ledger.size}")
    if ledger.root().hex() != header["root"]:
        raise IntegrityError("the replayed entries do not give the root the export announces")
    last = None
    # A rotation of the log key changes the key of later checkpoints: each verifies under the key of its
    # size, which the replayed log chains to the trusted `key` (each rotation signed by the key before it).
    chained = ledger.size > 0 and key.key.raw in [s.key for s in ledger.key_history(ledger.log_signer())]
    for note in header["checkpoints"]:
        cp, _ = ledger.open_checkpoint(note) if chained else open_checkpoint(note, key)
        if cp.size > ledger.size or ledger.root_at(cp.size) != cp.root:
            raise IntegrityError(f"checkpoint {cp.size} of the export disagrees with its entries")
        if last is not None:
            merkle.verify_consistency(last.size, cp.size, last.root, cp.root,
                                      ledger.consistency_proof(last.size, cp.size))  # fmt: skip
        ledger.store.save_checkpoint(cp.size, note)
        last = cp
    if header["checkpoints"]:
        ledger.store.set_meta("log_key", key.text())
