"""Large request bodies (a sealed vault backup, a job's model archive): how many may arrive at once, in
this process and from one signer, so that a member sending many at once cannot take the node's memory
or disk bandwidth; and receiving one into a file while its digest is computed, never whole in memory."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from typing import IO

from fastapi.concurrency import run_in_threadpool

from qdsn.api.signatures import BodyDigest
from qdsn.errors import Unavailable

LARGE_AT_ONCE = 2  # large bodies arriving at once in this process
LARGE_PER_SIGNER = 1  # of which from one signer
SIGNER = "qdsn.signer"  # the ASGI scope key where a verified signature's DID waits for its body to be read
RETRY_AFTER = 5


class Gate:
    """Admits a large body while fewer than `at_once` arrive, and fewer than `per_signer` from its signer;
    otherwise Unavailable (503 with Retry-After), at once rather than queued."""

    def __init__(self, at_once: int = LARGE_AT_ONCE, per_signer: int = LARGE_PER_SIGNER) -> None:
        self.at_once, self.per_signer = at_once, per_signer
        self._all = 0
        self._of: dict[str, int] = {}
        self._lock = threading.Lock()

    def enter(self, signer: str) -> None:
        """Admit one body of `signer`, or raise Unavailable saying which bound it meets."""
        with self._lock:
            if self._of.get(signer, 0) >= self.per_signer:
                raise Unavailable(f"{signer} is already sending this node {self.per_signer} large request(s)",
                                  "send the next when the last one is answered", RETRY_AFTER)  # fmt: skip
            if self._all >= self.at_once:
                raise Unavailable(f"this node is receiving {self.at_once} large requests already",
                                  "send it again in a moment", RETRY_AFTER)  # fmt: skip
            self._all += 1
            self._of[signer] = self._of.get(signer, 0) + 1

    def leave(self, signer: str) -> None:
        """The body admitted for `signer` is done with."""
        with self._lock:
            self._all -= 1
            self._of[signer] -= 1
            if not self._of[signer]:
                del self._of[signer]

    def in_flight(self) -> int:
        with self._lock:
            return self._all


async def receive_into(stream: AsyncIterator[bytes], f: IO[bytes], digest: BodyDigest) -> None:
    """Write a body into `f` as it arrives, counting it into `digest` (whose `check` is the caller's)."""
    async for chunk in stream:
        if chunk:
            await run_in_threadpool(_write, f, digest, chunk)
    await run_in_threadpool(f.flush)


def _write(f: IO[bytes], digest: BodyDigest, chunk: bytes) -> None:
    digest.update(chunk)
    f.write(chunk)
