"""Ed25519 batch verification on all cores, in worker processes fed through plain pipes.

Threads do not help: a verifying thread must retake the GIL after every signature, and a busy main
thread hands it over only once per switch interval. `concurrent.futures` process pools have the
same problem one level up: their feeder and result threads need the GIL to move work. So each
worker here is a child Python running `serve`, reading length-prefixed frames on stdin and
answering one byte per signature on stdout; the caller writes and reads the pipes itself.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Sequence
from typing import IO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

CHUNK = 256
_PIPE_SIZE = 1 << 20  # Linux's default pipe-max-size
_MAX_OUTSTANDING = 32  # chunks in flight per worker before the caller drains answers
_HEAD = struct.Struct(">I")
_ITEM = struct.Struct(">32s64sI")


def encode(items: Sequence[tuple[bytes, bytes, bytes]]) -> bytes:
    """One frame: count, then (key, signature, message length, message) per item."""
    parts = [_HEAD.pack(len(items))]
    for key, sig, msg in items:
        parts.append(_ITEM.pack(key, sig, len(msg)))
        parts.append(msg)
    frame = b"".join(parts)
    return _HEAD.pack(len(frame)) + frame


def verify_frame(frame: bytes) -> bytes:
    """b'\\x01' for each signature that verifies, b'\\x00' for each that does not."""
    (count,) = _HEAD.unpack_from(frame, 0)
    pos, out, keys = 4, bytearray(count), {}
    for i in range(count):
        key, sig, n = _ITEM.unpack_from(frame, pos)
        pos += _ITEM.size
        msg = frame[pos : pos + n]
        pos += n
        pub = keys.get(key)
        if pub is None:
            try:
                pub = keys[key] = Ed25519PublicKey.from_public_bytes(key)
            except ValueError:
                continue
        try:
            pub.verify(sig, msg)
            out[i] = 1
        except InvalidSignature:
            pass
    return bytes(out)


def read_exact(stream: IO[bytes], n: int) -> bytes:
    """Exactly `n` bytes from a worker's pipe; EOFError if it closed first."""
    data = stream.read(n)
    if data is None or len(data) != n:
        raise EOFError("worker pipe closed")
    return data


class _Worker:
    def __init__(self) -> None:
        # A bare environment: the worker needs only our import path, and no secret of the parent's.
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        cmd = "import sys; from qdsn.crypto.verifier import serve; serve(sys.stdin.buffer, sys.stdout.buffer)"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", cmd], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True
        )
        # (batch, chunk number, count) of each frame sent and not yet answered, oldest first
        self.outstanding: deque[tuple[Batch, int, int]] = deque()
        # A chunk is ~100 KiB, more than a default 64 KiB pipe: without a larger buffer the caller
        # would block on write until the worker finished the chunk before.
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(self.proc.stdin.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_SIZE)  # type: ignore[union-attr]

    def send(self, batch: Batch, number: int, items: list[tuple[bytes, bytes, bytes]]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(encode(items))
        self.proc.stdin.flush()
        self.outstanding.append((batch, number, len(items)))

    def receive_one(self) -> None:
        """Read the oldest answer and hand it to the batch that asked."""
        assert self.proc.stdout is not None
        batch, number, count = self.outstanding.popleft()
        batch._inbox[number] = read_exact(self.proc.stdout, count)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=5)


class Pool:
    """Worker processes, one per core, started on first use and kept for the process's life.
    One thread at a time streams batches through them (several batches may be in flight, as in a
    pipeline); a batch opened by another thread meanwhile verifies inline."""

    def __init__(self, size: int | None = None) -> None:
        self.size = size or os.cpu_count() or 2
        self.workers: list[_Worker] = []
        self.lock = threading.RLock()
        self._next = 0

    def start(self) -> None:
        if not self.workers:
            self.workers = [_Worker() for _ in range(self.size)]

    def next_worker(self) -> _Worker:
        self._next = (self._next + 1) % self.size
        return self.workers[self._next]

    def close(self) -> None:
        for w in self.workers:
            try:
                w.close()
            except (OSError, subprocess.TimeoutExpired):
                w.proc.kill()
        self.workers = []


_POOL = Pool()
atexit.register(_POOL.close)


class Batch:
    """Signature checks streamed to the workers as they are added.

    with Batch() as batch:
        batch.add(key, signature, message)
        ...
        verdicts = batch.results()
    """

    def __init__(self, pool: Pool = _POOL) -> None:
        self._pool = pool
        self._items: list[tuple[bytes, bytes, bytes]] = []
        self._sent: list[_Worker] = []  # the worker of each chunk sent, in order
        self._inbox: dict[int, bytes] = {}
        self._locked = False
        self._flushed = False

    def __enter__(self) -> Batch:
        self._locked = self._pool.lock.acquire(blocking=False)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._await_all()  # keep the pipes in step even if the caller gave up
        except (OSError, EOFError):
            self._stop_streaming()
        self._unlock()

    def _unlock(self) -> None:
        if self._locked:
            self._locked = False
            self._pool.lock.release()

    def add(self, key: bytes, signature: bytes, message: bytes) -> None:
        self._items.append((key, signature, message))
        if self._locked and len(self._items) % CHUNK == 0:
            try:
                self._send(self._items[-CHUNK:])
            except (OSError, EOFError):
                self._stop_streaming()

    def _send(self, items: list[tuple[bytes, bytes, bytes]]) -> None:
        self._pool.start()
        worker = self._pool.next_worker()
        while len(worker.outstanding) >= _MAX_OUTSTANDING:
            worker.receive_one()
        worker.send(self, len(self._sent), items)
        self._sent.append(worker)

    def _await_all(self) -> None:
        for number, worker in enumerate(self._sent):
            while number not in self._inbox:
                worker.receive_one()

    def _stop_streaming(self) -> None:
        # A worker died (killed, out of memory): verify everything here, never drop a check.
        self._pool.close()
        self._unlock()
        self._sent, self._inbox = [], {}

    def flush(self) -> None:
        """Send the checks not yet sent, split over the workers; no `add` may follow. A batch
        smaller than one chunk stays here: starting workers would cost more than verifying it."""
        if self._locked and not self._flushed and self._sent:
            try:
                tail = self._items[len(self._sent) * CHUNK :]
                step = -(-len(tail) // self._pool.size) if tail else 1
                for i in range(0, len(tail), step):
                    self._send(tail[i : i + step])
            except (OSError, EOFError):
                self._stop_streaming()
        self._flushed = True

    def results(self) -> bytes:
        """One byte per check, in the order added: 1 valid, 0 invalid."""
        self.flush()
        if self._locked and self._sent:
            try:
                self._await_all()
                return b"".join(self._inbox[i] for i in range(len(self._sent)))
            except (OSError, EOFError):
                self._stop_streaming()
        return verify_frame(encode(self._items)[4:])


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """The worker loop: frames in, verdicts out, until stdin closes."""
    while True:
        head = stdin.read(4)
        if len(head) < 4:
            return
        (n,) = _HEAD.unpack(head)
        stdout.write(verify_frame(read_exact(stdin, n)))
        stdout.flush()
