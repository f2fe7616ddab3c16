"""Test doubles for task_svc: a fake EngineService gRPC server and a token authenticator.

The fake engine is a real gRPC server built on the generated stubs, so task_svc's engine
client, streaming and cancellation are exercised exactly as against engine_svc. Each run is
scripted by the task's params under the key "fake":
  steps (3), delay (s per step, 0), outcome ("result" | "error" | "hang" | "unavailable"),
  error_message, error_line, error_kind (an EngineError.Kind name, STRATEGY_ERROR),
  total_return (number or null),
  busy_runs (the first N runs are refused with RESOURCE_EXHAUSTED).
"""

from __future__ import annotations

import ast
import hashlib
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import json_format
from zquant.engine.v1 import engine_pb2, engine_pb2_grpc

from engine_svc.service import convert
from engine_svc.service.core import check_backtest
from services.errors import Unauthenticated
from services.principal import Credentials, Principal

STOCKS = {"600000.SH", "000001.SZ", "600036.SH", "300059.SZ"}
INDEXES = {"000300.SH", "000001.SH"}


class TokenAuthenticator:
    """Bearer "user:<id>" → a user, "admin:<id>" → an admin; anything else UNAUTHENTICATED."""

    def authenticate(self, credentials: Credentials) -> Principal:
        kind, _, raw = credentials.bearer_token.partition(":")
        if kind not in ("user", "admin") or not raw.isdigit():
            raise Unauthenticated("invalid access token")
        return Principal(int(raw), f"{kind}{raw}", kind == "admin", "jwt")


def fake_result(req: engine_pb2.RunBacktestRequest, spec: dict[str, Any]) -> engine_pb2.BacktestResult:
    cfg = req.config
    steps = int(spec.get("steps", 3))
    symbol = cfg.symbols[0]
    r = engine_pb2.BacktestResult(
        engine_version="fake-engine 1.0", data_hash=hashlib.sha256(req.SerializeToString()).hexdigest(),
        start_date=cfg.start_date, end_date=cfg.end_date, symbols=list(cfg.symbols), benchmark=cfg.benchmark,
        adjust_type=cfg.adjust_type, adjustment_applied=False, initial_capital=cfg.initial_capital,
        logs=f"ran {steps} days")
    for i in range(steps):
        qty = 100 * (i + 1)
        close = 10.0 + i * 0.1
        day = r.daily.add(date=f"2024-01-{i + 2:02d}", cash=cfg.initial_capital - qty * 10.0,
                          market_value=qty * close, total_value=cfg.initial_capital - qty * 10.0 + qty * close)
        if cfg.benchmark:
            day.benchmark_close = 3500.0 + i
        day.positions.add(symbol=symbol, quantity=qty, sellable=qty - 100, avg_cost=10.0, close=close,
                          market_value=qty * close)
    r.orders.add(order_id=1, created_date="2024-01-02", symbol=symbol, side="buy", quantity=100,
                 status=engine_pb2.Order.FILLED, filled_quantity=100, fill_date="2024-01-03", fill_price=10.01,
                 commission=5.0, slippage_cost=1.0)
    r.orders.add(order_id=2, created_date="2024-01-03", symbol=symbol, side="buy", quantity=100,
                 limit_price=9.0, status=engine_pb2.Order.EXPIRED, reason="limit not reached")
    r.trades.add(order_id=1, date="2024-01-03", symbol=symbol, side="buy", quantity=100, price=10.01,
                 value=1001.0, commission=5.0, tax=0.0, slippage_cost=1.0)
    r.round_trips.add(symbol=symbol, open_date="2024-01-03", close_date="2024-01-05", quantity=100,
                      pnl=12.5, return_pct=0.0125)
    m = r.metrics
    total = spec.get("total_return", 0.1)
    if total is not None:
        m.total_return = float(total)
        m.annual_return = float(total) * 2
    m.max_drawdown = 0.05
    m.sharpe_ratio = 1.25
    m.win_rate = 1.0
    m.total_trades = 1
    m.closed_trades = 1
    if cfg.benchmark:
        m.alpha, m.beta = 0.02, 0.9
    return r


@dataclass
class RunRecord:
    request: engine_pb2.RunBacktestRequest
    started: threading.Event = field(default_factory=threading.Event)
    cancelled: threading.Event = field(default_factory=threading.Event)
    finished: bool = False
    result: engine_pb2.BacktestResult | None = None


def _code_problems(code: str) -> list[dict[str, Any]]:
    try:
        tree = ast.parse(code)  # parse only: the fake never runs code
    except SyntaxError as exc:
        return [{"line": exc.lineno or 0, "column": exc.offset or 0, "message": f"SyntaxError: {exc.msg}"}]
    if not any(isinstance(n, ast.ClassDef) and n.name == "Strategy" for n in tree.body):
        return [{"line": 0, "column": 0, "message": "strategy code must define class Strategy"}]
    return []


class FakeEngine(engine_pb2_grpc.EngineServiceServicer):
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs: list[RunRecord] = []
        self.validate_calls = 0
        self.bar_requests: list[tuple[str, str, str]] = []

    def runs_for(self, task_id: int) -> list[RunRecord]:
        return self.runs_for_ref(f"task-{task_id}")

    def runs_for_ref(self, reference: str) -> list[RunRecord]:
        with self.lock:
            return [r for r in self.runs if r.request.reference == reference]

    def wait_run(self, task_id: int, timeout: float = 10.0) -> RunRecord:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.runs_for(task_id)
            if runs and runs[-1].started.is_set():
                return runs[-1]
            time.sleep(0.02)
        raise AssertionError(f"the engine never started task {task_id}")

    def ValidateStrategy(self, request, context):  # type: ignore[no-untyped-def]
        self.validate_calls += 1
        problems = [engine_pb2.CodeProblem(**p) for p in _code_problems(request.strategy_code)]
        return engine_pb2.ValidateStrategyResponse(valid=not problems, problems=problems)

    def ValidateBacktest(self, request, context):  # type: ignore[no-untyped-def]
        # The engine's own decision code over fake market data and a parse-only code check.
        self.validate_calls += 1
        violations, cfg = check_backtest(
            request.strategy_code, convert.config_from_proto(request.config), convert.params_from_proto(request.params),
            missing=lambda wanted: [s for s in wanted if s not in STOCKS | INDEXES], code_problems=_code_problems)
        return convert.validate_backtest_response(violations, cfg)

    def ListSymbols(self, request, context):  # type: ignore[no-untyped-def]
        known = STOCKS | (INDEXES if request.include_indexes else set())
        missing = [s for s in request.symbols if s not in known]
        rows = [engine_pb2.SymbolInfo(symbol=s, first_date="2011-01-04", last_date="2024-12-31", bars=3000,
                                      is_index=s in INDEXES) for s in sorted(set(request.symbols) & known)]
        return engine_pb2.ListSymbolsResponse(symbols=rows, missing=missing)

    def GetDailyBars(self, request, context):  # type: ignore[no-untyped-def]
        self.bar_requests.append((request.symbol, request.start_date, request.end_date))
        if request.symbol not in STOCKS:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no daily bars for symbol {request.symbol}")
        bars = [engine_pb2.Bar(date=f"2024-01-{d:02d}", open=10.0 + d, high=10.5 + d, low=9.5 + d, close=10.2 + d,
                               volume=1000.0 * d) for d in (2, 3, 4)]
        return engine_pb2.GetDailyBarsResponse(symbol=request.symbol, bars=bars)

    def RunBacktest(self, request, context):  # type: ignore[no-untyped-def]
        params = json_format.MessageToDict(request.params)
        spec = params.get("fake", {})
        record = RunRecord(request)
        with self.lock:
            self.runs.append(record)

        def on_done() -> None:
            if not record.finished:
                record.cancelled.set()

        context.add_callback(on_done)
        record.started.set()
        steps, delay = int(spec.get("steps", 3)), float(spec.get("delay", 0.0))
        outcome = spec.get("outcome", "result")
        if outcome == "unavailable" or len(self.runs_for_ref(request.reference)) <= int(spec.get("busy_runs", 0)):
            record.finished = True
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "no free worker slot")
        for i in range(steps):
            yield engine_pb2.RunBacktestEvent(progress=engine_pb2.Progress(
                fraction=(i + 1) / steps, current_date=f"2024-01-{i + 2:02d}", equity=1_000_000.0 + 1000 * i))
            if delay and record.cancelled.wait(delay):
                return
        if outcome == "hang":
            record.cancelled.wait(60)
            return
        record.finished = True
        if outcome == "error":
            yield engine_pb2.RunBacktestEvent(error=engine_pb2.EngineError(
                kind=engine_pb2.EngineError.Kind.Value(spec.get("error_kind", "STRATEGY_ERROR")),
                message=spec.get("error_message", "boom"),
                line=int(spec.get("error_line", 0))))
            return
        record.result = fake_result(request, spec)
        yield engine_pb2.RunBacktestEvent(result=record.result)


class FakeEngineServer:
    """The fake engine on a loopback port; stop() and start() again on the same port."""

    def __init__(self) -> None:
        self.engine = FakeEngine()
        self.port = 0
        self.server: grpc.Server | None = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> FakeEngineServer:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        engine_pb2_grpc.add_EngineServiceServicer_to_server(self.engine, server)
        port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        assert port, "cannot bind the fake engine"
        self.port = port
        server.start()
        self.server = server
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(0).wait()
            self.server = None
