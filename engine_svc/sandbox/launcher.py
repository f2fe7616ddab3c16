"""Parent side: start one hardened worker per job, feed it, watch it, and always clean it up.

The parent never compiles or executes user code and never unpickles anything: it writes the job
frame to the worker's stdin, reads capped frames from a dedicated pipe, drains the worker's
stdout/stderr into a capped buffer on a thread, enforces the wall-clock deadline and cancellation,
and kills the worker's whole process group (and, with bwrap, its PID namespace) at the end.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import engine_svc
from engine_svc.engine.session import ProgressFn
from engine_svc.sandbox import bwrap, protocol, spin
from engine_svc.sandbox.errors import CANCELLED_MESSAGE, KINDS, SandboxError, classify_exit, wall_message
from engine_svc.sandbox.limits import SandboxLimits
from engine_svc.sandbox.worker import BOOTSTRAP, EXIT_SETUP_FAILED

_MAX_MESSAGE_BYTES = 1 << 20  # ready/progress/error frames; only results may be larger
_POLL_SECONDS = 0.05  # how often the cancel event is checked while waiting
_LOG_TAIL_BYTES = 64 * 1024  # always keep the end of the output: that is where tracebacks are
_F_SETPIPE_SZ = 1031  # fcntl: a day's data (1 000 symbols: 80 KB) fits the pipe in one write
_PIPE_BYTES = 1 << 20
_IOV_MAX = 512  # buffers per writev (Linux allows 1024)
_ENGINE_DIR = Path(engine_svc.__file__).resolve().parent
_REPO_ROOT = _ENGINE_DIR.parent
# The only project code a worker may read: the package marker, the engine and the sandbox itself —
# not engine_svc's service layer or data loaders, and nothing else in the repository.
_CODE_READ_PATHS = (_ENGINE_DIR / "__init__.py", _ENGINE_DIR / "engine", _ENGINE_DIR / "sandbox")
# System files the interpreter and its C extensions read at run time. Nothing under /etc but
# the loader cache: not passwd, not the service's configuration.
_SYSTEM_READ_PATHS = (
    "/usr/lib", "/usr/lib64", "/lib", "/lib64", "/etc/ld.so.cache", "/usr/share/zoneinfo",
    "/dev/null", "/dev/urandom",
)


def worker_env() -> dict[str, str]:
    """The worker's whole environment, built from nothing (no DB URLs, no ZQ_*, no keys).

    PYTHONHASHSEED=0 makes set/str-hash iteration order, and so results, reproducible; this is
    why the interpreter runs with -s -P rather than -I (-I would ignore the variable). No other
    PYTHON* variable is set, so the environment has nothing else to influence.
    """
    return {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "OPENBLAS_NUM_THREADS": "1",  # no BLAS thread pools: threads before Landlock escape it,
        "OMP_NUM_THREADS": "1",  # and each thread's arena counts against RLIMIT_AS
        "MKL_NUM_THREADS": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def read_paths() -> list[str]:
    """What the worker may read (Landlock) / sees (bwrap binds): the interpreter, its libraries,
    the venv's site-packages and the engine code — not the rest of the repository."""
    paths: list[str] = []
    for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
              os.path.realpath(sys.executable), *map(str, _CODE_READ_PATHS), *_SYSTEM_READ_PATHS):
        if p and p not in paths:
            paths.append(p)
    for p in sys.path:  # site dirs outside the prefixes (e.g. a system dist-packages)
        if p.endswith(("site-packages", "dist-packages")) and os.path.isdir(p) and p not in paths:
            paths.append(p)
    return paths


def use_bwrap(limits: SandboxLimits) -> bool:
    if limits.bwrap == "off":
        return False
    usable = bwrap.bwrap_path() is not None
    if limits.bwrap == "on" and not usable:
        raise SandboxError("internal", "bubblewrap is required (ZQ_SANDBOX_BWRAP=on) but not usable here")
    return usable


@dataclass
class SandboxOutcome:
    result: Any  # the job's JSON value
    logs: str  # the worker's stdout/stderr, capped (with a truncation notice)
    timings: dict[str, float]  # start_s (spawn → hardened & ready), run_s, total_s
    isolation: dict[str, Any] = field(default_factory=dict)  # layers the worker reported active
    cpu_seconds: float = 0.0  # user+system CPU of the worker (wait4 rusage)
    max_rss_mb: float = 0.0


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by ``pid`` and its descendants, from /proc.

    Needed under bwrap only: the worker is bwrap's grandchild and is not reaped into bwrap's
    rusage, so wait4() cannot tell a SIGKILL at the RLIMIT_CPU hard limit from an outside kill.
    """
    total = 0
    todo = [pid]
    seen = 0
    while todo and seen < 16:
        p = todo.pop()
        seen += 1
        try:
            with open(f"/proc/{p}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
            with open(f"/proc/{p}/task/{p}/children", "rb") as fh:
                todo += [int(c) for c in fh.read().split()]
        except (OSError, ValueError, IndexError):
            continue
    return total / _CLK_TCK


def _tree_peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of ``pid`` and its descendants, MB. Under bwrap the worker
    is not our child, so wait4()'s rusage does not cover it: sampled before the worker exits."""
    total = 0
    todo, seen = [pid], 0
    while todo and seen < 16:
        p = todo.pop()
        seen += 1
        try:
            with open(f"/proc/{p}/status", "rb") as fh:
                for line in fh:
                    if line.startswith(b"VmHWM:"):
                        total += int(line.split()[1])
                        break
            with open(f"/proc/{p}/task/{p}/children", "rb") as fh:
                todo += [int(c) for c in fh.read().split()]
        except (OSError, ValueError, IndexError):
            continue
    return total / 1024


def _poll_in(fd: int, timeout: float) -> bool:
    """fd readable (or hung up) within timeout seconds; poll, not select: fds may be > 1023."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(timeout * 1000))


class _LogDrain(threading.Thread):
    """Reads the worker's stdout/stderr until EOF so it never blocks on a full pipe; keeps the
    first part and the last 64 KB, counts the rest (a strategy printing 100 MB costs nothing)."""

    def __init__(self, fd: int, cap: int) -> None:
        super().__init__(name="sandbox-log-drain", daemon=True)
        self.fd = fd
        self.head_cap = max(0, cap - _LOG_TAIL_BYTES) if cap > 2 * _LOG_TAIL_BYTES else cap // 2
        self.tail_cap = cap - self.head_cap
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                if not _poll_in(self.fd, 0.2):
                    continue
                chunk = os.read(self.fd, 1 << 16)
                if not chunk:
                    return
                room = self.head_cap - len(self.head)
                if room > 0:
                    self.head += chunk[:room]
                    chunk = chunk[room:]
                if chunk:
                    self.tail += chunk
                    excess = len(self.tail) - self.tail_cap
                    if excess > 0:
                        self.dropped += excess
                        del self.tail[:excess]
        finally:
            os.close(self.fd)

    def text(self) -> str:
        head = self.head.decode("utf-8", "replace")
        tail = self.tail.decode("utf-8", "replace")
        if self.dropped:
            return f"{head}\n[... {self.dropped} bytes of output truncated ...]\n{tail}"
        return head + tail

    def tail_text(self, n: int = 4096) -> str:
        data = (self.head + self.tail)[-n:]
        return data.decode("utf-8", "replace")


class WorkerHandle:
    """One running worker. ``wait()`` drives it to an outcome; ``cancel()`` may be called from any
    thread and kills the worker at once. The process is always reaped and every fd closed."""

    def __init__(self, job: str, limits: SandboxLimits, *, symbol_days: int = 0, data_bytes: int = 0,
                 spare: bool = False) -> None:
        self.job = job
        self.spare = spare  # started without its limits: assign() gives them before open()
        self._assign(limits, symbol_days, data_bytes)
        # In the worker's argv (ps shows it): which service process started it, and which job.
        self.tag = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.bwrap = use_bwrap(limits)
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._reaped = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._pidfd = -1
        self._out_fd = -1
        self._logs: _LogDrain | None = None
        self.returncode: int | None = None
        self.rusage: Any = None
        self.pid = 0
        self._sampled_cpu = 0.0  # max CPU seen in /proc while running (bwrap only)
        self._sampled_rss_mb = 0.0  # the worker tree's peak RSS before it ended (bwrap only)
        self._spare_ready = False
        self._next_cpu_sample = 0.0
        # Set by open():
        self._t0 = self._deadline = self._t_ready = self._t_result = 0.0
        self._reader = protocol.FrameReader(max_header=_MAX_MESSAGE_BYTES, max_body=0)
        self._on_progress: ProgressFn | None = None
        self._cancel_event: threading.Event | None = None
        self._stdin_fd = -1
        self._job_frame: list[memoryview] = []
        self._pending: list[memoryview] = []
        self._frames: list[tuple[dict[str, Any], bytes]] = []
        self._layers: dict[str, Any] = {}
        self._eof = False
        self._poller: select.poll | None = None
        self._polling = (False, True)  # (stdin registered, output registered)
        self.on_close: Callable[[], None] | None = None  # called once, after close() (SparePool)

    # ---- start -----------------------------------------------------------------------------

    def _assign(self, limits: SandboxLimits, symbol_days: int, data_bytes: int) -> None:
        self.limits = limits
        self.memory_mb = limits.memory_limit(data_bytes)
        self.cpu_limit = limits.cpu_limit(symbol_days)
        self.wall_limit = limits.wall_limit(symbol_days)
        self.spin_us = spin.budget_us(limits.spin_us)
        self._spin = spin.SpinWait(self.spin_us)

    def assign(self, limits: SandboxLimits, *, symbol_days: int = 0, data_bytes: int = 0) -> WorkerHandle:
        """Give a spare its job's limits (sent before the job; it hardens with them)."""
        if not self.spare:
            raise ValueError("only a spare worker is assigned limits")
        if (limits.bwrap, limits.preload, limits.log_max_kb) != (self.limits.bwrap, self.limits.preload,
                                                                 self.limits.log_max_kb):
            raise ValueError("a spare serves only the limits it was started for")
        self._assign(limits, symbol_days, data_bytes)
        return self

    def _spec(self, out_fd: int) -> dict[str, Any]:
        lim = self.limits
        spec = {"tag": self.tag, "out_fd": out_fd, "job": self.job, "preload": list(lim.preload)}
        return {**spec, "spare": True} if self.spare else {**spec, **self._limits_spec()}

    def _limits_spec(self) -> dict[str, Any]:
        lim = self.limits
        return {
            "read_paths": read_paths(),
            "bwrap": self.bwrap,
            "landlock": lim.landlock,
            "seccomp": lim.seccomp,
            "memory_mb": self.memory_mb,
            "result_max_bytes": lim.result_max_mb * 2**20,
            "spin_us": self.spin_us,
            "rlimits": {
                "memory_mb": self.memory_mb,
                "cpu_seconds": self.cpu_limit,
                "file_size_mb": lim.file_size_mb,
                "open_files": lim.open_files,
            } if lim.rlimits else None,
        }

    def start(self) -> WorkerHandle:
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        log_r, log_w = os.pipe2(os.O_CLOEXEC)
        try:
            env = worker_env()
            # Under bwrap the worker's parent is the namespace's init, not us: skip the ppid check
            # (bwrap's --die-with-parent covers that case).
            ppid = 0 if self.bwrap else os.getpid()
            command = [sys.executable, "-s", "-P", "-c", BOOTSTRAP, str(_REPO_ROOT), str(ppid),
                       json.dumps(self._spec(out_w))]
            if self.bwrap:
                command = bwrap.wrap(command, env=env, read_paths=read_paths())
            # The parent-death signal fires when the *thread* that forked exits: this thread
            # blocks in wait() until the worker is reaped, so it outlives the worker.
            self._proc = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=log_w, stderr=log_w, pass_fds=(out_w,),
                close_fds=True, cwd="/", env=env, start_new_session=True,
            )
        except BaseException:
            for fd in (out_r, log_r):
                os.close(fd)
            raise
        finally:
            os.close(out_w)
            os.close(log_w)
        self.pid = self._proc.pid
        for fd in (self._proc.stdin.fileno() if self._proc.stdin else -1, out_r):  # fewer wake-ups per day
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_BYTES)
        self._out_fd = out_r
        self._reader = protocol.FrameReader(max_header=_MAX_MESSAGE_BYTES, max_body=self.limits.result_max_mb * 2**20)
        os.set_blocking(out_r, False)
        self._pidfd = os.pidfd_open(self.pid)
        self._logs = _LogDrain(log_r, self.limits.log_max_kb * 1024)
        self._logs.start()
        return self

    # ---- control ---------------------------------------------------------------------------

    def await_spare(self, timeout: float) -> bool:
        """Wait until a spare says its imports are done (False: it did not, or died)."""
        end = time.monotonic() + timeout
        while not self._spare_ready:
            remaining = end - time.monotonic()
            if remaining <= 0 or not _poll_in(self._out_fd, remaining):
                return False
            try:
                if not self._reader.feed_from(self._out_fd):
                    return False
                for header, _ in self._reader.frames():
                    if header["type"] != "spare":
                        return False
                    self._spare_ready = True
            except protocol.ProtocolError:
                return False
        return True

    def alive(self) -> bool:
        """Started and not exited (a spare that died waiting is not handed out)."""
        if self._proc is None or self._reaped:
            return False
        return not _poll_in(self._pidfd, 0)

    def cancel(self) -> None:
        """Kill the worker now (thread-safe); wait() then raises SandboxError('cancelled')."""
        self._cancelled.set()
        self.kill()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def kill(self) -> None:
        """SIGKILL the process group (start_new_session made it ours alone) and the process via
        its pidfd (no pid-reuse race). With bwrap, killing bwrap tears down its PID namespace
        (--die-with-parent), which kills even processes in other groups or sessions there."""
        with self._lock:
            if self._reaped or self._proc is None:
                return
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)  # pgid == pid; the zombie keeps it ours until reaped
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    def _reap(self) -> None:
        """Kill whatever is left of the group, then collect exit status and rusage (no zombie)."""
        self.kill()
        with self._lock:
            if self._reaped or self._proc is None:
                return
            try:
                _, status, self.rusage = os.wait4(self.pid, 0)
                self.returncode = os.waitstatus_to_exitcode(status)
            except ChildProcessError:  # reaped elsewhere (a SIGCHLD handler): status unknown
                self.returncode = -signal.SIGKILL
            self._proc.returncode = self.returncode  # so Popen never waits on a reused pid
            self._reaped = True

    def close(self) -> None:
        """Always called: reap, stop the log thread, close every fd."""
        if self._proc is None:
            return
        try:
            self._reap()
        finally:
            if self._proc.stdin is not None:
                with contextlib.suppress(OSError):
                    self._proc.stdin.close()
            # The number may be reused by the next file this process opens: never write to it again.
            self._stdin_fd = -1
            for attr in ("_out_fd", "_pidfd"):
                fd = getattr(self, attr)
                if fd >= 0:
                    os.close(fd)
                    setattr(self, attr, -1)
            if self._logs is not None:
                self._logs.join(timeout=2.0)
                if self._logs.is_alive():
                    self._logs.stop.set()
                    self._logs.join(timeout=1.0)
            done, self.on_close = self.on_close, None
            if done is not None:
                done()

    # ---- run -------------------------------------------------------------------------------
    # One job: ``open`` (wait until the worker is hardened, send the job frame), then frames both
    # ways — ``send`` (binary frames to the worker), ``receive`` (the worker's next frame) — and
    # ``close``. ``wait`` is the one-shot form: open, then the job's single result.

    def open(
        self,
        request: dict[str, Any],
        body: Sequence[memoryview] = (),
        *,
        on_progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
        started_at: float | None = None,
    ) -> None:
        """Wait for the worker's ``ready`` (its layers checked), then queue the job frame."""
        t0 = time.monotonic() if started_at is None else started_at
        self._t0 = t0
        self._deadline = t0 + self.wall_limit
        self._reader.max_body = self.limits.result_max_mb * 2**20
        self._on_progress = on_progress
        self._cancel_event = cancel
        assert self._proc is not None and self._proc.stdin is not None
        self._stdin_fd = self._proc.stdin.fileno()
        self._job_frame = protocol.frame_bytes({"type": "job", **request}, body)
        if self.spare:  # its limits first: it hardens with them, then says ready
            self._pending = protocol.frame_bytes({"type": "spec", "spec": self._limits_spec()})
        self._pump(until_ready=True)

    def flush(self) -> None:
        """Write what is queued (e.g. the job frame after ``open``)."""
        self._pump()

    def send(self, parts: Sequence[bytes | memoryview]) -> None:
        """Queue a binary frame for the worker; returns once it is written (or the worker died,
        which the next ``receive`` reports)."""
        self._pending += protocol.binary_frame(parts)
        self._pump()

    def receive(self) -> tuple[dict[str, Any], bytes]:
        """The worker's next frame (binary frames come as ``{"type": "bin"}``). Raises
        SandboxError: the worker's own error frame (kind, message, strategy line), how it died,
        the wall-clock limit, cancellation, or a malformed frame."""
        return self._pump(want_frame=True)  # type: ignore[return-value]

    def finish(self, grace: float) -> None:
        """Ask an interactive job to end (an ``end`` frame) and wait up to ``grace`` seconds for
        its final frame, so what it printed is flushed; ``close`` does the rest. Nothing to do when
        the worker is already gone and closed (it died: its error is what the caller reports)."""
        if self._stdin_fd < 0:
            return
        if self.bwrap:
            self._sampled_rss_mb = _tree_peak_rss_mb(self.pid)
        self._pending += protocol.frame_bytes({"type": "end"})
        self._deadline = min(self._deadline, time.monotonic() + grace)
        self.receive()

    def wait(
        self,
        request: dict[str, Any],
        body: Sequence[memoryview] = (),
        *,
        on_progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
        started_at: float | None = None,
    ) -> SandboxOutcome:
        """Send the job when the worker is ready, read frames until a result, then clean up."""
        try:
            self.open(request, body, on_progress=on_progress, cancel=cancel, started_at=started_at)
            header, payload = self.receive()
            if header["type"] != "result":
                raise SandboxError("protocol", f"invalid message from the strategy process: unexpected "
                                               f"{header['type']!r} frame")
            try:
                result = protocol.decode_json(payload, "result")
            except protocol.ProtocolError as exc:
                raise SandboxError("protocol", str(exc)) from None
        except SandboxError as exc:
            self.close()
            exc.logs = self.logs()
            raise
        self.close()
        return self.outcome(result)

    def logs(self) -> str:
        return self._logs.text() if self._logs else ""

    def outcome(self, result: Any) -> SandboxOutcome:
        """The outcome of a finished job (call after ``close``)."""
        cpu = (self.rusage.ru_utime + self.rusage.ru_stime) if self.rusage else 0.0
        cpu = max(cpu, self._sampled_cpu)
        end = time.monotonic()
        return SandboxOutcome(
            result=result,
            logs=self.logs(),
            timings={
                "start_s": round((self._t_ready or end) - self._t0, 6),
                "run_s": round((self._t_result or end) - (self._t_ready or self._t0), 6),
                "total_s": round(end - self._t0, 6),
            },
            isolation={**self._layers, "bwrap": self.bwrap},
            cpu_seconds=round(cpu, 6),
            max_rss_mb=round(max(self.rusage.ru_maxrss / 1024 if self.rusage else 0.0, self._sampled_rss_mb), 1),
        )

    def _pump(self, *, want_frame: bool = False, until_ready: bool = False) -> tuple[dict[str, Any], bytes] | None:
        """Drive the pipes until the asked-for state: a frame arrived (``want_frame``), the worker
        reported ready (``until_ready``), or everything queued is written. Enforces the deadline,
        cancellation and the frame caps; turns error frames and deaths into SandboxError."""
        try:
            while True:
                if self._frames and want_frame:
                    return self._frames.pop(0)
                if until_ready and self._t_ready:
                    return None
                if not (want_frame or until_ready or self._pending):
                    return None
                if self._cancel_event is not None and self._cancel_event.is_set():
                    self.cancel()
                if self.cancelled:
                    raise SandboxError("cancelled", CANCELLED_MESSAGE)
                now = time.monotonic()
                if now >= self._deadline:
                    raise SandboxError("wall_time", wall_message(self.wall_limit))
                if self.bwrap and now >= self._next_cpu_sample:  # RLIMIT_CPU kills 1 s after soft
                    self._sampled_cpu = max(self._sampled_cpu, _tree_cpu_seconds(self.pid))
                    self._next_cpu_sample = now + 0.1
                if self._pending:  # usually the pipe takes it at once: no poll needed
                    self._send_some()
                    if not self._pending and not (want_frame or until_ready):
                        return None
                poller = self._poller_for()
                # The worker's next frame is usually a few µs away: poll briefly before sleeping.
                events = dict((want_frame and not self._pending and self._spin.poll(poller))
                              or poller.poll(max(0, min(_POLL_SECONDS, self._deadline - now)) * 1000))
                if self._pending and events.get(self._stdin_fd):
                    self._send_some()
                if events.get(self._out_fd):
                    self._eof = not self._reader.feed_from(self._out_fd)
                    self._take_frames()
                if events.get(self._pidfd) and not self._frames:
                    self._drain_after_exit()
                    self._take_frames()
                    if not self._frames:
                        self.close()
                        raise self._exit_error()
        except protocol.FrameTooLarge as exc:
            raise SandboxError(
                "too_large", f"result too large ({exc.size // 2**20} MB, limit {exc.cap // 2**20} MB)"
            ) from None
        except protocol.ProtocolError as exc:
            raise SandboxError("protocol", f"invalid message from the strategy process: {exc}") from None
        except SandboxError:
            if self.cancelled:  # cancel() from another thread may look like a death
                raise SandboxError("cancelled", CANCELLED_MESSAGE) from None
            raise

    def _poller_for(self) -> select.poll:
        """One poll set per worker; the worker's stdin is in it only while there is something to
        write, and its output until EOF."""
        if self._poller is None:
            self._poller = select.poll()
            self._poller.register(self._pidfd, select.POLLIN)
            self._poller.register(self._out_fd, select.POLLIN)
        want = (bool(self._pending), not self._eof)
        if want != self._polling:
            if want[0] != self._polling[0]:
                if want[0]:
                    self._poller.register(self._stdin_fd, select.POLLOUT)
                else:
                    self._poller.unregister(self._stdin_fd)
            if want[1] != self._polling[1] and not want[1]:
                self._poller.unregister(self._out_fd)
            self._polling = want
        return self._poller

    def _take_frames(self) -> None:
        for header, frame_body in self._reader.frames():
            kind = header["type"]
            if kind == "ready" and not self._t_ready:
                self._t_ready = time.monotonic()
                self._layers = header.get("layers") or {}
                self._check_required(self._layers)
                self._pending = list(self._job_frame)
                os.set_blocking(self._stdin_fd, False)
            elif kind == "progress":
                _report_progress(self._on_progress, header)
            elif kind == "error":
                self._t_result = time.monotonic()
                raise _error_from_frame(header, self.returncode)
            elif kind in ("result", "bin"):
                if kind == "result":
                    self._t_result = time.monotonic()
                self._frames.append((header, frame_body))

    def _send_some(self) -> None:
        """Write as much of the queue as the pipe takes, in one writev: a day's frame is several
        buffers, and one syscall wakes the worker once."""
        if self._stdin_fd < 0:  # closed: the worker is gone, and its exit says why
            self._pending = []
            return
        try:
            n = os.writev(self._stdin_fd, self._pending[:_IOV_MAX])
        except BlockingIOError:
            return
        except BrokenPipeError:
            self._pending = []  # the worker died; its exit status tells why
            return
        pending = self._pending
        k = 0
        while k < len(pending) and n >= pending[k].nbytes:
            n -= pending[k].nbytes
            k += 1
        self._pending = ([pending[k][n:]] if k < len(pending) else []) + pending[k + 1 :]

    def _drain_after_exit(self) -> None:
        """The worker is gone; read what it wrote before dying (bounded: all writers are dead)."""
        end = time.monotonic() + 1.0
        while not self._eof and time.monotonic() < end:
            if _poll_in(self._out_fd, 0.05):
                self._eof = not self._reader.feed_from(self._out_fd)

    def _check_required(self, layers: dict[str, Any]) -> None:
        missing = [name for name in self.limits.require if not layers.get(name)]
        if missing:
            raise SandboxError("internal", f"required isolation layer(s) not active: {', '.join(missing)}")

    def _exit_error(self) -> SandboxError:
        cpu = (self.rusage.ru_utime + self.rusage.ru_stime) if self.rusage else 0.0
        cpu = max(cpu, self._sampled_cpu)
        rc = self.returncode if self.returncode is not None else 0
        if self.bwrap and 128 < rc < 128 + 65:
            rc = -(rc - 128)  # bwrap reports a child killed by signal N as exit status 128+N
        if rc == EXIT_SETUP_FAILED:
            tail = self._logs.tail_text(500) if self._logs else ""
            return SandboxError("internal", f"sandbox setup failed: {tail}")
        return classify_exit(
            rc, cpu_used=cpu, cpu_limit=self.cpu_limit, memory_mb=self.memory_mb,
            log_tail=self._logs.tail_text() if self._logs else "",
        )


def _error_from_frame(header: dict[str, Any], returncode: int | None) -> SandboxError:
    kind = header.get("kind")
    message = str(header.get("message") or "")[:16384]
    if kind == "internal" and returncode == EXIT_SETUP_FAILED:
        message = message or "sandbox setup failed"
    line = header.get("line")
    return SandboxError(kind if isinstance(kind, str) and kind in KINDS else "protocol", message,
                        line=line if isinstance(line, int) and 0 < line < 10**7 else 0)


def _report_progress(callback: ProgressFn | None, header: dict[str, Any]) -> None:
    if callback is None:
        return
    try:
        fraction = float(header.get("fraction") or 0.0)
        equity = float(header.get("equity") or 0.0)
    except (TypeError, ValueError):
        return
    callback(min(1.0, max(0.0, fraction)), str(header.get("date") or "")[:32], equity)


def run_job(
    job: str,
    request: dict[str, Any],
    body: Sequence[memoryview] = (),
    *,
    limits: SandboxLimits,
    symbol_days: int = 0,
    on_progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    on_start: Callable[[WorkerHandle], None] | None = None,
) -> SandboxOutcome:
    """Run one job in a fresh worker and return its outcome, or raise SandboxError.

    ``symbol_days`` scales the CPU/wall limits; the body's size scales the memory limit.
    """
    t0 = time.monotonic()
    data_bytes = sum(memoryview(b).nbytes for b in body)
    handle = WorkerHandle(job, limits, symbol_days=symbol_days, data_bytes=data_bytes)
    try:
        handle.start()
    except OSError as exc:
        raise SandboxError("internal", f"could not start the sandbox worker: {exc}") from None
    if on_start is not None:
        on_start(handle)
    return handle.wait(request, body, on_progress=on_progress, cancel=cancel, started_at=t0)


class SparePool:
    """Workers started ahead of time — interpreter up, engine imported, not hardened, no job —
    so a run skips the ~0.15 s start-up. Taking one sends it the run's limits; it hardens with
    them before it reads anything of the user's. A dedicated thread starts the spares: a worker
    dies with the thread that started it (PR_SET_PDEATHSIG is per thread), so that thread lives as
    long as the pool. Without a compatible spare ``take`` starts a worker as before.

    A taken spare's slot is refilled when its run has ended (its handle is closed), not while the
    run goes on: starting an interpreter costs ~0.15–0.2 s of CPU, which a run on a one-CPU engine
    pod (or a busy host) would lose to it. ``size`` is the number of runs at once that find a warm
    worker."""

    def __init__(self, limits: SandboxLimits, *, size: int = 1, job: str = "strategy") -> None:
        self.limits, self.size, self.job = limits, size, job
        self._spares: list[WorkerHandle] = []
        self._busy = 0  # taken spares whose run has not ended
        self._starting: WorkerHandle | None = None
        self._lock = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._keep_filled, name="sandbox-spares", daemon=True)
        self._thread.start()

    def take(self, limits: SandboxLimits, *, symbol_days: int = 0, data_bytes: int = 0) -> WorkerHandle:
        """A started worker for ``job`` with these limits: a spare if one is ready, else a new one
        (started by the calling thread, which must wait for it, as with ``run_job``)."""
        with self._lock:
            spare = self._spares.pop() if self._spares else None
            self._lock.notify_all()
        if spare is not None:
            if spare.alive() and spare.job == self.job:
                try:
                    spare.assign(limits, symbol_days=symbol_days, data_bytes=data_bytes)
                except ValueError:
                    pass
                else:
                    with self._lock:
                        self._busy += 1
                    spare.on_close = self._run_ended
                    return spare
            spare.close()
        return WorkerHandle(self.job, limits, symbol_days=symbol_days, data_bytes=data_bytes).start()

    def _run_ended(self) -> None:
        with self._lock:
            self._busy -= 1
            self._lock.notify_all()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            spares, self._spares = self._spares, []
            starting = self._starting
            self._lock.notify_all()
        for spare in spares:
            spare.close()
        if starting is not None:  # do not wait for its imports: its thread sees it die
            starting.kill()
        self._thread.join(timeout=5)

    def _keep_filled(self) -> None:
        while True:
            with self._lock:
                while not self._closed and len(self._spares) + self._busy >= self.size:
                    self._lock.wait()
                if self._closed:
                    return
            try:
                spare = WorkerHandle(self.job, self.limits, spare=True).start()
            except OSError:
                time.sleep(1.0)  # cannot start one now: runs start their own meanwhile
                continue
            with self._lock:
                self._starting = spare
                if self._closed:
                    spare.kill()
            ready = spare.await_spare(timeout=60.0)
            with self._lock:
                self._starting = None
                closed = self._closed
            if not ready:
                spare.close()
                if closed:
                    return
                time.sleep(1.0)
                continue
            with self._lock:
                if self._closed:
                    spare.close()
                    return
                self._spares.append(spare)

