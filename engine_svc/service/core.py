"""EngineCore: what engine_svc decides, without gRPC and without SQL.

The servicer converts protobuf to the plain data here and back; the market-data store and the
sandbox are reached through two small ports (``MarketData``, ``Sandbox``) whose production
adapters live in ``engine_svc.service.adapters``. Everything here raises the shared domain errors
(``services.errors``) for bad input, and reports every way a *run* can fail as a ``RunFailure``
value — a strategy that raises is the strategy author's problem, not an RPC failure.

A run goes through two steps so that cheap rejections happen before anything is streamed:

    prepared = core.prepare(spec)      # config → INVALID_ARGUMENT, admission → RESOURCE_EXHAUSTED,
                                       # panel load → INVALID_ARGUMENT for unknown symbols
    outcome = core.execute(prepared, on_event, cancel)   # waits for a slot, runs the worker,
                                       # computes metrics; emits Progress, returns the terminal event
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine_svc.data.bars import panel_bars
from engine_svc.engine import ENGINE_VERSION
from engine_svc.engine.config import BacktestConfig, normalize_config, normalized_symbols
from engine_svc.engine.panel import Panel
from engine_svc.engine.session import ProgressFn, day_rows
from engine_svc.metrics import compute_metrics, round_trips
from engine_svc.sandbox.errors import SandboxError
from engine_svc.service import telemetry
from engine_svc.service.slots import SlotPool, SlotsBusy, SlotsClosed, Ticket
from services.errors import InvalidArgument, NotFound, ResourceExhausted, Unavailable
from services.progress import ProgressGate
from services.user_json import DEPTH_MESSAGE, MAX_JSON_DEPTH, value_depth

log = logging.getLogger("zquant.engine.service")

MAX_CODE_BYTES = 1024 * 1024  # the contract: strategy code ≤ 1 MB
MAX_PARAMS_BYTES = 256 * 1024  # params as JSON
MAX_LOG_CHARS = 1024 * 1024  # logs travel inside the result message; keep them bounded
PROGRESS_INTERVAL = 0.25  # seconds: the contract promises "a few progress events per second at most"
VALIDATE_WAIT_SECONDS = 30.0  # a validation waiting longer than this for a worker is refused
SHUTDOWN_MESSAGE = "engine shutting down; the run was cancelled"
CANCELLED_MESSAGE = "backtest was cancelled"
MALFORMED_RESULT_MESSAGE = "strategy process returned a malformed result"
MAX_TRIALS_PER_CALL = 1000  # engine_svc.engine.trials.MAX_TRIALS

# SandboxError.kind → EngineError.Kind name (the proto enum), one per row of docs/sandbox.md "Limits and failures".
KIND_BY_SANDBOX_KIND: dict[str, str] = {
    "strategy_error": "STRATEGY_ERROR",
    "syntax_error": "INVALID_STRATEGY",
    "memory": "MEMORY_LIMIT",
    "cpu_time": "CPU_LIMIT",
    "wall_time": "TIME_LIMIT",
    "killed": "KILLED",
    "crashed": "CRASHED",
    "no_result": "NO_RESULT",
    "too_large": "TOO_LARGE",
    # The worker wrote garbage on its result pipe: from the user's side it produced no result.
    "protocol": "NO_RESULT",
    "cancelled": "CANCELLED",
    "internal": "INTERNAL",
}


# ---- plain data in and out --------------------------------------------------------------------


@dataclass(frozen=True)
class BacktestSpec:
    """One backtest to run, as the servicer received it (``convert.spec_from_proto``)."""

    strategy_code: str
    config: dict[str, Any]  # BacktestConfig keyword arguments; absent keys take its defaults
    params: dict[str, Any] = field(default_factory=dict)
    reference: str = ""  # caller's id for logs (e.g. the task id)


@dataclass(frozen=True)
class Progress:
    fraction: float
    date: str
    equity: float


@dataclass(frozen=True)
class RunSuccess:
    # The engine's result dict plus "metrics" (compute_metrics) and "round_trips"; "logs" is a str.
    result: dict[str, Any]


@dataclass(frozen=True)
class RunFailure:
    kind: str  # an EngineError.Kind name, e.g. "STRATEGY_ERROR"
    message: str
    line: int = 0
    logs: str = ""


RunEvent = Progress | RunSuccess | RunFailure


@dataclass(frozen=True)
class TrialsRequest:
    strategy_code: str
    config: dict[str, Any]
    params: list[dict[str, Any]]
    reference: str = ""


@dataclass(frozen=True)
class TrialData:
    """One trial's lean result (metrics computed here, in the trusted service) or its failure."""

    index: int
    failure: RunFailure | None = None
    dates: list[str] = field(default_factory=list)
    nav: list[float] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    orders: int = 0
    trades: int = 0
    mismatch_days: int = 0


@dataclass(frozen=True)
class TrialsSuccess:
    trials: list[TrialData]
    engine_version: str
    data_hash: str
    seconds: float
    max_rss_mb: float = 0.0


@dataclass(frozen=True)
class Fingerprint:
    engine_version: str
    data_hash: str
    dates: list[str]


@dataclass
class PreparedRun:
    """A validated, admitted run: holds its place in the slot queue until executed or released."""

    spec: BacktestSpec
    config: BacktestConfig
    panel: Panel
    ticket: Ticket
    trials: list[dict[str, Any]] = field(default_factory=list)  # RunTrials: one entry per trial

    def release(self) -> None:
        self.ticket.release()


# ---- ports --------------------------------------------------------------------------------------


class UnknownSymbols(Exception):
    """Raised by MarketData.load_panel: these requested symbols (or the benchmark) do not exist."""

    def __init__(self, symbols: Sequence[str]) -> None:
        super().__init__(f"unknown symbols: {', '.join(symbols)}")
        self.symbols = tuple(symbols)


class MarketData(Protocol):
    def load_panel(
        self, symbols: list[str], start: str, end: str, benchmark: str | None, use_daily_basic: bool
    ) -> Panel: ...

    def list_symbols(self) -> list[dict[str, Any]]: ...

    def check_ready(self) -> None: ...


class Sandbox(Protocol):
    def run(
        self, panel: Panel, code: str, config: dict[str, Any], *, on_progress: ProgressFn, cancel: threading.Event
    ) -> tuple[dict[str, Any], str]:
        """(engine result dict, captured worker output) or raises SandboxError."""
        ...

    def run_trials(
        self, panel: Panel, code: str, config: dict[str, Any], params: list[dict[str, Any]], *,
        on_progress: ProgressFn, cancel: threading.Event
    ) -> tuple[list[Any], str, float]:
        """(one ``TrialOutcome`` per parameter set, captured worker output, worker peak RSS in MB)
        or raises SandboxError for a failure of the whole batch."""
        ...

    def validate(self, code: str) -> list[dict[str, Any]]: ...

    def selfcheck(self) -> None: ...

    def isolation_report(self) -> dict[str, Any]: ...

    def close(self) -> None:
        """Stop whatever it keeps running between jobs (spare workers)."""
        ...


# ---- the core -----------------------------------------------------------------------------------


@dataclass
class _ActiveRun:
    reference: str
    cancel: threading.Event
    shutdown: bool = False


class EngineCore:
    def __init__(
        self,
        data: MarketData,
        sandbox: Sandbox,
        pool: SlotPool,
        *,
        progress_interval: float = PROGRESS_INTERVAL,
        validate_concurrency: int | None = None,
    ) -> None:
        self.data = data
        self.sandbox = sandbox
        self.pool = pool
        self.progress_interval = progress_interval
        # Validation also starts a worker (~0.3 s of CPU); bound it separately so a burst of
        # validations waits briefly instead of being refused or starving the backtests.
        self._validate_sem = threading.BoundedSemaphore(validate_concurrency or pool.slots)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._active: list[_ActiveRun] = []
        self._shutting_down = False
        telemetry.watch_pool(pool)

    # -- RunBacktest ---------------------------------------------------------------------------

    def prepare(self, spec: BacktestSpec) -> PreparedRun:
        """Validate, admit and load market data; raises InvalidArgument / ResourceExhausted /
        Unavailable. The caller must ``execute`` or ``release`` the returned run."""
        _check_code(spec.strategy_code)
        config = build_config(spec.config, spec.params)
        return PreparedRun(spec, config, *self._admitted_panel(config))

    def execute(
        self, prepared: PreparedRun, on_event: Callable[[RunEvent], None], cancel: threading.Event
    ) -> RunSuccess | RunFailure:
        """Run a prepared backtest to its terminal event; Progress events go to ``on_event``.

        ``cancel`` (set by the caller's cancellation, deadline or shutdown) kills the worker.
        Never raises for anything the strategy does."""
        run = _ActiveRun(prepared.spec.reference, cancel)
        with self._lock:
            self._active.append(run)
        try:
            if len(prepared.panel.dates) == 0:  # known symbols, but nothing to run on: no slot needed
                cfg = prepared.config
                return RunFailure("DATA_ERROR", f"no trading days with market data between {cfg.start_date} "
                                                f"and {cfg.end_date}")
            if not prepared.ticket.acquire(cancel):
                return self._cancelled(run)
            return self._run_in_slot(prepared, on_event, run)
        finally:
            prepared.ticket.release()
            with self._lock:
                self._active.remove(run)
                self._idle.notify_all()

    def _run_in_slot(
        self, prepared: PreparedRun, on_event: Callable[[RunEvent], None], run: _ActiveRun
    ) -> RunSuccess | RunFailure:
        started = time.perf_counter()
        outcome = self._run_worker(prepared, on_event, run, started)
        kind = "COMPLETED" if isinstance(outcome, RunSuccess) else outcome.kind
        telemetry.BACKTEST_SECONDS.labels(kind).observe(time.perf_counter() - started)
        return outcome

    def _run_worker(
        self, prepared: PreparedRun, on_event: Callable[[RunEvent], None], run: _ActiveRun, started: float
    ) -> RunSuccess | RunFailure:
        throttle = _Throttle(on_event, self.progress_interval)
        try:
            result, worker_logs = self.sandbox.run(
                prepared.panel, prepared.spec.strategy_code, prepared.config.to_dict(),
                on_progress=throttle, cancel=run.cancel,
            )
        except SandboxError as exc:
            telemetry.count_sandbox_end(exc.kind)
            if exc.kind == "cancelled" or run.cancel.is_set():
                return self._cancelled(run, logs=exc.logs)
            failure = failure_from_sandbox(exc)
            log.info("backtest failed", extra={"reference": run.reference, "kind": failure.kind,
                                              "seconds": round(time.perf_counter() - started, 3)})
            return failure
        if run.cancel.is_set():  # the result raced a cancellation: the caller is gone either way
            return self._cancelled(run)
        outcome = finish_result(result, worker_logs, prepared.config, prepared.panel.data_hash())
        if isinstance(outcome, RunSuccess):
            throttle.final(outcome.result)
            log.info("backtest done", extra={"reference": run.reference,
                                            "seconds": round(time.perf_counter() - started, 3)})
        return outcome

    def _cancelled(self, run: _ActiveRun, logs: str = "") -> RunFailure:
        message = SHUTDOWN_MESSAGE if run.shutdown or self._shutting_down else CANCELLED_MESSAGE
        return RunFailure("CANCELLED", message, logs=logs)

    def _admit(self, *, wait: bool = True) -> Ticket:
        if self._shutting_down:
            raise Unavailable("engine shutting down; retry on another replica")
        try:
            return self.pool.reserve(wait=wait)
        except SlotsBusy as exc:
            raise ResourceExhausted(str(exc)) from None
        except SlotsClosed:
            raise Unavailable("engine shutting down; retry on another replica") from None

    def _admitted_panel(self, config: BacktestConfig, *, wait: bool = True) -> tuple[Panel, Ticket]:
        """A slot, then the run's market data; the slot goes back if the data cannot be loaded."""
        ticket = self._admit(wait=wait)
        try:
            return self._load_panel(config), ticket
        except BaseException:
            ticket.release()
            raise

    def _load_panel(self, config: BacktestConfig) -> Panel:
        try:
            return self.data.load_panel(
                list(config.symbols), config.start_date, config.end_date, config.benchmark, config.use_daily_basic
            )
        except UnknownSymbols as exc:
            raise unknown_symbols_error(exc.symbols, config) from None

    # -- RunTrials ------------------------------------------------------------------------------

    def prepare_trials(self, request: TrialsRequest) -> PreparedRun:
        """As ``prepare`` for a batch of parameter sets: one slot per batch, but only a slot free
        now — a batch never waits in this engine's queue (RESOURCE_EXHAUSTED instead). The sweep
        runner then takes it to an engine with a free slot: queued here, it would wait for this
        engine's running batch while another engine idles (task_svc's round-robin does not know
        which engine is free), and single tasks keep the queue to themselves."""
        _check_code(request.strategy_code)
        if not 1 <= len(request.params) <= MAX_TRIALS_PER_CALL:
            raise InvalidArgument.field("params", f"must hold 1 to {MAX_TRIALS_PER_CALL} parameter sets, "
                                                  f"got {len(request.params)}")
        config = build_config(request.config, {})
        spec = BacktestSpec(request.strategy_code, request.config, {}, request.reference)
        return PreparedRun(spec, config, *self._admitted_panel(config, wait=False), list(request.params))

    def execute_trials(
        self, prepared: PreparedRun, on_event: Callable[[RunEvent], None], cancel: threading.Event
    ) -> TrialsSuccess | RunFailure:
        """Run a prepared batch; a failure of the whole batch (limits, worker killed, cancelled)
        is a RunFailure, a trial whose strategy raised is that trial's ``failure``."""
        run = _ActiveRun(prepared.spec.reference, cancel)
        with self._lock:
            self._active.append(run)
        try:
            cfg = prepared.config
            if len(prepared.panel.dates) == 0:
                return RunFailure("DATA_ERROR", f"no trading days with market data between {cfg.start_date} "
                                                f"and {cfg.end_date}")
            if not prepared.ticket.acquire(cancel):
                return self._cancelled(run)
            throttle = _Throttle(on_event, self.progress_interval)
            started = time.perf_counter()
            try:
                outcomes, _logs, rss = self.sandbox.run_trials(
                    prepared.panel, prepared.spec.strategy_code, cfg.to_dict(), prepared.trials,
                    on_progress=throttle, cancel=run.cancel)
            except SandboxError as exc:
                if exc.kind == "cancelled" or run.cancel.is_set():
                    return self._cancelled(run, logs=exc.logs)
                return failure_from_sandbox(exc)
            if run.cancel.is_set():
                return self._cancelled(run)
            seconds = time.perf_counter() - started
            trials = finish_trials(outcomes, cfg, prepared.panel)
            log.info("trials done", extra={"reference": run.reference, "trials": len(trials),
                                          "seconds": round(seconds, 3)})
            return TrialsSuccess(trials, ENGINE_VERSION, prepared.panel.data_hash(), seconds, rss)
        finally:
            prepared.ticket.release()
            with self._lock:
                self._active.remove(run)
                self._idle.notify_all()

    def fingerprint(self, config: dict[str, Any]) -> Fingerprint:
        """Engine version, data hash and trading days of what ``config`` would run on."""
        cfg = build_config(config, {})
        panel = self._load_panel(cfg)
        try:
            rows = day_rows(panel, cfg.start_date, cfg.end_date)
        except ValueError:
            return Fingerprint(ENGINE_VERSION, panel.data_hash(), [])
        dates = panel.date_strings()
        return Fingerprint(ENGINE_VERSION, panel.data_hash(), [dates[i] for i in rows])

    # -- ValidateStrategy ----------------------------------------------------------------------

    def validate(self, code: str) -> list[dict[str, Any]]:
        """Problems with ``code`` as [{line, column, message}] in line order ([] = valid).

        The code is compiled only inside a sandboxed worker, never in this process. Empty code is
        a problem like any other (the contract returns problems, not errors); only the size cap
        is an INVALID_ARGUMENT, since it limits the request rather than judging the code."""
        if not code.strip():
            return [{"line": 0, "column": 0, "message": "strategy code is empty"}]
        _check_code(code)
        if self._shutting_down:
            raise Unavailable("engine shutting down; retry on another replica")
        if not self._validate_sem.acquire(timeout=VALIDATE_WAIT_SECONDS):
            raise ResourceExhausted("engine busy validating strategies; retry later or use another replica")
        try:
            problems = self.sandbox.validate(code)
        except SandboxError as exc:
            if exc.kind == "internal":
                raise
            # The checker itself failed on the code (e.g. module-level code looping forever): that
            # is a problem with the code, reported like any other.
            problems = [{"line": exc.line, "column": 0, "message": exc.message}]
        finally:
            self._validate_sem.release()
        out = [
            {"line": int(p.get("line") or 0), "column": int(p.get("column") or 0), "message": str(p.get("message", ""))}
            for p in problems
        ]
        return sorted(out, key=lambda p: (p["line"], p["column"]))

    # -- ValidateBacktest ----------------------------------------------------------------------

    def validate_backtest(
        self, code: str, config: dict[str, Any], params: dict[str, Any]
    ) -> tuple[list[tuple[str, str]], BacktestConfig | None]:
        """``check_backtest`` over this replica's market data and sandboxed code validation."""
        return check_backtest(code, config, params, missing=lambda wanted: self.list_symbols(wanted)[1],
                              code_problems=self.validate)

    # -- GetDailyBars ---------------------------------------------------------------------------

    def daily_bars(self, symbol: str, start: str, end: str) -> list[dict[str, Any]]:
        """Bars of one stock over [start, end] for a chart (the panel cache serves repeats)."""
        symbol = symbol.strip()
        if not symbol:
            raise InvalidArgument.field("symbol", "is required")
        violations = [(name, f"is not a valid date: {value!r}") for name, value in (("start_date", start),
                      ("end_date", end)) if not _ISO_DATE.fullmatch(value)]
        if violations:
            raise InvalidArgument(violations)
        if start > end:
            raise InvalidArgument.field("end_date", f"is before start_date {start}")
        if int(end[:4]) - int(start[:4]) > MAX_BAR_YEARS:
            raise InvalidArgument.field("end_date", f"is more than {MAX_BAR_YEARS} years after start_date")
        try:
            panel = self.data.load_panel([symbol], start, end, None, False)
        except UnknownSymbols:
            raise NotFound(f"no daily bars for symbol {symbol}") from None
        except ValueError as exc:
            raise InvalidArgument.field("start_date", str(exc)) from None
        return panel_bars(panel, symbol)

    # -- ListSymbols ---------------------------------------------------------------------------

    def list_symbols(
        self, symbols: Sequence[str] = (), search: str = "", include_indexes: bool = False
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """(rows sorted by symbol, requested symbols without data).

        Explicitly requested symbols are listed even when they are indexes: a coverage check of
        a benchmark must not need ``include_indexes``."""
        rows = [r for r in self.data.list_symbols() if int(r.get("bars") or 0) > 0]
        requested = list(dict.fromkeys(s.strip() for s in symbols if s.strip()))
        missing: list[str] = []
        if requested:
            by_symbol = {r["symbol"]: r for r in rows}
            rows = [by_symbol[s] for s in requested if s in by_symbol]
            missing = [s for s in requested if s not in by_symbol]
        elif not include_indexes:
            rows = [r for r in rows if not r.get("is_index")]
        needle = search.strip().lower()
        if needle:
            rows = [r for r in rows if needle in r["symbol"].lower() or needle in str(r.get("name") or "").lower()]
        return sorted(rows, key=lambda r: r["symbol"]), missing

    # -- readiness and shutdown ----------------------------------------------------------------

    def check_ready(self) -> dict[str, Any]:
        """Raise unless market data is reachable and migrated and a sandboxed worker starts.
        Returns the sandbox's isolation report (which layers are active) for the start-up log."""
        self.data.check_ready()
        self.sandbox.selfcheck()
        return self.sandbox.isolation_report()

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def check_data(self) -> None:
        """The cheap part of readiness (no worker): market data reachable and migrated."""
        self.data.check_ready()

    def active_runs(self) -> int:
        with self._lock:
            return len(self._active)

    def begin_shutdown(self) -> None:
        """Refuse new work; queued runs give up their place (and end CANCELLED)."""
        with self._lock:
            self._shutting_down = True
        self.pool.close()
        self.sandbox.close()

    def cancel_all(self) -> int:
        """Kill every active run's worker; they end with the shutdown message. Returns how many."""
        with self._lock:
            runs = list(self._active)
        for run in runs:
            run.shutdown = True
            run.cancel.set()
        return len(runs)

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._active:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
            return True

    def shutdown(self, grace: float, *, kill_wait: float = 5.0) -> None:
        """Stop taking runs, let running ones finish within ``grace`` seconds, then cancel the
        rest (each ends with an in-band CANCELLED "engine shutting down" event)."""
        self.begin_shutdown()
        if self.wait_idle(max(0.0, grace)):
            return
        n = self.cancel_all()
        log.warning("grace period over; cancelling running backtests", extra={"runs": n})
        if not self.wait_idle(kill_wait):
            log.error("backtests still active after cancellation", extra={"runs": self.active_runs()})


# ---- pure helpers -------------------------------------------------------------------------------


def _check_code(code: str) -> None:
    if not code.strip():
        raise InvalidArgument.field("strategy_code", "is required")
    if len(code.encode("utf-8", "surrogatepass")) > MAX_CODE_BYTES:
        raise InvalidArgument.field("strategy_code", f"must be at most {MAX_CODE_BYTES} bytes")


def build_config(config: dict[str, Any], params: dict[str, Any]) -> BacktestConfig:
    """A validated BacktestConfig (engine_svc.engine.config's rules, the only ones); every
    problem becomes a ``config.<field>`` violation, a problem with params a ``params`` one."""
    cfg, problems = normalize_config(config)
    violations = [(f"config.{name}", why) for name, why in problems] + params_violations(params)
    if violations or cfg is None:
        raise InvalidArgument(violations)
    return cfg.with_params(params)


def check_backtest(
    code: str, config: dict[str, Any], params: dict[str, Any], *,
    missing: Callable[[list[str]], list[str]], code_problems: Callable[[str], list[dict[str, Any]]],
) -> tuple[list[tuple[str, str]], BacktestConfig | None]:
    """(every violation as (field path, description), the normalized config or None).

    The rules RunBacktest applies, checked without running: the config, its symbols and
    benchmark against the data's coverage (``missing``: the requested symbols without data), the
    params, and the code (``code_problems``, compiled in a worker). Empty code is not checked (a
    library strategy, validated when it was saved)."""
    cfg, problems = normalize_config(config)
    violations = [(f"config.{name}", why) for name, why in problems]
    if not any(name in ("symbols", "benchmark") for name, _ in problems):
        symbols, benchmark = normalized_symbols(config)
        wanted = [*symbols, *([benchmark] if benchmark else [])]
        absent = set(missing(wanted)) if wanted else set()
        unknown = [s for s in symbols if s in absent]
        if unknown:
            violations.append(("config.symbols", f"no market data for: {', '.join(unknown)}"))
        if benchmark and benchmark in absent:
            violations.append(("config.benchmark", f"no market data for benchmark {benchmark}"))
    violations += params_violations(params)
    if code.strip():
        if len(code.encode("utf-8", "surrogatepass")) > MAX_CODE_BYTES:
            violations.append(("strategy_code", f"must be at most {MAX_CODE_BYTES} bytes"))
        else:
            violations += [("strategy_code", f"line {p['line']}: {p['message']}" if p["line"] else p["message"])
                           for p in code_problems(code)]
    return violations, (cfg if not violations else None)


def params_violations(params: dict[str, Any]) -> list[tuple[str, str]]:
    """The rules for a run's params: a JSON object, nested at most MAX_JSON_DEPTH deep, ≤ 256 KB."""
    if value_depth(params) > MAX_JSON_DEPTH:
        return [("params", DEPTH_MESSAGE)]
    try:
        size = len(json.dumps(params, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode())
    except (TypeError, ValueError):
        return [("params", "must be JSON (no NaN or Infinity)")]
    if size > MAX_PARAMS_BYTES:
        return [("params", f"must be at most {MAX_PARAMS_BYTES // 1024} KB as JSON")]
    return []


def unknown_symbols_error(unknown: Sequence[str], config: BacktestConfig) -> InvalidArgument:
    violations = [
        ("config.benchmark" if s == config.benchmark and s not in config.symbols else "config.symbols",
         f"unknown symbol {s}")
        for s in unknown
    ]
    return InvalidArgument(violations, message=f"unknown symbols: {', '.join(unknown)}")


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
MAX_BAR_YEARS = 20


def failure_from_sandbox(exc: SandboxError) -> RunFailure:
    kind = KIND_BY_SANDBOX_KIND.get(exc.kind, "INTERNAL")
    line = exc.line if kind in ("STRATEGY_ERROR", "INVALID_STRATEGY") else 0
    return RunFailure(kind, exc.message, line, _cap(exc.logs or ""))


def finish_result(result: Any, worker_logs: str, config: BacktestConfig, data_hash: str) -> RunSuccess | RunFailure:
    """Metrics and round trips computed here, in the trusted service, from the ledger's result
    (``engine_svc.sandbox.api.run_in_sandbox`` keeps the ledger in this process; the strategy's
    process only sends order intents). The shape check is a guard against an engine bug, not a
    defence; provenance (engine version, hash of the panel) is stamped here."""
    try:
        if not isinstance(result, dict) or not isinstance(result.get("daily"), list) or not result["daily"]:
            raise ValueError("result has no daily records")
        metrics = compute_metrics(result, annualization=config.annualization, risk_free_rate=config.risk_free_rate)
        trips = round_trips(result.get("trades") or [], result.get("ex_rights") or [])
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, ZeroDivisionError) as exc:
        log.warning("malformed result from worker", extra={"error": f"{type(exc).__name__}: {exc}"})
        return RunFailure("NO_RESULT", MALFORMED_RESULT_MESSAGE, logs=_cap(worker_logs))
    engine_logs = result.get("logs") or []
    text = "\n".join(str(x) for x in engine_logs) if isinstance(engine_logs, list) else str(engine_logs)
    if worker_logs:
        text = f"{text}\n{worker_logs}" if text else worker_logs
    return RunSuccess({**result, "engine_version": ENGINE_VERSION, "data_hash": data_hash, "metrics": metrics,
                       "round_trips": trips, "logs": _cap(text)})


def finish_trials(outcomes: list[Any], config: BacktestConfig, panel: Panel) -> list[TrialData]:
    """Each trial's metrics from its ledger's NAV and fills, computed here like a single run's."""
    bench = panel.benchmark
    bench_close: list[float | None] | None = None
    if bench is not None:
        rows = day_rows(panel, config.start_date, config.end_date)
        bench_close = [None if c != c else float(c) for c in bench.close[rows.start:rows.stop]]
    out: list[TrialData] = []
    for k, o in enumerate(outcomes):
        if o.failure is not None:
            kind = KIND_BY_SANDBOX_KIND.get(str(o.failure.get("kind")), "STRATEGY_ERROR")
            out.append(TrialData(k, RunFailure(kind, str(o.failure.get("message", "")),
                                               int(o.failure.get("line") or 0))))
            continue
        if not o.nav:
            out.append(TrialData(k, RunFailure("NO_RESULT", "the trial produced no daily records")))
            continue
        try:
            metrics = compute_metrics(o.as_result(config.initial_capital, bench_close),
                                      annualization=config.annualization, risk_free_rate=config.risk_free_rate)
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
            log.warning("malformed trial result", extra={"error": f"{type(exc).__name__}: {exc}"})
            out.append(TrialData(k, RunFailure("NO_RESULT", MALFORMED_RESULT_MESSAGE)))
            continue
        out.append(TrialData(k, None, list(o.dates), [float(v) for v in o.nav], metrics, int(o.orders),
                             len(o.trades), int(o.mismatch_days)))
    return out


def _cap(text: str) -> str:
    if len(text) <= MAX_LOG_CHARS:
        return text
    return text[:MAX_LOG_CHARS] + f"\n... {len(text) - MAX_LOG_CHARS} more characters dropped"


class _Throttle:
    """Forwards a progress event when the ``ProgressGate`` admits it (the final 1.0 always)."""

    def __init__(self, emit: Callable[[RunEvent], None], interval: float) -> None:
        self._emit = emit
        self._gate = ProgressGate(interval)

    def __call__(self, fraction: float, date: str = "", equity: float = 0.0) -> None:
        fraction = min(1.0, max(0.0, float(fraction)))
        if self._gate.admit(fraction):
            self._emit(Progress(fraction, str(date), float(equity)))

    def final(self, result: dict[str, Any]) -> None:
        if not self._gate.done:
            last = result["daily"][-1]
            self(1.0, str(last.get("date", "")), float(last.get("total_value") or 0.0))
