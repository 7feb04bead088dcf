"""Where a run's cgroup goes: the hierarchies read from mountinfo (v1, hybrid and v2 layouts), the
node's own group in each, and a group made for real on this machine, which is removed with what ran in it."""

import subprocess
import time
from pathlib import Path

import pytest

from qdsn.compute import cgroups, sandbox
from qdsn.errors import PermissionDenied

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
22 1 0:21 / /proc rw,nosuid - proc proc rw
"""
UNIFIED_IN_A_CONTAINER = "29 23 0:26 /kubepods/pod1 /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"


def test_hierarchies_and_memberships_are_read_from_the_kernels_text():
    found = {m.point.name: m for m in cgroups.mounts(HYBRID)}
    assert set(found) == {"cpu,cpuacct", "memory", "pids", "systemd", "unified"}
    assert found["cpu,cpuacct"].version == 1 and {"cpu", "cpuacct"} <= found["cpu,cpuacct"].controllers
    assert found["unified"].version == 2
    mine = cgroups.memberships("12:cpu,cpuacct:/a\n4:memory:/process_api/x\n1:name=systemd:/s\n0::/u\n")
    assert mine == {"cpu": "/a", "cpuacct": "/a", "memory": "/process_api/x", "systemd": "/s", "": "/u"}


def test_the_nodes_own_group_is_found_under_a_mount_of_part_of_the_hierarchy(tmp_path):
    (mount,) = cgroups.mounts(UNIFIED_IN_A_CONTAINER.replace("/sys/fs/cgroup", str(tmp_path)))
    (tmp_path / "node").mkdir()
    assert cgroups.own_dir(mount, "/kubepods/pod1/node") == tmp_path / "node"
    assert cgroups.own_dir(mount, "/kubepods/pod1") == tmp_path
    assert cgroups.own_dir(mount, "/elsewhere/node") == tmp_path  # not under this mount: its root
    assert cgroups.own_dir(mount, "/kubepods/pod1/gone") == tmp_path


def test_no_cgroup_is_a_refusal_that_says_what_to_do(tmp_path, monkeypatch):
    info = tmp_path / "mountinfo"
    info.write_text("22 1 0:21 / /proc rw,nosuid - proc proc rw\n")
    monkeypatch.setattr(cgroups, "MOUNTINFO", info)
    with pytest.raises(PermissionDenied, match="needs its own cgroup") as e:
        cgroups.create(64 << 20, 8)
    assert "no cgroup v1 memory, pids, cpuacct controller" in str(e.value) and "--isolation=process" in str(e.value)


def test_a_real_group_caps_holds_and_is_removed_with_its_processes():
    g = cgroups.create(64 << 20, 8)
    try:
        for d in g.places:
            assert d.name.startswith(cgroups.PREFIX) and d.is_dir()
        limit = "memory.max" if g.version == 2 else "memory.limit_in_bytes"
        assert int((g.dirs["memory"] / limit).read_text()) == 64 << 20
        assert (g.dirs["pids"] / "pids.max").read_text().strip() == "8"
        # a process that joins before exec, and everything it starts, is the group's
        busy = subprocess.Popen(["sh", "-c", "sleep 30 & while :; do :; done"], preexec_fn=g.join)
        deadline = time.monotonic() + 10
        while (len(g.pids()) < 2 or g.cpu_seconds() < 0.05) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert busy.pid in g.pids() and len(g.pids()) == 2
        assert g.cpu_seconds() >= 0.05  # the busy loop's time is the group's
    finally:
        g.remove()
    busy.wait(timeout=5)
    assert not any(d.exists() for d in g.places)


def test_runs_leave_no_group_and_no_process_behind(tmp_path, made_groups):
    (tmp_path / "m.py").write_text("import os\nif os.fork() == 0:\n    os.setsid()\n"
                                   "    os.execvp('sleep', ['sleep', '61.2345'])\n")  # fmt: skip
    for isolation in ("bwrap", "process"):
        r = sandbox.run(tmp_path, "m.py", b"{}", isolation=isolation)
        assert r.ok, r
    assert made_groups
    assert not [d for g in made_groups for d in g.places if d.exists()]
    time.sleep(0.2)
    sleeping = [p for p in Path("/proc").glob("[0-9]*/cmdline") if _read(p) == b"sleep\x0061.2345\x00"]
    assert not sleeping, "a model's background process outlived its run"


def test_a_group_left_behind_is_swept_once_old_and_empty():
    g = cgroups.create(64 << 20, 8)
    busy = subprocess.Popen(["sleep", "30"], preexec_fn=g.join)
    try:
        cgroups.sweep(older_than=0)
        assert all(d.exists() for d in g.places)  # a process is in it
        busy.kill()
        busy.wait()
        cgroups.sweep(older_than=3600)
        assert all(d.exists() for d in g.places)  # it may be a run that has not joined yet
        cgroups.sweep(older_than=0)
        assert not any(d.exists() for d in g.places)
    finally:
        busy.kill()
        g.remove()


def _read(p: Path) -> bytes:
    try:
        return p.read_bytes()
    except OSError:
        return b""
