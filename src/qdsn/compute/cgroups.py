"""One control group per model run, so that its memory, processes and CPU time are budgets of the whole
run, summed over every process it starts, and so that everything it started can be found and killed.

Both layouts are supported: cgroup v2 where the unified hierarchy has the memory and pids controllers
(`memory.max`, `memory.swap.max` = 0, `memory.oom.group`, `pids.max`, CPU from `cpu.stat`), and the v1
controllers of a legacy or hybrid machine (`memory.limit_in_bytes` and `memory.memsw.limit_in_bytes`,
`pids.max`, CPU from `cpuacct.usage`). A run's group is made under the node's own group where the node may
write there, else under the hierarchy's root. Where neither can be made, `create` raises PermissionDenied
saying why and what to do, and the run does not start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from qdsn.errors import PermissionDenied

PREFIX = "qdsn-run-"
MOUNTINFO, SELF = Path("/proc/self/mountinfo"), Path("/proc/self/cgroup")
V1 = ("memory", "pids", "cpuacct")  # the v1 controllers a run needs
V2 = ("memory", "pids")  # v2 accounts CPU time in every group, without a controller
FIX = ("run the node as root, or give its service a delegated cgroup v2 subtree with the memory and pids "
       "controllers (systemd: Delegate=yes); or choose --isolation=process knowing that its limits are then "
       "per process and not enforced on the run as a whole")  # fmt: skip


@dataclass(frozen=True)
class Mount:
    """A mounted cgroup hierarchy: where, the path inside the hierarchy it shows, and its v1 controllers."""

    point: Path
    root: str
    version: int
    controllers: frozenset[str]


def mounts(mountinfo: str) -> list[Mount]:
    """The cgroup hierarchies in a /proc/self/mountinfo text."""
    found = []
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) < 5 or len(rest) < 3 or rest[0] not in ("cgroup", "cgroup2"):
            continue
        point = Path(fields[4].replace("\\040", " "))
        opts = frozenset(rest[2].split(","))
        found.append(Mount(point, fields[3], 2 if rest[0] == "cgroup2" else 1, opts))
    return found


def memberships(proc_cgroup: str) -> dict[str, str]:
    """A process's group in each hierarchy from /proc/PID/cgroup text: {controller or "": path}."""
    seen = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for name in parts[1].split(",") if parts[1] else [""]:
                seen[name.removeprefix("name=")] = parts[2]
    return seen


def own_dir(mount: Mount, path: str) -> Path:
    """Where the group at `path` of a hierarchy sits under this mount; its mount point when not shown."""
    root = mount.root.rstrip("/")
    if path == root or path.startswith(root + "/"):
        inside = mount.point / path[len(root) :].lstrip("/")
        if inside.is_dir():
            return inside
    return mount.point


@dataclass
class Group:
    """A run's group: one directory under v2, one per controller under v1."""

    version: int
    dirs: dict[str, Path]  # controller -> the run's directory in its hierarchy

    @property
    def places(self) -> list[Path]:
        return sorted(set(self.dirs.values()))

    def join(self) -> None:
        """Move the calling process in; called in the child before it runs anything."""
        pid = str(os.getpid())
        for d in self.places:
            with open(d / "cgroup.procs", "w") as f:
                f.write(pid)

    def cpu_seconds(self) -> float:
        """CPU time used by every process the run has had, in seconds."""
        try:
            if self.version == 2:
                for line in (self.dirs["pids"] / "cpu.stat").read_text().splitlines():
                    if line.startswith("usage_usec "):
                        return int(line.split()[1]) / 1e6
                return 0.0
            return int((self.dirs["cpuacct"] / "cpuacct.usage").read_text()) / 1e9
        except (OSError, ValueError):
            return 0.0

    def oom_kills(self) -> int:
        """How many of the run's processes the kernel killed for its memory limit."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            for line in (self.dirs["memory"] / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def pids(self) -> set[int]:
        found: set[int] = set()
        for d in self.places:
            with contextlib.suppress(OSError, ValueError):
                found |= {int(p) for p in (d / "cgroup.procs").read_text().split()}
        return found

    def kill(self) -> None:
        """SIGKILL every process in the run, until none is left (a fork between two reads is caught next)."""
        kill_file = self.dirs["pids"] / "cgroup.kill"
        if self.version == 2 and kill_file.exists():
            with contextlib.suppress(OSError):
                kill_file.write_text("1")
        for _ in range(200):
            left = self.pids()
            if not left:
                return
            for pid in left:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.005)

    def remove(self) -> None:
        """Kill what is left and remove the directories. The last processes may take a while to leave on a
        loaded machine; a directory still busy after 10 s is removed by a later run's `sweep`."""
        self.kill()
        deadline = time.monotonic() + 10
        for d in self.places:
            pause = 0.005
            while True:
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    self.kill()
                    time.sleep(pause)
                    pause = min(pause * 2, 0.2)


def create(memory: int, processes: int) -> Group:
    """A fresh group for one run with `memory` bytes (no swap) and at most `processes` processes."""
    sweep()
    info = MOUNTINFO.read_text()
    mine = memberships(SELF.read_text())
    all_mounts = mounts(info)
    why = []
    for m in all_mounts:
        if m.version == 2:
            available = _read(m.point / "cgroup.controllers").split()
            if all(c in available for c in V2):
                try:
                    return _create_v2(m, own_dir(m, mine.get("", "/")), memory, processes)
                except PermissionDenied as e:
                    why.append(e.what)
    v1 = {c: m for c in V1 for m in all_mounts if m.version == 1 and c in m.controllers}
    if all(c in v1 for c in V1):
        return _create_v1({c: (v1[c], own_dir(v1[c], mine.get(c, "/"))) for c in V1}, memory, processes)
    missing = ", ".join(c for c in V1 if c not in v1)
    if not why:
        why.append(f"no cgroup v2 hierarchy has the {' and '.join(V2)} controllers")
    why.append(f"no cgroup v1 {missing} controller is mounted")
    raise PermissionDenied(f"a model run needs its own cgroup, and none can be made here: {'; '.join(why)}", FIX)


def _create_v2(mount: Mount, own: Path, memory: int, processes: int) -> Group:
    errors = []
    for parent in dict.fromkeys((own, mount.point)):
        try:
            enabled = _read(parent / "cgroup.subtree_control").split()
            if not all(c in enabled for c in V2):  # refused (EBUSY) where the parent holds processes itself
                (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in V2))
            d = _mkdir(parent)
        except OSError as e:
            errors.append(f"{parent}: {e.strerror or e}")
            continue
        try:
            _write(d / "memory.max", memory)
            if (d / "memory.swap.max").exists():
                _write(d / "memory.swap.max", 0)
            _write(d / "memory.oom.group", 1)  # an out-of-memory kill takes the whole run
            _write(d / "pids.max", processes)
        except OSError as e:
            _rmdir(d)
            errors.append(f"{d}: {e.strerror or e}")
            continue
        return Group(2, {"memory": d, "pids": d, "cpu": d})
    raise PermissionDenied(f"cgroup v2 groups cannot be made ({'; '.join(errors)})", FIX)


def _create_v1(where: dict[str, tuple[Mount, Path]], memory: int, processes: int) -> Group:
    made: dict[str, Path] = {}
    by_mount: dict[Path, Path] = {}  # controllers mounted together share one directory
    name = f"{PREFIX}{uuid.uuid4().hex[:12]}"
    try:
        for c, (mount, own) in where.items():
            if mount.point not in by_mount:
                by_mount[mount.point] = _mkdir(own, mount.point, name=name)
            made[c] = by_mount[mount.point]
        _write(made["memory"] / "memory.limit_in_bytes", memory)
        if (made["memory"] / "memory.memsw.limit_in_bytes").exists():  # swap counts, so none is left to use
            _write(made["memory"] / "memory.memsw.limit_in_bytes", memory)
        else:
            _write(made["memory"] / "memory.swappiness", 0)
        _write(made["pids"] / "pids.max", processes)
    except OSError as e:
        for d in by_mount.values():
            _rmdir(d)
        raise PermissionDenied(f"a model run needs its own cgroup, and {e.filename or 'cgroup v1'}: "
                               f"{e.strerror or e}", FIX) from None  # fmt: skip
    return Group(1, made)


def roots() -> list[Path]:
    """The directories under which runs' groups may be made (to look for any left behind)."""
    info = MOUNTINFO.read_text()
    mine = memberships(SELF.read_text())
    found = []
    for m in mounts(info):
        names = [""] if m.version == 2 else [c for c in V1 if c in m.controllers]
        for name in names:
            found += [m.point, own_dir(m, mine.get(name, "/"))]
    return sorted(set(found))


def sweep(older_than: float = 60.0) -> int:
    """Remove runs' groups left empty for more than `older_than` seconds (a removal that timed out, a node
    killed mid-run); how many went. A younger group may be a run that has not joined yet, so it stays."""
    gone, now = 0, time.time()
    for root in roots():
        for d in root.glob(f"{PREFIX}*"):
            with contextlib.suppress(OSError):
                if now - d.stat().st_mtime >= older_than and not (d / "cgroup.procs").read_text().split():
                    d.rmdir()
                    gone += 1
    return gone


def _mkdir(*parents: Path, name: str = "") -> Path:
    """A new run directory under the first of `parents` that takes one."""
    name = name or f"{PREFIX}{uuid.uuid4().hex[:12]}"
    for parent in dict.fromkeys(parents):
        try:
            (parent / name).mkdir()
            return parent / name
        except OSError as e:
            error = e
    raise error


def _write(path: Path, value: int) -> None:
    with open(path, "w") as f:
        f.write(str(value))


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _rmdir(d: Path) -> None:
    with contextlib.suppress(OSError):
        d.rmdir()
