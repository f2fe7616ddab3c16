"""Issue 5's workflow end to end: real auth, task and engine services (as `make up` starts
them) behind real Envoy, on the real A-share sample, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from zquant.engine.v1 import engine_pb2

from engine_svc.data.loader import load_panel
from engine_svc.engine.config import BacktestConfig
from engine_svc.engine.runner import run_backtest
from engine_svc.metrics import compute_metrics
from tests.e2e.realstack import start_real_stack
from tests.pgtools import temporary_database

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

ADMIN_PASSWORD = "admin-password-e2e"
SYMBOLS = ["600036.SH", "000002.SZ"]
CONFIG = {"start_date": "2013-01-04", "end_date": "2013-12-31", "symbols": SYMBOLS, "benchmark": "000001.SH",
          "slippage_rate": 0.0005}

MA_CODE = """
from zquant.backtest.strategy import BaseStrategy

class Strategy(BaseStrategy):
    def initialize(self):
        self.window = self.params.get("window", 10)

    def on_bar(self, context, bar_data):
        for symbol in bar_data:
            closes = context.history(symbol, "close", self.window)
            if len(closes) < self.window:
                continue
            if bar_data[symbol]["close"] > closes.mean():
                context.order_target_percent(symbol, 0.45)
            else:
                context.order_target(symbol, 0)
"""

SLOW_CODE = MA_CODE.replace("    def on_bar(self, context, bar_data):\n",
                            "    def on_bar(self, context, bar_data):\n"
                            "        import time\n        end = time.perf_counter() + 0.006\n"
                            "        while time.perf_counter() < end:\n            pass\n", 1)

RAISING_CODE = """
from zquant.backtest.strategy import BaseStrategy

class Strategy(BaseStrategy):
    def on_bar(self, context, bar_data):
        prices = {}
        if context.current_date_str >= "2013-03-01":
            return prices["600036.SH"]
"""

LOOPING_CODE = """
from zquant.backtest.strategy import BaseStrategy

class Strategy(BaseStrategy):
    def on_bar(self, context, bar_data):
        while True:
            pass
"""


@dataclass
class Api:
    http: httpx.Client
    headers: dict[str, str]

    def get(self, path: str, **kw: object) -> httpx.Response:
        return self.http.get(path, headers=self.headers, **kw)

    def post(self, path: str, body: object = None) -> httpx.Response:
        return self.http.post(path, headers=self.headers, json=body if body is not None else {})

    def delete(self, path: str) -> httpx.Response:
        return self.http.delete(path, headers=self.headers)

    def run(self, **body: object) -> dict:
        resp = self.post("/api/v1/backtest/run", body)
        assert resp.status_code == 201, resp.text
        return resp.json()

    def wait(self, task_id: int, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task = self.get(f"/api/v1/backtest/tasks/{task_id}").json()
            if task["status"] in ("completed", "failed", "cancelled"):
                return task
            time.sleep(0.1)
        raise AssertionError(f"task {task_id} not terminal after {timeout}s: {task}")


@dataclass
class Stack:
    url: str
    admin: Api
    alice: Api
    bob: Api
    engine_url: str
    alice_id: int
    engine_pid: int
    engine_addr: str


@contextmanager
def _database(kind: str, data_dir: Path) -> Iterator[dict[str, str]]:
    if kind == "sqlite":
        yield {}
        return
    with temporary_database("zq_e2e_bt") as url:  # one database; every service owns its tables
        yield {"ZQ_AUTH_DATABASE_URL": url, "ZQ_TASK_DATABASE_URL": url, "ZQ_ENGINE_DATABASE_URL": url}


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          module_gateway_factory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("e2e_bt")
    with ExitStack() as cleanup:
        urls = cleanup.enter_context(_database(request.param, data_dir))
        real = start_real_stack(cleanup, data_dir, module_gateway_factory, admin_password=ADMIN_PASSWORD,
                                database_urls=urls)
        gateway, engine_url, handles = real.gateway, real.engine_url, real.handles
        http = cleanup.enter_context(httpx.Client(base_url=gateway.url, timeout=30))

        def login(username: str, password: str) -> Api:
            resp = http.post("/api/v1/auth/login", json={"username": username, "password": password})
            assert resp.status_code == 200, resp.text
            return Api(http, {"authorization": f"Bearer {resp.json()['access_token']}"})

        admin = login("admin", ADMIN_PASSWORD)
        ids = {}
        for name in ("alice", "bob"):
            resp = admin.post("/api/v1/users", {"username": name, "password": f"{name}-password-1"})
            assert resp.status_code == 201, resp.text
            ids[name] = resp.json()["id"]
        yield Stack(gateway.url, admin, login("alice", "alice-password-1"), login("bob", "bob-password-1"),
                    engine_url, ids["alice"], handles["engine"].pid, real.env["ZQ_ENGINE_ADDR"])


def test_run_completes_and_result_equals_the_engine_computation(stack: Stack) -> None:
    task = stack.alice.run(strategy_code=MA_CODE, strategy_name="ma10", params={"window": 10}, config=CONFIG)
    assert task["status"] == "pending" and task["strategy_name"] == "ma10" and task["user_id"] == stack.alice_id
    assert task["config"]["initial_capital"] == 1_000_000 and task["config"]["commission_rate"] == 0.0003
    done = stack.alice.wait(task["id"])
    assert done["status"] == "completed", done
    assert done["progress"] == 1.0 and done["started_at"] and done["completed_at"]

    # The same backtest in-process: the service path must store exactly what the engine computes.
    panel = load_panel(stack.engine_url, SYMBOLS, CONFIG["start_date"], CONFIG["end_date"], benchmark="000001.SH")
    expected = run_backtest(panel, MA_CODE, BacktestConfig(**{**CONFIG, "params": {"window": 10}}))
    metrics = compute_metrics(expected)

    result = stack.alice.get(f"/api/v1/backtest/tasks/{task['id']}/result").json()
    for key in ("total_return", "annual_return", "max_drawdown", "sharpe_ratio", "alpha", "beta"):
        assert result[key] == pytest.approx(metrics[key], rel=1e-12), key
    assert result["data_hash"] == expected["data_hash"] and result["engine_version"] == expected["engine_version"]
    assert json.loads(result["metrics_json"])["total_trades"] == len(expected["trades"]) > 0
    assert len(json.loads(result["trades_json"])) == len(expected["trades"])
    assert len(json.loads(result["portfolio_json"])) == len(expected["daily"])

    perf = stack.alice.get(f"/api/v1/backtest/tasks/{task['id']}/performance").json()
    assert perf["metrics"]["sharpe_ratio"] == pytest.approx(metrics["sharpe_ratio"], rel=1e-12)
    # Share counts are JSON numbers (int64 in the proto), trades as the engine made them.
    assert [(t["date"], t["symbol"], t["side"], t["quantity"]) for t in perf["trades"]] == \
        [(t["date"], t["symbol"], t["side"], t["quantity"]) for t in expected["trades"]]
    assert [d["total_value"] for d in perf["daily_portfolio"]] == \
        pytest.approx([d["total_value"] for d in expected["daily"]], rel=1e-12)
    assert len(perf["orders"]) == len(expected["orders"])
    # zquant's `portfolio`: the last day's close, positions by symbol with their profit.
    last = expected["daily"][-1]
    portfolio = perf["portfolio"]
    assert portfolio["cash"] == pytest.approx(last["cash"]) and \
        portfolio["total_value"] == pytest.approx(last["total_value"])
    assert set(portfolio["positions"]) == {p["symbol"] for p in last["positions"]}
    for p in last["positions"]:
        held = portfolio["positions"][p["symbol"]]
        assert held["quantity"] == p["quantity"] and isinstance(held["quantity"], int)
        assert held["current_price"] == pytest.approx(p["close"])
        assert held["profit"] == pytest.approx(p["market_value"] - p["quantity"] * p["avg_cost"])
        assert held["profit_pct"] == pytest.approx(p["close"] / p["avg_cost"] - 1)
    # Undefined metrics are null, not omitted.
    names = {f.name for f in engine_pb2.Metrics.DESCRIPTOR.fields}
    assert set(perf["metrics"]) == names
    assert all((perf["metrics"][k] is None) == (metrics.get(k) is None) for k in names)


def test_watch_streams_ndjson_until_the_terminal_state(stack: Stack) -> None:
    task = stack.alice.run(strategy_code=SLOW_CODE, config=CONFIG)
    events = []
    with stack.alice.http.stream("GET", f"/api/v1/backtest/tasks/{task['id']}/watch",
                                 headers=stack.alice.headers, timeout=60) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.strip():
                events.append((time.monotonic(), json.loads(line)))
    kinds = [e["kind"] for _, e in events]
    statuses = [e["task"]["status"] for _, e in events]
    assert kinds[0] == "snapshot" and statuses[0] in ("pending", "running")
    assert statuses[-1] == "completed" and events[-1][1]["terminal"] is True
    assert all(not e["terminal"] for _, e in events[:-1])
    assert "running" in statuses and kinds.count("progress") >= 2
    progress = [e["task"]["progress"] for _, e in events if e["kind"] == "progress"]
    assert progress == sorted(progress) and 0 < progress[0] < 1
    # Lines arrived as they happened, not in one burst at the end.
    assert events[-1][0] - events[0][0] > 0.5


def test_list_ordering_paging_and_fallback(stack: Stack) -> None:
    names = ["b-task", "a-task", "c-task"]
    for name in names:
        stack.bob.run(strategy_code=MA_CODE, strategy_name=name, config=CONFIG)
    for task in stack.bob.get("/api/v1/backtest/tasks").json():
        stack.bob.wait(task["id"])

    def listed(**params: object) -> list[dict]:
        resp = stack.bob.get("/api/v1/backtest/tasks", params=params)
        assert resp.status_code == 200, resp.text
        return resp.json()

    everything = listed(limit=100)
    assert len(everything) == 3 and stack.bob.get("/api/v1/backtest/tasks").headers["x-total-count"] == "3"
    keys = {"id": lambda t: t["id"], "name": lambda t: t["strategy_name"], "status": lambda t: t["status"],
            "created_at": lambda t: t["created_at"], "updated_at": lambda t: t["updated_at"]}
    for order_by, key in keys.items():
        for order in ("asc", "desc"):
            got = listed(order_by=order_by, order=order)
            values = [key(t) for t in got]
            assert values == sorted(values, reverse=order == "desc"), (order_by, order, values)
    assert [t["strategy_name"] for t in listed(order_by="name", order="asc")] == sorted(names)
    by_created_desc = [t["id"] for t in listed(order_by="created_at", order="desc")]
    assert [t["id"] for t in listed(order_by="no_such_column")] == by_created_desc  # fallback
    assert [t["id"] for t in listed(order_by="id", order="asc", skip=1, limit=1)] == sorted(by_created_desc)[1:2]
    assert listed(skip=3) == []
    listing = stack.bob.get("/api/v1/backtest/results", params={"order_by": "total_return"})
    assert listing.headers["x-total-count"] == "3"
    returns = [r["total_return"] for r in listing.json()]
    assert returns == sorted(returns, reverse=True)


def test_errors_through_the_gateway(stack: Stack) -> None:
    def err(resp: httpx.Response, status: int) -> dict:
        assert resp.status_code == status, resp.text
        body = resp.json()
        assert body["message"] and "Traceback" not in resp.text
        return body

    body = err(stack.alice.post("/api/v1/backtest/run", {"config": CONFIG}), 400)
    assert "strategy_id or strategy_code" in body["message"]
    err(stack.alice.post("/api/v1/backtest/run", {"strategy_id": 9999, "config": CONFIG}), 404)
    bad = err(stack.alice.post("/api/v1/backtest/run", {"strategy_code": MA_CODE,
                                                        "config": {**CONFIG, "symbols": ["999999.SH"]}}), 400)
    assert "999999.SH" in json.dumps(bad)
    err(stack.alice.post("/api/v1/backtest/run", {"strategy_code": "class Strategy(:\n", "config": CONFIG}), 400)
    err(stack.alice.post("/api/v1/backtest/run", {"strategy_code": MA_CODE,
                                                  "config": {**CONFIG, "end_date": "2012-01-01"}}), 400)
    err(stack.alice.http.get("/api/v1/backtest/tasks"), 401)

    # Another user's task is 404 on every endpoint.
    task = stack.alice.run(strategy_code=MA_CODE, config=CONFIG)
    tid = task["id"]
    for resp in (stack.bob.get(f"/api/v1/backtest/tasks/{tid}"),
                 stack.bob.get(f"/api/v1/backtest/tasks/{tid}/result"),
                 stack.bob.get(f"/api/v1/backtest/tasks/{tid}/performance"),
                 stack.bob.get(f"/api/v1/backtest/tasks/{tid}/watch"),
                 stack.bob.post(f"/api/v1/backtest/tasks/{tid}/cancel"),
                 stack.bob.delete(f"/api/v1/backtest/tasks/{tid}")):
        err(resp, 404)
    assert stack.alice.wait(tid)["status"] == "completed"
    err(stack.alice.post(f"/api/v1/backtest/tasks/{tid}/cancel"), 400)  # finished: FAILED_PRECONDITION

    # A disabled user is 403 on the task API with a still-valid token.
    resp = stack.admin.post("/api/v1/users", {"username": "carol", "password": "carol-password-1"})
    carol_id = resp.json()["id"]
    token = stack.admin.http.post("/api/v1/auth/login", json={"username": "carol",
                                                             "password": "carol-password-1"}).json()["access_token"]
    carol = Api(stack.admin.http, {"authorization": f"Bearer {token}"})
    assert carol.get("/api/v1/backtest/tasks").status_code == 200
    assert stack.admin.http.patch(f"/api/v1/users/{carol_id}", headers=stack.admin.headers,
                                  json={"is_active": False}).status_code == 200
    time.sleep(2.5)  # task_svc caches auth answers for ZQ_AUTH_CACHE_SECONDS (2 s)
    err(carol.get("/api/v1/backtest/tasks"), 403)


def test_failures_are_tasks_not_http_errors(stack: Stack) -> None:
    raising = stack.alice.run(strategy_code=RAISING_CODE, config=CONFIG)
    looping = stack.alice.run(strategy_code=LOOPING_CODE, config=CONFIG)
    failed = stack.alice.wait(raising["id"])
    assert failed["status"] == "failed"
    assert "KeyError" in failed["error_message"] and "600036.SH" in failed["error_message"]
    assert "line 8" in failed["error_message"], failed["error_message"]
    assert (failed["failure_kind"], failed["failure_line"]) == ("strategy_error", 8)
    timed_out = stack.alice.wait(looping["id"])
    assert timed_out["status"] == "failed"
    assert "time limit exceeded" in timed_out["error_message"] or "CPU time limit" in timed_out["error_message"]
    assert (timed_out["failure_kind"], timed_out["failure_line"]) == ("time_limit", 0)
    err = stack.alice.get(f"/api/v1/backtest/tasks/{raising['id']}/result")
    assert err.status_code == 404


def test_cancel_running_task_kills_the_worker(stack: Stack) -> None:
    task = stack.alice.run(strategy_code=LOOPING_CODE, config=CONFIG)
    deadline = time.monotonic() + 30
    while stack.alice.get(f"/api/v1/backtest/tasks/{task['id']}").json()["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)
    assert _sandbox_workers(stack.engine_pid), "the running backtest has a worker process"
    resp = stack.alice.post(f"/api/v1/backtest/tasks/{task['id']}/cancel")
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
    deadline = time.monotonic() + 3
    while _sandbox_workers(stack.engine_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _sandbox_workers(stack.engine_pid)
    assert stack.alice.get(f"/api/v1/backtest/tasks/{task['id']}").json()["status"] == "cancelled"
    assert stack.alice.delete(f"/api/v1/backtest/tasks/{task['id']}").status_code == 204
    assert stack.alice.get(f"/api/v1/backtest/tasks/{task['id']}").status_code == 404


def _sandbox_workers(engine_pid: int) -> list[int]:
    """Worker processes started by this engine_svc (their argv carries a tag "<service pid>-…")."""
    marker = f'"tag": "{engine_pid}-'.encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if marker in cmdline:
                pids.append(int(proc.name))
    return pids


def test_dashboard_watch_answers_at_once_and_streams_the_callers_changes(stack: Stack) -> None:
    import threading

    received: list[dict] = []
    opened = threading.Event()

    def watch() -> None:
        with stack.bob.http.stream("GET", "/api/v1/backtest/watch", headers=stack.bob.headers, timeout=30) as resp:
            assert resp.status_code == 200
            opened.set()
            for line in resp.iter_lines():
                if line.strip():
                    received.append(json.loads(line))
                    if received[-1]["task"]["status"] == "completed":
                        return

    thread = threading.Thread(target=watch, daemon=True)
    started = time.monotonic()
    thread.start()
    # The 200 and headers arrive before any event exists (no task of bob's is active).
    assert opened.wait(5), "no response headers before the first event"
    assert time.monotonic() - started < 5
    stack.alice.run(strategy_code=MA_CODE, config=CONFIG)  # another user's: never shown to bob
    task = stack.bob.run(strategy_code=MA_CODE, config=CONFIG)
    thread.join(30)
    assert received and {e["task"]["id"] for e in received} == {task["id"]}
    assert received[-1]["task"]["status"] == "completed"


FIXED_ORDERS = """
from zquant.backtest.strategy import BaseStrategy

class Strategy(BaseStrategy):
    def initialize(self):
        self.k = 0

    def on_bar(self, context, bar_data):
        self.k += 1
        for j, symbol in enumerate(sorted(bar_data)):
            if (self.k + j) % 20 == 1:
                context.order(symbol, 1000)
            elif (self.k + j) % 20 == 11:
                context.order_target(symbol, 0)
"""

# The reproduction: on bar 100 the strategy adds ten million to "the broker's" cash.
# Before the split it completed with total_return 10.0, and could read every future bar from
# context._market (the strategy fails the task if it still can).
FORGING = FIXED_ORDERS + """
        if self.k == 100:
            context._broker.cash += 1e7
            if "_market" in vars(context):
                raise RuntimeError("the whole market panel is reachable")
"""


def test_a_strategy_cannot_forge_its_result_through_rest(stack: Stack) -> None:
    honest = stack.alice.wait(stack.alice.run(strategy_code=FIXED_ORDERS, config=CONFIG)["id"])
    forged = stack.alice.wait(stack.alice.run(strategy_code=FORGING, config=CONFIG)["id"])
    assert honest["status"] == forged["status"] == "completed", (honest, forged)
    results = [stack.alice.get(f"/api/v1/backtest/tasks/{t['id']}/result").json() for t in (honest, forged)]
    perfs = [stack.alice.get(f"/api/v1/backtest/tasks/{t['id']}/performance").json() for t in (honest, forged)]
    assert results[1]["total_return"] == results[0]["total_return"] < 1.0
    assert perfs[1]["trades"] == perfs[0]["trades"] and len(perfs[0]["trades"]) > 5
    navs = [[d["total_value"] for d in p["daily_portfolio"]] for p in perfs]
    assert navs[1] == navs[0]
    # The results listing sorts by what the ledger recorded, not by what the strategy claimed.
    listed = stack.alice.get("/api/v1/backtest/results", params={"order_by": "total_return", "order": "desc"}).json()
    top = listed[0] if isinstance(listed, list) else listed["results"][0]
    assert top["total_return"] < 1.0


def _violations(resp: httpx.Response) -> list[tuple[str, str]]:
    body = resp.json()
    return [(v["field"], v["description"]) for d in body.get("details", []) for v in d.get("field_violations", [])]


def test_bad_input_is_400_at_submit_naming_the_field_never_a_later_failure(stack: Stack) -> None:
    before = stack.alice.get("/api/v1/backtest/tasks").headers["x-total-count"]
    deep: object = 1
    for _ in range(90):
        deep = [deep]
    cases = [
        # Passed task_svc's own copy of the rules, then FAILED in the engine.
        ({"config": {**CONFIG, "min_commission": 2000000}},
         [("config.min_commission", "must be in [0, 1e+06], got 2e+06")]),
        ({"config": {**CONFIG, "tax_rate": 0.5, "symbols": ["600036.SH", "999999.SZ"]}},
         [("config.tax_rate", "must be in [0, 0.1), got 0.5"),
          ("config.symbols", "no market data for: 999999.SZ")]),
        ({"config": {**CONFIG, "start_date": "2013-13-01"}},
         [("config.start_date", "is not a valid date: '2013-13-01'")]),
        ({"config": CONFIG, "params": {"x": deep}},
         [("params", "is nested too deeply: JSON may nest at most 32 arrays/objects")]),
    ]
    for body, expected in cases:
        resp = stack.alice.post("/api/v1/backtest/run", {"strategy_code": MA_CODE, **body})
        assert resp.status_code == 400, resp.text
        assert _violations(resp) == expected
    assert stack.alice.get("/api/v1/backtest/tasks").headers["x-total-count"] == before  # nothing stored


def test_params_schema_too_deep_is_400_on_create_and_update(stack: Stack) -> None:
    deep = "[" * 5000 + "]" * 5000
    resp = stack.alice.post("/api/v1/backtest/strategies", {"name": "deep", "code": MA_CODE, "params_schema": deep})
    assert resp.status_code == 400 and [f for f, _ in _violations(resp)] == ["params_schema"], resp.text
    made = stack.alice.post("/api/v1/backtest/strategies", {"name": "shallow", "code": MA_CODE,
                                                            "params_schema": '{"type": "object"}'})
    assert made.status_code == 201, made.text
    resp = stack.alice.http.patch(f"/api/v1/backtest/strategies/{made.json()['id']}", headers=stack.alice.headers,
                                  json={"params_schema": deep})
    assert resp.status_code == 400 and [f for f, _ in _violations(resp)] == ["params_schema"], resp.text


def test_password_reset_ends_earlier_access_tokens_through_the_gateway(stack: Stack) -> None:
    made = stack.admin.post("/api/v1/users", {"username": "dora", "password": "dora-password-1"})
    assert made.status_code == 201, made.text
    token = stack.alice.http.post("/api/v1/auth/login", json={"username": "dora", "password": "dora-password-1"})
    old = Api(stack.alice.http, {"authorization": f"Bearer {token.json()['access_token']}"})
    assert old.get("/api/v1/users/me").status_code == 200
    assert old.get("/api/v1/backtest/tasks").status_code == 200
    reset = stack.admin.post(f"/api/v1/users/{made.json()['id']}/reset-password", {"password": "dora-password-2"})
    assert reset.status_code == 200, reset.text
    resp = old.get("/api/v1/users/me")  # auth_svc itself: at once
    assert resp.status_code == 401 and resp.json()["code"] == 16, resp.text
    time.sleep(2.5)  # task_svc caches auth answers for ZQ_AUTH_CACHE_SECONDS (2 s)
    assert old.get("/api/v1/backtest/tasks").status_code == 401


def test_engine_run_and_validate_rpcs_need_a_service_key(stack: Stack) -> None:
    import grpc
    from zquant.engine.v1 import engine_pb2_grpc

    channel = grpc.insecure_channel(stack.engine_addr)
    engine = engine_pb2_grpc.EngineServiceStub(channel)
    user_md = [("authorization", stack.alice.headers["authorization"])]
    config = engine_pb2.BacktestConfig(start_date="2013-01-04", end_date="2013-02-28", symbols=SYMBOLS)
    calls = {
        "RunBacktest": lambda md: list(engine.RunBacktest(
            engine_pb2.RunBacktestRequest(strategy_code=MA_CODE, config=config), metadata=md, timeout=60)),
        "ValidateStrategy": lambda md: engine.ValidateStrategy(
            engine_pb2.ValidateStrategyRequest(strategy_code=MA_CODE), metadata=md, timeout=30),
        "ValidateBacktest": lambda md: engine.ValidateBacktest(
            engine_pb2.ValidateBacktestRequest(config=config), metadata=md, timeout=30),
        "GetDailyBars": lambda md: engine.GetDailyBars(engine_pb2.GetDailyBarsRequest(
            symbol=SYMBOLS[0], start_date="2013-01-04", end_date="2013-02-28"), metadata=md, timeout=30),
    }

    def code(call, md) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
        try:
            call(md)
        except grpc.RpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    try:
        for name, call in calls.items():
            assert code(call, user_md) == grpc.StatusCode.PERMISSION_DENIED, name
        assert engine.ListSymbols(engine_pb2.ListSymbolsRequest(), metadata=user_md, timeout=30).symbols
        # A key an admin marks as a service key works; unmarking revokes that at once (after the cache).
        key = stack.alice.post("/api/v1/users/me/apikeys", {"name": "batch system"}).json()
        key_md = [("x-api-key", key["access_key"]), ("x-api-secret", key["secret_key"])]
        assert code(calls["ValidateStrategy"], key_md) == grpc.StatusCode.PERMISSION_DENIED
        path = f"/api/v1/users/{stack.alice_id}/apikeys/{key['id']}/service"
        assert stack.alice.http.put(path, headers=stack.alice.headers, json={"is_service": True}).status_code == 403
        marked = stack.admin.http.put(path, headers=stack.admin.headers, json={"is_service": True})
        assert marked.status_code == 200 and marked.json()["is_service"] is True, marked.text
        time.sleep(2.5)  # engine_svc caches auth answers for ZQ_AUTH_CACHE_SECONDS (2 s)
        for name, call in calls.items():
            assert code(call, key_md) == grpc.StatusCode.OK, name
        unmarked = stack.admin.http.put(path, headers=stack.admin.headers, json={"is_service": False})
        assert unmarked.status_code == 200 and unmarked.json()["is_service"] is False
        time.sleep(2.5)
        assert code(calls["ValidateStrategy"], key_md) == grpc.StatusCode.PERMISSION_DENIED
    finally:
        channel.close()


def test_api_key_without_a_name_is_400(stack: Stack) -> None:
    for body in ({"name": None}, {}, {"name": "  "}):
        resp = stack.alice.post("/api/v1/users/me/apikeys", body)
        assert resp.status_code == 400 and _violations(resp) == [("name", "is required (1–100 characters)")], resp.text
