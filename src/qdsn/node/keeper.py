"""Keeping other members' sealed vault backups: the real-time backup of the data space. A member's
node sends its sealed backup (see `data.backup`) to a node it trusts to keep it; that node stores the
bytes as they came, can prove nothing about them and read nothing in them, and hands them back only to
their owner."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from qdsn.data import backup
from qdsn.errors import InvalidInput, NotFound

MAX_BACKUP = 256 << 20  # bytes a keeper accepts for one member


class Keeper:
    """The sealed backups this node keeps for others, one per owner, in `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, owner: str) -> Path:
        return self.folder / f"{hashlib.sha256(owner.encode()).hexdigest()}.vault"

    def keep(self, owner: str, sealed: bytes) -> str:
        """Store `owner`'s sealed backup in place of the last one (whole or not at all); its SHA-256."""
        if len(sealed) > MAX_BACKUP:
            raise InvalidInput(f"a backup is limited to {MAX_BACKUP} bytes")
        header = backup.parse_header(sealed)
        if header.get("owner") != owner:
            raise InvalidInput(f"the backup is sealed for {header.get('owner')}, not for {owner}")
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._path(owner)
        part = path.with_name(path.name + ".partial")
        with open(part, "wb") as f:
            f.write(sealed)
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, path)
        return hashlib.sha256(sealed).hexdigest()

    def fetch(self, owner: str) -> bytes:
        """`owner`'s last sealed backup."""
        path = self._path(owner)
        if not path.exists():
            raise NotFound(f"this node keeps no backup for {owner}")
        return path.read_bytes()
