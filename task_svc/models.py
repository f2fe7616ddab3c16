"""task_svc's tables: strategies, tasks, results (SQLAlchemy 2 typed ORM).

Times are naive UTC everywhere (``utcnow()``): SQLite has no time zones, and one convention on
both databases keeps comparisons (lease expiry, not_before) identical.

Table names carry a ``backtest_`` prefix because several services may share one PostgreSQL
database (each owns its tables; see docs/architecture.md, "Services and what they own").

``user_id`` columns are plain integers, not foreign keys: users live in auth_svc's database.
User id 0 is the *system* owner of the seeded templates (no real user has id 0).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SYSTEM_USER_ID = 0  # owner of the seeded templates; any admin may edit those


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class TaskStatus(StrEnum):
    """PENDING → RUNNING (a replica claims it) → COMPLETED | FAILED; PENDING or RUNNING →
    CANCELLED; RUNNING → PENDING again when its lease expires or the engine is unavailable (at
    most ZQ_TASK_MAX_ATTEMPTS runs). The terminal three never change. Each transition is one
    UPDATE in repository.py conditional on the current status, which is what enforces it."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})
ACTIVE_STATUSES = frozenset({TaskStatus.PENDING, TaskStatus.RUNNING})


class TaskBase(DeclarativeBase):
    """task_svc's own declarative base: its metadata is exactly task_svc's tables."""


Base = TaskBase  # the name migrations/env.py imports


class Strategy(TaskBase):
    __tablename__ = "backtest_strategies"
    __table_args__ = (
        Index("ix_strategies_user_created", "user_id", "created_at"),
        Index("ix_strategies_template_created", "is_template", "created_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    category: Mapped[str] = mapped_column(String(50), nullable=False, default="")
    code: Mapped[str] = mapped_column(Text, nullable=False)
    params_schema: Mapped[str] = mapped_column(Text, nullable=False, default="")
    is_template: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)


class Task(TaskBase):
    __tablename__ = "backtest_tasks"
    __table_args__ = (
        CheckConstraint(
            "status IN ('PENDING','RUNNING','COMPLETED','FAILED','CANCELLED')", name="ck_tasks_status"
        ),
        # ListTasks: one index per sortable column behind user_id, so "WHERE user_id=? ORDER BY x
        # LIMIT n" is an index range scan even at 100k tasks per user.
        Index("ix_tasks_user_created", "user_id", "created_at", "id"),
        Index("ix_tasks_user_updated", "user_id", "updated_at", "id"),
        Index("ix_tasks_user_status", "user_id", "status", "created_at"),
        Index("ix_tasks_user_status_id", "user_id", "status", "id"),  # ORDER BY status, id
        Index("ix_tasks_user_id", "user_id", "id"),  # ORDER BY id
        Index("ix_tasks_user_name", "user_id", "strategy_name", "id"),
        # Dispatcher: the queue head and the expired-lease scan.
        Index("ix_tasks_status_created", "status", "created_at", "id"),
        Index("ix_tasks_status_lease", "status", "lease_expires_at"),
        {"sqlite_autoincrement": True},  # ids are never reused after a delete
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(Integer, nullable=False)
    # No foreign key: a task keeps its code snapshot when its strategy is deleted.
    strategy_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    strategy_name: Mapped[str] = mapped_column(String(200), nullable=False)
    strategy_code: Mapped[str] = mapped_column(Text, nullable=False)  # snapshot at submission
    params_json: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    config_json: Mapped[str] = mapped_column(Text, nullable=False)  # defaults filled in
    start_date: Mapped[str] = mapped_column(String(10), nullable=False)
    end_date: Mapped[str] = mapped_column(String(10), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=TaskStatus.PENDING.value)
    error_message: Mapped[str] = mapped_column(Text, nullable=False, default="")
    # TaskFailure.Kind name of a FAILED or CANCELLED task ("STRATEGY_ERROR", …); "" otherwise.
    failure_kind: Mapped[str] = mapped_column(String(32), nullable=False, default="")
    # W3C trace context (JSON of traceparent/tracestate) of the submitting call, so the run
    # continues its trace; None when tracing was off.
    trace_context: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Strategy line the failure points at; 0 when none.
    failure_line: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    progress: Mapped[float] = mapped_column(Double, nullable=False, default=0.0)
    equity: Mapped[float] = mapped_column(Double, nullable=False, default=0.0)
    current_date: Mapped[str] = mapped_column(String(10), nullable=False, default="")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Engine-unreachable retries (not charged as attempts); drives the exponential back-off.
    retries: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    not_before: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # "<replica>:<run token>" of the run holding the task; every runner write is conditional on it.
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class TaskTotal(TaskBase):
    """A user's number of tasks, kept by triggers on backtest_tasks in the writing transaction
    (migration 0009): the list's total without counting. The service never writes it."""

    __tablename__ = "backtest_task_totals"

    user_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    tasks: Mapped[int] = mapped_column(Integer, nullable=False)


class TaskRow(Protocol):
    """A task as the list shows it: an ORM `Task`, or a plain row of the listed columns
    (`repository.LIST_COLUMNS`), which a page is read as."""

    id: int
    user_id: int
    strategy_id: int | None
    strategy_name: str
    params_json: str
    config_json: str
    start_date: str
    end_date: str
    status: str
    error_message: str
    failure_kind: str
    failure_line: int
    progress: float
    equity: float
    current_date: str
    attempts: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


class Result(TaskBase):
    __tablename__ = "backtest_results"
    __table_args__ = (
        Index("ix_results_user_created", "user_id", "created_at", "id"),
        Index("ix_results_user_total_return", "user_id", "total_return"),
        Index("ix_results_user_annual_return", "user_id", "annual_return"),
        Index("ix_results_user_sharpe", "user_id", "sharpe_ratio"),
        Index("ix_results_user_max_drawdown", "user_id", "max_drawdown"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("backtest_tasks.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    user_id: Mapped[int] = mapped_column(Integer, nullable=False)  # copied from the task for scoping
    total_return: Mapped[float | None] = mapped_column(Double)
    annual_return: Mapped[float | None] = mapped_column(Double)
    max_drawdown: Mapped[float | None] = mapped_column(Double)
    sharpe_ratio: Mapped[float | None] = mapped_column(Double)
    win_rate: Mapped[float | None] = mapped_column(Double)
    profit_loss_ratio: Mapped[float | None] = mapped_column(Double)
    alpha: Mapped[float | None] = mapped_column(Double)
    beta: Mapped[float | None] = mapped_column(Double)
    metrics_json: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    trades_json: Mapped[str] = mapped_column(Text, nullable=False, default="[]")
    portfolio_json: Mapped[str] = mapped_column(Text, nullable=False, default="[]")
    # The engine's BacktestResult, serialized proto: GetPerformance returns it field for field.
    result_pb: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    engine_version: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    data_hash: Mapped[str] = mapped_column(String(128), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)


# ---------------------------------------------------------------------------- sweeps

class SweepStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


SWEEP_ACTIVE = frozenset({SweepStatus.PENDING, SweepStatus.RUNNING})


class TrialStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"
    CACHED = "CACHED"
    SKIPPED = "SKIPPED"


TRIAL_FINISHED = frozenset({TrialStatus.DONE, TrialStatus.FAILED, TrialStatus.CACHED, TrialStatus.SKIPPED})
TRIAL_WITH_RESULT = frozenset({TrialStatus.DONE, TrialStatus.CACHED})


class Sweep(TaskBase):
    """One parameter search. ``spec_json`` is the normalised request (what the planner reads);
    the trials are its rows in ``backtest_sweep_trials`` — the whole state of the search, so any
    replica continues it."""

    __tablename__ = "backtest_sweeps"
    __table_args__ = (
        CheckConstraint("status IN ('PENDING','RUNNING','COMPLETED','FAILED','CANCELLED')", name="ck_sweeps_status"),
        Index("ix_sweeps_user_created", "user_id", "created_at", "id"),
        Index("ix_sweeps_status", "status", "created_at", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(Integer, nullable=False)
    strategy_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    strategy_name: Mapped[str] = mapped_column(String(200), nullable=False)
    strategy_code: Mapped[str] = mapped_column(Text, nullable=False)
    config_json: Mapped[str] = mapped_column(Text, nullable=False)
    params_json: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    spec_json: Mapped[str] = mapped_column(Text, nullable=False)  # space, method, constraints, objective …
    request_json: Mapped[str] = mapped_column(Text, nullable=False)  # the request as submitted (echoed back)
    method: Mapped[str] = mapped_column(String(16), nullable=False)
    max_trials: Mapped[int] = mapped_column(Integer, nullable=False)
    max_parallel: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=SweepStatus.PENDING.value)
    error_message: Mapped[str] = mapped_column(Text, nullable=False, default="")
    # Planner generations created so far; the next one is made by whoever wins the conditional
    # UPDATE generation = g → g + 1 (one replica per generation).
    generations: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    engine_version: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    data_hash: Mapped[str] = mapped_column(String(128), nullable=False, default="")
    folds_json: Mapped[str] = mapped_column(Text, nullable=False, default="[]")
    not_before: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # W3C trace context (JSON of traceparent/tracestate) of the creating call, so every trial
    # batch's run continues its trace; None when tracing was off.
    trace_context: Mapped[str | None] = mapped_column(Text, nullable=True)


class SweepTrial(TaskBase):
    """One parameter set of a sweep. Claimed in batches like tasks are claimed (lease_owner is the
    batch's run token; every runner write is conditional on it, so a trial is counted once)."""

    __tablename__ = "backtest_sweep_trials"
    __table_args__ = (
        CheckConstraint("status IN ('QUEUED','RUNNING','DONE','FAILED','CACHED','SKIPPED')", name="ck_trials_status"),
        UniqueConstraint("sweep_id", "number", name="uq_trials_sweep_number"),
        Index("ix_trials_sweep_status", "sweep_id", "status", "number"),
        Index("ix_trials_status_lease", "status", "lease_expires_at"),
        Index("ix_trials_user_key", "user_id", "cache_key", "status"),
        Index("ix_trials_lease_owner", "lease_owner"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sweep_id: Mapped[int] = mapped_column(Integer, ForeignKey("backtest_sweeps.id", ondelete="CASCADE"), nullable=False)
    user_id: Mapped[int] = mapped_column(Integer, nullable=False)
    number: Mapped[int] = mapped_column(Integer, nullable=False)  # from 1, in the order trials were planned
    # The planner's number of the trial within its search (a fold's in-sample trials are one
    # search); -1 for an out-of-sample run.
    seq: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    fold: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    phase: Mapped[str] = mapped_column(String(16), nullable=False, default="FULL")
    start_date: Mapped[str] = mapped_column(String(10), nullable=False)
    end_date: Mapped[str] = mapped_column(String(10), nullable=False)
    params_json: Mapped[str] = mapped_column(Text, nullable=False)  # the swept parameters only
    # sha256 of (strategy code, normalised config with this trial's dates, params, data hash,
    # engine version): a DONE trial with the same key in any of the user's sweeps is reused.
    cache_key: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=TrialStatus.QUEUED.value)
    metrics_json: Mapped[str] = mapped_column(Text, nullable=False, default="")
    nav_json: Mapped[str] = mapped_column(Text, nullable=False, default="")  # {"dates": [...], "nav": [...]}
    objective: Mapped[float | None] = mapped_column(Double, nullable=True)
    trades: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    error_message: Mapped[str] = mapped_column(Text, nullable=False, default="")
    seconds: Mapped[float] = mapped_column(Double, nullable=False, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
