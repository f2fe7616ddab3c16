"""Parameter sweeps through the real Envoy gateway (REST), with real auth_svc, two engine_svc and
task_svc replicas as processes on one PostgreSQL database (synthetic market):

- the REST round trip: create (201) and estimate, list (X-Total-Count), get (counts, best,
  deflated Sharpe), trials sorted by a metric, heatmap, folds, the NDJSON watch, promote (201),
  cancel, delete (204) — with the values asserted; bad input → 400 naming the field; another user's
  sweep → 404 on every path;
- failover: two task replicas, each with its own engine; kill -9 of a replica holding a batch, then
  kill -9 of an engine running one — the sweep completes with every trial done exactly once, and
  the same seed gives the same trials and the same best whichever replicas ran them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

import devstack
from tests.e2e.test_task_replicas_e2e import Market, parallel, sandbox_workers, service_env, wait_for
from tests.pgtools import temporary_database

pytestmark = [
    pytest.mark.envoy,
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(devstack.SERVICES[n].available() for n in ("auth", "task", "engine")),
        reason="auth_svc, task_svc and engine_svc are needed",
    ),
]

PASSWORD = "sweeps e2e admin password"
SYNTHETIC_DAYS = 120
LEASE_SECONDS = 3

DUAL_MA = """import time

from zquant.backtest.strategy import BaseStrategy


class Strategy(BaseStrategy):
    def initialize(self):
        # Struct carries doubles only: the platform must hand int parameters over as ints.
        for name in ("short_window", "long_window"):
            if type(self.params[name]) is not int:
                raise TypeError(f"{name} is {self.params[name]!r}, not an int")
        self.short = self.params["short_window"]
        self.long = self.params["long_window"]
        self.pause = float(self.params.get("pause", 0))

    def on_bar(self, context, bar_data):
        if self.pause:
            time.sleep(self.pause)
        for symbol in bar_data:
            closes = context.history(symbol, "close", self.long)
            if len(closes) < self.long:
                continue
            fast = sum(closes[-self.short:]) / self.short
            slow = sum(closes) / self.long
            held = context.portfolio.get_position(symbol).quantity
            if fast > slow and held == 0:
                context.order_target_percent(symbol, 0.3)
            elif fast < slow and held > 0:
                context.order_target_percent(symbol, 0)
"""


class Api:
    def __init__(self, gateway_url: str, username: str = "admin", password: str = PASSWORD) -> None:
        self.http = httpx.Client(base_url=f"{gateway_url}/api/v1", timeout=30)
        login = self.http.post("/auth/login", json={"username": username, "password": password})
        assert login.status_code == 200, login.text
        self.http.headers["authorization"] = f"Bearer {login.json()['access_token']}"

    def close(self) -> None:
        self.http.close()

    def sweep(self, sweep_id: int) -> dict:
        r = self.http.get(f"/backtest/sweeps/{sweep_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def wait(self, sweep_id: int, *statuses: str, timeout: float = 90) -> dict:
        last: dict = {}

        def reached() -> bool:
            nonlocal last
            last = self.sweep(sweep_id)
            return last["status"] in statuses

        try:
            wait_for(f"sweep {sweep_id} in {statuses}", reached, timeout, interval=0.1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last: {json.dumps(last)[:2000]}") from None
        return last


def body(market: Market, **overrides: object) -> dict:
    out: dict = {
        "strategy_code": DUAL_MA, "strategy_name": "dual ma",
        "config": {"start_date": market.first, "end_date": market.last, "symbols": market.stocks,
                   "benchmark": market.index},
        "space": {"short_window": {"min": 3, "max": 5, "step": 1}, "long_window": {"values": [10, 20]}},
        "constraints": ["short_window < long_window"],
        "objective": {"metric": "sharpe_ratio", "direction": "maximize"},
    }
    out.update(overrides)
    return out


@dataclass
class Platform:
    env: dict[str, str]
    db_url: str
    engines: dict[str, devstack.Handle]
    engine_addrs: dict[str, str]
    market: Market
    base: Path


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    base = tmp_path_factory.mktemp("sweeps")
    handles: list[devstack.Handle] = []
    with temporary_database("zq_e2e_sweeps") as db_url:
        env = dict(os.environ)
        for name in ("AUTH", "TASK", "ENGINE"):
            env[f"ZQ_{name}_DATABASE_URL"] = db_url
        env.pop("ZQ_ENGINE_API_KEY", None)
        env.pop("ZQ_ENGINE_TOKEN", None)
        addrs = {name: f"127.0.0.1:{devstack.free_port()}" for name in ("engine-1", "engine-2")}
        env.update({
            "ZQ_AUTH_ADDR": f"127.0.0.1:{devstack.free_port()}", "ZQ_ENGINE_ADDR": addrs["engine-1"],
            "ZQ_ADMIN_PASSWORD": PASSWORD, "ZQ_SHUTDOWN_GRACE_SECONDS": "1", "ZQ_SANDBOX_SPARES": "0",
            "ZQ_ENGINE_SLOTS": "2", "ZQ_ARGON2_TIME_COST": "1", "ZQ_ARGON2_MEMORY_KIB": "1024",
        })
        try:
            auth_env = devstack.child_env(base=service_env(env, base / "auth"))
            engine_env = devstack.child_env(base=service_env(env, base / "engine-1"))
            synthetic = subprocess.Popen(
                [sys.executable, "-m", "engine_svc.data", "generate-synthetic", "--symbols", "2", "--days",
                 str(SYNTHETIC_DAYS), "--seed", "5"],
                cwd=devstack.ROOT, env=engine_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            subprocess.run([sys.executable, "-m", "auth_svc", "create-admin"], cwd=devstack.ROOT, env=auth_env,
                           check=True, capture_output=True)
            env.update(devstack.service_credentials(auth_env))

            def start(name: str, kind: str, extra: dict[str, str]) -> devstack.Handle:
                handle = devstack.start_service(kind, service_env(env, base / name, **extra))
                handles.append(handle)
                return handle

            # auth_svc starts while the market is generated; the engines need the market
            _, (output, _) = parallel(lambda: start("auth", "auth", {}), lambda: synthetic.communicate(timeout=120))
            assert synthetic.returncode == 0, output.decode(errors="replace")
            e1, e2 = parallel(
                lambda: start("engine-1", "engine", {"ZQ_ENGINE_ADDR": addrs["engine-1"]}),
                lambda: start("engine-2", "engine", {"ZQ_ENGINE_ADDR": addrs["engine-2"]}),
            )
            import grpc
            from zquant.engine.v1 import engine_pb2, engine_pb2_grpc

            with grpc.insecure_channel(addrs["engine-1"]) as channel:
                reply = engine_pb2_grpc.EngineServiceStub(channel).ListSymbols(
                    engine_pb2.ListSymbolsRequest(include_indexes=True), timeout=15,
                    metadata=[("x-api-key", env["ZQ_ENGINE_API_KEY"]),
                              ("x-api-secret", env["ZQ_ENGINE_API_SECRET"])])
            stocks = [s.symbol for s in reply.symbols if not s.is_index]
            index = next(s for s in reply.symbols if s.is_index)
            yield Platform(env, db_url, {"engine-1": e1, "engine-2": e2}, addrs,
                           Market(stocks, index.symbol, index.first_date, index.last_date), base)
        finally:
            parallel(*(lambda h=h: h.stop(grace=5) for h in handles if h.alive()))


class Stack:
    """Per test: a fresh task database, task_svc replicas and gateways."""

    def __init__(self, platform: Platform, gateways, base: Path, task_db: str) -> None:  # type: ignore[no-untyped-def]
        self.platform, self.gateways, self.base, self.task_db = platform, gateways, base, task_db
        self.handles: list[devstack.Handle] = []
        self.apis: list[Api] = []

    def replica(self, name: str, engine: str, **extra: str) -> tuple[str, devstack.Handle]:
        addr = f"127.0.0.1:{devstack.free_port()}"
        settings = {
            "ZQ_TASK_ADDR": addr, "ZQ_TASK_REPLICA_ID": name, "ZQ_TASK_DATABASE_URL": self.task_db,
            "ZQ_TASK_WORKERS": "1", "ZQ_SWEEP_WORKERS": "1", "ZQ_TASK_LEASE_SECONDS": str(LEASE_SECONDS),
            "ZQ_TASK_POLL_SECONDS": "0.25", "ZQ_ENGINE_ADDR": self.platform.engine_addrs[engine],
            "ZQ_TASK_ENGINE_TIMEOUT": "30", **extra,
        }
        handle = devstack.start_service("task", service_env(self.platform.env, self.base / name, **settings))
        self.handles.append(handle)
        return addr, handle

    def api(self, task_addr: str, engine: str = "engine-1", username: str = "admin",
            password: str = PASSWORD) -> Api:
        gateway = self.gateways(auth_addr=self.platform.env["ZQ_AUTH_ADDR"], task_addr=task_addr,
                                engine_addr=self.platform.engine_addrs[engine])
        gateway.wait_healthy("task")
        gateway.wait_healthy("auth")
        api = Api(gateway.url, username, password)
        self.apis.append(api)
        return api

    def close(self) -> None:
        for api in self.apis:
            api.close()
        parallel(*(lambda h=h: h.stop(grace=5) for h in self.handles if h.alive()))


@pytest.fixture
def stack(platform: Platform, module_gateway_factory, tmp_path: Path) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    with temporary_database("zq_e2e_sweeps_task") as task_db:
        stack = Stack(platform, module_gateway_factory, tmp_path, task_db)
        try:
            yield stack
        finally:
            stack.close()


def trial_rows(db_url: str, sweep_id: int) -> list[tuple]:
    conninfo = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return conn.execute(
            "SELECT number, status, attempts, lease_owner, params_json FROM backtest_sweep_trials "
            "WHERE sweep_id = %s ORDER BY number", (sweep_id,)).fetchall()


# ----------------------------------------------------------------------------- tests


def test_rest_round_trip_values_bad_input_and_other_users(stack: Stack, platform: Platform) -> None:
    addr, _ = stack.replica("replica-a", "engine-1")
    api = stack.api(addr)
    market = platform.market

    estimate = api.http.post("/backtest/sweeps:estimate", json=body(market))
    assert estimate.status_code == 200, estimate.text
    assert estimate.json()["trials"] == 6 and estimate.json()["cached"] == 0 and estimate.json()["seconds"] > 0

    created = api.http.post("/backtest/sweeps", json=body(market, result_constraints=["max_drawdown < 0.9"]))
    assert created.status_code == 201, created.text
    sweep = created.json()
    assert sweep["status"] in ("pending", "running") and sweep["method"] == "grid" and sweep["trials_total"] == 6
    assert sweep["space"]["long_window"]["values"] == [10, 20] and sweep["strategy_code"] == ""
    assert sweep["best"] is None and sweep["deflated_sharpe"] is None and sweep["completed_at"] is None

    with api.http.stream("GET", f"/backtest/sweeps/{sweep['id']}/watch", timeout=90) as watch:
        assert watch.status_code == 200 and watch.headers["content-type"].startswith("application/x-ndjson")
        events = [json.loads(line) for line in watch.iter_lines() if line.strip()]
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "snapshot" and kinds[-1] == "status" and events[-1]["terminal"] is True, kinds
    assert sorted(e["trial"]["number"] for e in events if e["kind"] == "trial") == [1, 2, 3, 4, 5, 6]
    assert all(type(e["trial"]["params"]["short_window"]) is int for e in events if e["kind"] == "trial")
    assert any(k == "best" for k in kinds)

    done = api.sweep(sweep["id"])
    assert done["status"] == "completed" and (done["done"], done["failed"], done["queued"]) == (6, 0, 0)
    assert done["strategy_code"] == DUAL_MA and done["elapsed_seconds"] > 0 and done["eta_seconds"] is None
    trials = api.http.get(f"/backtest/sweeps/{sweep['id']}/trials", params={"order_by": "sharpe_ratio"})
    assert trials.status_code == 200 and trials.headers["x-total-count"] == "6"
    rows = trials.json()
    # int parameters are JSON integers (9, not 9.0) everywhere: trials, best, heatmap, promoted task
    assert b'"short_window":3.0' not in trials.content and b'"short_window":3' in trials.content
    assert all(type(t["params"][k]) is int for t in rows for k in ("short_window", "long_window"))
    assert [type(v) for v in done["best"]["params"].values()] == [int, int]
    sharpes = [t["metrics"]["sharpe_ratio"] for t in rows if t["metrics"]["sharpe_ratio"] is not None]
    assert sharpes == sorted(sharpes, reverse=True)
    assert rows[0]["number"] == done["best"]["number"] and rows[0]["rank"] == 1 and rows[0]["status"] == "done"
    assert done["best"]["params"] == {"short_window": rows[0]["params"]["short_window"],
                                      "long_window": rows[0]["params"]["long_window"]}
    assert done["best"]["objective"] == rows[0]["metrics"]["sharpe_ratio"] and done["trials_evaluated"] == 6
    assert 0 <= done["deflated_sharpe"] <= 1
    page = api.http.get(f"/backtest/sweeps/{sweep['id']}/trials",
                        params={"order_by": "number", "order": "asc", "skip": 4, "limit": 10})
    assert [t["number"] for t in page.json()] == [5, 6] and page.headers["x-total-count"] == "6"

    heat = api.http.get(f"/backtest/sweeps/{sweep['id']}/heatmap",
                        params={"x": "short_window", "y": "long_window", "metric": "total_return", "agg": "mean"})
    assert heat.status_code == 200, heat.text
    hm = heat.json()
    assert hm["x_values"] == [3, 4, 5] and hm["y_values"] == [10, 20] and hm["agg"] == "mean"
    assert b'"x_values":[3,4,5]' in heat.content and b'"y_values":[10,20]' in heat.content
    by_point = {(t["params"]["short_window"], t["params"]["long_window"]): t["metrics"]["total_return"] for t in rows}
    assert hm["values"] == [by_point[(x, y)] for y in (10, 20) for x in (3, 4, 5)]
    folds = api.http.get(f"/backtest/sweeps/{sweep['id']}/folds").json()
    assert folds["kind"] == "none" and folds["folds"] == [] and folds["stitched_return"] is None

    listed = api.http.get("/backtest/sweeps", params={"skip": 0, "limit": 10})
    assert listed.headers["x-total-count"] == "1" and [s["id"] for s in listed.json()] == [sweep["id"]]

    promoted = api.http.post(f"/backtest/sweeps/{sweep['id']}/trials/{done['best']['number']}:promote", json={})
    assert promoted.status_code == 201, promoted.text
    task = promoted.json()
    assert task["status"] == "pending" and task["params"] == done["best"]["params"]
    assert [type(v) for v in task["params"].values()] == [int, int]
    # the promoted task runs the strict strategy to the end: it got ints too
    wait_for("the promoted task finished",
             lambda: api.http.get(f"/backtest/tasks/{task['id']}").json()["status"] in ("completed", "failed"), 60)
    finished = api.http.get(f"/backtest/tasks/{task['id']}").json()
    assert finished["status"] == "completed", finished

    # bad input: 400 naming the field
    for overrides, field in [({"space": {}}, "space"),
                             ({"space": {"short_window": {"min": 1, "max": 300, "step": 1},
                                         "long_window": {"min": 1, "max": 300, "step": 1}}, "max_trials": 40}, "space"),
                             ({"objective": {"metric": "luck"}}, "objective.metric"),
                             ({"constraints": ["short_window < middle"]}, "constraints[0]"),
                             ({"constraints": ["__import__('os').getpid() > 0"]}, "constraints[0]"),
                             ({"constraints": ["open('x') == 1"]}, "constraints[0]")]:
        r = api.http.post("/backtest/sweeps", json=body(market, **overrides))
        assert r.status_code == 400, (overrides, r.text)
        fields = [v["field"] for d in r.json()["details"] for v in d.get("field_violations", [])]
        assert field in fields, (overrides, r.json())

    # another user: 404 on every path
    created_user = api.http.post("/users", json={"username": "other", "password": "other user password 1",
                                                 "password_confirm": "other user password 1", "email": "o@x.cn"})
    assert created_user.status_code == 201, created_user.text
    other = stack.api(addr, username="other", password="other user password 1")
    sid, n = sweep["id"], done["best"]["number"]
    for method, path in [("GET", f"/backtest/sweeps/{sid}"), ("GET", f"/backtest/sweeps/{sid}/trials"),
                         ("GET", f"/backtest/sweeps/{sid}/heatmap?x=short_window&y=long_window"),
                         ("GET", f"/backtest/sweeps/{sid}/folds"), ("GET", f"/backtest/sweeps/{sid}/watch"),
                         ("POST", f"/backtest/sweeps/{sid}/cancel"), ("DELETE", f"/backtest/sweeps/{sid}"),
                         ("POST", f"/backtest/sweeps/{sid}/trials/{n}:promote")]:
        r = other.http.request(method, path, json={} if method == "POST" else None)
        assert r.status_code == 404, (method, path, r.status_code, r.text)
    assert other.http.get("/backtest/sweeps").json() == []

    # cancel a running sweep, then delete it
    slow = api.http.post("/backtest/sweeps", json=body(market, params={"pause": 0.05}))
    assert slow.status_code == 201, slow.text
    engine_pid = platform.engines["engine-1"].pid
    wait_for("a running batch", lambda: sandbox_workers(engine_pid), 20)
    cancelled = api.http.post(f"/backtest/sweeps/{slow.json()['id']}/cancel", json={})
    t0 = time.monotonic()
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text
    wait_for("the batch's worker killed", lambda: not sandbox_workers(engine_pid), 3)
    assert time.monotonic() - t0 < 1.5
    assert api.http.post(f"/backtest/sweeps/{slow.json()['id']}/cancel", json={}).status_code == 400
    deleted = api.http.delete(f"/backtest/sweeps/{slow.json()['id']}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert api.http.get(f"/backtest/sweeps/{slow.json()['id']}").status_code == 404


def test_kill_9_of_a_replica_and_of_an_engine_mid_sweep(stack: Stack, platform: Platform) -> None:
    # Three replicas started at once (A and C on engine 1 with one batch at a time, B on engine 2
    # with two), batches of two trials, a short lease: each wait below is a batch (~2.4 s of
    # pauses) or a lease, never a fixed sleep. 8 trials = 4 batches: every replica starts with one.
    fast = {"ZQ_SWEEP_BATCH_TRIALS": "2", "ZQ_TASK_LEASE_SECONDS": "2"}
    (_, a), (addr_b, b), _ = parallel(
        lambda: stack.replica("replica-a", "engine-1", **fast),
        lambda: stack.replica("replica-b", "engine-2", **fast, ZQ_SWEEP_WORKERS="2"),
        lambda: stack.replica("replica-c", "engine-1", **fast))
    api = stack.api(addr_b, engine="engine-2")
    space = {"short_window": {"min": 2, "max": 9, "step": 1}, "long_window": {"min": 10, "max": 30, "step": 2}}
    request = body(platform.market, method="random", seed=11, max_trials=8, space=space, params={"pause": 0.01})
    sweep = api.http.post("/backtest/sweeps", json=request).json()

    # kill -9 replica A while it holds a batch: the batch's lease expires and B or C runs it again
    wait_for("replica A holding a batch",
             lambda: any(str(r[3] or "").startswith("replica-a:") for r in trial_rows(stack.task_db, sweep["id"])), 30)
    os.kill(a.pid, signal.SIGKILL)
    wait_for("replica A gone", lambda: not a.alive(), 5)
    first = api.wait(sweep["id"], "completed", "failed", timeout=60)
    rows = trial_rows(stack.task_db, sweep["id"])
    assert first["status"] == "completed" and (first["done"], first["failed"], first["trials_total"]) == (8, 0, 8)
    assert [r[0] for r in rows] == list(range(1, 9)) and {r[1] for r in rows} == {"DONE"}
    assert any(r[2] == 2 for r in rows)  # the killed replica's batch ran twice, and counted once

    # kill -9 engine 1 while replica C runs a batch on it: the batch is released (attempt not
    # charged) and replica B (engine 2) finishes the sweep. Same seed → same points, same best.
    second = api.http.post("/backtest/sweeps", json={**request, "params": {"pause": 0.0101}}).json()
    engine1 = platform.engines["engine-1"]
    wait_for("replica C holding a batch on engine 1",
             lambda: any(str(r[3] or "").startswith("replica-c:") for r in trial_rows(stack.task_db, second["id"]))
             and sandbox_workers(engine1.pid), 30)
    os.kill(engine1.pid, signal.SIGKILL)
    done = api.wait(second["id"], "completed", "failed", timeout=60)
    assert done["status"] == "completed" and (done["done"], done["failed"], done["cached"]) == (8, 0, 0)
    rows2 = trial_rows(stack.task_db, second["id"])
    assert [json.loads(r[4]) for r in rows2] == [json.loads(r[4]) for r in rows]
    assert done["best"]["number"] == first["best"]["number"]
    assert done["best"]["objective"] == first["best"]["objective"]
    assert b.alive()
