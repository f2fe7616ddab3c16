"""task_svc's and engine_svc's /metrics after a real backtest (real engine servicer, real
sandboxed worker): per-RPC counts, open watch streams, tasks by status, queue depth, claim
latency, engine slots, backtest duration, worker start, panel cache.

Both services run in this one process, so both endpoints serve the same registry: the test
reads deltas of counters and the values of gauges it controls."""

from __future__ import annotations

import re
import time
from pathlib import Path

import grpc
import pytest
from tasksvc_helpers import wait_status
from zquant.backtest.v1 import strategy_pb2, task_pb2
from zquant.engine.v1 import engine_pb2

from services.config import ServerSettings
from services.errors import Unauthenticated
from services.principal import Credentials, Principal
from tests.scrape import scrape

serve = pytest.importorskip("engine_svc.serve")
data_db = pytest.importorskip("engine_svc.data.db")
synthetic_db = pytest.importorskip("engine_svc.data.synthetic_db")
limits_mod = pytest.importorskip("engine_svc.sandbox.limits")

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SERVICE_TOKEN = "task-svc-metrics-token"
S = task_pb2.Task
TASKS = "zquant.backtest.v1.TaskService"
ENGINE = "zquant.engine.v1.EngineService"


class ServiceTokenAuthenticator:
    def authenticate(self, credentials: Credentials) -> Principal:
        if credentials.bearer_token != SERVICE_TOKEN:
            raise Unauthenticated("invalid token")
        return Principal(user_id=0, username="task_svc", is_admin=False, auth_method="api_key", is_service=True)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path_factory.mktemp('engine') / 'engine.db'}"
    db = data_db.get_engine(url)
    data_db.ensure_schema(db)
    synthetic_db.write_synthetic(db, 3, 120, seed=5, progress=False)
    from engine_svc.data.loader import list_symbols

    rows = list_symbols(db)
    core = serve.build_core(db, limits=limits_mod.SandboxLimits(memory_mb=768, cpu_seconds=5, wall_seconds=20),
                            slots=2, queue=3)
    mp = pytest.MonkeyPatch()
    mp.setenv("ZQ_ENGINE_METRICS_ADDR", "127.0.0.1:0")
    running = serve.start_server(ServerSettings(service="engine", addr="127.0.0.1:0", database_url=url,
                                                max_workers=16, grace_seconds=1.0), core, ServiceTokenAuthenticator())
    mp.undo()
    running.set_serving(True)
    stocks = [r["symbol"] for r in rows if not r["is_index"] and r["first_date"] == rows[0]["first_date"]]
    index = next(r for r in rows if r["is_index"])
    assert running.metrics is not None
    yield {"addr": f"127.0.0.1:{running.port}", "metrics": running.metrics.port,
           "config": engine_pb2.BacktestConfig(start_date=str(index["first_date"]), end_date=str(index["last_date"]),
                                               symbols=stocks[:2], benchmark=str(index["symbol"]))}
    running.stop(grace=0.5)
    data_db.dispose_all()


def test_a_backtest_is_visible_in_the_metrics(make_app, connect, engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ZQ_TASK_METRICS_ADDR", "127.0.0.1:0")
    app = make_app(engine_addr=engine["addr"], engine_token=SERVICE_TOKEN)
    assert app.server is not None and app.server.metrics is not None
    task_port = app.server.metrics.port
    api = connect(app, "user:1")
    before = scrape(task_port)

    # a refused submission: counted under its code
    with pytest.raises(grpc.RpcError) as info:
        api.tasks.RunBacktest(task_pb2.RunBacktestRequest(strategy_id=999_999, config=engine["config"]))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND

    template = next(t for t in api.strategies.ListTemplates(strategy_pb2.ListTemplatesRequest()).strategies
                    if "Simple MA" in t.name)
    task = api.tasks.RunBacktest(task_pb2.RunBacktestRequest(strategy_id=template.id, config=engine["config"]))

    # an open watch stream is a gauge while it is open
    watch = api.tasks.WatchTask(task_pb2.WatchTaskRequest(task_id=task.id), timeout=60)
    first = next(watch)
    assert first.task.id == task.id
    during = scrape(task_port)
    assert during.value("grpc_server_streams_open", grpc_service=TASKS, grpc_method="WatchTask") \
        - before.value("grpc_server_streams_open", grpc_service=TASKS, grpc_method="WatchTask") == 1
    done = wait_status(api, task.id, S.COMPLETED, S.FAILED, timeout=60)
    assert done.status == S.COMPLETED, done.error_message
    for _ in watch:  # the stream ends after the terminal event
        pass

    # The task is COMPLETED as soon as the result arrives; the engine counts its call a moment
    # later, when the stream's status is sent.
    deadline = time.monotonic() + 10
    while True:
        after = scrape(task_port)
        eng = scrape(engine["metrics"])
        if eng.value("grpc_server_handled_total", grpc_service=ENGINE, grpc_method="RunBacktest", grpc_code="OK") \
                > before.value("grpc_server_handled_total", grpc_service=ENGINE, grpc_method="RunBacktest",
                               grpc_code="OK") or time.monotonic() > deadline:
            break
        time.sleep(0.05)

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    # per-RPC, task_svc
    assert delta("grpc_server_handled_total", grpc_service=TASKS, grpc_method="RunBacktest", grpc_code="OK") == 1
    assert delta("grpc_server_handled_total", grpc_service=TASKS, grpc_method="RunBacktest",
                 grpc_code="NOT_FOUND") == 1
    assert delta("grpc_server_handled_total", grpc_service=TASKS, grpc_method="WatchTask", grpc_code="OK") == 1
    assert after.value("grpc_server_streams_open", grpc_service=TASKS, grpc_method="WatchTask") \
        == before.value("grpc_server_streams_open", grpc_service=TASKS, grpc_method="WatchTask")
    # per-RPC, engine_svc: the dispatcher's call
    assert delta("grpc_server_handled_total", grpc_service=ENGINE, grpc_method="RunBacktest", grpc_code="OK") == 1
    # the dispatcher reads the call to its end: a delivered result is not counted as cancelled
    assert delta("grpc_server_handled_total", grpc_service=ENGINE, grpc_method="RunBacktest",
                 grpc_code="CANCELLED") == 0
    assert delta("grpc_server_handling_seconds_count", grpc_service=ENGINE, grpc_method="RunBacktest") == 1

    # task_svc domain
    assert after.value("zq_tasks", status="completed") == 1
    assert after.value("zq_tasks", status="pending") == 0 and after.value("zq_tasks", status="running") == 0
    assert after.value("zq_task_queue_depth") == 0
    assert delta("zq_task_claim_latency_seconds_count") == 1
    assert 0 <= delta("zq_task_claim_latency_seconds_sum") < 30

    # engine_svc domain (same registry, read from the engine's own endpoint)
    assert eng.value("zq_engine_slots", state="busy") == 0
    assert eng.value("zq_engine_slots", state="free") == 2
    assert eng.value("zq_engine_queue_length") == 0 and eng.value("zq_engine_queue_capacity") == 3
    assert eng.value("zq_engine_backtest_seconds_count", outcome="COMPLETED") \
        - before.value("zq_engine_backtest_seconds_count", outcome="COMPLETED") == 1
    assert eng.value("zq_engine_worker_start_seconds_count") - before.value("zq_engine_worker_start_seconds_count") == 1
    assert eng.value("zq_engine_panel_cache_hits_total") + eng.value("zq_engine_panel_cache_misses_total") \
        > before.value("zq_engine_panel_cache_hits_total") + before.value("zq_engine_panel_cache_misses_total")

    # the dashboard and the HPA's adapter rule ask for metrics that exist
    import auth_svc.telemetry  # noqa: F401  (auth_svc's families, registered on import)

    families = {re.sub(r"_total$", "", line.split()[2])
                for line in scrape(task_port).text.splitlines() if line.startswith("# HELP ")}
    wanted = set()
    for name in ("grafana-dashboard.json", "adapter-rules.yaml"):
        text = (DEPLOY / "prometheus" / name).read_text()
        names = re.findall(r"\b((?:zq|grpc_server)_[a-z_]+)", text)
        wanted |= {re.sub(r"_(total|bucket|sum|count)$", "", m) for m in names}
    assert len(wanted) >= 15
    assert wanted <= families, wanted - families


def test_engine_slots_busy_while_a_backtest_runs(make_app, connect, engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The slot gauge follows the pool: one busy while a (slow) strategy runs, none after."""
    app = make_app(engine_addr=engine["addr"], engine_token=SERVICE_TOKEN)
    api = connect(app, "user:1")
    slow = ("import time\nfrom zquant.backtest.strategy import BaseStrategy\n\n\nclass Strategy(BaseStrategy):\n"
            "    def on_bar(self, context, bar_data):\n        time.sleep(0.05)\n")
    task = api.tasks.RunBacktest(task_pb2.RunBacktestRequest(strategy_code=slow, config=engine["config"]))
    busy = []
    wait_status(api, task.id, S.RUNNING, S.COMPLETED, S.FAILED, timeout=30)
    for _ in range(100):
        busy.append(scrape(engine["metrics"]).value("zq_engine_slots", state="busy"))
        if busy[-1] == 1:
            break
        time.sleep(0.05)
    done = wait_status(api, task.id, S.COMPLETED, S.FAILED, timeout=60)
    assert busy[-1] == 1, busy
    assert done.status == S.COMPLETED, done.error_message
    assert scrape(engine["metrics"]).value("zq_engine_slots", state="busy") == 0
