"""The sandboxed worker process: harden itself, then run exactly one job and report over a pipe.

Started by the launcher as ``python -s -P -c BOOTSTRAP <repo_root> <ppid> <spec-json>``; the
bootstrap sets PR_SET_PDEATHSIG before anything else and puts the repo root on sys.path (the
environment carries no PYTHONPATH). Sequence:

1. import what the job needs (numpy, pandas, the engine) while files are still readable (a
   spare — started before there is a job — then waits for its limits on stdin);
2. rlimits → Landlock → seccomp (nothing of the user's has been read yet);
3. send ``ready`` (which layers are active) on the protocol fd;
4. read the job frame from stdin and run it (an interactive job — a backtest's strategy side —
   keeps exchanging frames with the parent until it is told to end);
5. send ``result`` or ``error`` (kind, message, strategy line); exit without running user atexit
   handlers.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import select
import sys
import time
from typing import Any

from engine_svc.sandbox import jobs, landlock, limits, protocol, seccomp, spin
from engine_svc.sandbox.errors import NO_RESULT_MESSAGE, memory_message
from engine_svc.sandbox.usercode import JobError

BOOTSTRAP = (
    "import ctypes,os,sys;ctypes.CDLL(None).prctl(1,9,0,0,0);"  # PR_SET_PDEATHSIG = SIGKILL
    "p=int(sys.argv[2]);p and os.getppid()!=p and os._exit(70);"  # parent already gone: quit
    "sys.path.insert(0,sys.argv[1]);"
    "from engine_svc.sandbox.worker import main;main(sys.argv[3])"
)
EXIT_SETUP_FAILED = 70
MAX_JOB_HEADER = 64 * 1024 * 1024  # strategy code + panel description, from the trusted parent
MAX_JOB_BODY = 1 << 40  # the panel arrays; bounded by RLIMIT_AS anyway


def harden(spec: dict[str, Any]) -> dict[str, Any]:
    """Apply the configured layers to this process; report what is active."""
    layers: dict[str, Any] = {"bwrap": bool(spec.get("bwrap")), "rlimits": None, "landlock": 0, "seccomp": False}
    if spec.get("seccomp"):
        seccomp.preload()  # needs to read libseccomp before Landlock
    if spec.get("landlock"):
        # Landlock (like seccomp without TSYNC) binds the calling thread and its future children
        # only; a thread started by an import would escape it.
        tasks = os.listdir("/proc/self/task")
        if len(tasks) != 1:
            raise RuntimeError(f"worker has {len(tasks)} threads before hardening")
    if spec.get("rlimits"):
        layers["rlimits"] = limits.apply_rlimits(**spec["rlimits"])
    if spec.get("landlock"):
        try:
            layers["landlock"] = landlock.restrict(list(spec.get("read_paths", ())))
        except landlock.LandlockError as exc:
            layers["landlock_error"] = str(exc)
    if spec.get("seccomp"):
        layers["seccomp"] = seccomp.install(os.getpid()) > 0
    return layers


class _Progress:
    """Progress frames of a one-shot job (a backtest's progress comes from the trusted side;
    the service throttles what it forwards)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __call__(self, fraction: float, date: str = "", equity: float = 0.0) -> None:
        try:
            eq = float(equity)
            protocol.write_frame(self.fd, {
                "type": "progress",
                "fraction": min(1.0, max(0.0, float(fraction))),
                "date": str(date)[:32],
                "equity": eq if eq == eq and abs(eq) != float("inf") else None,
            })
        except (TypeError, ValueError):
            pass  # a bad progress value must not fail the backtest


def _finite(value: Any) -> Any:
    """``value`` with NaN/±Infinity replaced by None (JSON has no such numbers)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


def _strict_json(value: Any) -> bytes:
    """The result as strict JSON; undefined numbers reach the user as null (noted in the logs)."""
    try:
        try:
            return _dumps(value)
        except ValueError as exc:
            if "JSON compliant" not in str(exc):
                raise
            print("sandbox: result contained NaN/Infinity; sent as null", file=sys.stderr)
            return _dumps(_finite(value))
    except (TypeError, ValueError, RecursionError) as exc:
        reason = f"{type(exc).__name__}: {exc}"[:2000]
        raise JobError("internal", f"result is not JSON-serialisable ({reason})") from None


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # user code may have replaced or closed them
            stream.flush()


def _finish(out_fd: int, header: dict[str, Any], body: bytes = b"") -> None:
    _flush_std()
    protocol.write_frame(out_fd, header, [body] if body else [])
    os._exit(0)  # skip atexit/finalizers: user code may have registered some


class _Pipe:
    """Frames to and from the parent for an interactive job (jobs.Pipe)."""

    def __init__(self, out_fd: int, spin_us: int) -> None:
        self.out_fd = out_fd
        self.spin = spin.SpinWait(spin_us)
        self.poller = select.poll()
        self.poller.register(0, select.POLLIN)

    def read(self) -> tuple[dict[str, Any], bytearray]:
        self.spin.poll(self.poller)  # the next day is usually a few µs away: poll before sleeping
        return protocol.read_frame(0, max_header=MAX_JOB_HEADER, max_body=MAX_JOB_BODY)

    def write_binary(self, parts: list[bytes | memoryview]) -> None:
        protocol.write_binary(self.out_fd, parts)


def _run(spec: dict[str, Any], out_fd: int, job: jobs.Job) -> None:
    header, body = protocol.read_frame(0, max_header=MAX_JOB_HEADER, max_body=MAX_JOB_BODY)
    if header.get("type") != "job":
        raise protocol.ProtocolError(f"expected a job frame, got {header.get('type')!r}")
    try:
        pipe = _Pipe(out_fd, int(spec.get("spin_us", 0))) if job.interactive else _Progress(out_fd)
        value = job.fn(header, body, pipe)
        del body
        payload = _strict_json(value)
        cap = int(spec["result_max_bytes"])
        if len(payload) > cap:
            raise JobError("too_large", f"result too large ({len(payload) // 2**20} MB > {cap // 2**20} MB)")
    except JobError as exc:
        _finish(out_fd, {"type": "error", "kind": exc.kind, "message": exc.message, "line": exc.line})
    except MemoryError:
        _finish(out_fd, {"type": "error", "kind": "memory", "message": memory_message(spec["memory_mb"])})
    except SystemExit:
        _finish(out_fd, {"type": "error", "kind": "no_result", "message": f"{NO_RESULT_MESSAGE} (sys.exit called)"})
    _finish(out_fd, {"type": "result"}, payload)


def main(spec_json: str) -> None:
    spec = json.loads(spec_json)
    out_fd = int(spec["out_fd"])
    try:
        t0 = time.perf_counter()
        for module in spec.get("preload", ()):
            with contextlib.suppress(ImportError):  # speed only: a job imports it lazily if needed
                importlib.import_module(module)
        job = jobs.preload(spec["job"])
        if spec.get("spare"):
            # A spare started ahead of time: imports done; the limits and layers come with the
            # first frame, when there is a job for it. Nothing of the user's has been read yet.
            protocol.write_frame(out_fd, {"type": "spare"})
            header, _ = protocol.read_frame(0, max_header=MAX_JOB_HEADER, max_body=0)
            if header.get("type") != "spec" or not isinstance(header.get("spec"), dict):
                raise protocol.ProtocolError("a spare worker expects its spec first")
            spec.update(header["spec"])
        t1 = time.perf_counter()
        layers = harden(spec)
        layers["import_ms"] = round((t1 - t0) * 1000, 2)
        layers["harden_ms"] = round((time.perf_counter() - t1) * 1000, 2)
    except BaseException as exc:
        protocol.write_frame(out_fd, {
            "type": "error", "kind": "internal",
            "message": f"sandbox setup failed: {type(exc).__name__}: {exc}"[:2000],
        })
        os._exit(EXIT_SETUP_FAILED)
    # Line-buffered output: what a strategy printed before a crash (SIGSEGV, SIGKILL) is not lost
    # in a buffer; a print is one small write to the log pipe the parent always drains.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(line_buffering=True)
    protocol.write_frame(out_fd, {"type": "ready", "layers": layers, "pid": os.getpid()})
    try:
        _run(spec, out_fd, job)
    except MemoryError:
        _finish(out_fd, {"type": "error", "kind": "memory", "message": memory_message(spec["memory_mb"])})
    except BaseException as exc:
        _finish(out_fd, {
            "type": "error", "kind": "internal",
            "message": f"worker error: {type(exc).__name__}: {exc}"[:2000],
        })
