"""Keeping other members' sealed vault backups: the real-time backup of the data space. A member's
node sends its sealed backup (see `data.backup`) to a node it trusts to keep it; that node stores the
bytes as they came, can prove nothing about them and read nothing in them, and hands them back only to
their owner. A backup arrives into a file of its own (never whole in memory) and takes the place of the
last one atomically, one owner's at a time, so two uploads cannot leave a mixture of both."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

from qdsn.data import backup
from qdsn.errors import InvalidInput, NotFound

MAX_BACKUP = 256 << 20  # bytes a keeper accepts for one member
HEADER_BYTES = 4096  # a sealed backup's clear header is within its first bytes
PARTIAL = ".partial"
STALE = 3600.0  # seconds after which a file still receiving was left by a crash (a body's deadline is minutes)


class Keeper:
    """The sealed backups this node keeps for others, one per owner, in `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._owners: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _path(self, owner: str) -> Path:
        return self.folder / f"{hashlib.sha256(owner.encode()).hexdigest()}.vault"

    def _lock(self, owner: str) -> threading.Lock:
        with self._guard:
            return self._owners.setdefault(owner, threading.Lock())

    def receiving(self) -> tuple[IO[bytes], Path]:
        """A new file, of a unique name in the keeper's folder (so the move into place is atomic), to
        receive a backup into; `keep_file` or `discard` it."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        now = time.time()
        for left in self.folder.glob(f".upload-*{PARTIAL}"):  # a crash's leftovers, never a live upload's
            with contextlib.suppress(FileNotFoundError):
                if now - left.stat().st_mtime > STALE:
                    left.unlink()
        f = tempfile.NamedTemporaryFile(dir=self.folder, prefix=".upload-", suffix=PARTIAL, delete=False)  # noqa: SIM115
        return f, Path(f.name)

    def discard(self, part: Path) -> None:
        """Remove a file `receiving` gave that will not be kept."""
        part.unlink(missing_ok=True)

    def keep_file(self, owner: str, part: Path) -> None:
        """Put the backup received into `part` in place of `owner`'s last one (whole or not at all), once
        its size and header hold; `part` is gone afterwards either way."""
        try:
            if part.stat().st_size > MAX_BACKUP:
                raise InvalidInput(f"a backup is limited to {MAX_BACKUP} bytes")
            with open(part, "rb") as f:
                header = backup.parse_header(f.read(HEADER_BYTES))
                if header.get("owner") != owner:
                    raise InvalidInput(f"the backup is sealed for {header.get('owner')}, not for {owner}")
                os.fsync(f.fileno())
            with self._lock(owner):  # one owner's backups replace each other one at a time
                os.replace(part, self._path(owner))
        finally:
            self.discard(part)

    def keep(self, owner: str, sealed: bytes) -> str:
        """Store `owner`'s sealed backup in place of the last one (whole or not at all); its SHA-256."""
        if len(sealed) > MAX_BACKUP:
            raise InvalidInput(f"a backup is limited to {MAX_BACKUP} bytes")
        f, part = self.receiving()
        try:
            with f:
                f.write(sealed)
        except BaseException:
            self.discard(part)
            raise
        self.keep_file(owner, part)
        return hashlib.sha256(sealed).hexdigest()

    def path_of(self, owner: str) -> Path:
        """The file of `owner`'s last sealed backup."""
        path = self._path(owner)
        if not path.exists():
            raise NotFound(f"this node keeps no backup for {owner}")
        return path

    def fetch(self, owner: str) -> bytes:
        """`owner`'s last sealed backup."""
        return self.path_of(owner).read_bytes()
