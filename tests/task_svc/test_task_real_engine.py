"""task_svc against the real engine_svc servicer (in-process gRPC server on loopback, real
sandboxed workers, synthetic market data): validation, symbols, a template run, a failure."""

from __future__ import annotations

import json

import grpc
import pytest
from tasksvc_helpers import wait_status
from zquant.backtest.v1 import strategy_pb2, task_pb2
from zquant.engine.v1 import engine_pb2

from services.errors import Unauthenticated, field_violations
from services.principal import Credentials, Principal

serve = pytest.importorskip("engine_svc.serve")
data_db = pytest.importorskip("engine_svc.data.db")
synthetic_db = pytest.importorskip("engine_svc.data.synthetic_db")
limits_mod = pytest.importorskip("engine_svc.sandbox.limits")

from services.config import ServerSettings  # noqa: E402

SERVICE_TOKEN = "task-svc-service-token"
S = task_pb2.Task

RAISES_AT_LINE_9 = """from zquant.backtest.strategy import BaseStrategy


class Strategy(BaseStrategy):
    def on_bar(self, context, bar_data):
        self.lookup(bar_data)

    def lookup(self, bar_data):
        return bar_data["NOPE.SH"]
"""


class ServiceTokenAuthenticator:
    """engine_svc's side: accepts only task_svc's service credential."""

    def authenticate(self, credentials: Credentials) -> Principal:
        if credentials.bearer_token != SERVICE_TOKEN:
            raise Unauthenticated("invalid token")
        return Principal(user_id=0, username="task_svc", is_admin=False, auth_method="api_key", is_service=True)


@pytest.fixture(scope="module")
def real_engine(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path_factory.mktemp('engine') / 'engine.db'}"
    engine = data_db.get_engine(url)
    data_db.ensure_schema(engine)
    synthetic_db.write_synthetic(engine, 4, 160, seed=11, progress=False)
    from engine_svc.data.loader import list_symbols

    rows = list_symbols(engine)
    core = serve.build_core(engine, limits=limits_mod.SandboxLimits(memory_mb=768, cpu_seconds=5, wall_seconds=20),
                            slots=2, queue=4)
    settings = ServerSettings(service="engine", addr="127.0.0.1:0", database_url=url, max_workers=16,
                              grace_seconds=1.0)
    running = serve.start_server(settings, core, ServiceTokenAuthenticator())
    running.set_serving(True)
    stocks = [r["symbol"] for r in rows if not r["is_index"] and r["first_date"] == rows[0]["first_date"]]
    index = next(r for r in rows if r["is_index"])
    yield {"addr": f"127.0.0.1:{running.port}", "stocks": stocks, "index": str(index["symbol"]),
           "first": str(index["first_date"]), "last": str(index["last_date"])}
    running.stop(grace=0.5)
    data_db.dispose_all()


def test_real_engine_end_to_end(make_app, connect, real_engine) -> None:
    app = make_app(engine_addr=real_engine["addr"], engine_token=SERVICE_TOKEN)
    api = connect(app, "user:1")
    cfg = engine_pb2.BacktestConfig(start_date=real_engine["first"], end_date=real_engine["last"],
                                    symbols=real_engine["stocks"][:3], benchmark=real_engine["index"])

    # code validation by the engine: the problem's line comes back as a field violation
    with pytest.raises(grpc.RpcError) as info:
        api.strategies.CreateStrategy(strategy_pb2.CreateStrategyRequest(
            name="broken", code="from zquant.backtest.strategy import BaseStrategy\n\nclass Strategy(:\n"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(info.value)[0][1].startswith("line 3:")

    # unknown symbols are named
    with pytest.raises(grpc.RpcError) as info:
        api.tasks.RunBacktest(task_pb2.RunBacktestRequest(
            strategy_code=RAISES_AT_LINE_9, config=engine_pb2.BacktestConfig(
                start_date=real_engine["first"], end_date=real_engine["last"], symbols=["600999.SH"])))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "600999.SH" in field_violations(info.value)[0][1]

    # a template runs to COMPLETED with a stored result that matches the performance report
    template = next(t for t in api.strategies.ListTemplates(strategy_pb2.ListTemplatesRequest()).strategies
                    if "Simple MA" in t.name)
    task = api.tasks.RunBacktest(task_pb2.RunBacktestRequest(strategy_id=template.id, config=cfg))
    done = wait_status(api, task.id, S.COMPLETED, S.FAILED, timeout=60)
    assert done.status == S.COMPLETED, done.error_message
    perf = api.tasks.GetPerformance(task_pb2.GetPerformanceRequest(task_id=task.id))
    result = api.tasks.GetResult(task_pb2.GetResultRequest(task_id=task.id))
    assert len(perf.daily_portfolio) > 100 and perf.trades
    assert result.total_return == pytest.approx(perf.metrics.total_return)
    assert result.HasField("beta") and result.engine_version and len(result.data_hash) >= 32
    assert len(json.loads(result.portfolio_json)) == len(perf.daily_portfolio)

    # a strategy exception FAILS the task with the engine's message and the strategy line
    bad = api.tasks.RunBacktest(task_pb2.RunBacktestRequest(strategy_code=RAISES_AT_LINE_9, config=cfg))
    failed = wait_status(api, bad.id, S.FAILED, S.COMPLETED, timeout=60)
    assert failed.status == S.FAILED and "KeyError: 'NOPE.SH'" in failed.error_message
    assert "line 9" in failed.error_message


def test_wrong_service_credentials_never_fail_tasks(make_app, connect, real_engine) -> None:
    """The engine refusing task_svc's own credentials is an operator problem: the submission
    is UNAVAILABLE (can't validate), nothing is FAILED."""
    app = make_app(engine_addr=real_engine["addr"], engine_token="wrong")
    api = connect(app, "user:1")
    with pytest.raises(grpc.RpcError) as info:
        api.tasks.RunBacktest(task_pb2.RunBacktestRequest(
            strategy_code=RAISES_AT_LINE_9, config=engine_pb2.BacktestConfig(
                start_date=real_engine["first"], end_date=real_engine["last"], symbols=real_engine["stocks"][:1])))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
