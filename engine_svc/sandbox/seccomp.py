"""A seccomp filter for the worker: default allow, deny what a backtest never needs and an attacker
would (new processes, networking, signalling others, namespaces, raising limits, kernel attack
surface). Denials return EPERM so Python raises a clean PermissionError the user can read.

Uses pyseccomp (pure ctypes over libseccomp.so.2). libseccomp builds the filter for the native
architecture only and kills the process on a syscall from any other ABI (i386 int 0x80, x32),
which closes the classic "call the 32-bit syscall number" bypass.
"""

from __future__ import annotations

import ctypes.util
import errno
import os
from types import ModuleType

_CLONE_THREAD = 0x00010000
# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET
_CLONE_NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
_PR_SET_PDEATHSIG = 1
_PR_SET_MM = 35
_PR_SET_CHILD_SUBREAPER = 36

# Denied outright, grouped by why.
DENY: dict[str, tuple[str, ...]] = {
    # New processes / programs: fork bombs, escaping the process group, running binaries.
    # (clone is handled separately: threads must keep working.)
    "process": ("fork", "vfork", "execve", "execveat"),
    # Networking: a strategy has no business talking to the DB, the metadata service or the internet.
    "network": ("socket", "socketpair", "connect", "bind", "listen", "accept", "accept4"),
    # Reaching into other processes.
    "other_processes": (
        "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_open", "pidfd_send_signal",
        "pidfd_getfd", "kcmp", "tkill",  # tkill is obsolete; glibc uses tgkill, filtered below
    ),
    # Leaving the process group / session the parent kills as a unit.
    "session": ("setsid", "setpgid"),
    # Raising the soft limits back up to the hard limits (CPU, memory) the parent relies on.
    "limits": ("setrlimit", "prlimit64"),
    # Namespaces and mounts: container-escape primitives.
    "namespaces": (
        "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "fsopen", "fsmount",
        "fsconfig", "fspick", "move_mount", "open_tree", "mount_setattr", "open_by_handle_at",
        "name_to_handle_at",
    ),
    # File metadata: Landlock governs reading, writing, creating and removing files, but not
    # chmod/chown/xattr/utimes on paths it lets us read — a worker running as root could
    # otherwise make the service's own Python installation world-writable.
    "file_metadata": (
        "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat",
        "setxattr", "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr",
        "utime", "utimes", "utimensat", "futimesat",
    ),
    # Kernel objects that outlive the worker or sit outside RLIMIT_AS: SysV IPC segments persist
    # after the process dies; memfd pages are not address space until mapped.
    "ipc": (
        "shmget", "shmat", "shmctl", "semget", "semop", "semtimedop", "semctl", "msgget", "msgsnd",
        "msgrcv", "msgctl", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify",
        "mq_getsetattr", "memfd_create", "memfd_secret",
    ),
    # Other processes' scheduling and memory placement (as root these reach any process).
    "scheduling": (
        "setpriority", "sched_setscheduler", "sched_setparam", "sched_setattr", "sched_setaffinity",
        "ioprio_set", "migrate_pages", "move_pages", "mbind", "set_mempolicy", "process_madvise",
    ),
    # Large kernel attack surface no backtest needs.
    "kernel_surface": (
        "bpf", "io_uring_setup", "io_uring_enter", "io_uring_register", "userfaultfd",
        "perf_event_open", "keyctl", "add_key", "request_key", "personality", "lookup_dcookie",
        "fanotify_init", "mknod", "mknodat", "vhangup",
    ),
    # Host administration (the worker may run as root in a container).
    "admin": (
        "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot",
        "swapon", "swapoff", "acct", "quotactl", "syslog", "settimeofday", "clock_settime",
        "clock_adjtime", "adjtimex", "sethostname", "setdomainname", "iopl", "ioperm",
    ),
}


def _load_pyseccomp() -> ModuleType:
    """Import pyseccomp without running ldconfig: its module-level find_library() spawns a
    subprocess (and fails inside bubblewrap, where /sbin/ldconfig is not mounted)."""
    import sys

    if "pyseccomp" in sys.modules:
        return sys.modules["pyseccomp"]
    real = ctypes.util.find_library
    known = {"seccomp": "libseccomp.so.2", "c": "libc.so.6"}
    ctypes.util.find_library = lambda name: known.get(name) or real(name)
    try:
        import pyseccomp
    finally:
        ctypes.util.find_library = real
    return pyseccomp


def preload() -> None:
    """Import pyseccomp (and load libseccomp) while files are still readable."""
    _load_pyseccomp()


def install(own_pid: int | None = None) -> int:
    """Install the filter on this process (all threads: TSYNC). Returns the number of rules.

    ``own_pid`` is the pid the process may still signal (its own; in a PID namespace the
    namespace pid). Python delivers its own signals with kill(getpid()) / tgkill(getpid(), tid).
    """
    sc = _load_pyseccomp()
    pid = os.getpid() if own_pid is None else own_pid
    eperm = sc.ERRNO(errno.EPERM)
    f = sc.SyscallFilter(sc.ALLOW)
    f.set_attr(sc.Attr.CTL_TSYNC, 1)
    rules = 0
    for names in DENY.values():
        for name in names:
            try:
                f.add_rule(eperm, name)
            except (OSError, ValueError, RuntimeError):
                continue  # syscall does not exist on this architecture (e.g. fork on arm64)
            rules += 1
    # clone3 passes its flags in a struct seccomp cannot inspect: ENOSYS makes glibc fall back to
    # clone(), whose flags (argument 0) we can check.
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    # clone() without CLONE_THREAD is fork/vfork/posix_spawn: denied. Threads are allowed.
    f.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, _CLONE_THREAD, 0))
    rules += 2
    # Nor a thread in new namespaces (root may combine some namespace flags with CLONE_THREAD).
    for flag in _CLONE_NAMESPACE_FLAGS:
        f.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
        rules += 1
    # Signals only to ourselves: kill(pid) and tgkill(tgid, …) with our pid; anything else
    # (the parent, pid 0 = our group, -1 = everyone, other workers) is denied.
    for name in ("kill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo"):
        f.add_rule(eperm, name, sc.Arg(0, sc.NE, pid))
        rules += 1
    # prctl stays (Python and glibc use it), except: clearing the parent-death signal (the worker
    # would outlive the service), becoming a subreaper, rewriting the memory map descriptors.
    for option in (_PR_SET_PDEATHSIG, _PR_SET_MM, _PR_SET_CHILD_SUBREAPER):
        f.add_rule(eperm, "prctl", sc.Arg(0, sc.EQ, option))
        rules += 1
    f.load()
    return rules


__all__ = ["DENY", "install", "preload"]
