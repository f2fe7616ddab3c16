"""Parameter sweeps: the rules of SweepService (no gRPC, no SQL beyond the repositories).

A sweep is a search (sweeplib: space, constraints, GRID/RANDOM/TPE planner, objective, result
constraints, walk-forward folds) whose state is its trial rows. Trials are *planned* here — at
creation and whenever a search can move on (``plan``) — and *run* by ``sweep_runner`` on any
replica, in batches of one engine call each.

Planning is deterministic: GRID and RANDOM points come from the request (and seed) alone; TPE
generations from the request, the seed and the finished trials of earlier generations in
trial-number order (sweeplib.planner). So the same request gives the same trials and the same
best whatever the number of replicas and the order in which results arrive. One replica plans a
step: the sweep row is locked (PostgreSQL) and ``generations`` is advanced by a conditional
UPDATE (both databases), so a step planned twice inserts nothing the second time.

Per search (validation NONE: one search over the whole period; HOLDOUT and WALK_FORWARD: one
in-sample search per fold, then one out-of-sample run of the fold's best ranked parameters).

Result cache: a trial's key is sha256 of the strategy code, the normalised config with the
trial's dates, the full parameters, the market data hash and the engine version; a trial whose
key matches a DONE trial of any of the caller's sweeps is created CACHED with that result.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import statistics
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from google.protobuf import struct_pb2
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker
from zquant.engine.v1 import engine_pb2

from services.db import transaction
from services.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted, Unavailable
from services.paging import page_window, parse_page
from services.principal import Principal
from services.tracing import current_carrier
from sweeplib.errors import SweepInputError
from sweeplib.metrics import METRICS
from sweeplib.overfit import deflated_sharpe, nav_returns, per_period_sharpe
from sweeplib.planner import TrialRecord, grid_points, plan_generation, random_points
from sweeplib.ranking import TrialResult, leaderboard, objective_value, search_value
from sweeplib.spec import SweepSpec, parse_spec
from sweeplib.walkforward import Segment, make_folds, stitch
from task_svc.config import TaskSettings
from task_svc.engine_client import EngineClient, EngineRejected, EngineUnavailable
from task_svc.models import (
    SWEEP_ACTIVE,
    TRIAL_WITH_RESULT,
    Strategy,
    Sweep,
    SweepStatus,
    SweepTrial,
    Task,
    TrialStatus,
    utcnow,
)
from task_svc.repository import StrategyRepository
from task_svc.sweep_repository import SWEEP_ORDER, SweepRepository
from task_svc.tasks import RunRequest, Tasks, config_json

log = logging.getLogger("zquant.task.sweeps")

CANCELLED_MESSAGE = "cancelled by the user"
DEFAULT_OBJECTIVE = {"metric": "sharpe_ratio", "direction": "maximize"}
FULL, IN_SAMPLE, OUT_OF_SAMPLE = "FULL", "IN_SAMPLE", "OUT_OF_SAMPLE"
# What RunTrials reports per trial: objectives and result constraints must name one of these.
ENGINE_METRICS = frozenset(f.name for f in engine_pb2.Metrics.DESCRIPTOR.fields)
DEFAULT_TRIAL_SECONDS = 0.25  # estimate before any trial has run here (dual-MA, 10 stocks, 5 years)


@dataclass
class SweepInput:
    """A CreateSweepRequest as plain data. ``search`` is sweeplib's request (space, method,
    max_trials, seed, constraints, objective, result_constraints, validation, max_parallel,
    target)."""

    strategy_id: int = 0
    strategy_code: str = ""
    strategy_name: str = ""
    # As submitted; the engine's ValidateBacktest judges it and fills in the defaults.
    config: engine_pb2.BacktestConfig = field(default_factory=engine_pb2.BacktestConfig)
    params: dict[str, Any] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Estimate:
    trials: int
    cached: int
    seconds: float
    basis: str


@dataclass
class Counts:
    queued: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0
    cached: int = 0
    skipped: int = 0

    @property
    def total(self) -> int:
        return self.queued + self.running + self.done + self.failed + self.cached + self.skipped


@dataclass
class TrialView:
    """A trial with what ranking says about it."""

    row: SweepTrial
    params: dict[str, Any]
    metrics: dict[str, Any] | None
    ranked: bool = False
    rank: int = 0


@dataclass
class SweepView:
    sweep: Sweep
    counts: Counts
    best: TrialView | None = None
    evaluated: int = 0
    deflated_sharpe: float | None = None
    elapsed_seconds: float = 0.0
    eta_seconds: float | None = None


@dataclass
class FoldView:
    index: int
    train_start: str
    train_end: str
    test_start: str
    test_end: str
    best: TrialView | None = None
    out_of_sample: TrialView | None = None


@dataclass
class FoldsView:
    kind: str
    folds: list[FoldView]
    dates: list[str]
    nav: list[float]
    total_return: float | None
    sharpe: float | None


@dataclass(frozen=True)
class WatchEvent:
    kind: str  # SNAPSHOT, PROGRESS, TRIAL, BEST, STATUS
    view: SweepView
    trial: TrialView | None = None
    terminal: bool = False


# ---------------------------------------------------------------------------- pure helpers

def search_spec(raw: Mapping[str, Any], max_trials_limit: int) -> SweepSpec:
    """sweeplib's parse with the service's defaults; SweepInputError → INVALID_ARGUMENT naming
    the field. More trials than the deployment allows is a quota (RESOURCE_EXHAUSTED)."""
    request = {k: v for k, v in raw.items() if v is not None}
    requested = request.get("max_trials") or 0
    if isinstance(requested, int) and requested > max_trials_limit:
        raise ResourceExhausted(f"max_trials {requested} is above this deployment's limit of "
                                f"{max_trials_limit} trials per sweep (ZQ_SWEEP_MAX_TRIALS)")
    request.setdefault("objective", dict(DEFAULT_OBJECTIVE))
    if request.get("method", "grid") in ("random", "tpe") and not request.get("max_trials"):
        request["max_trials"] = min(50, max_trials_limit)
    try:
        return parse_spec(request, max_trials_limit=max_trials_limit)
    except SweepInputError as exc:
        raise InvalidArgument([(exc.field, exc.message)]) from None


def cache_key(code: str, config: Mapping[str, Any], params: Mapping[str, Any], data_hash: str,
              engine_version: str) -> str:
    blob = json.dumps([code, dict(config), dict(params), data_hash, engine_version], sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def _loads(raw: str, default: Any) -> Any:
    return json.loads(raw) if raw else default


def trial_params(sweep: Sweep, trial: SweepTrial) -> dict[str, Any]:
    """What the strategy runs with: the base params with the swept ones applied."""
    return {**json.loads(sweep.params_json or "{}"), **json.loads(trial.params_json)}


def trial_config(sweep: Sweep, trial: SweepTrial) -> dict[str, Any]:
    return {**json.loads(sweep.config_json), "start_date": trial.start_date, "end_date": trial.end_date}


def _search_phase(spec: SweepSpec) -> str:
    return FULL if spec.validation.kind == "none" else IN_SAMPLE


def _view(sweep: Sweep, trial: SweepTrial) -> TrialView:
    metrics = _loads(trial.metrics_json, None) if trial.status in TRIAL_WITH_RESULT else None
    return TrialView(trial, json.loads(trial.params_json), metrics)


def rank_search(spec: SweepSpec, views: Sequence[TrialView]) -> list[TrialView]:
    """sweeplib's leaderboard over one search's finished trials; sets ranked/rank on the views."""
    by_number = {v.row.number: v for v in views}
    results = [TrialResult(v.row.number, v.params, v.metrics) for v in views
               if v.row.status in TRIAL_WITH_RESULT or v.row.status == TrialStatus.FAILED.value]
    board = leaderboard(results, spec.objective, spec.result_constraints)
    for r in board:
        view = by_number[r.number]
        view.ranked = r.status == "ranked"
        view.rank = r.rank or 0
    return [by_number[r.number] for r in board]


def _best(spec: SweepSpec, views: Sequence[TrialView]) -> TrialView | None:
    board = rank_search(spec, views)
    return board[0] if board and board[0].ranked else None


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


# ---------------------------------------------------------------------------- the rules

class Sweeps:
    def __init__(self, sessions: sessionmaker[Session], engine: EngineClient, tasks: Tasks,
                 settings: TaskSettings, on_created: Callable[[], None] = lambda: None) -> None:
        self.sessions = sessions
        self.engine = engine
        self.tasks = tasks
        self.settings = settings
        # This replica's runner claims a new sweep's trials at once instead of at its next poll
        # (up to ZQ_TASK_POLL_SECONDS later: half a second of a 20-second sweep on average).
        self.on_created = on_created

    # ------------------------------------------------------------------ create / estimate
    def _validate(self, who: Principal, inp: SweepInput, *, check_code: bool
                  ) -> tuple[SweepSpec, engine_pb2.BacktestConfig, str, str, int | None]:
        """Sweep rules here, backtest rules on the engine (ValidateBacktest), all problems in one
        answer. Code sent now is checked when ``check_code``; library code was checked when saved."""
        code = inp.strategy_code
        violations: list[tuple[str, str]] = []
        if inp.strategy_id <= 0 and not code.strip():
            violations.append(("strategy_id", "strategy_id or strategy_code is required"))
        if len(inp.strategy_name) > 200:
            violations.append(("strategy_name", "must be at most 200 characters"))
        too_big = len(code.encode("utf-8", "surrogatepass")) > 1024 * 1024
        if too_big:
            violations.append(("strategy_code", "must be at most 1 MB"))
        spec: SweepSpec | None = None
        try:
            spec = search_spec(inp.search, self.settings.sweep_max_trials)
        except InvalidArgument as exc:
            violations += exc.violations
        if spec is not None:
            per_trial = "is not reported per trial by the engine (zquant.engine.v1.Metrics)"
            if spec.objective.metric not in ENGINE_METRICS:
                violations.append(("objective.metric", f"{spec.objective.metric} {per_trial}"))
            for k, c in enumerate(spec.result_constraints):
                missing = sorted(c.names - ENGINE_METRICS)
                if missing:
                    violations.append((f"result_constraints[{k}]", f"{missing[0]} {per_trial}"))
            overlap = sorted(set(spec.space.names) & set(inp.params))
            if overlap:
                violations.append(("params", f"{overlap[0]} is swept (in space); leave it out of params"))
        name = inp.strategy_name.strip()
        strategy: Strategy | None = None
        if inp.strategy_id > 0:
            with self.sessions() as session:
                strategy = StrategyRepository(session, who.user_id).get_visible(inp.strategy_id)
            if strategy is None:
                raise NotFound(f"strategy {inp.strategy_id} not found")
            code = code if code.strip() else strategy.code
            name = name or strategy.name
        params = struct_pb2.Struct()
        params.update(inp.params)
        checked = inp.strategy_code if check_code and not too_big else ""
        config = self.tasks.validate_on_engine(checked, params, inp.config, violations)
        assert spec is not None  # a bad spec raised above with the engine's violations
        return spec, config, code, name or "custom", strategy.id if strategy else None

    def _fingerprint(self, config: engine_pb2.BacktestConfig) -> tuple[str, str, list[str]]:
        try:
            return self.engine.fingerprint(json.loads(config_json(config)))
        except EngineUnavailable as exc:
            raise Unavailable(f"market data cannot be checked now, try again later: {exc}") from None
        except EngineRejected as exc:
            # The engine's own INVALID_ARGUMENT (unknown symbols, no data) names the config field.
            raise InvalidArgument.field("config.symbols", str(exc)) from None

    def _folds(self, spec: SweepSpec, dates: list[str], settings: engine_pb2.BacktestConfig) -> list[dict[str, Any]]:
        if not dates:
            raise InvalidArgument.field("config.start_date", f"no trading days between {settings.start_date} "
                                                             f"and {settings.end_date}")
        try:
            folds = make_folds(spec.validation, dates)
        except SweepInputError as exc:
            raise InvalidArgument([(exc.field, exc.message)]) from None
        if not folds:
            return [{"index": 0, "train_start": settings.start_date, "train_end": settings.end_date,
                     "test_start": "", "test_end": ""}]
        return [{"index": f.index, "train_start": f.train_start, "train_end": f.train_end,
                 "test_start": f.test_start, "test_end": f.test_end} for f in folds]

    def estimate(self, who: Principal, inp: SweepInput) -> Estimate:
        spec, settings, code, _, _ = self._validate(who, inp, check_code=False)
        version, data_hash, dates = self._fingerprint(settings)
        folds = self._folds(spec, dates, settings)
        n_search = spec.trial_count
        trials = n_search * len(folds) + (len(folds) if spec.validation.kind != "none" else 0)
        cached = 0
        if spec.method != "tpe":
            config = json.loads(config_json(settings))
            keys = [cache_key(code, {**config, "start_date": f["train_start"], "end_date": f["train_end"]},
                              {**inp.params, **p}, data_hash, version)
                    for f in folds for p in self._static_points(spec)]
            with self.sessions() as session:
                cached = len(SweepRepository(session, who.user_id).cached_results(keys))
        with self.sessions() as session:
            recent = SweepRepository(session, who.user_id).recent_trial_seconds()
        per_trial = statistics.median(recent) if recent else DEFAULT_TRIAL_SECONDS
        basis = (f"median of {len(recent)} recent trials: {per_trial:.3f} s per trial" if recent
                 else f"no trials run yet: {per_trial} s per trial assumed")
        lanes = max(1, spec.max_parallel or self.settings.sweep_workers)
        days_scale = len(dates) / 1200 if dates else 1.0
        seconds = (trials - cached) * per_trial * (days_scale if not recent else 1.0) / lanes
        return Estimate(trials, cached, round(seconds, 3), f"{basis}, {lanes} engine calls at once")

    @staticmethod
    def _static_points(spec: SweepSpec) -> list[dict[str, Any]]:
        if spec.method == "grid":
            return grid_points(spec.space, spec.constraints, spec.max_trials)
        if spec.method == "random":
            return random_points(spec.space, spec.constraints, spec.seed, spec.max_trials)
        return []

    def create(self, who: Principal, inp: SweepInput) -> Sweep:
        with self.sessions() as session:
            self._check_quota(SweepRepository(session, who.user_id))
        spec, settings, code, name, strategy_id = self._validate(who, inp, check_code=True)
        version, data_hash, dates = self._fingerprint(settings)
        folds = self._folds(spec, dates, settings)
        now = utcnow()
        with transaction(self.sessions) as session:
            repo = SweepRepository(session, who.user_id)
            if session.get_bind().dialect.name == "postgresql":
                session.execute(text("SELECT pg_advisory_xact_lock(7322, :u)"), {"u": who.user_id})
            self._check_quota(repo)
            sweep = repo.add(Sweep(
                strategy_id=strategy_id, strategy_name=name, strategy_code=code, config_json=config_json(settings),
                params_json=json.dumps(inp.params, separators=(",", ":"), ensure_ascii=False),
                spec_json=json.dumps(inp.search, separators=(",", ":"), ensure_ascii=False),
                request_json=json.dumps(inp.search, separators=(",", ":"), ensure_ascii=False),
                method=spec.method.upper(), max_trials=spec.max_trials, max_parallel=spec.max_parallel,
                status=SweepStatus.PENDING.value, error_message="", generations=0, engine_version=version,
                data_hash=data_hash, folds_json=json.dumps(folds), created_at=now, updated_at=now,
                trace_context=current_carrier()))
            while plan(session, sweep, spec):  # cached trials may finish a search (or the sweep) at once
                pass
        self.on_created()
        return sweep

    def _check_quota(self, repo: SweepRepository) -> None:
        limit = self.settings.sweep_max_active_per_user
        if repo.count_active() >= limit:
            raise ResourceExhausted(f"too many active sweeps: at most {limit} PENDING or RUNNING sweeps per user; "
                                    "wait for one to finish or cancel it")

    # ------------------------------------------------------------------ read
    def get_sweep(self, who: Principal, sweep_id: int) -> Sweep:
        with self.sessions() as session:
            sweep = SweepRepository(session, who.user_id).get(sweep_id)
        if sweep is None:
            raise NotFound(f"sweep {sweep_id} not found")
        return sweep

    def _load(self, user_id: int, sweep_id: int, *, with_nav: bool = False) -> tuple[Sweep, list[SweepTrial]]:
        with self.sessions() as session:
            repo = SweepRepository(session, user_id)
            sweep = repo.get(sweep_id)
            if sweep is None:
                raise NotFound(f"sweep {sweep_id} not found")
            return sweep, repo.trials(sweep_id, with_nav=with_nav)

    def _summarize(self, sweep: Sweep, trials: Sequence[SweepTrial]) -> SweepView:
        return summarize(sweep, trials, self._nav_loader(sweep.user_id))

    def view(self, who: Principal, sweep_id: int) -> SweepView:
        sweep, trials = self._load(who.user_id, sweep_id)
        return self._summarize(sweep, trials)

    def list_sweeps(self, who: Principal, skip: int, limit: int, order_by: str,
                    order: str) -> tuple[list[SweepView], int]:
        page = parse_page(skip, limit, order_by, order, SWEEP_ORDER.keys())
        with self.sessions() as session:
            repo = SweepRepository(session, who.user_id)
            sweeps, total = repo.list_page(page)
            rows = [(s, repo.trials(s.id)) for s in sweeps]
        return [self._summarize(s, t) for s, t in rows], total

    def trials(self, who: Principal, sweep_id: int, skip: int, limit: int, order_by: str, order: str,
               status: str | None) -> tuple[list[TrialView], int]:
        limit, violations = page_window(skip, limit)
        if violations:
            raise InvalidArgument(violations)
        key = order_by.strip().lower() or "objective"
        if key not in ("number", "status", "objective") and key not in METRICS:
            raise InvalidArgument.field("order_by", f"must be number, status, objective or a metric "
                                                    f"({', '.join(sorted(METRICS))}); got {order_by!r}")
        if order.strip().lower() not in ("", "asc", "desc"):
            raise InvalidArgument.field("order", "must be asc or desc")
        sweep, rows = self._load(who.user_id, sweep_id)
        spec = search_spec(json.loads(sweep.spec_json), 10**9)
        views = [_view(sweep, t) for t in rows]
        for group in _groups(views).values():
            rank_search(spec, group)
        if status:
            views = [v for v in views if v.row.status == status]
        metric = spec.objective.metric if key == "objective" else key
        if key in ("number", "status"):
            desc = order.strip().lower() == "desc"
            views.sort(key=lambda v: (getattr(v.row, key), v.row.number), reverse=desc)
        else:
            natural_desc = (spec.objective.direction if key == "objective" else METRICS[key]) == "maximize"
            desc = natural_desc if not order.strip() else order.strip().lower() == "desc"
            sign = -1.0 if desc else 1.0

            def sort_key(v: TrialView) -> tuple[int, float, int]:
                value = _finite((v.metrics or {}).get(metric))
                return (1, 0.0, v.row.number) if value is None else (0, sign * value, v.row.number)

            views.sort(key=sort_key)
        return views[skip:skip + limit], len(views)

    def heatmap(self, who: Principal, sweep_id: int, x: str, y: str, metric: str,
                agg: str) -> tuple[list[Any], list[Any], list[float], str, str]:
        sweep, rows = self._load(who.user_id, sweep_id)
        spec = search_spec(json.loads(sweep.spec_json), 10**9)
        names = spec.space.names
        v: list[tuple[str, str]] = []
        for fname, value in (("x", x), ("y", y)):
            if value not in names:
                v.append((fname, f"must be a swept parameter ({', '.join(names)}); got {value!r}"))
        if x and x == y:
            v.append(("y", "must differ from x"))
        metric = metric.strip() or spec.objective.metric
        if metric not in METRICS:
            v.append(("metric", f"unknown metric {metric!r}"))
        agg = agg.strip().lower() or "max"
        if agg not in ("max", "mean"):
            v.append(("agg", "must be max or mean"))
        if v:
            raise InvalidArgument(v)
        cells: dict[tuple[Any, Any], list[float]] = {}
        phase = _search_phase(spec)
        for t in rows:
            if t.phase != phase or t.status not in TRIAL_WITH_RESULT:
                continue
            params = json.loads(t.params_json)
            value = _finite(_loads(t.metrics_json, {}).get(metric))
            key = (params.get(x), params.get(y))
            cells.setdefault(key, [])
            if value is not None:
                cells[key].append(value)

        def ordered(values: set[Any]) -> list[Any]:
            return sorted(values, key=lambda a: (0, a, "") if isinstance(a, (int, float)) else (1, 0, str(a)))

        xs = ordered({k[0] for k in cells})
        ys = ordered({k[1] for k in cells})
        out: list[float] = []
        for yv in ys:
            for xv in xs:
                vals = cells.get((xv, yv)) or []
                out.append(float("nan") if not vals else max(vals) if agg == "max" else sum(vals) / len(vals))
        return xs, ys, out, metric, agg

    def folds(self, who: Principal, sweep_id: int) -> FoldsView:
        sweep, rows = self._load(who.user_id, sweep_id, with_nav=True)
        spec = search_spec(json.loads(sweep.spec_json), 10**9)
        return folds_view(sweep, spec, rows)

    # ------------------------------------------------------------------ change
    def cancel(self, who: Principal, sweep_id: int) -> Sweep:
        with transaction(self.sessions) as session:
            repo = SweepRepository(session, who.user_id)
            cancelled = repo.cancel(sweep_id, CANCELLED_MESSAGE)
            sweep = repo.get(sweep_id)
        if sweep is None:
            raise NotFound(f"sweep {sweep_id} not found")
        if not cancelled:
            raise FailedPrecondition(f"sweep {sweep_id} is already {sweep.status}; only PENDING or RUNNING sweeps "
                                     "can be cancelled")
        return sweep

    def delete(self, who: Principal, sweep_id: int) -> None:
        with transaction(self.sessions) as session:
            repo = SweepRepository(session, who.user_id)
            sweep = repo.get(sweep_id)
            if sweep is None:
                raise NotFound(f"sweep {sweep_id} not found")
            repo.cancel(sweep_id, CANCELLED_MESSAGE)  # runners' conditional writes fail from here on
            repo.delete(sweep)

    def promote(self, who: Principal, sweep_id: int, number: int) -> Task:
        with self.sessions() as session:
            repo = SweepRepository(session, who.user_id)
            sweep = repo.get(sweep_id)
            if sweep is None:
                raise NotFound(f"sweep {sweep_id} not found")
            trial = repo.trial(sweep_id, number)
            if trial is None:
                raise NotFound(f"sweep {sweep_id} has no trial {number}")
            config = trial_config(sweep, trial)
            params = trial_params(sweep, trial)
        struct = struct_pb2.Struct()
        struct.update(params)
        return self.tasks.submit(who, RunRequest(
            strategy_id=0, strategy_code=sweep.strategy_code,
            strategy_name=f"{sweep.strategy_name} · sweep {sweep.id} trial {number}"[:200],
            params=struct, config=engine_pb2.BacktestConfig(**config)))

    # ------------------------------------------------------------------ watch
    async def watch(self, user_id: int, sweep_id: int, *, interval: float = 0.2) -> AsyncIterator[WatchEvent]:
        """SNAPSHOT, then PROGRESS / TRIAL / BEST as the trial rows change (read every
        ``interval`` seconds, so a trial finished on any replica shows), then STATUS (terminal).
        An async generator (task_svc serves on grpc.aio): between reads it holds no thread;
        each read and ranking runs on the executor. A client that goes away cancels it.

        After the snapshot a read costs what changed, not the sweep's size (_WatchState): the
        sweep row and its trials per status, then only the trials finished since the last read."""
        sweep, rows = await asyncio.to_thread(self._load, user_id, sweep_id)
        nav = _LastNav(self._nav_loader(user_id))
        view = await asyncio.to_thread(summarize, sweep, rows, nav)
        yield WatchEvent("SNAPSHOT", view, terminal=sweep.status not in {s.value for s in SWEEP_ACTIVE})
        if sweep.status not in {s.value for s in SWEEP_ACTIVE}:
            return
        state = _WatchState(sweep, rows, view, nav)
        counts = view.counts
        best = view.best.row.number if view.best else 0
        while True:
            await asyncio.sleep(interval)
            polled = await asyncio.to_thread(self._poll, user_id, sweep_id, state)
            if polled is None:  # deleted
                yield WatchEvent("STATUS", view, terminal=True)
                return
            if polled.view is None:  # nothing changed
                continue
            sweep, view = polled.sweep, polled.view
            for trial in polled.finished:
                yield WatchEvent("TRIAL", view, trial)
            if view.best is not None and view.best.row.number != best:
                best = view.best.row.number
                yield WatchEvent("BEST", view, view.best)
            if sweep.status not in {s.value for s in SWEEP_ACTIVE}:
                yield WatchEvent("STATUS", view, terminal=True)
                return
            if view.counts != counts and not polled.finished:
                yield WatchEvent("PROGRESS", view)
            counts = view.counts

    def _poll(self, user_id: int, sweep_id: int, state: _WatchState) -> _Polled | None:
        """One re-read for watch(): None once the sweep is gone; no view when nothing changed;
        else the sweep, its summary and the trials finished since the last read (ranked)."""
        with self.sessions() as session:
            repo = SweepRepository(session, user_id)
            sweep = repo.get(sweep_id)
            if sweep is None:
                return None
            tally = repo.status_counts(sweep)
            mark = (sweep.status, tuple(sorted(tally.items())))
            if mark == state.mark:
                return _Polled(sweep, None, [])
            new: list[SweepTrial] = []
            if sum(tally.get(s, 0) for s in _FINISHED) > len(state.known):
                ids = [i for i in repo.ids_with_status(sweep, list(_FINISHED)) if i not in state.known]
                new = repo.trials_by_id(sweep_id, ids)
        state.mark = mark
        finished = state.add(sweep, new)
        if finished:
            state.summarize(sweep)
        counts = count_trials(tally)
        return _Polled(sweep, SweepView(sweep, counts, *state.search, *timing(sweep, counts)), finished)

    def _nav_loader(self, user_id: int) -> Callable[[SweepTrial], str]:
        def nav(trial: SweepTrial) -> str:
            with self.sessions() as session:
                return SweepRepository(session, user_id).nav(trial.id)

        return nav


# The trials a watch reports (TRIAL): with a result or failed. None of them changes again — every
# write to a trial is conditional on it being QUEUED or RUNNING.
_FINISHED = (TrialStatus.DONE.value, TrialStatus.FAILED.value, TrialStatus.CACHED.value)


class _WatchState:
    """What one watch stream has read of its sweep: the finished trials (each read and decoded
    once, as they never change), their rankings per search, the search summary and the best's NAV
    (_LastNav). The sweep row and the trials per status are read again at every poll, so what any
    replica writes shows at the next poll and nothing kept here goes stale."""

    def __init__(self, sweep: Sweep, rows: Sequence[SweepTrial], view: SweepView, nav: _LastNav) -> None:
        self.spec = search_spec(json.loads(sweep.spec_json), 10**9)
        self.phase = _search_phase(self.spec)
        self.mark: tuple[Any, ...] = ()
        self.known: set[int] = set()
        self.groups: dict[tuple[int, str], list[TrialView]] = {}  # (fold, phase) → finished trials
        self.search_folds = {t.fold for t in rows if t.phase == self.phase}
        self.search: tuple[TrialView | None, int, float | None] = (view.best, view.evaluated, view.deflated_sharpe)
        self.nav = nav
        self.add(sweep, [t for t in rows if t.status in _FINISHED])

    def add(self, sweep: Sweep, rows: Sequence[SweepTrial]) -> list[TrialView]:
        """Takes in trials finished since the last call; returns them ranked in their searches,
        in ``rows``' order. Only their searches are ranked again, as fresh views (views handed out
        before keep their rank)."""
        for t in rows:
            self.known.add(t.id)
            self.groups.setdefault((t.fold, t.phase), []).append(_view(sweep, t))
            if t.phase == self.phase:
                self.search_folds.add(t.fold)
        ranked: dict[int, TrialView] = {}
        for key in {(t.fold, t.phase) for t in rows}:
            fresh = [TrialView(v.row, v.params, v.metrics) for v in self.groups[key]]
            rank_search(self.spec, fresh)
            self.groups[key] = fresh
            ranked.update((v.row.id, v) for v in fresh)
        return [ranked[t.id] for t in rows]

    def summarize(self, sweep: Sweep) -> None:
        """The search summary again, after trials finished."""
        folds = {f: self.groups.get((f, self.phase), []) for f in self.search_folds}
        self.search = search_summary(sweep, self.spec, folds, self.nav)


class _LastNav:
    """A NAV loader that keeps the last NAV it read: the best's, read again when the best changes
    (a finished trial's NAV never changes)."""

    def __init__(self, load: Callable[[SweepTrial], str]) -> None:
        self.load = load
        self.trial_id = 0
        self.nav = ""

    def __call__(self, trial: SweepTrial) -> str:
        if trial.id != self.trial_id:
            self.trial_id, self.nav = trial.id, self.load(trial)
        return self.nav


@dataclass
class _Polled:
    sweep: Sweep
    view: SweepView | None
    finished: list[TrialView]


def _groups(views: Sequence[TrialView]) -> dict[tuple[int, str], list[TrialView]]:
    out: dict[tuple[int, str], list[TrialView]] = {}
    for v in views:
        out.setdefault((v.row.fold, v.row.phase), []).append(v)
    return out


# ---------------------------------------------------------------------------- summaries

def count_trials(tally: Mapping[str, int]) -> Counts:
    """Counts from trials per status."""
    return Counts(queued=tally.get(TrialStatus.QUEUED.value, 0), running=tally.get(TrialStatus.RUNNING.value, 0),
                  done=tally.get(TrialStatus.DONE.value, 0), failed=tally.get(TrialStatus.FAILED.value, 0),
                  cached=tally.get(TrialStatus.CACHED.value, 0), skipped=tally.get(TrialStatus.SKIPPED.value, 0))


def search_summary(sweep: Sweep, spec: SweepSpec, folds: Mapping[int, Sequence[TrialView]],
                   nav_of: Callable[[SweepTrial], str]) -> tuple[TrialView | None, int, float | None]:
    """The best ranked trial of the latest fold with one (what would be traded next), how many
    trials of that fold's search have a result, and the best's deflated Sharpe ratio
    (sweeplib.overfit, from its NAV — ``nav_of`` loads it — and the search's Sharpe ratios).
    ``folds``: each fold's search trials (those without a result or failure do not count)."""
    best: TrialView | None = None
    group: Sequence[TrialView] = []
    for f in sorted(folds, reverse=True):
        group = folds[f]
        best = _best(spec, group)
        if best is not None:
            break
    evaluated = [v for v in group if v.row.status in TRIAL_WITH_RESULT]
    dsr: float | None = None
    if best is not None and len(evaluated) >= 2:
        config = json.loads(sweep.config_json)
        annual = int(config.get("annualization") or 252)
        sharpes = [per_period_sharpe(s, annual) for v in evaluated
                   if (s := _finite((v.metrics or {}).get("sharpe_ratio"))) is not None]
        nav = _loads(nav_of(best.row), {}).get("nav") or []
        if nav and len(sharpes) >= 2:
            rf_daily = float(config.get("risk_free_rate") or 0.0) / annual
            found = deflated_sharpe(nav_returns(nav, float(config["initial_capital"])), sharpes,
                                    risk_free_per_period=rf_daily)
            dsr = found.dsr if found is not None else None
    return best, len(evaluated), dsr


def timing(sweep: Sweep, counts: Counts, now: datetime | None = None) -> tuple[float, float | None]:
    """Elapsed seconds and the ETA (from the pace of the trials run so far)."""
    now = now or utcnow()
    start = sweep.started_at or sweep.created_at
    end = sweep.completed_at if sweep.completed_at is not None else now
    elapsed = max(0.0, (end - start).total_seconds()) if sweep.started_at else 0.0
    eta: float | None = None
    ran = counts.done + counts.failed
    left = counts.queued + counts.running
    if sweep.status in {s.value for s in SWEEP_ACTIVE} and ran > 0 and elapsed > 0:
        eta = elapsed / ran * left
    return elapsed, eta


def summarize(sweep: Sweep, trials: Sequence[SweepTrial], nav_of: Callable[[SweepTrial], str],
              now: datetime | None = None) -> SweepView:
    """Counts, the search's best and deflated Sharpe ratio (search_summary), elapsed time and ETA."""
    counts = count_trials(Counter(t.status for t in trials))
    spec = search_spec(json.loads(sweep.spec_json), 10**9)
    phase = _search_phase(spec)
    folds: dict[int, list[TrialView]] = {}
    for t in trials:
        if t.phase == phase:
            folds.setdefault(t.fold, []).append(_view(sweep, t))
    best, evaluated, dsr = search_summary(sweep, spec, folds, nav_of)
    return SweepView(sweep, counts, best, evaluated, dsr, *timing(sweep, counts, now))


def folds_view(sweep: Sweep, spec: SweepSpec, trials: Sequence[SweepTrial]) -> FoldsView:
    folds = json.loads(sweep.folds_json or "[]")
    views = [_view(sweep, t) for t in trials]
    out: list[FoldView] = []
    segments: list[Segment] = []
    initial = float(json.loads(sweep.config_json)["initial_capital"])
    for f in folds if spec.validation.kind != "none" else []:
        fv = FoldView(f["index"], f["train_start"], f["train_end"], f["test_start"], f["test_end"])
        fv.best = _best(spec, [v for v in views if v.row.fold == f["index"] and v.row.phase == IN_SAMPLE])
        oos = [v for v in views if v.row.fold == f["index"] and v.row.phase == OUT_OF_SAMPLE]
        fv.out_of_sample = oos[0] if oos else None
        if fv.out_of_sample is not None and fv.out_of_sample.row.status in TRIAL_WITH_RESULT:
            nav = _loads(fv.out_of_sample.row.nav_json, {})
            segments.append(Segment(nav.get("dates") or [], nav.get("nav") or [], initial))
        out.append(fv)
    stitched = stitch(segments, initial)
    total = stitched.equity[-1] / initial - 1 if stitched.equity else None
    sharpe = None
    if len(stitched.returns) >= 2:
        sd = statistics.stdev(stitched.returns)
        if sd > 0:
            annual = int(json.loads(sweep.config_json).get("annualization") or 252)
            sharpe = math.sqrt(annual) * statistics.fmean(stitched.returns) / sd
    return FoldsView(spec.validation.kind, out, stitched.dates, stitched.equity, total, sharpe)


# ---------------------------------------------------------------------------- planning

def plan(session: Session, sweep: Sweep, spec: SweepSpec | None = None) -> bool:
    """Move the sweep's searches on, in the caller's transaction: create the next trials (a TPE
    generation, a fold's out-of-sample run), skip what an early stop makes pointless, and end the
    sweep when nothing is left. Returns True when it changed anything.

    Only one planner acts on a step: the sweep row is locked (PostgreSQL), and ``generations`` is
    advanced with a conditional UPDATE before any trial is inserted (SQLite's writer lock makes
    the later of two concurrent planners fail that condition)."""
    if session.get_bind().dialect.name == "postgresql" and sweep.id is not None:
        session.execute(select(Sweep.id).where(Sweep.id == sweep.id).with_for_update())
        session.refresh(sweep)
    if sweep.status not in {s.value for s in SWEEP_ACTIVE}:
        return False
    spec = spec or search_spec(json.loads(sweep.spec_json), 10**9)
    # Statuses only (the runner plans after every batch): a search's params and results are read
    # when a rule needs them.
    repo = SweepRepository(session, sweep.user_id)
    trials = repo.trial_states(sweep)
    folds = json.loads(sweep.folds_json)
    phase = _search_phase(spec)
    now = utcnow()
    new: list[tuple[int, str, int, str, str, dict[str, Any]]] = []  # fold, phase, seq, start, end, params
    skip_ids: list[int] = []
    for f in folds:
        k = int(f["index"])
        mine = [t for t in trials if t.fold == k and t.phase == phase]
        # Only an early stop and TPE read the history; a grid's plan after each batch skips it.
        history = [TrialRecord(t.seq, json.loads(t.params_json),
                               search_value(TrialResult(t.seq, json.loads(t.params_json),
                                                        _loads(t.metrics_json, None)
                                                        if t.status in TRIAL_WITH_RESULT else None),
                                            spec.objective, spec.result_constraints))
                   for t in repo.search_rows(sweep, k, phase)
                   if t.status in TRIAL_WITH_RESULT or t.status == TrialStatus.FAILED.value
                   ] if spec.target is not None or spec.method == "tpe" else []
        if spec.target_reached(history):
            skip_ids += [t.id for t in mine if t.status == TrialStatus.QUEUED.value]
        unfinished = any(t.status in (TrialStatus.QUEUED.value, TrialStatus.RUNNING.value) and t.id not in skip_ids
                         for t in mine)
        if unfinished:
            continue
        planned: list[tuple[int, dict[str, Any]]] = []
        if not spec.target_reached(history):
            if spec.method == "tpe":
                generation = -(-len(mine) // spec.generation_size)
                planned = [(p.number, p.params) for p in plan_generation(spec, generation, history)]
            elif not mine:
                planned = list(enumerate(Sweeps._static_points(spec)))
        if planned:
            new += [(k, phase, seq, f["train_start"], f["train_end"], p) for seq, p in planned]
            continue
        if phase == IN_SAMPLE and not any(t.fold == k and t.phase == OUT_OF_SAMPLE for t in trials):
            best = _best(spec, [_view(sweep, t) for t in repo.search_rows(sweep, k, phase)])
            if best is not None:
                new.append((k, OUT_OF_SAMPLE, -1, f["test_start"], f["test_end"], best.params))
    if skip_ids:
        session.execute(update(SweepTrial).where(SweepTrial.id.in_(skip_ids),
                                                 SweepTrial.status == TrialStatus.QUEUED.value)
                        .values(status=TrialStatus.SKIPPED.value, finished_at=now)
                        .execution_options(synchronize_session=False))
    if new:
        g = sweep.generations
        won = session.execute(update(Sweep).where(Sweep.id == sweep.id, Sweep.generations == g)
                              .values(generations=g + 1, updated_at=now)
                              .execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]
        if won != 1:
            return bool(skip_ids)
        sweep.generations = g + 1
        _insert_trials(session, sweep, new, max((t.number for t in trials), default=0), now)
        return True
    busy = any(t.status in (TrialStatus.QUEUED.value, TrialStatus.RUNNING.value) and t.id not in skip_ids
               for t in trials)
    if busy:
        return bool(skip_ids)
    with_result = any(t.status in TRIAL_WITH_RESULT for t in trials)
    status = SweepStatus.COMPLETED if with_result else SweepStatus.FAILED
    message = "" if with_result else "no trial produced a result (see the trials' error_message)"
    session.execute(update(Sweep).where(Sweep.id == sweep.id, Sweep.status.in_([s.value for s in SWEEP_ACTIVE]))
                    .values(status=status.value, error_message=message, updated_at=now, completed_at=now,
                            started_at=sweep.started_at or now)
                    .execution_options(synchronize_session=False))
    sweep.status = status.value
    return True


def _insert_trials(session: Session, sweep: Sweep, new: list[tuple[int, str, int, str, str, dict[str, Any]]],
                   last_number: int, now: datetime) -> None:
    config = json.loads(sweep.config_json)
    base = json.loads(sweep.params_json or "{}")
    keys = [cache_key(sweep.strategy_code, {**config, "start_date": s, "end_date": e}, {**base, **p},
                      sweep.data_hash, sweep.engine_version) for _, _, _, s, e, p in new]
    cached = SweepRepository(session, sweep.user_id).cached_results(keys)
    spec = search_spec(json.loads(sweep.spec_json), 10**9)
    for n, ((fold, phase, seq, start, end, params), key) in enumerate(zip(new, keys, strict=True), start=1):
        hit = cached.get(key)
        row = SweepTrial(sweep_id=sweep.id, user_id=sweep.user_id, number=last_number + n, seq=seq, fold=fold,
                         phase=phase, start_date=start, end_date=end,
                         params_json=json.dumps(params, separators=(",", ":"), ensure_ascii=False), cache_key=key,
                         status=TrialStatus.QUEUED.value, created_at=now)
        if hit is not None:
            metrics = _loads(hit.metrics_json, {})
            row.status = TrialStatus.CACHED.value
            row.metrics_json, row.nav_json, row.trades = hit.metrics_json, hit.nav_json, hit.trades
            row.objective = objective_value(metrics, spec.objective)
            row.finished_at = now
        session.add(row)
    session.flush()
