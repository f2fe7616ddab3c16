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
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf import json_format, struct_pb2
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker
from zquant.engine.v1 import engine_pb2

from services.db import make_read_session_factory, transaction
from services.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted, Unavailable
from services.paging import Page, parse_page
from services.param_numbers import params_from_struct
from services.principal import Principal
from services.tracing import current_carrier
from task_svc.config import TaskSettings
from task_svc.engine_client import EngineClient, EngineRejected, EngineUnavailable
from task_svc.events import DELETED, Publisher, TaskHint
from task_svc.models import Result, Strategy, Task, TaskRow, TaskStatus, utcnow
from task_svc.repository import RESULT_ORDER, TASK_ORDER, StrategyRepository, TaskRepository, watched_tasks

CANCELLED_MESSAGE = "cancelled by the user"


_CONFIG_FIELDS = frozenset(f.name for f in engine_pb2.BacktestConfig.DESCRIPTOR.fields)


def stored_json(raw: str) -> Any:
    """JSON this service stored (params_json, config_json): orjson, 4× faster than json (a
    ListTasks page reads 200 of them); json for what orjson refuses but json.dumps may have
    written (NaN, integers beyond 64 bits)."""
    try:
        return orjson.loads(raw or "{}")
    except orjson.JSONDecodeError:
        return json.loads(raw)


def stored_config_fields(raw: str) -> dict[str, Any]:
    """A task's stored config (the engine's normalized config, every field set) as the
    BacktestConfig constructor's keywords — or a Task's `config` value as is, which spares a
    message copy. Unknown keys are ignored: config_json outlives code changes. (json_format.Parse
    costs 0.5 ms a config.)"""
    return {k: v for k, v in stored_json(raw).items() if k in _CONFIG_FIELDS and v is not None}


def stored_config(raw: str) -> engine_pb2.BacktestConfig:
    return engine_pb2.BacktestConfig(**stored_config_fields(raw))


def config_json(config: engine_pb2.BacktestConfig) -> str:
    return json.dumps(json_format.MessageToDict(config, preserving_proto_field_name=True), separators=(",", ":"))


@dataclass
class RunRequest:
    strategy_id: int = 0
    strategy_code: str = ""
    strategy_name: str = ""
    params: struct_pb2.Struct = field(default_factory=struct_pb2.Struct)
    # As submitted; the engine's ValidateBacktest judges it and fills in the defaults.
    config: engine_pb2.BacktestConfig = field(default_factory=engine_pb2.BacktestConfig)


def _hint(task: Task, kind: str = "status") -> TaskHint:
    return TaskHint(task.id, task.user_id, task.status, kind, task.progress)


class Tasks:
    """The task RPCs' rules. ``on_cancel(task_id)`` tells the local dispatcher at once (other
    replicas learn through the published hint)."""

    def __init__(self, session_factory: sessionmaker[Session], engine: EngineClient, publisher: Publisher,
                 settings: TaskSettings) -> None:
        self.sessions = session_factory
        self.reads = make_read_session_factory(session_factory)  # reads of one statement
        self.engine = engine
        self.publisher = publisher
        self.settings = settings

    # ------------------------------------------------------------------ submit
    def submit(self, who: Principal, req: RunRequest) -> Task:
        """Stores a PENDING task for a request the engine has judged valid. Every rule about the
        config, its symbols, the params and the code is the engine's (ValidateBacktest): bad
        input is a 400 here, never a FAILED task later."""
        code = req.strategy_code
        if req.strategy_id <= 0 and not code.strip():
            raise InvalidArgument([("strategy_id", "strategy_id or strategy_code is required")],
                                  message="strategy_id or strategy_code is required")
        if len(req.strategy_name) > 200:
            raise InvalidArgument.field("strategy_name", "must be at most 200 characters")

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

        # Library code was validated when it was saved: only code sent now is checked again.
        config = self.validate_on_engine(req.strategy_code, req.params, req.config)
        # Whole numbers stay ints (services.param_numbers): 5, not 5.0, in the task's params.
        params_json = json.dumps(params_from_struct(req.params), separators=(",", ":"), ensure_ascii=False)

        with transaction(self.sessions) as session:
            repo = TaskRepository(session, who.user_id)
            self._lock_user(session, who.user_id)
            self._check_quotas(repo)
            now = utcnow()  # after the per-user lock: created_at is when the row is written
            task = repo.add(Task(
                strategy_id=strategy.id if strategy else (req.strategy_id or None), strategy_name=name,
                strategy_code=code, params_json=params_json, config_json=config_json(config),
                start_date=config.start_date, end_date=config.end_date,
                status=TaskStatus.PENDING.value, error_message="", failure_kind="", failure_line=0,
                progress=0.0, equity=0.0, current_date="", attempts=0, retries=0, created_at=now, updated_at=now,
                trace_context=current_carrier()))
        self.publisher.publish([_hint(task)])
        return task

    def validate_on_engine(self, code: str, params: struct_pb2.Struct, config: engine_pb2.BacktestConfig,
                           violations: list[tuple[str, str]] | None = None) -> engine_pb2.BacktestConfig:
        """The engine's normalized config, or INVALID_ARGUMENT with the engine's violations after
        ``violations`` found here (all problems in one answer); UNAVAILABLE if it can't be asked.
        Empty ``code`` is not checked."""
        try:
            found, normalized = self.engine.validate_backtest(code, params, config)
        except (EngineUnavailable, EngineRejected) as exc:
            raise Unavailable(f"the backtest cannot be validated now, try again later: {exc}") from None
        found = [*(violations or []), *found]
        if found:
            raise InvalidArgument(found)
        return normalized

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

    # ------------------------------------------------------------------ read
    def list_tasks(self, who: Principal, skip: int, limit: int, order_by: str, order: str,
                   status: TaskStatus | None, search: str = "") -> tuple[list[TaskRow], int]:
        page = parse_page(skip, limit, order_by, order, TASK_ORDER.keys())
        if len(search) > 200:
            raise InvalidArgument.field("search", "must be at most 200 characters")
        with self.reads() as session:
            return TaskRepository(session, who.user_id).list_page(page, status, search.strip())

    def get(self, who: Principal, task_id: int) -> Task:
        with self.reads() as session:
            task = TaskRepository(session, who.user_id).get(task_id)
        if task is None:
            raise NotFound(f"task {task_id} not found")
        return task

    def find_many(self, keys: list[tuple[int, int]]) -> dict[tuple[int, int], Task]:
        """Rows by (user_id, task_id); a pair with no row (gone, or not that user's) is absent."""
        with self.sessions() as session:
            return {(t.user_id, t.id): t for t in watched_tasks(session, keys)}

    def active_tasks(self, user_id: int) -> list[TaskRow]:
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
