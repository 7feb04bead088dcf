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


def _read_exact(stream: IO[bytes], n: int) -> bytes:
    data = stream.read(n)
    if data is None or len(data) != n:
        raise EOFError("verifier pipe closed")
    return data


class _Worker:
    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        cmd = "import sys; from qdsn.crypto.verifier import serve; serve(sys.stdin.buffer, sys.stdout.buffer)"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", cmd], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True
        )
        self.outstanding: list[int] = []  # sizes of chunks sent and not yet answered
        # A chunk is ~100 KiB, more than a default 64 KiB pipe: without a larger buffer the caller
        # would block on write until the worker finished the chunk before.
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(self.proc.stdin.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_SIZE)  # type: ignore[union-attr]

    def send(self, frame: bytes, count: int) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(frame)
        self.proc.stdin.flush()
        self.outstanding.append(count)

    def receive(self) -> bytes:
        assert self.proc.stdout is not None
        return _read_exact(self.proc.stdout, self.outstanding.pop(0))

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=5)


class Pool:
    """Worker processes, one per core, started on first use and kept for the process's life.
    One batch at a time streams through them; a batch that finds them busy verifies inline."""

    def __init__(self, size: int | None = None) -> None:
        self.size = size or os.cpu_count() or 2
        self.workers: list[_Worker] = []
        self.lock = threading.Lock()

    def start(self) -> None:
        if not self.workers:
            self.workers = [_Worker() for _ in range(self.size)]

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
        self._sent: list[tuple[_Worker, int]] = []
        self._answers: list[bytes] = []
        self._streaming = False

    def __enter__(self) -> Batch:
        self._streaming = self._pool.lock.acquire(blocking=False)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._streaming:
            try:
                self._drain(len(self._sent))  # keep the pipes in step even if the caller gave up
            except (OSError, EOFError):
                self._pool.close()
            finally:
                self._streaming = False
                self._pool.lock.release()

    def add(self, key: bytes, signature: bytes, message: bytes) -> None:
        self._items.append((key, signature, message))
        if self._streaming and len(self._items) % CHUNK == 0:
            try:
                self._send(self._items[-CHUNK:])
            except (OSError, EOFError):
                self._stop_streaming()

    def _send(self, items: list[tuple[bytes, bytes, bytes]]) -> None:
        self._pool.start()
        worker = self._pool.workers[len(self._sent) % self._pool.size]
        while len(worker.outstanding) >= _MAX_OUTSTANDING:
            self._drain(len(self._answers) + 1)
        worker.send(encode(items), len(items))
        self._sent.append((worker, len(items)))

    def _drain(self, until: int) -> None:
        while len(self._answers) < until:
            self._answers.append(self._sent[len(self._answers)][0].receive())

    def _stop_streaming(self) -> None:
        # A worker died (killed, out of memory): verify everything here, never drop a check.
        self._pool.close()
        self._pool.lock.release()
        self._streaming = False
        self._sent, self._answers = [], []

    def results(self) -> bytes:
        """One byte per check, in the order added: 1 valid, 0 invalid."""
        if self._streaming:
            try:
                # the tail goes out too, split over the workers, so this process only waits
                tail = self._items[len(self._sent) * CHUNK :]
                step = -(-len(tail) // self._pool.size) if tail else 1
                for i in range(0, len(tail), step):
                    self._send(tail[i : i + step])
                self._drain(len(self._sent))
                return b"".join(self._answers)
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
        stdout.write(verify_frame(_read_exact(stdin, n)))
        stdout.flush()
