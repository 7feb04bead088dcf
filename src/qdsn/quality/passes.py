"""Passes over a long series in cache-sized blocks, spread over the machine's cores.

A whole-array numpy operation streams the series through memory and allocates a result as large
as it; a pass that takes one block at a time through all its operations keeps its temporaries in
the core's cache. numpy releases the GIL inside each operation, so threads working on separate
stretches of blocks run in parallel.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

try:  # the hot loops in C (_kernels.c), where setup.py could build them; the numpy code does the same
    from qdsn.quality import _kernels as kernels
except ImportError:  # pragma: no cover - a build without a C compiler
    kernels = None

T = TypeVar("T")

BLOCK = 1 << 18  # points (2 MiB of float64): the fastest of 2^16 … 2^19 for chart and capability on two cores
CORES = max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 4))
_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()
_local = threading.local()


def _forget_pool() -> None:  # a forked child inherits the pool but not its threads
    global _pool
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _workers() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(CORES - 1, thread_name_prefix="qdsn-pass")
        return _pool


def scratch(name: str, shape: tuple[int, ...], dtype: Any = float) -> np.ndarray:
    """This thread's buffer called `name`, reused from block to block and call to call: a fresh
    megabyte-sized array is mapped from the kernel and faulted in page by page every time."""
    kept: dict[str, np.ndarray] = _local.__dict__.setdefault("buffers", {})
    size = math.prod(shape) * np.dtype(dtype).itemsize
    buf = kept.get(name)
    if buf is None or buf.size < size:
        buf = kept[name] = np.empty(size, dtype=np.uint8)
    return buf[:size].view(dtype).reshape(shape)


def over(n: int, work: Callable[[int, int], T]) -> list[T]:
    """work(start, stop) for every block of [0, n), the blocks shared in contiguous stretches
    among the cores; the results in block order. `work` must write only its own block's output."""
    todo = [(s, min(s + BLOCK, n)) for s in range(0, n, BLOCK)]
    if CORES == 1 or len(todo) < CORES:
        return [work(*b) for b in todo]
    share = -(-len(todo) // CORES)
    stretches = [todo[i : i + share] for i in range(0, len(todo), share)]
    run = lambda stretch: [work(*b) for b in stretch]  # noqa: E731
    try:
        futures = [_workers().submit(run, s) for s in stretches[1:]]
    except RuntimeError:  # no thread to be had, e.g. under a sandbox's process limit: one core it is
        return [work(*b) for b in todo]
    out = run(stretches[0])
    for f in futures:
        out += f.result()
    return out
