"""Running a model where it can do nothing but compute: a separate process under bubblewrap.

The sandbox sees a read-only /usr, the Python runtime and the packages it needs, the model's own
files at /model, a small private /tmp and /dev/shm, and nothing else: no network, no /etc, no node
home, keys or other datasets, a cleared environment, its own PID, IPC, UTS and cgroup namespaces, no
capabilities, a read-only root, /proc/sys read-only and the /proc files that tell of the host masked.

Who the model is: uid 65534 in a user namespace whose ids map to an unprivileged host user — the
dedicated `qdsn-model` system user where the node runs as root (made on first need), else the node's
own user — never to host root. What it may call: everything but what the seccomp filter in
`compute.seccomp` refuses (the keyring, ptrace, namespaces, mounts, BPF, modules, ...); it starts
with a fresh, empty session keyring. What it may use: one cgroup per run (`compute.cgroups`) holds
memory (no swap) and processes for the whole run, and the run's CPU time, summed over all its
processes, is watched and the run killed past its budget; per-process limits (CPU time, open files,
file size) and a wall-clock timeout come on top. The input arrives on stdin; the output is read from
stdout up to a limit. Where any of this cannot be had, the run is refused with the reason.

`isolation="process"` is the weaker mode for machines without user namespaces: the same limits
(per process only where no cgroup can be made), an empty environment, a new network namespace where
`unshare` can make one, but the model sees the host's filesystem as the node's user, with no seccomp
filter. The node never chooses it by itself, and `Run.unenforced` names what it gave up, for the
attestation.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import resource
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path

import qdsn
from qdsn.compute import cgroups, seccomp
from qdsn.errors import InvalidInput, PermissionDenied

ISOLATION = ("bwrap", "process")


@dataclass(frozen=True)
class Limits:
    """What a run may use; memory, processes and CPU time are budgets of the whole run."""

    wall_seconds: float = 120.0
    cpu_seconds: int = 60  # CPU time of all the run's processes together
    memory: int = 4 << 30  # bytes of memory of all its processes together (its cgroup's; no swap)
    processes: int = 32
    open_files: int = 64  # per process
    output: int = 1 << 20  # bytes of stdout
    file_size: int = 64 << 20  # bytes per file written
    tmp_size: int = 64 << 20  # bytes of each writable place: the private /tmp, and /dev/shm


DEFAULT = Limits()


@dataclass(frozen=True)
class Run:
    """How a run ended: `status` is ok, timeout, cpu-limit, memory-limit, output-too-large, killed or
    failed; `unenforced` names the protections this run went without (only ever under --isolation=process)."""

    status: str
    stdout: bytes
    stderr: str  # its last 4 KiB, for the owner's eyes
    seconds: float
    exit_code: int | None
    isolation: str
    unenforced: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@cache
def bwrap_works() -> str | None:
    """None when this machine can give a model the whole sandbox (bubblewrap in an unprivileged user's
    namespace, the seccomp filter and a cgroup per run); otherwise why not, and what to do."""
    exe = shutil.which("bwrap")
    if exe is None:
        return "bubblewrap (bwrap) is not installed"
    try:
        userns = _namespace()
        seccomp.program()
        cgroups.create(1 << 20, 1).remove()
    except PermissionDenied as e:
        return str(e)
    probe = subprocess.run([exe, *userns.args, "--uid", str(SANDBOX_ID), "--gid", str(SANDBOX_ID),
                            "--unshare-pid", "--unshare-net", "--die-with-parent", "--ro-bind", "/", "/", "true"],
                           capture_output=True, text=True, timeout=10, pass_fds=userns.fds)  # fmt: skip
    return None if probe.returncode == 0 else f"bwrap cannot create namespaces here: {probe.stderr.strip()}"


def runtime_paths() -> list[Path]:
    """What a model's Python needs to see: the interpreter's installation, this environment's
    packages and QDSN's own source (for `qdsn.quality`)."""
    import site

    paths = {Path(sys.base_prefix), Path(sys.prefix), Path(qdsn.__file__).resolve().parent.parent,
             *map(Path, site.getsitepackages())}  # fmt: skip
    paths = {p.resolve() for p in paths if p.is_dir()}
    return sorted(p for p in paths if not any(q != p and q in p.parents for q in paths))


class Command(list[str]):
    """A sandbox's command line, with the file descriptors bubblewrap inherits (`fds`: the seccomp filter,
    and the user namespaces of a root node); `close` closes this run's own once the sandbox has started."""

    def __init__(self, argv: list[str], own: list[int] | None = None, shared: tuple[int, ...] = ()) -> None:
        super().__init__(argv)
        self.own = own or []
        self.fds = [*self.own, *shared]

    def close(self) -> None:
        for fd in self.own:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.own = []


def command(isolation: str, model: Path, entrypoint: str, limits: Limits, secrets: list[Path]) -> Command:
    """The command line that runs `entrypoint` of the unpacked model at `model`."""
    python = [sys.executable, "-I", "-B"]
    if isolation == "process":
        wrap = ["unshare", "--net", "--map-root-user"] if _unshare_works() else []
        return Command([*wrap, *python, str(model / entrypoint)])
    if isolation != "bwrap":
        raise InvalidInput(f"isolation must be one of {', '.join(ISOLATION)}, not {isolation!r}")
    binds = runtime_paths()
    for s in secrets:
        s = s.resolve()
        if any(b == s or b in s.parents or s in b.parents for b in binds):
            raise PermissionDenied(f"the runtime at {', '.join(map(str, binds))} would show the model {s}",
                                   "install QDSN and Python outside the node's home")  # fmt: skip
    userns = _namespace()  # made once per process; its descriptors stay open for the next run
    filter_fd = seccomp.memfd()
    try:
        # /tmp first: a runtime that lives under /tmp (a fresh clone's environment) is bound on top of it
        cmd = ["bwrap", *userns.args, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
               "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--clearenv", "--cap-drop", "ALL",
               "--uid", str(SANDBOX_ID), "--gid", str(SANDBOX_ID), "--seccomp", str(filter_fd),
               "--size", str(limits.tmp_size), "--tmpfs", "/tmp"]  # fmt: skip
        for top in ("usr", "bin", "lib", "lib32", "lib64", "libx32", "sbin"):
            p = Path("/") / top
            if p.is_symlink():
                cmd += ["--symlink", os.readlink(p), str(p)]
            elif p.is_dir():
                cmd += ["--ro-bind", str(p), str(p)]
        for b in binds:
            cmd += ["--ro-bind", str(b), str(b)]
        _readable(model)
        cmd += ["--ro-bind", str(model), "/model", "--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys"]
        for p in _PROC_MASKED:
            if os.path.exists(f"/proc/{p}"):
                cmd += ["--ro-bind", "/dev/null", f"/proc/{p}"]
        cmd += ["--dev", "/dev", "--size", str(limits.tmp_size), "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
                "--remount-ro", "/", "--chdir", "/tmp"]  # fmt: skip
        for k, v in _ENV.items():
            cmd += ["--setenv", k, v]
    except BaseException:
        os.close(filter_fd)
        raise
    return Command([*cmd, *python, f"/model/{entrypoint}"], [filter_fd], userns.fds)


def _readable(model: Path) -> None:
    """Let the model's user read its own files: a temporary folder is 0700, and a node may write them
    under umask 077 (the model's code is published; nothing in its folder is the node's)."""
    for p in (model, *model.rglob("*")):
        if not p.is_symlink():
            p.chmod(p.stat().st_mode | (0o555 if p.is_dir() else 0o444))


_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLCONFIGDIR": "/tmp"}  # fmt: skip

# /proc files that tell of the host rather than of the sandbox, or that are the host's to write: each is
# covered by /dev/null, which cannot be opened there (no devices on that mount); bubblewrap itself makes
# sys, sysrq-trigger, irq and bus read-only, and /proc/sys is bound read-only again to be sure
_PROC_MASKED = ("kcore", "keys", "key-users", "kmsg", "kallsyms", "timer_list", "timer_stats", "sched_debug",
                "slabinfo", "latency_stats", "sysrq-trigger", "kpagecount", "kpageflags", "kpagecgroup",
                "vmallocinfo", "pagetypeinfo", "config.gz")  # fmt: skip


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
    `secrets`: paths the sandbox must not be able to see (the node's home). Refuses (PermissionDenied)
    to run under bwrap where this machine cannot give the run its own unprivileged user, seccomp filter
    and cgroup."""
    if isolation == "bwrap" and (why := bwrap_works()) is not None:
        fix = "install bubblewrap, or choose --isolation=process knowing what it does not isolate"
        raise PermissionDenied(f"models run only in a sandbox, and {why}", fix)
    model = Path(model).resolve()
    group, unenforced = _group(isolation, limits)
    try:
        cmd = command(isolation, model, entrypoint, limits, secrets or [])
    except BaseException:
        if group is not None:
            group.remove()
        raise
    if isolation == "process":
        unenforced = [*unenforced, *_PROCESS_GAPS]
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(_ENV),
            cwd=str(model) if isolation == "process" else "/", start_new_session=True, pass_fds=cmd.fds,
            preexec_fn=partial(_confine, limits, group, _keyctl()),
        )  # fmt: skip
    except BaseException:
        if group is not None:
            group.remove()
        raise
    finally:
        cmd.close()
    out, err = bytearray(), bytearray()
    too_large = threading.Event()
    kill = partial(_kill, proc, group)
    threads = [threading.Thread(target=_feed, args=(proc, job), daemon=True),
               threading.Thread(target=_drain, args=(proc.stdout, out, limits.output, too_large, kill), daemon=True),
               threading.Thread(target=_drain, args=(proc.stderr, err, 1 << 16, None, kill), daemon=True)]  # fmt: skip
    for t in threads:
        t.start()
    try:
        stopped = _watch(proc, group, limits, start)
        if stopped:
            kill()
        code = proc.wait()
        if group is not None:
            group.kill()  # what the model left behind (where no PID namespace ended it) goes with it
        for t in threads:
            t.join(timeout=5)
        seconds = time.monotonic() - start
        cpu = group.cpu_seconds() if group is not None else 0.0
        oom = group.oom_kills() if group is not None else 0
    finally:
        if group is not None:
            group.remove()
    if stopped == "timeout":
        status = "timeout"
    elif too_large.is_set():
        status = "output-too-large"
    elif oom:
        status = "memory-limit"
    elif stopped == "cpu-limit" or cpu > limits.cpu_seconds or code in (-signal.SIGXCPU, 128 + signal.SIGXCPU) or (
        code in (-9, 137) and seconds >= limits.cpu_seconds):  # fmt: skip
        status = "cpu-limit"
    elif code < 0 or code > 128:
        status = "killed"
    elif code != 0:
        status = "failed"
    else:
        status = "ok"
    tail = bytes(err[-4096:]).decode("utf-8", "replace")
    return Run(status, bytes(out), tail, seconds, code, isolation, tuple(unenforced))


# what --isolation=process leaves to the model, besides the limits a missing cgroup leaves per process
_PROCESS_GAPS = ("filesystem", "user", "seccomp", "keyring")


def _group(isolation: str, limits: Limits) -> tuple[cgroups.Group | None, list[str]]:
    """The run's cgroup; under bwrap none is a refusal, under process a record of what is not enforced."""
    try:
        return cgroups.create(limits.memory, limits.processes), []
    except PermissionDenied:
        if isolation == "bwrap":
            raise
        return None, ["memory (per process only)", "cpu (per process only)", "processes (per user only)"]


def _watch(proc: subprocess.Popen[bytes], group: cgroups.Group | None, limits: Limits, start: float) -> str:
    """Wait for the sandbox to end; "" when it did, else why it must be stopped (timeout or cpu-limit,
    or memory-limit when the kernel killed one of its processes for the run's memory)."""
    pidfd = os.pidfd_open(proc.pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        while True:
            left = start + limits.wall_seconds - time.monotonic()
            if left <= 0:
                return "timeout"
            if poller.poll(max(1, int(min(left, _POLL) * 1000))):
                return ""
            if group is not None:
                if group.cpu_seconds() > limits.cpu_seconds:
                    return "cpu-limit"
                if group.oom_kills():
                    return "memory-limit"
    finally:
        os.close(pidfd)


_POLL = 0.02  # seconds between two looks at the run's CPU time: how far past its budget a run may get


def _confine(limits: Limits, group: cgroups.Group | None, keyctl: int | None) -> None:
    """In the child, before exec: join the run's cgroup, take a fresh session keyring, drop the node's
    supplementary groups, and set the per-process limits (inherited by the model)."""
    if group is not None:
        group.join()
    # KEYCTL_JOIN_SESSION_KEYRING with no name: a new, empty, anonymous keyring (and the seccomp filter
    # refuses the keyring calls in any case)
    if keyctl is not None:
        _LIBC.syscall(ctypes.c_long(keyctl), ctypes.c_long(1), None)
    if os.geteuid() == 0:
        os.setgroups([])  # bubblewrap keeps the caller's groups; root's would follow the model
    per_run = group is not None
    for res, value in ((resource.RLIMIT_CPU, limits.cpu_seconds), (resource.RLIMIT_NOFILE, limits.open_files),
                       (resource.RLIMIT_FSIZE, limits.file_size), (resource.RLIMIT_CORE, 0),
                       # without a cgroup, the per-process limits are all there is
                       *(() if per_run else ((resource.RLIMIT_AS, limits.memory),
                                             (resource.RLIMIT_NPROC, limits.processes)))):  # fmt: skip
        hard = value + 1 if res == resource.RLIMIT_CPU else value  # SIGXCPU at the soft limit, SIGKILL after
        resource.setrlimit(res, (value, hard))


@cache
def _keyctl() -> int | None:
    """The keyctl system call's number here (None where it has none)."""
    import pyseccomp

    n = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, "keyctl")
    return n if n >= 0 else None


def _feed(proc: subprocess.Popen[bytes], job: bytes) -> None:
    assert proc.stdin is not None
    with contextlib.suppress(BrokenPipeError, OSError):  # a model may stop reading; that is its business
        proc.stdin.write(job)
    with contextlib.suppress(BrokenPipeError, OSError):
        proc.stdin.close()


def _drain(pipe, sink: bytearray, limit: int, over: threading.Event | None, kill: Callable[[], None]) -> None:  # type: ignore[no-untyped-def]
    while chunk := pipe.read1(65536):
        room = limit - len(sink)
        sink += chunk[: max(room, 0)]
        if len(chunk) > room and over is not None:
            over.set()
            kill()
            return
        # stderr past its limit keeps only its start; draining goes on so that the model never blocks


def _kill(proc: subprocess.Popen[bytes], group: cgroups.Group | None) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # bwrap and, through --die-with-parent and its PID namespace, the model
    if group is not None:
        group.kill()


@cache
def _unshare_works() -> bool:
    exe = shutil.which("unshare")
    return exe is not None and subprocess.run([exe, "--net", "--map-root-user", "true"],
                                              capture_output=True, timeout=10).returncode == 0  # fmt: skip


@dataclass(frozen=True)
class _UserNamespace:
    """How bubblewrap gets the model's user namespace: its own (`--unshare-user`, which maps the sandbox's
    uid to the node's own, unprivileged uid), or, where the node is root, the two made by `_root_namespaces`."""

    fds: tuple[int, ...] = ()

    @property
    def args(self) -> list[str]:
        if not self.fds:
            return ["--unshare-user"]
        return ["--userns", str(self.fds[0]), "--userns2", str(self.fds[1])]


def _namespace() -> _UserNamespace:
    """The user namespace a model runs in; never one where it is, or may become, the host's root."""
    if os.geteuid() != 0:
        return _UserNamespace()
    with _NAMESPACES_MADE:  # once, even when the first runs start together
        return _UserNamespace(_root_namespaces())


_NAMESPACES_MADE = threading.Lock()
_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded here: a child between fork and exec only calls it


@cache
def _root_namespaces() -> tuple[int, int]:
    """Two user namespaces, made once per process and kept open, for a root node's sandboxes: bubblewrap sets
    the sandbox up in the first, whose ids are the model's user and host root (so that it can still reach a
    runtime under a private home such as /root), then moves into the second, its child, where the model
    runs: there the model's uid maps to the model's user and nothing maps to host root."""
    uid, gid = model_user()
    # a shell in the first namespace waits while the node (root outside) writes its maps, then becomes a
    # process in the second; each namespace is then held by a descriptor the node keeps
    holder = subprocess.Popen(["unshare", "--user", "--", "sh", "-c", "read go && exec unshare --user cat"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        first = _entered(holder, os.stat("/proc/self/ns/user").st_ino)
        # host root is id 1 there, not 0: bubblewrap's switch from it to the sandbox's ids then keeps the
        # capabilities it needs for the setup (a change of uid away from 0 would drop them)
        _write_maps(holder.pid, f"1 0 1\n{SANDBOX_ID} {uid} 1\n", f"1 0 1\n{SANDBOX_ID} {gid} 1\n")
        fd1 = os.open(f"/proc/{holder.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        assert holder.stdin is not None
        holder.stdin.write(b"go\n")
        holder.stdin.flush()
        _entered(holder, first)
        # only a process in the first namespace may write the second's maps: a child that joins it does
        same = f"{SANDBOX_ID} {SANDBOX_ID} 1\n"
        subprocess.run(["true"], pass_fds=[fd1], check=True, preexec_fn=partial(_join_and_map, fd1, holder.pid, same))
        fd2 = os.open(f"/proc/{holder.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        return fd1, fd2
    except (OSError, subprocess.SubprocessError) as e:
        raise PermissionDenied(f"the user namespaces for models cannot be made here: {e}",
                               "allow user namespaces (sysctl user.max_user_namespaces > 0)") from None  # fmt: skip
    finally:
        holder.kill()
        holder.wait()
        for pipe in (holder.stdin, holder.stderr):
            with contextlib.suppress(OSError):
                pipe.close()  # type: ignore[union-attr]


def _join_and_map(userns: int, pid: int, ids: str) -> None:
    """In a child, before exec: join the user namespace `userns` (with every capability in it) and write
    the uid and gid maps of the process `pid`, whose namespace is a child of it."""
    if _LIBC.setns(userns, 0x10000000) != 0:  # CLONE_NEWUSER
        raise OSError(ctypes.get_errno(), "setns into the sandbox's user namespace")
    _write_maps(pid, ids, ids)


def _entered(holder: subprocess.Popen[bytes], previous: int) -> int:
    """Wait until `holder` has left the user namespace `previous` (an inode number); the new one's."""
    ns, deadline = f"/proc/{holder.pid}/ns/user", time.monotonic() + 5
    while (now := os.stat(ns).st_ino) == previous:
        if holder.poll() is not None or time.monotonic() > deadline:
            why = holder.stderr.read().decode(errors="replace").strip() if holder.stderr else ""
            raise PermissionDenied(f"a user namespace for models cannot be made here: {why or 'timed out'}",
                                   "allow user namespaces (sysctl user.max_user_namespaces > 0)")  # fmt: skip
        time.sleep(0.0002)
    return now


def _write_maps(pid: int, uids: str, gids: str) -> None:
    for name, text in (("uid_map", uids), ("gid_map", gids)):
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write(text)


SANDBOX_ID = 65534  # the uid and gid a model has inside its sandbox ("nobody")
MODEL_USER = "qdsn-model"  # the host user models run as where the node runs as root


def model_user() -> tuple[int, int]:
    """The host uid and gid of MODEL_USER, an unprivileged system user the node makes on first need."""
    try:
        pw = pwd.getpwnam(MODEL_USER)
    except KeyError:
        made = subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir",
                               "/nonexistent", "--shell", "/usr/sbin/nologin", "--comment",
                               "QDSN certification models", MODEL_USER], capture_output=True, text=True)  # fmt: skip
        try:
            pw = pwd.getpwnam(MODEL_USER)
        except KeyError:
            raise PermissionDenied(f"models run as the unprivileged user {MODEL_USER}, and it cannot be made: "
                                   f"{made.stderr.strip() or made.returncode}",
                                   f"create it: useradd --system --user-group {MODEL_USER}") from None  # fmt: skip
    if pw.pw_uid == 0 or pw.pw_gid == 0:
        raise PermissionDenied(f"the user {MODEL_USER} is root or in root's group",
                               f"make {MODEL_USER} an unprivileged system user")  # fmt: skip
    return pw.pw_uid, pw.pw_gid
