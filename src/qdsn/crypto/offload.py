"""A helper process for CPU work the caller overlaps with its own: the caller sends one frame, works on
its share, then reads the answer. Pipes and a child Python, for the reasons given in `verifier`.

The child runs one named function of ours, `bytes -> bytes`; it starts with a bare environment, and
whatever secret a frame carries lives only in the two processes' memory and the pipe between them.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import importlib
import os
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import IO

from qdsn.crypto.verifier import read_exact

_HEAD = struct.Struct(">I")
_PIPE_SIZE = 1 << 20


def _function(target: str) -> Callable[[bytes], bytes]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


class Helper:
    """One child process serving `target` ("package.module:function"); started on first use.

    A caller that gets `claim()` owns it until `release()`; others (another thread) do the work
    themselves. If the child dies, `call` raises OSError or EOFError and the next use starts a new one.
    """

    def __init__(self, target: str) -> None:
        self.target = target
        self.proc: subprocess.Popen[bytes] | None = None
        self.lock = threading.Lock()

    def claim(self) -> bool:
        return self.lock.acquire(blocking=False)

    def release(self) -> None:
        self.lock.release()

    def send(self, frame: bytes) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(_HEAD.pack(len(frame)) + frame)
            self.proc.stdin.flush()
        except OSError:
            self.close()
            raise

    def receive(self) -> bytes:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            (n,) = _HEAD.unpack(read_exact(self.proc.stdout, 4))
            return read_exact(self.proc.stdout, n)
        except (OSError, EOFError):
            self.close()
            raise

    def _start(self) -> None:
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        cmd = (
            "import sys; from qdsn.crypto.offload import serve; "
            f"serve({self.target!r}, sys.stdin.buffer, sys.stdout.buffer)"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", cmd], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True
        )
        for pipe in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError, AttributeError):
                fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_SIZE)  # type: ignore[union-attr]

    def close(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()  # type: ignore[union-attr]
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None


def helper(target: str) -> Helper:
    """The process-wide helper for `target`, closed at exit."""
    if target not in _HELPERS:
        _HELPERS[target] = h = Helper(target)
        atexit.register(h.close)
    return _HELPERS[target]


_HELPERS: dict[str, Helper] = {}


def serve(target: str, stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """The child's loop: frames in, answers out, until stdin closes."""
    fn = _function(target)
    while True:
        head = stdin.read(4)
        if len(head) < 4:
            return
        (n,) = _HEAD.unpack(head)
        answer = fn(read_exact(stdin, n))
        stdout.write(_HEAD.pack(len(answer)) + answer)
        stdout.flush()
