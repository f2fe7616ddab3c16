"""The sandbox's public entry points, called by the engine's gRPC servicer and health check."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import platform
import threading
import time
from collections.abc import Callable
from typing import Any

from engine_svc.engine.config import BacktestConfig, ConfigError
from engine_svc.engine.panel import Panel
from engine_svc.engine.session import (
    HostedSide,
    ProgressFn,
    ProtocolViolation,
    TrustedSession,
    day_rows,
    init_message,
    select_symbols,
)
from engine_svc.engine.trials import TrialsSession
from engine_svc.sandbox import bwrap, landlock, seccomp
from engine_svc.sandbox.errors import SandboxError
from engine_svc.sandbox.launcher import SandboxOutcome, SparePool, WorkerHandle, run_job
from engine_svc.sandbox.limits import SandboxLimits

MAX_CODE_BYTES = 1 << 20  # strategy source; a 1 MB strategy is already absurd
END_GRACE_SECONDS = 2.0  # for the worker to flush its output after the last day

log = logging.getLogger("zquant.engine.sandbox")


def _check_code(code: str) -> None:
    if not isinstance(code, str):
        raise TypeError("strategy code must be a str")
    if len(code.encode("utf-8", "surrogatepass")) > MAX_CODE_BYTES:
        raise SandboxError("syntax_error", f"strategy code is larger than {MAX_CODE_BYTES // 1024} KB")


def run_in_sandbox(
    panel: Panel,
    strategy_code: str,
    config: dict[str, Any],
    *,
    limits: SandboxLimits,
    on_progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    spares: SparePool | None = None,
) -> SandboxOutcome:
    """Run one backtest: the ledger here, in the calling (trusted) process, the strategy in a
    fresh hardened worker that sees one day at a time (``engine_svc.engine.session``); taken
    from ``spares`` (started ahead of time) when one is ready.

    ``config`` is BacktestConfig.to_dict(); it is validated here first (ConfigError propagates,
    and so does the engine's ValueError for symbols or days the panel does not cover). CPU and
    wall limits scale with the panel's dates × symbols, the memory limit with its size
    (see SandboxLimits). Raises SandboxError on any failure of the strategy or its process.
    """
    return _hosted(panel, strategy_code, config, limits, cancel, spares, trials=1,
                   run=lambda cfg, panel, channel: _single(panel, strategy_code, cfg, channel, on_progress))


def run_trials_in_sandbox(
    panel: Panel,
    strategy_code: str,
    config: dict[str, Any],
    params: list[dict[str, Any]],
    *,
    limits: SandboxLimits,
    on_progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    spares: SparePool | None = None,
) -> SandboxOutcome:
    """Run one strategy once per parameter set in one worker, the trials in lockstep over the same
    days (``engine_svc.engine.trials``): one spawn, one data load, one compile. ``result`` is the
    list of ``TrialOutcome`` in the order of ``params``; a trial whose strategy raises fails alone.
    Limits scale with the number of trials."""
    for k, p in enumerate(params):
        try:
            json.dumps(p, allow_nan=False)
        except (TypeError, ValueError):
            raise ConfigError(f"params[{k}]", "must be JSON-serialisable (no NaN)") from None
    return _hosted(panel, strategy_code, config, limits, cancel, spares, trials=len(params),
                   run=lambda cfg, panel, channel: TrialsSession(panel, strategy_code, cfg, params).run(
                       channel, on_progress))


def _single(panel: Panel, code: str, cfg: BacktestConfig, channel: SandboxChannel,
            on_progress: ProgressFn | None) -> dict[str, Any]:
    # The worker gets the run's description first: it sets up its tape and compiles the strategy
    # while the trusted side builds its own tape.
    channel.open(init_message(panel, code, cfg, day_rows(panel, cfg.start_date, cfg.end_date).stop))
    session = TrustedSession(panel, code, cfg)
    result = session.run(HostedSide(channel), on_progress)
    if session.mismatches:
        log.warning("strategy view diverged from the ledger", extra={"days": session.mismatches})
    return result


def _hosted(
    panel: Panel, strategy_code: str, config: dict[str, Any], limits: SandboxLimits,
    cancel: threading.Event | None, spares: SparePool | None, *, trials: int,
    run: Callable[[BacktestConfig, Panel, SandboxChannel], Any],
) -> SandboxOutcome:
    """Validate, start the worker (it starts up while the trusted side prepares), run the trusted
    side against it, and turn what can go wrong into SandboxError."""
    t0 = time.monotonic()
    _check_code(strategy_code)
    cfg = BacktestConfig.from_dict(dict(config))
    try:
        json.dumps(cfg.params, allow_nan=False)
    except (TypeError, ValueError):
        raise ConfigError("params", "must be JSON-serialisable (no NaN)") from None
    selected = select_symbols(panel, cfg.symbols)
    rows = day_rows(selected, cfg.start_date, cfg.end_date)
    symbol_days, data_bytes = len(rows) * len(cfg.symbols) * trials, 2 * selected.nbytes
    try:  # a spare is ready at once; a new worker starts up while the trusted side prepares
        handle = (spares.take(limits, symbol_days=symbol_days, data_bytes=data_bytes) if spares is not None
                  else WorkerHandle("strategy", limits, symbol_days=symbol_days, data_bytes=data_bytes).start())
    except OSError as exc:
        raise SandboxError("internal", f"could not start the sandbox worker: {exc}") from None
    try:
        result = run(cfg, selected, SandboxChannel(handle, cancel, t0))
    except SandboxError as exc:
        handle.close()
        exc.logs = handle.logs()
        raise
    except ProtocolViolation as exc:
        handle.close()
        raise SandboxError("protocol", str(exc), logs=handle.logs()) from None
    finally:
        handle.close()
    return handle.outcome(result)


class SandboxChannel:
    """A HostedSide's way to its StrategyHost: frames over the worker's pipes."""

    def __init__(self, handle: WorkerHandle, cancel: threading.Event | None, started_at: float) -> None:
        self.handle = handle
        self.cancel = cancel
        self.started_at = started_at
        self.ok = False
        self.opened: dict[str, Any] | None = None

    def open(self, init: dict[str, Any]) -> None:
        """Hand the worker its job (once it reports its layers) without waiting for more."""
        self.handle.open({"init": init}, cancel=self.cancel, started_at=self.started_at)
        self.handle.flush()
        self.opened = init

    def start(self, init: dict[str, Any], warmup: list[bytes | memoryview] | None,
              first_day: list[bytes | memoryview]) -> None:
        if self.opened is None:
            self.open(init)
        elif init != self.opened:
            raise ValueError("the run's description changed after the worker got it")
        if warmup is not None:
            self.handle.send(warmup)
        self.handle.send(first_day)

    def send(self, parts: list[bytes | memoryview]) -> None:
        self.handle.send(parts)

    def receive(self) -> bytes:
        header, body = self.handle.receive()
        if header["type"] != "bin":
            raise SandboxError("protocol", f"invalid message from the strategy process: unexpected "
                                           f"{header['type']!r} frame")
        self.ok = True
        return body

    def close(self) -> None:
        """Tell the worker the run is over and give it a moment to flush what it printed."""
        if not self.ok or self.handle.cancelled:
            return
        with contextlib.suppress(SandboxError):
            self.handle.finish(grace=END_GRACE_SECONDS)


def validate_in_sandbox(code: str, *, limits: SandboxLimits) -> list[dict[str, Any]]:
    """Problems with strategy code as [{line, column, message}] ([] = looks runnable).

    The code is compiled (and its module body run) only in a worker: compile() of hostile source
    can itself exhaust memory or CPU. A worker that dies on it (memory, CPU, crash) is reported as
    an issue at line 0; infrastructure failures raise SandboxError.
    """
    _check_code(code)
    small = limits.with_(cpu_seconds=limits.cpu_limit(0), wall_seconds=limits.wall_limit(0), preload=())
    try:
        outcome = run_job("validate", {"code": code}, limits=small)
    except SandboxError as exc:
        if exc.kind in ("internal", "protocol", "cancelled"):
            raise
        return [{"line": 0, "column": 0, "message": exc.message}]
    issues = outcome.result
    if not isinstance(issues, list) or not all(isinstance(i, dict) for i in issues):
        raise SandboxError("protocol", "validation returned an unexpected value")
    try:  # user code could have written this frame itself: normalise the shape
        return [
            {"line": int(i.get("line") or 0), "column": int(i.get("column") or 0), "message": str(i["message"])[:2000]}
            for i in issues
        ]
    except (KeyError, TypeError, ValueError):
        raise SandboxError("protocol", "validation returned an unexpected value") from None


@functools.lru_cache(maxsize=1)
def _static_report() -> dict[str, Any]:
    try:
        seccomp.preload()  # loads libseccomp the way the worker does
        seccomp_ok = True
    except (ImportError, RuntimeError, OSError):
        seccomp_ok = False
    return {
        "platform": platform.system(),
        "kernel": platform.release(),
        "landlock_abi": landlock.abi_version(),
        "seccomp_available": seccomp_ok,
        "bwrap": bwrap.bwrap_path() is not None,
    }


def isolation_report(limits: SandboxLimits | None = None) -> dict[str, Any]:
    """Which layers a worker gets here (for logs and health details). Host capabilities are probed
    once; ``selfcheck`` confirms them from inside a real worker."""
    limits = limits or SandboxLimits.from_env()
    host = _static_report()
    return {
        "rlimits": {
            "enabled": limits.rlimits,
            "memory_mb": limits.memory_mb,
            "file_size_mb": limits.file_size_mb,
            "open_files": limits.open_files,
            "max_seconds": limits.max_seconds,
        },
        "seccomp": limits.seccomp and host["seccomp_available"],
        "landlock_abi": host["landlock_abi"] if limits.landlock else 0,
        "bwrap": host["bwrap"] and limits.bwrap != "off",
        "require": list(limits.require),
        "kernel": host["kernel"],
        "last_selfcheck": dict(_LAST_SELFCHECK),
    }


_LAST_SELFCHECK: dict[str, Any] = {}


def selfcheck(limits: SandboxLimits | None = None) -> None:
    """Start a real worker, run a trivial job and check from inside that the active layers hold.

    Raises SandboxError('internal', …) when a layer the worker reports active is not effective
    (e.g. seccomp on but fork allowed). Used by health at start-up.
    """
    limits = (limits or SandboxLimits.from_env()).with_(cpu_seconds=10, wall_seconds=30)
    outcome = run_job("selfcheck", {}, limits=limits)
    probes = outcome.result
    layers = outcome.isolation
    broken = []
    if layers.get("seccomp"):
        broken += [p for p in ("fork", "socket", "kill_parent") if probes.get(p) == "allowed"]
    if layers.get("landlock") or layers.get("bwrap"):
        broken += [p for p in ("read_etc_passwd", "write_tmp") if probes.get(p) == "allowed"]
    if broken:
        raise SandboxError("internal", f"sandbox self-check failed: {', '.join(broken)} allowed in the worker")
    _LAST_SELFCHECK.clear()
    _LAST_SELFCHECK.update({"layers": layers, "probes": probes, "start_s": outcome.timings["start_s"]})
