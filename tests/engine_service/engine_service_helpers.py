"""Helpers for engine_svc's gRPC-layer tests: a real market-data DB with synthetic data, the real
servicer on a loopback port (real sandbox workers), stubs with credentials, and a /proc scan
that sees the worker processes."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import Engine
from zquant.engine.v1 import engine_pb2, engine_pb2_grpc

from engine_svc.data.db import dispose_all, ensure_schema, get_engine
from engine_svc.data.synthetic_db import write_synthetic
from engine_svc.sandbox.limits import SandboxLimits
from engine_svc.serve import build_core, start_server
from engine_svc.service.core import EngineCore
from services.config import ServerSettings
from services.errors import Unauthenticated
from services.principal import Credentials, Principal
from services.server import RunningServer

TOKEN = "engine-test-token"  # what FixedTokenAuthenticator accepts: a service principal
AUTH = (("authorization", f"Bearer {TOKEN}"),)
USER_TOKEN = "engine-test-user-token"  # an ordinary user (not a service)
USER_AUTH = (("authorization", f"Bearer {USER_TOKEN}"),)
N_SYMBOLS, N_DAYS, SEED = 4, 160, 11

BUY_AND_HOLD = """\
from zquant.backtest.strategy import BaseStrategy


class Strategy(BaseStrategy):
    def initialize(self):
        self.fraction = self.params.get("fraction", 0.2)

    def on_bar(self, context, bar_data):
        for symbol in bar_data:
            if context.portfolio.get_position(symbol).quantity == 0:
                context.order_value(symbol, context.portfolio.total_value * self.fraction)
        if context.current_date.day in (14, 15):
            for symbol in list(context.portfolio.positions):
                context.order_target(symbol, 0)
"""

RAISES_AT_LINE_9 = """\
from zquant.backtest.strategy import BaseStrategy


class Strategy(BaseStrategy):
    def on_bar(self, context, bar_data):
        self.lookup(bar_data)

    def lookup(self, bar_data):
        return bar_data["NOPE.SH"]
"""

# Sleeps per bar: a run that lasts long enough to be cancelled, queued behind or shut down.
SLEEPY = """\
import time
from zquant.backtest.strategy import BaseStrategy


class Strategy(BaseStrategy):
    def on_bar(self, context, bar_data):
        time.sleep(self.params.get("sleep", 0.05))
"""


class FixedTokenAuthenticator:
    """The Authenticator protocol, accepting two bearer tokens (auth_svc is not under test): TOKEN
    is a service principal, USER_TOKEN an ordinary user."""

    def authenticate(self, credentials: Credentials) -> Principal:
        if credentials.bearer_token == USER_TOKEN:
            return Principal(user_id=2, username="someone", is_admin=False, auth_method="jwt")
        if credentials.bearer_token != TOKEN:
            raise Unauthenticated("invalid token")
        return Principal(user_id=1, username="tester", is_admin=False, auth_method="api_key", is_service=True)


@dataclass
class Market:
    url: str
    engine: Engine
    stocks: list[str]
    index: str
    first_date: str
    last_date: str


def load_market(url: str) -> Market:
    engine = get_engine(url)
    ensure_schema(engine)
    write_synthetic(engine, N_SYMBOLS, N_DAYS, seed=SEED, progress=False)
    from engine_svc.data.loader import list_symbols

    rows = list_symbols(engine)
    stocks = [r["symbol"] for r in rows if not r["is_index"] and r["first_date"] == rows[0]["first_date"]]
    index = next(r for r in rows if r["is_index"])
    return Market(url, engine, stocks, str(index["symbol"]), str(index["first_date"]), str(index["last_date"]))


def sqlite_market(tmp_path_factory: pytest.TempPathFactory) -> Market:
    path = tmp_path_factory.mktemp("engine-data") / "engine.db"
    return load_market(f"sqlite:///{path}")


def _pgtools() -> Any:
    """tests/pgtools.py (the suite's throw-away PostgreSQL databases), loaded by path: ``tests``
    is not a package, so it is importable only when the repo root happens to be on sys.path."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "pgtools.py"
    spec = importlib.util.spec_from_file_location("zq_tests_pgtools", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pg_market() -> Iterator[Market]:
    """A fresh PostgreSQL database per module (random name, dropped WITH (FORCE) afterwards;
    skipped when the server is unreachable, failed under CI)."""
    with _pgtools().temporary_database("zq_engine_svc") as url:
        try:
            yield load_market(url)
        finally:
            dispose_all()  # pooled connections would otherwise hold the database open


@dataclass
class Harness:
    running: RunningServer
    core: EngineCore
    channel: grpc.Channel
    stub: engine_pb2_grpc.EngineServiceStub
    health: health_pb2_grpc.HealthStub

    def config(self, market: Market, **overrides: Any) -> engine_pb2.BacktestConfig:
        fields: dict[str, Any] = {
            "start_date": market.first_date, "end_date": market.last_date, "symbols": market.stocks[:3],
        }
        fields.update(overrides)
        return engine_pb2.BacktestConfig(**fields)

    def run(self, request: engine_pb2.RunBacktestRequest, timeout: float = 60) -> list[engine_pb2.RunBacktestEvent]:
        return list(self.stub.RunBacktest(request, metadata=AUTH, timeout=timeout))

    def health_status(self) -> int:
        return self.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status


def sandbox_limits(**changes: Any) -> SandboxLimits:
    """Small limits so hostile cases end in seconds; normal test runs need well under a second.
    No spare workers: the tests check that every worker is gone after its run."""
    base = SandboxLimits(memory_mb=768, cpu_seconds=2, wall_seconds=6, spares=0)
    return base.with_(**changes)


def make_server() -> Iterator[Callable[..., Harness]]:
    """Start the real servicer (in-process, loopback, free port) over a market; stopped at teardown."""
    started: list[Harness] = []

    def make(market: Market, *, slots: int = 2, queue: int = 2, grace: float = 2.0,
             limits: SandboxLimits | None = None, check_ready: bool = False) -> Harness:
        settings = ServerSettings(service="engine", addr="127.0.0.1:0", database_url=market.url,
                                  max_workers=16, grace_seconds=grace)
        core = build_core(market.engine, limits=limits or sandbox_limits(), slots=slots, queue=queue)
        running = start_server(settings, core, FixedTokenAuthenticator())
        if check_ready:
            core.check_ready()
        running.set_serving(True)
        channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
        harness = Harness(running, core, channel, engine_pb2_grpc.EngineServiceStub(channel),
                          health_pb2_grpc.HealthStub(channel))
        started.append(harness)
        return harness

    yield make
    for h in started:
        h.running.stop(grace=0.5)
        h.channel.close()


def shared_server(sqlite_market: Market) -> Iterator[Harness]:
    """One server for the cheap tests of a module (2 slots, queue 2, start-up self-check run)."""
    settings = ServerSettings(service="engine", addr="127.0.0.1:0", database_url=sqlite_market.url,
                              max_workers=16, grace_seconds=1.0)
    core = build_core(sqlite_market.engine, limits=sandbox_limits(), slots=2, queue=2)
    running = start_server(settings, core, FixedTokenAuthenticator())
    core.check_ready()
    running.set_serving(True)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    yield Harness(running, core, channel, engine_pb2_grpc.EngineServiceStub(channel),
                  health_pb2_grpc.HealthStub(channel))
    running.stop(grace=0.5)
    channel.close()


# ---- process table --------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, str] | None:
    """(ppid, state) from /proc/<pid>/stat, or None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rest = raw[raw.rindex(")") + 2 :].split()  # the comm field may contain spaces and parentheses
    return int(rest[1]), rest[0]


def live_descendants(root: int | None = None) -> set[int]:
    """Every live (not zombie) process below ``root`` (default: this test process) — the
    sandbox workers (and bubblewrap around them) are the only children the tests create."""
    root = os.getpid() if root is None else root
    parents: dict[int, tuple[int, str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None:
                parents[int(entry)] = st
    out: set[int] = set()
    frontier = {root}
    while frontier:
        children = {pid for pid, (ppid, _) in parents.items() if ppid in frontier and pid not in out}
        out |= children
        frontier = children
    return {pid for pid in out if parents[pid][1] != "Z"}


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.01) -> float | None:
    """Seconds until ``predicate()`` held, or None on timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(interval)
    return None


def random_reference() -> str:
    return f"test-{secrets.token_hex(4)}"
