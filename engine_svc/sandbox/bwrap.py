"""bubblewrap detection and command line: an extra, optional layer of namespaces around the worker.

With bwrap the worker has no network at all, its own PID namespace (killing bwrap kills every
process in it, even one that escaped the process group), an empty filesystem except read-only
binds of what Python needs, and no capabilities. It fails in typical non-root containers (no user
namespaces), so it is detected once and used only when it actually works.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

_PROBE_TIMEOUT = 5.0


@functools.lru_cache(maxsize=1)
def bwrap_path() -> str | None:
    """The bwrap binary if present and able to create namespaces here, else None (cached)."""
    path = shutil.which("bwrap")
    if path is None:
        return None
    probe = [path, "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
             "--ro-bind", "/", "/", "true"]
    try:
        done = subprocess.run(
            probe, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            timeout=_PROBE_TIMEOUT, close_fds=True, env={"PATH": "/usr/bin:/bin"}, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return path if done.returncode == 0 else None


def wrap(command: list[str], *, env: dict[str, str], read_paths: list[str]) -> list[str]:
    """bwrap argv running ``command`` with ``env`` and only ``read_paths`` visible (read-only).

    Paths are bound at the same location so sys.path stays valid. /proc is the namespace's own
    (only the worker's processes), /dev is a minimal devtmpfs (null, zero, urandom, …), /tmp an
    empty tmpfs (Landlock still forbids writing to it).
    """
    bwrap = bwrap_path()
    if bwrap is None:
        raise RuntimeError("bubblewrap is not usable on this host")
    argv = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--clearenv", "--cap-drop", "ALL"]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]  # noqa: S108 - a private tmpfs
    seen: set[str] = set()
    links: list[str] = []
    for path in read_paths:
        path = os.path.abspath(path)
        real = os.path.realpath(path)
        if path.startswith("/dev/") or not os.path.exists(real):
            continue  # --dev already provides null, zero, urandom, …
        if real != path and os.path.islink(path) and path not in seen:
            seen.add(path)  # merged-/usr: /lib64 -> usr/lib64 (the ELF interpreter's path)
            links += ["--symlink", real, path]
        if real not in seen:
            seen.add(real)
            argv += ["--ro-bind", real, real]
    argv += [*links, "--chdir", "/", "--"]
    return argv + command
