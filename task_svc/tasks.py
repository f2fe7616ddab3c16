"""Backtest tasks: submission rules, the state machine, quotas, results.

State machine (the conditional UPDATEs in repository.py are its enforcement — every write
names the status it expects, so two writers can never both win):

    PENDING → RUNNING | CANCELLED
    RUNNING → COMPLETED | FAILED | CANCELLED | PENDING (lease expired or engine unreachable:
                                                       run again from the start)
    COMPLETED, FAILED, CANCELLED: terminal, nothing leaves them.

Status is data: every change is committed, then a hint is published (events.py).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from services.db import transaction
from services.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted, Unavailable
from services.paging import Page, parse_page
from services.principal import Principal
from task_svc.config import TaskSettings
from task_svc.engine_client import EngineClient, EngineRejected, EngineUnavailable
from task_svc.events import DELETED, Publisher, TaskHint
from task_svc.models import Result, Strategy, Task, TaskStatus, utcnow
from task_svc.repository import RESULT_ORDER, TASK_ORDER, StrategyRepository, TaskRepository
from task_svc.strategies import check_code_locally, validate_code_on_engine

CANCELLED_MESSAGE = "cancelled by the user"
MAX_SYMBOLS = 1000
MAX_PARAMS_BYTES = 256 * 1024
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SYMBOL_RE = re.compile(r"^[0-9A-Z]{6}\.(SH|SZ|BJ)$")
ADJUST_TYPES = ("qfq", "hfq", "none")


@dataclass
class ConfigInput:
    """BacktestConfig as submitted: None means "not set, use the default"."""

    start_date: str = ""
    end_date: str = ""
    initial_capital: float | None = None
    symbols: list[str] = field(default_factory=list)
    frequency: str = ""
    adjust_type: str = ""
    commission_rate: float | None = None
    min_commission: float | None = None
    tax_rate: float | None = None
    slippage_rate: float | None = None
    benchmark: str = ""
    use_daily_basic: bool = False
    annualization: int | None = None
    risk_free_rate: float | None = None


@dataclass(frozen=True)
class BacktestSettings:
    """A validated config with every default filled in (what is stored and sent to the engine)."""

    start_date: str
    end_date: str
    initial_capital: float
    symbols: list[str]
    frequency: str
    adjust_type: str
    commission_rate: float
    min_commission: float
    tax_rate: float
    slippage_rate: float
    benchmark: str
    use_daily_basic: bool
    annualization: int
    risk_free_rate: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> BacktestSettings:
        """Tolerates rows written by other versions: missing keys get today's defaults,
        unknown keys are ignored (config_json outlives code changes)."""
        stored = json.loads(raw)
        known = {k: v for k, v in stored.items() if k in cls.__dataclass_fields__}
        return cls(**{**_STORED_DEFAULTS, **known})


_STORED_DEFAULTS: dict[str, Any] = {
    "start_date": "", "end_date": "", "initial_capital": 1_000_000.0, "symbols": [], "frequency": "daily",
    "adjust_type": "qfq", "commission_rate": 0.0003, "min_commission": 5.0, "tax_rate": 0.001,
    "slippage_rate": 0.001, "benchmark": "", "use_daily_basic": False, "annualization": 252,
    "risk_free_rate": 0.0,
}


@dataclass
class RunRequest:
    strategy_id: int = 0
    strategy_code: str = ""
    strategy_name: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    config: ConfigInput = field(default_factory=ConfigInput)


def _parse_date(value: str, name: str, out: list[tuple[str, str]]) -> date | None:
    if not value:
        out.append((name, "is required (YYYY-MM-DD)"))
        return None
    if not _DATE_RE.match(value):
        out.append((name, f"must be YYYY-MM-DD, got {value!r}"))
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        out.append((name, f"is not a valid date: {value!r}"))
        return None


def _ranged(value: float | None, default: float, name: str, ok: Callable[[float], bool], rule: str,
            out: list[tuple[str, str]]) -> float:
    if value is None:
        return default
    if not math.isfinite(value) or not ok(value):
        out.append((name, f"must be {rule}, got {value!r}"))
    return float(value)


def validate_config(cfg: ConfigInput) -> BacktestSettings:
    """Every rule of rest-api.md's config table that needs no market data; all problems at once."""
    v: list[tuple[str, str]] = []
    start = _parse_date(cfg.start_date, "config.start_date", v)
    end = _parse_date(cfg.end_date, "config.end_date", v)
    if start and end and start > end:
        v.append(("config.end_date", f"must be on or after start_date ({cfg.start_date})"))
    capital = _ranged(cfg.initial_capital, 1_000_000.0, "config.initial_capital",
                      lambda x: 0 < x <= 1e13, "> 0", v)
    symbols: list[str] = []
    for raw in cfg.symbols:
        s = raw.strip().upper()
        if not _SYMBOL_RE.match(s):
            v.append(("config.symbols", f"{raw!r} is not a symbol like 600000.SH"))
        elif s not in symbols:
            symbols.append(s)
    if not cfg.symbols:
        v.append(("config.symbols", "at least one symbol is required"))
    elif len(symbols) > MAX_SYMBOLS:
        v.append(("config.symbols", f"at most {MAX_SYMBOLS} symbols"))
    frequency = (cfg.frequency or "daily").strip().lower()
    if frequency != "daily":
        v.append(("config.frequency", f"only 'daily' is supported, got {cfg.frequency!r}"))
    adjust = (cfg.adjust_type or "qfq").strip().lower()
    if adjust not in ADJUST_TYPES:
        v.append(("config.adjust_type", f"must be one of qfq, hfq, none; got {cfg.adjust_type!r}"))
    fraction = (lambda x: 0 <= x < 0.1, "0 ≤ x < 0.1")
    commission = _ranged(cfg.commission_rate, 0.0003, "config.commission_rate", *fraction, v)
    min_commission = _ranged(cfg.min_commission, 5.0, "config.min_commission", lambda x: x >= 0, "≥ 0", v)
    tax = _ranged(cfg.tax_rate, 0.001, "config.tax_rate", *fraction, v)
    slippage = _ranged(cfg.slippage_rate, 0.001, "config.slippage_rate", *fraction, v)
    benchmark = cfg.benchmark.strip().upper()
    if benchmark and not _SYMBOL_RE.match(benchmark):
        v.append(("config.benchmark", f"{cfg.benchmark!r} is not an index symbol like 000300.SH"))
    annualization = 252
    if cfg.annualization is not None:
        annualization = int(cfg.annualization)
        if not 1 <= annualization <= 366:
            v.append(("config.annualization", f"must be 1–366, got {cfg.annualization}"))
    rf = _ranged(cfg.risk_free_rate, 0.0, "config.risk_free_rate", lambda x: 0 <= x <= 1, "0 ≤ x ≤ 1", v)
    if v:
        raise InvalidArgument(v)
    return BacktestSettings(
        start_date=cfg.start_date, end_date=cfg.end_date, initial_capital=capital, symbols=symbols,
        frequency=frequency, adjust_type=adjust, commission_rate=commission, min_commission=min_commission,
        tax_rate=tax, slippage_rate=slippage, benchmark=benchmark, use_daily_basic=cfg.use_daily_basic,
        annualization=annualization, risk_free_rate=rf)


def _hint(task: Task, kind: str = "status") -> TaskHint:
    return TaskHint(task.id, task.user_id, task.status, kind, task.progress)


class Tasks:
    """The task RPCs' rules. ``on_cancel(task_id)`` tells the local dispatcher at once (other
    replicas learn through the published hint)."""

    def __init__(self, session_factory: sessionmaker[Session], engine: EngineClient, publisher: Publisher,
                 settings: TaskSettings) -> None:
        self.sessions = session_factory
        self.engine = engine
        self.publisher = publisher
        self.settings = settings

    # ------------------------------------------------------------------ submit
    def submit(self, who: Principal, req: RunRequest) -> Task:
        code = req.strategy_code
        if req.strategy_id <= 0 and not code.strip():
            raise InvalidArgument([("strategy_id", "strategy_id or strategy_code is required")],
                                  message="strategy_id or strategy_code is required")
        violations: list[tuple[str, str]] = []
        if code.strip():
            violations += [("strategy_code", why) for _, why in check_code_locally(code)]
        if len(req.strategy_name) > 200:
            violations.append(("strategy_name", "must be at most 200 characters"))
        params_json = json.dumps(req.params, separators=(",", ":"), ensure_ascii=False)
        if len(params_json.encode()) > MAX_PARAMS_BYTES:
            violations.append(("params", "must be at most 256 KB as JSON"))
        try:
            settings = validate_config(req.config)
        except InvalidArgument as exc:
            violations += exc.violations
        if violations:
            raise InvalidArgument(violations)

        name = req.strategy_name.strip()
        strategy: Strategy | None = None
        if req.strategy_id > 0:
            with self.sessions() as session:
                strategy = StrategyRepository(session, who.user_id).get_visible(req.strategy_id)
            if strategy is None:
                raise NotFound(f"strategy {req.strategy_id} not found")
            if not code.strip():
                code = strategy.code
            name = name or strategy.name
        name = name or "custom"

        # Cheap quota check before asking the engine anything; repeated at insert time.
        with self.sessions() as session:
            self._check_quotas(TaskRepository(session, who.user_id))

        self._check_symbols(settings)
        if req.strategy_code.strip():
            validate_code_on_engine(self.engine, code, field="strategy_code")

        with transaction(self.sessions) as session:
            repo = TaskRepository(session, who.user_id)
            self._lock_user(session, who.user_id)
            self._check_quotas(repo)
            now = utcnow()  # after the per-user lock: created_at is when the row is written
            task = repo.add(Task(
                strategy_id=strategy.id if strategy else (req.strategy_id or None), strategy_name=name,
                strategy_code=code, params_json=params_json, config_json=settings.to_json(),
                start_date=settings.start_date, end_date=settings.end_date,
                status=TaskStatus.PENDING.value, error_message="", progress=0.0, equity=0.0,
                current_date="", attempts=0, retries=0, created_at=now, updated_at=now))
        self.publisher.publish([_hint(task)])
        return task

    @staticmethod
    def _lock_user(session: Session, user_id: int) -> None:
        """PostgreSQL: serialise one user's submissions so the quota check can't be raced.
        (SQLite: a racing second writer fails its commit instead of exceeding the quota.)"""
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(7321, :u)"), {"u": user_id})

    def _check_quotas(self, repo: TaskRepository) -> None:
        if repo.count_active() >= self.settings.max_active_per_user:
            raise ResourceExhausted(
                f"too many active tasks: at most {self.settings.max_active_per_user} PENDING or RUNNING "
                "tasks per user; wait for some to finish or cancel them")
        if repo.count_pending_all_users() >= self.settings.max_pending:
            raise ResourceExhausted("the backtest queue is full, try again later")

    def _check_symbols(self, settings: BacktestSettings) -> None:
        wanted = [*settings.symbols, *([settings.benchmark] if settings.benchmark else [])]
        try:
            missing = set(self.engine.missing_symbols(wanted))
        except (EngineUnavailable, EngineRejected) as exc:
            raise Unavailable(f"market data cannot be checked now, try again later: {exc}") from None
        v: list[tuple[str, str]] = []
        unknown = [s for s in settings.symbols if s in missing]
        if unknown:
            v.append(("config.symbols", f"no market data for: {', '.join(unknown)}"))
        if settings.benchmark and settings.benchmark in missing:
            v.append(("config.benchmark", f"no market data for benchmark {settings.benchmark}"))
        if v:
            raise InvalidArgument(v)

    # ------------------------------------------------------------------ read
    def list_tasks(self, who: Principal, skip: int, limit: int, order_by: str, order: str,
                   status: TaskStatus | None, search: str = "") -> tuple[list[Task], int]:
        page = parse_page(skip, limit, order_by, order, TASK_ORDER.keys())
        if len(search) > 200:
            raise InvalidArgument.field("search", "must be at most 200 characters")
        with self.sessions() as session:
            return TaskRepository(session, who.user_id).list_page(page, status, search.strip())

    def get(self, who: Principal, task_id: int) -> Task:
        with self.sessions() as session:
            task = TaskRepository(session, who.user_id).get(task_id)
        if task is None:
            raise NotFound(f"task {task_id} not found")
        return task

    def find(self, user_id: int, task_id: int) -> Task | None:
        with self.sessions() as session:
            return TaskRepository(session, user_id).get(task_id)

    def active_tasks(self, user_id: int) -> list[Task]:
        with self.sessions() as session:
            repo = TaskRepository(session, user_id)
            pending, _ = repo.list_page(Page(0, 1000, "created_at", False), TaskStatus.PENDING)
            running, _ = repo.list_page(Page(0, 1000, "created_at", False), TaskStatus.RUNNING)
            return running + pending

    def result(self, who: Principal, task_id: int) -> tuple[Result, Task]:
        with self.sessions() as session:
            repo = TaskRepository(session, who.user_id)
            found = repo.get_result(task_id)
            if found is None:
                if repo.get(task_id) is None:
                    raise NotFound(f"task {task_id} not found")
                raise NotFound(f"task {task_id} has no result (it is not COMPLETED)")
            return found

    def list_results(self, who: Principal, skip: int, limit: int, order_by: str,
                     order: str) -> tuple[list[tuple[Result, str]], int]:
        page = parse_page(skip, limit, order_by, order, RESULT_ORDER.keys())
        with self.sessions() as session:
            return TaskRepository(session, who.user_id).list_results(page)

    # ------------------------------------------------------------------ change
    def cancel(self, who: Principal, task_id: int) -> Task:
        """PENDING → CANCELLED; RUNNING → CANCELLED, committed first — the dispatcher running
        it sees the change (hint, or its next conditional write failing) and kills the run."""
        with transaction(self.sessions) as session:
            repo = TaskRepository(session, who.user_id)
            cancelled = repo.cancel(task_id, CANCELLED_MESSAGE)
            task = repo.get(task_id)
        if task is None:
            raise NotFound(f"task {task_id} not found")
        if not cancelled:
            raise FailedPrecondition(f"task {task_id} is already {task.status}; only PENDING or RUNNING "
                                     "tasks can be cancelled")
        self.publisher.publish([_hint(task)])
        return task

    def delete(self, who: Principal, task_id: int) -> None:
        hints: list[TaskHint] = []
        with transaction(self.sessions) as session:
            repo = TaskRepository(session, who.user_id)
            task = repo.get(task_id)
            if task is None:
                raise NotFound(f"task {task_id} not found")
            if task.status == TaskStatus.RUNNING.value:
                # Cancel first so the runner's conditional writes fail even if the delete
                # below is seen later than the hint.
                repo.cancel(task_id, CANCELLED_MESSAGE)
            repo.delete(task)
            hints.append(TaskHint(task_id, who.user_id, DELETED, "deleted"))
        self.publisher.publish(hints)
