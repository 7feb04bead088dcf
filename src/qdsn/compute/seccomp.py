"""The system calls a model may not make, as a seccomp filter that bubblewrap loads before the model starts.

Built with libseccomp (through pyseccomp) and exported as the classic BPF program bubblewrap takes on
`--seccomp FD`. Everything is allowed except what reaches past the sandbox: the kernel keyring, tracing
other processes, new namespaces and mounts (the way out of bubblewrap's), loading code into the kernel
(modules, kexec, BPF), perf counters, userfaultfd and io_uring (their handlers run outside the filter),
file handles that open by inode, swap, reboot and the clock. Refused calls fail with EPERM, except
clone3, whose flags sit in memory a filter cannot read: it fails with ENOSYS so that the C library falls
back to clone, whose flags are checked.
"""

from __future__ import annotations

import errno
import os
from functools import cache

from qdsn.errors import PermissionDenied

REFUSED = (
    # the kernel keyring: the node's keys live in it
    "keyctl", "add_key", "request_key",
    # other processes' memory
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    # namespaces and mounts: what bubblewrap set up stays as it is
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount",
    "fspick", "move_mount", "open_tree", "mount_setattr",
    # code into the kernel, and the kernel's own counters
    "bpf", "perf_event_open", "kexec_load", "kexec_file_load", "init_module", "finit_module",
    "delete_module", "lookup_dcookie", "syslog", "acct", "quotactl", "fanotify_init",
    # calls whose work happens outside the filter or the mount tree
    "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register", "open_by_handle_at",
    "name_to_handle_at",
    # the machine
    "swapon", "swapoff", "reboot", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "sethostname", "setdomainname", "iopl", "ioperm", "vhangup",
    # other processes' pages (a process's own memory policy, which numerical libraries set, stays allowed)
    "move_pages", "migrate_pages",
)  # fmt: skip

# clone flags that make a new namespace (linux/sched.h: NEWTIME, NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER,
# NEWPID, NEWNET), each refused on clone
NAMESPACE_FLAGS = (0x80, 0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
TIOCSTI, TIOCLINUX = 0x5412, 0x541C  # typing into a terminal: refused even where a model could reach one


@cache
def program() -> bytes:
    """The filter as the BPF program bubblewrap loads; compiled once per process."""
    try:
        import pyseccomp as sc
    except (ImportError, OSError, AttributeError) as e:  # pyseccomp loads libseccomp.so when imported
        raise PermissionDenied(
            f"models run under a seccomp filter, and libseccomp cannot be loaded: {e}",
            "install libseccomp2 (apt-get install libseccomp2) and pyseccomp",
        ) from None
    f = sc.SyscallFilter(sc.ALLOW)
    refuse = sc.ERRNO(errno.EPERM)
    for name in REFUSED:
        if sc.resolve_syscall(sc.Arch.NATIVE, name) >= 0:  # a call this architecture lacks cannot be made
            f.add_rule(refuse, name)
    for flag in NAMESPACE_FLAGS:  # rules on one call are alternatives: any one flag refuses the clone
        f.add_rule(refuse, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    for request in (TIOCSTI, TIOCLINUX):
        f.add_rule(refuse, "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, request))
    fd = os.memfd_create("qdsn-seccomp-export", os.MFD_CLOEXEC)
    with os.fdopen(fd, "w+b") as out:
        f.export_bpf(out)
        out.seek(0)
        return out.read()


def memfd() -> int:
    """A file descriptor holding the filter, at offset 0, for bubblewrap's `--seccomp`; the caller closes it."""
    data = program()
    fd = os.memfd_create("qdsn-seccomp", 0)  # not close-on-exec: bubblewrap inherits it
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
