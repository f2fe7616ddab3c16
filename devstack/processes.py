"""Background processes of a local stack: start with a pid file and a log, find, wait for ready, stop.

Every process runs in its own session with its output in ``$ZQ_DATA_DIR/logs/<name>.log`` and
its pid in ``$ZQ_DATA_DIR/run/<name>.pid``; a pid file is believed only while the process's argv
still carries its signature (pid reuse).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from devstack.config import ROOT, SERVICES, child_env, connect_addr, service_addr


class StartError(RuntimeError):
    """A process exited or did not become ready in time; the message has its log tail."""



def proc_cmdline(pid: int) -> list[str] | None:
    """argv of a live, non-zombie process; None if gone. [] where /proc is unavailable."""
    proc = Path(f"/proc/{pid}")
    if not Path("/proc/self").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return []
        return []
    try:
        stat = (proc / "stat").read_text()
        if stat.rpartition(")")[2].split()[0] == "Z":
            return None  # exited, waiting to be reaped
        return [a for a in (proc / "cmdline").read_bytes().decode(errors="replace").split("\0") if a]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


@dataclass
class Handle:
    """A background process started (or found running) by devstack."""

    name: str
    pid: int
    data_dir: Path
    signature: tuple[str, ...]  # argv items that identify the process (guards against pid reuse)
    started: bool = True  # False: it was already running and `up` left it alone
    addr: str | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.data_dir / "logs" / f"{self.name}.log"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "run" / f"{self.name}.pid"

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        cmdline = proc_cmdline(self.pid)
        return cmdline is not None and _matches(cmdline, self.signature)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL after `grace` seconds; remove the pid file.

        The group, because services fork workers (the engine's sandboxes) that must not
        outlive them.
        """
        if self.alive():
            _signal_group(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.alive():
                _signal_group(self.pid, signal.SIGKILL)
                deadline = time.monotonic() + 5
                while self.alive() and time.monotonic() < deadline:
                    time.sleep(0.05)
        # Stragglers in the group (a worker that ignored SIGTERM) go too.
        _signal_group(self.pid, signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(timeout=5)
        if read_pid(self.pid_path) == self.pid:
            self.pid_path.unlink(missing_ok=True)


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)  # processes start in their own session: pgid == pid


def _matches(cmdline: list[str], signature: tuple[str, ...]) -> bool:
    if not cmdline:  # no /proc: only liveness is known
        return True
    joined = "\0".join(cmdline)
    return all(item in joined for item in signature)


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def find_running(name: str, directory: Path, signature: tuple[str, ...]) -> Handle | None:
    """The process a pid file points at, if it is still that process; clears stale pid files."""
    pid_path = directory / "run" / f"{name}.pid"
    pid = read_pid(pid_path)
    if pid is None:
        return None
    handle = Handle(name, pid, directory, signature, started=False)
    if handle.alive():
        return handle
    pid_path.unlink(missing_ok=True)
    return None


def spawn(
    name: str,
    argv: list[str],
    *,
    directory: Path,
    env: Mapping[str, str],
    signature: tuple[str, ...],
    addr: str | None = None,
) -> Handle:
    """Start `argv` in the background unless the pid file's process is already running."""
    existing = find_running(name, directory, signature)
    if existing is not None:
        existing.addr = addr
        return existing
    (directory / "logs").mkdir(parents=True, exist_ok=True)
    (directory / "run").mkdir(parents=True, exist_ok=True)
    log_path = directory / "logs" / f"{name}.log"
    with log_path.open("ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S%z')} starting: {' '.join(argv)}\n".encode())
        log.flush()
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=dict(env),
            # Own session: Ctrl-C in the terminal that ran `make up` does not reach it, and
            # stop() can signal the whole process group.
            start_new_session=True,
        )
    pid_path = directory / "run" / f"{name}.pid"
    tmp = pid_path.with_suffix(".pid.tmp")
    tmp.write_text(f"{popen.pid}\n")
    tmp.replace(pid_path)
    return Handle(name, popen.pid, directory, signature, started=True, addr=addr, popen=popen)


def _fail(handle: Handle, why: str) -> StartError:
    message = f"{handle.name} {why}; last lines of {handle.log_path}:\n{handle.log_tail()}"
    if handle.started:
        handle.stop(grace=2)
    return StartError(message)


def wait_grpc_serving(handle: Handle, addr: str, service: str = "", timeout: float = 30.0) -> None:
    """Poll grpc.health.v1 Check until `service` is SERVING (any start-up migrations done)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    last = "no answer"
    with grpc.insecure_channel(connect_addr(addr)) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if not handle.alive():
                raise _fail(handle, "exited during start-up")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.RpcError as exc:
                last = f"{exc.code().name}: {exc.details()}"
            time.sleep(0.1)
    raise _fail(handle, f"not SERVING on {addr} after {timeout:.0f}s ({last})")


def wait_http_ready(handle: Handle, url: str, timeout: float = 30.0) -> None:
    """Poll `url` until it answers 200 (Envoy's admin /ready: LIVE once clusters initialised)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not handle.alive():
            raise _fail(handle, "exited during start-up")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:  # noqa: S310 (fixed http URL)
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.05)
    raise _fail(handle, f"{url} not ready after {timeout:.0f}s ({last})")


def start_service(name: str, env: Mapping[str, str] | None = None, timeout: float = 60.0,
                  label: str | None = None) -> Handle:
    """Start service `name` (auth, task, engine) and wait until it is SERVING.

    `env` is the complete environment of the service (default: this process's); ZQ_DATA_DIR
    and ZQ_<NAME>_ADDR in it decide where it keeps files and where it listens. `label` names
    its pid and log files when several processes of one service share a data dir (default `name`).
    """
    spec = SERVICES[name]
    full_env = child_env(base=env)
    directory = Path(full_env["ZQ_DATA_DIR"])
    addr = service_addr(name, full_env)
    handle = spawn(
        label or name,
        spec.argv(),
        directory=directory,
        env=full_env,
        signature=("-m", spec.package),
        addr=addr,
    )
    wait_grpc_serving(handle, addr, spec.health_service, timeout)
    return handle

