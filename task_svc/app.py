"""Wiring: database + migrations, event bus, dispatcher, gRPC server — one object with a
clean start/stop, used by ``python -m task_svc`` and by the tests."""

from __future__ import annotations

import dataclasses
import logging

import grpc
from sqlalchemy import text
from zquant.backtest.v1 import (
    strategy_pb2,
    strategy_pb2_grpc,
    strategy_rest_pb2,
    sweep_pb2,
    sweep_pb2_grpc,
    sweep_rest_pb2,
    task_pb2,
    task_pb2_grpc,
    task_rest_pb2,
)

from services import migrations, rest
from services.config import ServerSettings
from services.db import is_postgres, make_engine, make_session_factory
from services.interceptors import Authenticator
from services.server import AioRunningServer, build_aio_server
from services.stream_limits import StreamLimits, StreamLimitSettings
from task_svc import telemetry
from task_svc.config import TaskSettings
from task_svc.dispatcher import Dispatcher
from task_svc.engine_client import EngineClient
from task_svc.events import EventBus, PgListener, Publisher
from task_svc.result_views import ResultViews
from task_svc.servicer import TaskServicer
from task_svc.strategies import Strategies
from task_svc.strategy_servicer import StrategyServicer
from task_svc.sweep_runner import SweepRunner
from task_svc.sweep_servicer import SweepServicer
from task_svc.sweeps import Sweeps
from task_svc.tasks import Tasks

log = logging.getLogger("zquant.task")

class TaskApp:
    def __init__(self, server_settings: ServerSettings, settings: TaskSettings,
                 authenticator: Authenticator | None, engine_client: EngineClient) -> None:
        self.server_settings = dataclasses.replace(
            server_settings, max_workers=max(server_settings.max_workers, settings.grpc_workers))
        self.settings = settings
        self.authenticator = authenticator
        self.engine_client = engine_client
        self.db = make_engine(server_settings.database_url)
        migrations.upgrade("task", self.db)
        self.sessions = make_session_factory(self.db)
        self.bus = EventBus()
        self.publisher = Publisher(self.bus, self.db, settings.replica_id)
        self.listener = PgListener(self.bus, self.db, settings.replica_id) if is_postgres(self.db) else None
        self.tasks = Tasks(self.sessions, engine_client, self.publisher, settings)
        self.strategies = Strategies(self.sessions, engine_client)
        self.views = ResultViews(self.sessions, engine_client)
        self.dispatcher = Dispatcher(self.sessions, engine_client, self.bus, self.publisher, settings)
        self._metrics = telemetry.watch_tasks(self.sessions)  # tasks by status, queue depth
        self.sweep_runner = SweepRunner(self.sessions, engine_client, settings)
        self.sweeps = Sweeps(self.sessions, engine_client, self.tasks, settings, on_created=self.sweep_runner.wake)
        self.server: AioRunningServer | None = None
        # Every server stream task_svc has is a watch (of tasks or of sweeps, typed or REST):
        # counted per user.
        self.watch_limits = StreamLimits(StreamLimitSettings(
            settings.max_watches_per_user, settings.max_watches,
            "ZQ_TASK_MAX_WATCHES_PER_USER", "ZQ_TASK_MAX_WATCHES"))

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    def _register(self, server: grpc.aio.Server) -> list[str]:
        tasks = TaskServicer(self.tasks, self.bus, self.settings, self.views)
        strategies = StrategyServicer(self.strategies)
        sweeps = SweepServicer(self.sweeps)
        task_pb2_grpc.add_TaskServiceServicer_to_server(tasks, server)
        strategy_pb2_grpc.add_StrategyServiceServicer_to_server(strategies, server)
        sweep_pb2_grpc.add_SweepServiceServicer_to_server(sweeps, server)
        return [task_pb2.DESCRIPTOR.services_by_name["TaskService"].full_name,
                strategy_pb2.DESCRIPTOR.services_by_name["StrategyService"].full_name,
                sweep_pb2.DESCRIPTOR.services_by_name["SweepService"].full_name,
                rest.register_rest_service(server, sweep_rest_pb2.DESCRIPTOR.services_by_name["SweepRestService"],
                                           sweeps),
                rest.register_rest_service(server, task_rest_pb2.DESCRIPTOR.services_by_name["TaskRestService"], tasks),
                rest.register_rest_service(
                    server, strategy_rest_pb2.DESCRIPTOR.services_by_name["StrategyRestService"], strategies)]

    def start_server(self) -> AioRunningServer:
        """The grpc.aio server (NOT_SERVING) with this app's shutdown order attached to it:
        health NOT_SERVING → watch streams end (bus closed) → the dispatcher stops claiming,
        lets runs finish within the grace and releases the rest → the server drains → close.
        Watches and runs are wound down *before* the drain, so open streams do not hold it."""
        self.server = build_aio_server(self.server_settings, register=self._register,
                                       authenticator=self.authenticator, stream_limits=self.watch_limits)
        self.server.before_stop.append(self._wind_down)
        self.server.on_shutdown.append(self._close)
        return self.server

    def begin(self) -> None:
        """Start listening for other replicas' events and dispatching; raises if the DB is unusable."""
        if self.listener is not None:
            self.listener.start()
        self.dispatcher.start()
        self.sweep_runner.start()
        self.check_ready()

    def start(self) -> TaskApp:
        self.start_server()
        self.begin()  # raises (and the caller stops us) if the database is unusable
        assert self.server is not None
        self.server.set_serving(True)
        return self

    def check_ready(self) -> None:
        with self.db.connect() as conn:
            conn.execute(text("SELECT 1"))

    def stop(self, grace: float | None = None) -> None:
        if self.server is not None:
            self.server.stop(grace)
        else:
            self._close()

    def _wind_down(self, grace: float) -> None:
        self.bus.close()
        self.sweep_runner.stop(grace)
        self.dispatcher.stop(grace)

    def _close(self) -> None:
        if self.listener is not None:
            self.listener.stop()
        self.engine_client.close()
        self.db.dispose()
