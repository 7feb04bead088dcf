"""Running a model where it can do nothing but compute: a separate process under bubblewrap.

The sandbox sees a read-only /usr, the Python runtime and the packages it needs, the model's own
files at /model, a small private /tmp, and nothing else: no network, no /etc, no node home, keys or
other datasets, a cleared environment, its own PID, IPC and UTS namespaces, no capabilities. The
input arrives on stdin; the output is read from stdout up to a limit. Resource limits (CPU time,
address space, processes, open files, file size) are set before bwrap starts, so they bind the model
too; a pids cgroup caps processes even for root, where the kernel does not enforce RLIMIT_NPROC;
a wall-clock timeout kills the whole sandbox.

`isolation="process"` is the weaker mode for machines without user namespaces: the same limits, an
empty environment, a new network namespace where `unshare` can make one, but the model sees the
host's filesystem with the node's permissions. The node never chooses it by itself.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import qdsn
from qdsn.errors import InvalidInput, PermissionDenied

ISOLATION = ("bwrap", "process")


@dataclass(frozen=True)
class Limits:
    """What a run may use."""

    wall_seconds: float = 120.0
    cpu_seconds: int = 60
    memory: int = 4 << 30  # address space, bytes (numpy and scipy reserve much they never touch)
    processes: int = 32
    open_files: int = 64
    output: int = 1 << 20  # bytes of stdout
    file_size: int = 64 << 20  # bytes per file written
    tmp_size: int = 64 << 20  # bytes of the private /tmp


DEFAULT = Limits()


@dataclass(frozen=True)
class Run:
    """How a run ended: `status` is ok, timeout, cpu-limit, output-too-large, killed or failed."""

    status: str
    stdout: bytes
    stderr: str  # its last 4 KiB, for the owner's eyes
    seconds: float
    exit_code: int | None
    isolation: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@cache
def bwrap_works() -> str | None:
    """None when bubblewrap can make a sandbox here; otherwise why not."""
    exe = shutil.which("bwrap")
    if exe is None:
        return "bubblewrap (bwrap) is not installed"
    probe = subprocess.run([exe, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"],
                           capture_output=True, text=True, timeout=10)  # fmt: skip
    return None if probe.returncode == 0 else f"bwrap cannot create namespaces here: {probe.stderr.strip()}"


def runtime_paths() -> list[Path]:
    """What a model's Python needs to see: the interpreter's installation, this environment's
    packages and QDSN's own source (for `qdsn.quality`)."""
    import site

    paths = {Path(sys.base_prefix), Path(sys.prefix), Path(qdsn.__file__).resolve().parent.parent,
             *map(Path, site.getsitepackages())}  # fmt: skip
    paths = {p.resolve() for p in paths if p.is_dir()}
    return sorted(p for p in paths if not any(q != p and q in p.parents for q in paths))


def command(isolation: str, model: Path, entrypoint: str, limits: Limits, secrets: list[Path]) -> list[str]:
    """The command line that runs `entrypoint` of the unpacked model at `model`."""
    python = [sys.executable, "-I", "-B"]
    if isolation == "process":
        wrap = ["unshare", "--net", "--map-root-user"] if _unshare_works() else []
        return [*wrap, *python, str(model / entrypoint)]
    if isolation != "bwrap":
        raise InvalidInput(f"isolation must be one of {', '.join(ISOLATION)}, not {isolation!r}")
    binds = runtime_paths()
    for s in secrets:
        s = s.resolve()
        if any(b == s or b in s.parents or s in b.parents for b in binds):
            raise PermissionDenied(f"the runtime at {', '.join(map(str, binds))} would show the model {s}",
                                   "install QDSN and Python outside the node's home")  # fmt: skip
    # /tmp first: a runtime that lives under /tmp (a fresh clone's environment) is bound on top of it
    cmd = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--clearenv", "--cap-drop", "ALL",
           "--uid", "65534", "--gid", "65534", "--size", str(limits.tmp_size), "--tmpfs", "/tmp",
           "--ro-bind", "/usr", "/usr"]  # fmt: skip
    for top in ("bin", "lib", "lib64", "sbin"):
        p = Path("/") / top
        if p.is_symlink():
            cmd += ["--symlink", os.readlink(p), str(p)]
        elif p.is_dir():
            cmd += ["--ro-bind", str(p), str(p)]
    for b in binds:
        cmd += ["--ro-bind", str(b), str(b)]
    cmd += ["--ro-bind", str(model), "/model", "--proc", "/proc", "--dev", "/dev", "--chdir", "/tmp"]
    for k, v in _ENV.items():
        cmd += ["--setenv", k, v]
    return [*cmd, *python, f"/model/{entrypoint}"]


_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLCONFIGDIR": "/tmp"}  # fmt: skip


def run(
    model: Path,
    entrypoint: str,
    job: bytes,
    *,
    isolation: str = "bwrap",
    limits: Limits = DEFAULT,
    secrets: list[Path] | None = None,
) -> Run:
    """Run a model on `job` (its stdin) and collect its stdout; never raises for what the model does.
    `secrets`: paths the sandbox must not be able to see (the node's home)."""
    if isolation == "bwrap" and (why := bwrap_works()) is not None:
        fix = "install bubblewrap, or choose --isolation=process knowing what it does not isolate"
        raise PermissionDenied(f"models run only in a sandbox, and {why}", fix)
    cmd = command(isolation, Path(model).resolve(), entrypoint, limits, secrets or [])
    cgroup = _pids_cgroup(limits.processes)
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(_ENV),
        cwd=str(model) if isolation == "process" else "/", start_new_session=True,
        preexec_fn=lambda: _confine(limits, cgroup),
    )  # fmt: skip
    out, err = bytearray(), bytearray()
    too_large = threading.Event()
    threads = [threading.Thread(target=_feed, args=(proc, job), daemon=True),
               threading.Thread(target=_drain, args=(proc.stdout, out, limits.output, too_large, proc), daemon=True),
               threading.Thread(target=_drain, args=(proc.stderr, err, 1 << 16, None, proc), daemon=True)]  # fmt: skip
    for t in threads:
        t.start()
    try:
        code = proc.wait(timeout=limits.wall_seconds)
        timed_out = False
    except subprocess.TimeoutExpired:
        _kill(proc)
        code, timed_out = proc.wait(), True
    for t in threads:
        t.join(timeout=5)
    seconds = time.monotonic() - start
    _remove(cgroup)
    if timed_out:
        status = "timeout"
    elif too_large.is_set():
        status = "output-too-large"
    elif code in (-signal.SIGXCPU, 128 + signal.SIGXCPU) or (code in (-9, 137) and seconds >= limits.cpu_seconds):
        status = "cpu-limit"
    elif code < 0 or code > 128:
        status = "killed"
    elif code != 0:
        status = "failed"
    else:
        status = "ok"
    tail = bytes(err[-4096:]).decode("utf-8", "replace")
    return Run(status, bytes(out), tail, seconds, code, isolation)


def _confine(limits: Limits, cgroup: Path | None) -> None:
    """In the child, before exec: join the pids cgroup and set the limits (inherited by the model)."""
    if cgroup is not None:
        (cgroup / "cgroup.procs").write_text(str(os.getpid()))
    for res, value in ((resource.RLIMIT_CPU, limits.cpu_seconds), (resource.RLIMIT_AS, limits.memory),
                       (resource.RLIMIT_NPROC, limits.processes), (resource.RLIMIT_NOFILE, limits.open_files),
                       (resource.RLIMIT_FSIZE, limits.file_size), (resource.RLIMIT_CORE, 0)):  # fmt: skip
        hard = value + 1 if res == resource.RLIMIT_CPU else value  # SIGXCPU at the soft limit, SIGKILL after
        resource.setrlimit(res, (value, hard))


def _feed(proc: subprocess.Popen[bytes], job: bytes) -> None:
    assert proc.stdin is not None
    with contextlib.suppress(BrokenPipeError, OSError):  # a model may stop reading; that is its business
        proc.stdin.write(job)
    with contextlib.suppress(BrokenPipeError, OSError):
        proc.stdin.close()


def _drain(pipe, sink: bytearray, limit: int, over: threading.Event | None, proc: subprocess.Popen[bytes]) -> None:  # type: ignore[no-untyped-def]
    while chunk := pipe.read1(65536):
        room = limit - len(sink)
        sink += chunk[: max(room, 0)]
        if len(chunk) > room and over is not None:
            over.set()
            _kill(proc)
            return
        # stderr past its limit keeps only its start; draining goes on so that the model never blocks


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # bwrap and, through --die-with-parent and its PID namespace, the model


@cache
def _unshare_works() -> bool:
    exe = shutil.which("unshare")
    return exe is not None and subprocess.run([exe, "--net", "--map-root-user", "true"],
                                              capture_output=True, timeout=10).returncode == 0  # fmt: skip


def _pids_cgroup(limit: int) -> Path | None:
    """A fresh pids cgroup capped at `limit` processes, where this node may make one (v2 or v1)."""
    for root in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/pids")):
        if not (root / "cgroup.procs").exists() or (root == Path("/sys/fs/cgroup") and not _has_pids(root)):
            continue
        path = root / f"qdsn-{uuid.uuid4().hex[:12]}"
        try:
            path.mkdir()
            (path / "pids.max").write_text(str(limit))
            return path
        except OSError:
            with contextlib.suppress(OSError):
                path.rmdir()
    return None


def _has_pids(root: Path) -> bool:
    try:
        return "pids" in (root / "cgroup.controllers").read_text().split()
    except OSError:
        return False


def _remove(cgroup: Path | None) -> None:
    if cgroup is None:
        return
    for _ in range(50):  # the last processes may take a moment to be reaped
        try:
            cgroup.rmdir()
            return
        except OSError:
            time.sleep(0.02)
