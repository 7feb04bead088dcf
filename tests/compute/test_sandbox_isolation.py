"""The kernel's side of the sandbox, tried as the certifier's hostile model would: its identity, /proc,
the kernel keyring, dangerous system calls, and the run's memory, CPU, process and disk budgets summed
over every process it starts. These run as root in CI, where a slip would touch the host."""

import contextlib
import ctypes
import os
import pwd
import textwrap
import threading
import time
from pathlib import Path

import orjson
import pytest

from qdsn.compute import sandbox
from qdsn.compute.sandbox import Limits

TIGHT = Limits(wall_seconds=20, cpu_seconds=5, memory=256 << 20, processes=24, file_size=64 << 20,
               output=1 << 16, tmp_size=8 << 20)  # fmt: skip

PRELUDE = """
import ctypes, errno, json, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

def call(nr, *args):
    \"\"\"A raw system call: 0 or more on success, else the errno's name.\"\"\"
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    return r if r >= 0 else errno.errorcode[ctypes.get_errno()]

def shown(path):
    \"\"\"What a file shows the model: its text, or nothing where it may not read it.\"\"\"
    try:
        return open(path, "rb").read().decode("latin-1")
    except OSError:
        return ""

def attempt(f):
    try:
        f()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
"""


def nr(name: str) -> int:
    """The native system call number of `name` (the test passes it to the model's ctypes calls)."""
    import pyseccomp

    return pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)


def go(tmp_path, source, job=b"{}", limits=TIGHT, **kw):
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    (folder / "m.py").write_text(PRELUDE + textwrap.dedent(source))
    return sandbox.run(folder, "m.py", job, limits=limits, **kw)


def out(r):
    assert r.ok, (r.status, r.exit_code, r.stderr[-800:])
    return orjson.loads(r.stdout)


# --- who the model is ---


def _host_uids_of_models(stop: threading.Event, folder: Path) -> set[int]:
    """The host uids (as the host sees them) of the model processes this test process is running now; once
    one is seen, root-only files appear in its folder (a bind mount shows them inside at once)."""
    seen: set[int] = set()
    while not stop.is_set():
        for status in Path("/proc").glob("[0-9]*/status"):
            with contextlib.suppress(OSError, StopIteration, ValueError):
                argv = (status.parent / "cmdline").read_bytes().split(b"\0")
                if argv[0] != b"bwrap" and argv[-2:-1] == [b"/model/m.py"] and _descends(status, os.getpid()):
                    uid = next(line for line in status.read_text().splitlines() if line.startswith("Uid:"))
                    seen |= set(map(int, uid.split()[1:]))
        if seen and not (folder / "root-group").exists():
            for name, mode in (("root-only", 0o600), ("root-group", 0o640)):  # made with these modes
                os.close(os.open(folder / name, os.O_CREAT | os.O_WRONLY, mode))
        time.sleep(0.05)
    return seen


def _descends(status: Path, ancestor: int) -> bool:
    for _ in range(8):
        ppid = int(next(line for line in status.read_text().splitlines() if line.startswith("PPid:")).split()[1])
        if ppid == ancestor:
            return True
        if ppid <= 1:
            return False
        status = Path(f"/proc/{ppid}/status")
    return False


def test_the_model_never_maps_to_host_root(tmp_path):
    (tmp_path / "model").mkdir()
    stop, found = threading.Event(), {}
    watcher = threading.Thread(target=lambda: found.update(uids=_host_uids_of_models(stop, tmp_path / "model")))
    watcher.start()
    try:
        r = go(tmp_path, """
            maps = [list(map(int, line.split())) for line in open("/proc/self/uid_map")]
            gmaps = [list(map(int, line.split())) for line in open("/proc/self/gid_map")]
            for _ in range(100):  # until the host, having seen this process, has put root's files beside it
                if os.path.exists("/model/root-group"):
                    break
                time.sleep(0.05)
            print(json.dumps({"uid": os.getuid(), "maps": maps, "gmaps": gmaps,
                              "read_root_only": attempt(lambda: open("/model/root-only").read()),
                              "read_root_group": attempt(lambda: open("/model/root-group").read()),
                              "setuid0": attempt(lambda: os.setuid(0)),
                              "chown": attempt(lambda: os.chown("/tmp", 0, 0))}))
        """)  # fmt: skip
    finally:
        stop.set()
        watcher.join()
    seen = out(r)
    # inside: no line of either map reaches id 0 of the namespace outside
    for _inside, outside, count in seen["maps"] + seen["gmaps"]:
        assert not outside <= 0 < outside + count, seen
    # outside: the host sees the model's processes under an unprivileged uid
    assert found["uids"] and 0 not in found["uids"], found
    if os.geteuid() == 0:  # a root node runs models as its own unprivileged user, not as itself
        assert found["uids"] == {pwd.getpwnam(sandbox.MODEL_USER).pw_uid}
    # and the kernel treats it so: root's files and root's group are closed to it
    assert seen["read_root_only"] == seen["read_root_group"] == "EACCES", seen
    assert seen["setuid0"] in ("EPERM", "EINVAL") and seen["chown"] in ("EPERM", "EINVAL")


def test_a_model_reads_its_own_files_whatever_the_nodes_umask(tmp_path):
    folder = tmp_path / "model"
    (folder / "lib").mkdir(parents=True)
    (folder / "lib" / "data.txt").write_text("42")
    (folder / "m.py").write_text("print(open('/model/lib/data.txt').read())\n")
    for p in (folder / "lib" / "data.txt", folder / "m.py", folder / "lib", folder):
        p.chmod(0o700 if p.is_dir() else 0o600)  # as written under umask 077
    r = sandbox.run(folder, "m.py", b"{}", limits=TIGHT)
    assert r.ok and r.stdout == b"42\n", (r.status, r.stderr[-300:])


# --- /proc ---


SYSCTLS = [s for s in ("fs/lease-break-time", "kernel/core_pattern", "kernel/hostname", "vm/overcommit_memory",
                       "net/ipv4/ip_forward", "kernel/msgmax", "fs/file-max", "kernel/randomize_va_space",
                       "kernel/modprobe", "user/max_user_namespaces") if Path("/proc/sys", s).exists()]  # fmt: skip


def test_no_sysctl_is_writable_and_root_only_proc_files_are_closed(tmp_path):
    # each write puts back the value just read, so that even where it succeeds the host is unchanged
    r = go(tmp_path, f"""
        def rewrite(name):
            path = "/proc/sys/" + name
            value = open(path, "rb").read()
            with open(path, "wb", buffering=0) as f:
                f.write(value)

        def opened(path, mode):
            with open(path, mode, buffering=0):
                pass

        print(json.dumps({{
            "sysctl": {{n: attempt(lambda n=n: rewrite(n)) for n in {SYSCTLS!r}}},
            "read": {{p: attempt(lambda p=p: open(p, "rb").read(64))
                      for p in ("/proc/slabinfo", "/proc/timer_list", "/proc/kcore", "/proc/sched_debug",
                                "/proc/keys", "/proc/kmsg")}},
            "write": {{p: attempt(lambda p=p: opened(p, "wb")) for p in ("/proc/sysrq-trigger",)}},
        }}))
    """)  # fmt: skip
    seen = out(r)
    assert all(v in ("EROFS", "EACCES", "EPERM") for v in seen["sysctl"].values()), seen["sysctl"]
    # gone, closed, or masked by an empty file: nothing of the host's comes back
    opened = {p for p, how in {**seen["read"], **seen["write"]}.items() if how == "ok"}
    if opened:
        shown = go(tmp_path, f"""
            print(json.dumps({{p: open(p, "rb").read(64).decode("latin-1") for p in {sorted(opened)!r}}}))
        """)  # fmt: skip
        assert not any(out(shown).values()), out(shown)


# --- the kernel keyring and system calls ---

KEY_SPEC_SESSION_KEYRING = -3


def _add_session_key(description: bytes, payload: bytes) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    serial = libc.syscall(ctypes.c_long(nr("add_key")), b"user", description, payload, ctypes.c_size_t(len(payload)),
                          ctypes.c_long(KEY_SPEC_SESSION_KEYRING))  # fmt: skip
    assert serial > 0, os.strerror(ctypes.get_errno())
    return serial


def _find_session_key(description: bytes) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    keyctl_search = 10
    return libc.syscall(ctypes.c_long(nr("keyctl")), ctypes.c_long(keyctl_search),
                        ctypes.c_long(KEY_SPEC_SESSION_KEYRING), b"user", description, ctypes.c_long(0))  # fmt: skip


def test_the_nodes_keyring_is_out_of_reach_and_nothing_is_planted(tmp_path):
    tag = f"qdsn-test-{os.getpid()}-{time.monotonic_ns()}".encode()
    serial = _add_session_key(tag, b"the node's passphrase")
    try:
        r = go(tmp_path, f"""
            KEYCTL_READ, KEYCTL_SEARCH, KEYCTL_GET_KEYRING_ID = 11, 10, 0
            buf = ctypes.create_string_buffer(256)
            print(json.dumps({{
                "read": call({nr("keyctl")}, KEYCTL_READ, {serial}, buf, 256),
                "search": call({nr("keyctl")}, KEYCTL_SEARCH, {KEY_SPEC_SESSION_KEYRING}, b"user", {tag!r}, 0),
                "session": call({nr("keyctl")}, KEYCTL_GET_KEYRING_ID, {KEY_SPEC_SESSION_KEYRING}, 0),
                "plant": call({nr("add_key")}, b"user", b"planted-" + {tag!r}, b"x", 1, {KEY_SPEC_SESSION_KEYRING}),
                "request": call({nr("request_key")}, b"user", {tag!r}, None, 0),
                "proc_keys": shown("/proc/keys"),
                "secret": buf.value.decode("latin-1"),
            }}))
        """)  # fmt: skip
        seen = out(r)
        for call_ in ("read", "search", "session", "plant", "request"):
            assert seen[call_] in ("EPERM", "ENOSYS"), (call_, seen)
        assert seen["secret"] == "" and tag.decode() not in seen["proc_keys"]
        assert _find_session_key(b"planted-" + tag) < 0  # nothing outlives the run in the node's keyring
    finally:
        ctypes.CDLL(None).syscall(ctypes.c_long(nr("keyctl")), ctypes.c_long(21), ctypes.c_long(serial))  # invalidate


CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWPID = 0x20000, 0x10000000, 0x40000000, 0x20000000


def test_dangerous_system_calls_are_refused(tmp_path):
    r = go(tmp_path, f"""
        SIGCHLD = 17
        def clone_ns():
            pid = call({nr("clone")}, {CLONE_NEWUSER} | SIGCHLD, 0, 0, 0, 0)
            if pid == 0:
                os._exit(0)
            if isinstance(pid, int):
                os.waitpid(pid, 0)
            return pid

        seen = {{
            "seccomp": [l.split()[1] for l in open("/proc/self/status") if l.startswith("Seccomp:")][0],
            "ptrace": call({nr("ptrace")}, 0, 0, 0, 0),  # PTRACE_TRACEME
            "unshare_user": call({nr("unshare")}, {CLONE_NEWUSER}),
            "unshare_net": call({nr("unshare")}, {CLONE_NEWNET}),
            "unshare_mount": call({nr("unshare")}, {CLONE_NEWNS}),
            "clone_user": clone_ns(),
            "clone3": call({nr("clone3")}, None, 0),
            "setns": call({nr("setns")}, 0, 0),
            "mount": call({nr("mount")}, b"none", b"/tmp", b"tmpfs", 0, None),
            "umount2": call({nr("umount2")}, b"/tmp", 0),
            "pivot_root": call({nr("pivot_root")}, b"/tmp", b"/tmp"),
            "bpf": call({nr("bpf")}, 0, None, 0),
            "perf_event_open": call({nr("perf_event_open")}, None, 0, -1, -1, 0),
            "kexec_load": call({nr("kexec_load")}, 0, 0, None, 0),
            "init_module": call({nr("init_module")}, None, 0, b""),
            "finit_module": call({nr("finit_module")}, -1, b"", 0),
            "delete_module": call({nr("delete_module")}, b"x", 0),
            "swapon": call({nr("swapon")}, b"/tmp/x", 0),
            "reboot": call({nr("reboot")}, 0, 0, 0, None),
            "open_by_handle_at": call({nr("open_by_handle_at")}, -1, None, 0),
            "userfaultfd": call({nr("userfaultfd")}, 0),
            "io_uring_setup": call({nr("io_uring_setup")}, 1, None),
            "add_key": call({nr("add_key")}, b"user", b"k", b"x", 1, -3),
            "keyctl": call({nr("keyctl")}, 0, -3, 0),
        }}
        # threads still start (glibc falls back from clone3 to clone) and so do child processes
        import threading, subprocess
        t = threading.Thread(target=lambda: None); t.start(); t.join()
        seen["child"] = subprocess.run([sys.executable, "-c", "print(1)"], capture_output=True).stdout.decode().strip()
        print(json.dumps(seen))
    """)  # fmt: skip
    seen = out(r)
    assert seen.pop("seccomp") == "2" and seen.pop("child") == "1"
    refused = {k: v for k, v in seen.items() if v not in ("EPERM", "ENOSYS")}
    assert not refused, refused


# --- budgets for the whole run ---


def test_memory_is_one_budget_for_all_processes(tmp_path):
    share = int(TIGHT.memory * 0.6)
    r = go(tmp_path, f"""
        kids = []
        for _ in range(3):
            pid = os.fork()
            if pid == 0:
                block = b"\\x01" * {share}  # allocated and touched
                time.sleep(4)
                os._exit(0)
            kids.append(pid)
        codes = [os.waitpid(k, 0)[1] for k in kids]
        print(json.dumps({{"codes": codes}}))
    """)  # fmt: skip
    assert not r.ok and r.status == "memory-limit", (r.status, r.stdout, r.stderr[-500:])


def test_cpu_is_one_budget_for_all_processes(tmp_path):
    limits = Limits(wall_seconds=30, cpu_seconds=1, memory=256 << 20, processes=24, output=1 << 16)
    r = go(tmp_path, """
        kids = []
        for _ in range(3):
            pid = os.fork()
            if pid == 0:
                while time.process_time() < 0.9:  # each under the budget alone, the three well over it
                    pass
                os._exit(0)
            kids.append(pid)
        for k in kids:
            os.waitpid(k, 0)
        print("{}")
    """, limits=limits)  # fmt: skip
    assert r.status == "cpu-limit", (r.status, r.stderr[-500:])
    assert r.seconds < 20  # stopped by the budget, well before the wall clock (slack for a loaded machine)


def test_processes_are_one_budget_for_the_run(tmp_path):
    r = go(tmp_path, """
        started = 0
        for _ in range(100):
            try:
                if os.fork() == 0:
                    time.sleep(3)
                    os._exit(0)
                started += 1
            except OSError:
                pass
        print(json.dumps({"started": started}))
    """)  # fmt: skip
    assert out(r)["started"] < TIGHT.processes


def test_every_writable_place_is_capped_summed_over_processes(tmp_path):
    cap = TIGHT.tmp_size
    r = go(tmp_path, f"""
        def fill(path, size):
            with open(path, "wb") as f:
                for _ in range(size >> 20):
                    f.write(bytes(1 << 20))
                    f.flush()

        def in_three(folder):
            # three processes each write 40% of the cap: together they must not get past it
            kids = []
            for i in range(3):
                pid = os.fork()
                if pid == 0:
                    os._exit(0 if attempt(lambda: fill(f"{{folder}}/part-{{i}}", {int(cap * 0.4)})) == "ok" else 1)
                kids.append(pid)
            return sum(os.waitstatus_to_exitcode(os.waitpid(k, 0)[1]) == 0 for k in kids)

        print(json.dumps({{
            "tmp_whole": attempt(lambda: fill("/tmp/big", {cap * 3})),
            "tmp_parts": in_three("/tmp"),
            "shm": attempt(lambda: fill("/dev/shm/big", {cap * 3})),
            "root": attempt(lambda: fill("/big", 1 << 20)),
            "dev": attempt(lambda: fill("/dev/big", {cap * 3})),
            "model": attempt(lambda: fill("/model/big", 1 << 20)),
        }}))
    """)  # fmt: skip
    seen = out(r)
    assert seen.pop("tmp_parts") < 3
    assert all(v in ("ENOSPC", "EROFS", "EACCES") for v in seen.values()), seen


def test_a_run_leaves_no_cgroup_behind(tmp_path, made_groups):
    r = go(tmp_path, "import os\nos.fork()\nprint('{}')\n")
    assert r.ok and made_groups
    assert not [d for g in made_groups for d in g.places if d.exists()]


def test_without_a_cgroup_a_sandboxed_run_is_refused_and_a_process_run_says_what_it_lacks(tmp_path, monkeypatch):
    from qdsn.compute import cgroups
    from qdsn.errors import PermissionDenied

    info = tmp_path / "mountinfo"
    info.write_text("22 1 0:21 / /proc rw,nosuid - proc proc rw\n")  # a machine with no cgroup mounted
    monkeypatch.setattr(cgroups, "MOUNTINFO", info)
    with pytest.raises(PermissionDenied, match="needs its own cgroup") as refused:
        go(tmp_path, "print('{}')\n")
    assert "--isolation=process" in str(refused.value)
    r = go(tmp_path, "print('{}')\n", isolation="process")  # the owner's explicit choice
    assert r.ok and r.isolation == "process"
    assert {"memory (per process only)", "cpu (per process only)", "seccomp", "user"} <= set(r.unenforced)


def test_the_filter_cannot_be_stepped_around_through_another_abi(tmp_path):
    # keyctl through the x32 numbering of an x86-64 kernel: a filter for x86-64 alone must not let it by
    import platform

    if platform.machine() != "x86_64":
        pytest.skip("the x32 ABI exists only on x86-64")
    r = go(tmp_path, f"""
        print(call({nr("keyctl")} | 0x40000000, 0, -3, 0))
    """)  # fmt: skip
    assert r.status == "killed" and not r.stdout, (r.status, r.stdout)
