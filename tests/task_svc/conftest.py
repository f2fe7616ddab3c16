"""Fixtures for task_svc: each test module runs on SQLite and on PostgreSQL (a fresh database
per module), task_svc servers on free loopback ports, and a fake engine_svc."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import grpc
import pytest
from sqlalchemy import create_engine, text
from tasksvc_fakes import FakeEngineServer, TokenAuthenticator
from tasksvc_helpers import Api

from services.config import ServerSettings
from task_svc.app import TaskApp
from task_svc.config import TaskSettings
from task_svc.engine_client import GrpcEngineClient
from tests.pgtools import temporary_database

# Short timings so the whole suite stays fast; production defaults are in task_svc/config.py.
TEST_SETTINGS = TaskSettings(
    max_active_per_user=20, max_pending=1000, workers=2, lease_seconds=2.0, max_attempts=3, poll_seconds=0.2,
    retry_base_seconds=0.3, retry_max_seconds=1.0, progress_interval=0.05, watch_tick_seconds=0.5,
    engine_timeout=3.0, grpc_workers=32, replica_id="test-a")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh database per test module: a SQLite file, or a PostgreSQL database with a random
    name (created with autocommit, dropped WITH (FORCE) afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('tasksvc') / 'task.db'}"
        return
    with temporary_database("zq_task_test") as url:
        yield url


@pytest.fixture
def engine_server() -> Iterator[FakeEngineServer]:
    server = FakeEngineServer().start()
    yield server
    server.stop()


AppFactory = Callable[..., TaskApp]


@pytest.fixture
def make_app(db_url: str, engine_server: FakeEngineServer) -> Iterator[AppFactory]:
    """Starts task_svc instances on db_url; stops them and empties the task tables after the test."""
    apps: list[TaskApp] = []

    def factory(*, engine_addr: str | None = None, engine_token: str = "", **overrides: Any) -> TaskApp:
        settings = replace(TEST_SETTINGS, **overrides)
        server_settings = ServerSettings(service="task", addr="127.0.0.1:0", database_url=db_url,
                                         max_workers=16, grace_seconds=1.0)
        metadata = [("authorization", f"Bearer {engine_token}")] if engine_token else []
        client = GrpcEngineClient(engine_addr or engine_server.addr, metadata=lambda: metadata,
                                  timeout=settings.engine_timeout)
        app = TaskApp(server_settings, settings, TokenAuthenticator(), client).start()
        apps.append(app)
        return app

    yield factory
    for app in reversed(apps):
        app.stop(grace=0.5)
    db = create_engine(db_url)
    with db.begin() as conn:
        conn.execute(text("DELETE FROM backtest_results"))
        conn.execute(text("DELETE FROM backtest_tasks"))
        conn.execute(text("DELETE FROM backtest_strategies WHERE user_id <> 0"))
    db.dispose()


@pytest.fixture
def connect() -> Iterator[Callable[[TaskApp, str], Api]]:
    channels: list[grpc.Channel] = []

    def factory(app: TaskApp, token: str) -> Api:
        channel = grpc.insecure_channel(f"127.0.0.1:{app.port}")
        channels.append(channel)
        return Api(channel, token)

    yield factory
    for channel in channels:
        channel.close()
