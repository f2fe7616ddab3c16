"""Helpers shared by task_svc's tests (a uniquely named module: every test directory has its
own conftest.py, so tests must not import helpers from "conftest")."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from zquant.backtest.v1 import strategy_pb2_grpc, task_pb2, task_pb2_grpc
from zquant.engine.v1 import engine_pb2

from task_svc.app import TaskApp


class Api:
    """Stubs that add `authorization: Bearer <token>` to every call."""

    def __init__(self, channel: grpc.Channel, token: str) -> None:
        self.metadata = (("authorization", f"Bearer {token}"),)
        self.tasks = _Authed(task_pb2_grpc.TaskServiceStub(channel), self.metadata)
        self.strategies = _Authed(strategy_pb2_grpc.StrategyServiceStub(channel), self.metadata)


class _Authed:
    def __init__(self, stub: object, metadata: tuple[tuple[str, str], ...]) -> None:
        self._stub, self._metadata = stub, metadata

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._stub, name)

        def call(request: Any, timeout: float | None = 10.0) -> Any:
            return method(request, metadata=self._metadata, timeout=timeout)

        return call



def run_request(**overrides: Any) -> task_pb2.RunBacktestRequest:
    """A valid RunBacktest request with inline code; `fake` scripts the fake engine."""
    from google.protobuf import struct_pb2
    from zquant.engine.v1 import engine_pb2

    fake = overrides.pop("fake", {})
    config = overrides.pop("config", {})
    params = struct_pb2.Struct()
    params.update({"window": 5, "fake": fake})
    cfg = {"start_date": "2024-01-01", "end_date": "2024-03-31", "symbols": ["600000.SH"], **config}
    req = task_pb2.RunBacktestRequest(strategy_code=SIMPLE_CODE, strategy_name="t", params=params,
                                      config=engine_pb2.BacktestConfig(**cfg))
    for key, value in overrides.items():
        setattr(req, key, value)
    return req


SIMPLE_CODE = '''from zquant.backtest.strategy import BaseStrategy


class Strategy(BaseStrategy):
    def initialize(self):
        self.window = self.params.get("window", 20)

    def on_bar(self, context, bar_data):
        pass
'''


def wait_status(api: Api, task_id: int, *statuses: int, timeout: float = 10.0) -> task_pb2.Task:
    deadline = time.monotonic() + timeout
    task = api.tasks.GetTask(task_pb2.GetTaskRequest(task_id=task_id))
    while task.status not in statuses:
        if time.monotonic() > deadline:
            raise AssertionError(f"task {task_id} is {task_pb2.Task.Status.Name(task.status)}, expected "
                                 f"{[task_pb2.Task.Status.Name(s) for s in statuses]}")
        time.sleep(0.05)
        task = api.tasks.GetTask(task_pb2.GetTaskRequest(task_id=task_id))
    return task


def insert_task(app: TaskApp, *, user_id: int = 1, fake: dict[str, Any] | None = None, **columns: Any) -> int:
    """Writes a task row directly, as another (possibly dead) replica would have left it."""
    from task_svc.models import Task, utcnow
    from task_svc.tasks import config_json

    config = engine_pb2.BacktestConfig(
        start_date="2024-01-01", end_date="2024-03-31", initial_capital=1_000_000.0, symbols=["600000.SH"],
        frequency="daily", adjust_type="qfq", commission_rate=0.0003, min_commission=5.0, tax_rate=0.001,
        slippage_rate=0.001, benchmark="", use_daily_basic=False, annualization=252, risk_free_rate=0.0)
    now = utcnow()
    values: dict[str, Any] = dict(
        user_id=user_id, strategy_id=None, strategy_name="inserted", strategy_code=SIMPLE_CODE,
        params_json=json.dumps({"fake": fake or {}}), config_json=config_json(config), start_date="2024-01-01",
        end_date="2024-03-31", status="PENDING", error_message="", progress=0.0, equity=0.0, current_date="",
        attempts=0, retries=0, created_at=now, updated_at=now)
    values.update(columns)
    with app.sessions.begin() as session:
        task = Task(**values)
        session.add(task)
        session.flush()
        return task.id


def db_task(app: TaskApp, task_id: int) -> Any:
    from task_svc.models import Task

    with app.sessions() as session:
        return session.get(Task, task_id)


def expect(fn: Callable[[], Any], code: grpc.StatusCode) -> grpc.RpcError:
    """Calls fn, which must fail with the gRPC status `code`; returns the error."""
    with pytest.raises(grpc.RpcError) as info:
        fn()
    assert info.value.code() == code, info.value.details()  # type: ignore[attr-defined]
    return info.value
