"""The home lock: one process at a time writes a node's replica.

`qdsn node start` holds it for as long as the node runs; a command that writes takes it for as long as
it runs, or, finding a node there, sends its transactions through that node's admin socket. The lock
is an OS file lock (flock) on `HOME/node.lock`, so the kernel releases it when its process ends, even
by SIGKILL; the file's text says who holds it, for the message that refuses a second writer.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qdsn.errors import Conflict

LOCK = "node.lock"
SOCKET = "node.sock"
_SUN_PATH = 100  # AF_UNIX paths are at most 107 bytes on Linux


def socket_path(home: Path) -> Path:
    """Where a running node listens for its own commands: `HOME/node.sock`, or, when that path is too
    long for a Unix socket, a folder of this user's in the temporary directory (mode 0700)."""
    inside = Path(home).resolve() / SOCKET
    if len(str(inside).encode()) <= _SUN_PATH:
        return inside
    folder = Path(tempfile.gettempdir()) / f"qdsn-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    if folder.stat().st_uid != os.getuid() or folder.stat().st_mode & 0o077:
        raise Conflict(f"{folder} is not this user's private folder", "remove it, or use a shorter --home path")
    return folder / (hashlib.sha256(str(inside).encode()).hexdigest()[:24] + ".sock")


@dataclass
class Holder:
    """Who holds a home's lock, as its lock file says: a running node (with its admin socket and URL)
    or a command."""

    pid: int
    what: str
    socket: str | None = None
    url: str | None = None

    @property
    def is_node(self) -> bool:
        return self.socket is not None


class HomeLock:
    """The exclusive lock of one home folder, held until `release` or the end of the process."""

    def __init__(self, home: Path, fd: int) -> None:
        self.home, self._fd = Path(home), fd

    @classmethod
    def take(cls, home: Path, what: str, *, wait: float = 0.0) -> HomeLock | Holder:
        """Take the lock, trying for up to `wait` seconds; returns it, or who holds it."""
        path = Path(home) / LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read(fd)
                if holder.is_node or time.monotonic() >= deadline:  # a node does not stop by itself
                    os.close(fd)
                    return holder
                time.sleep(0.1)
                continue
            lock = cls(home, fd)
            lock.say(what)
            return lock

    def say(self, what: str, **more: Any) -> None:
        """Write who holds the lock (for the message another writer gets)."""
        text = json.dumps({"pid": os.getpid(), "what": what, **more}).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, text, 0)

    def release(self) -> None:
        if self._fd >= 0:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = -1


def _read(fd: int) -> Holder:
    try:
        doc = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        doc = {}
    return Holder(int(doc.get("pid", 0)), str(doc.get("what", "another process")), doc.get("socket"), doc.get("url"))
