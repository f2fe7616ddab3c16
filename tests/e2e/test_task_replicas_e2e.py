"""Two task_svc replicas on one PostgreSQL database, the real engine_svc and auth_svc, all as
real processes, driven through the real Envoy gateway (REST):

- a watch opened on replica A streams, as they happen, the life of a task that replica B runs;
- kill -9 of the replica running a task: the other takes it over once the lease expires and
  finishes it (attempts == 2), and the dead replica's sandbox worker does not survive it;
- cancel of a RUNNING task kills its sandbox worker; an endless strategy hits the time limit.

Sandbox workers are found in /proc: the launcher starts them as ``python -c <BOOTSTRAP>`` whose
code imports ``engine_svc.sandbox.worker`` and whose JSON spec carries ``"tag": "<engine pid>-…"``
(engine_svc/sandbox/launcher.py), so each engine_svc process's workers are told apart.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

import devstack
from tests.pgtools import temporary_database

pytestmark = [
    pytest.mark.envoy,
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(devstack.SERVICES[n].available() for n in ("auth", "task", "engine")),
        reason="auth_svc, task_svc and engine_svc are needed",
    ),
]

PASSWORD = "replicas e2e admin password"
LEASE_SECONDS = 3
SYNTHETIC_DAYS = 120

# Sleeps `pause` seconds per bar (time.sleep is allowed in the sandbox) and trades a little.
SLOW = """import time

from zquant.backtest.strategy import BaseStrategy


class Strategy(BaseStrategy):
    def initialize(self):
        self.pause = float(self.params.get("pause", 0.02))

    def on_bar(self, context, bar_data):
        time.sleep(self.pause)
        for symbol in bar_data:
            if context.portfolio.get_position(symbol).quantity == 0:
                context.order_target_percent(symbol, 0.3)
"""

ENDLESS = """from zquant.backtest.strategy import BaseStrategy


class Strategy(BaseStrategy):
    def on_bar(self, context, bar_data):
        while True:
            pass
"""


# ----------------------------------------------------------------------------- helpers


def sandbox_workers(engine_pid: int) -> set[int]:
    """Live processes (not zombies: their cmdline is empty) that are sandbox workers of
    engine_svc process `engine_pid` (with bwrap: bwrap itself and the worker inside)."""
    marker = f'"tag": "{engine_pid}-'
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "engine_svc.sandbox.worker" in cmdline and marker in cmdline:
            found.add(int(entry.name))
    return found


def wait_for(what: str, check: Callable[[], object], timeout: float, interval: float = 0.05) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def parallel(*calls: Callable[[], object]) -> list[object]:
    """Run the calls on threads (process start-ups and stops are mostly waiting); re-raise."""
    with ThreadPoolExecutor(max_workers=max(1, len(calls))) as pool:
        futures = [pool.submit(call) for call in calls]
        return [f.result() for f in futures]


def task_row(db_url: str, task_id: int) -> dict[str, object]:
    """The dispatcher's view of a task (lease_owner is not part of the API)."""
    conninfo = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(
            "SELECT status, lease_owner, attempts FROM backtest_tasks WHERE id = %s", (task_id,)
        ).fetchone()
    assert row is not None, task_id
    return {"status": row[0], "lease_owner": row[1], "attempts": row[2]}


class Api:
    """REST client of one gateway, logged in as the admin."""

    def __init__(self, gateway_url: str) -> None:
        self.http = httpx.Client(base_url=f"{gateway_url}/api/v1", timeout=15)
        login = self.http.post("/auth/login", json={"username": "admin", "password": PASSWORD})
        assert login.status_code == 200, login.text
        self.http.headers["authorization"] = f"Bearer {login.json()['access_token']}"

    def close(self) -> None:
        self.http.close()

    def run(self, code: str, market: Market, params: dict[str, object] | None = None) -> int:
        body = {
            "strategy_code": code,
            "params": params or {},
            "config": {"start_date": market.first, "end_date": market.last, "symbols": market.stocks,
                       "benchmark": market.index},
        }
        response = self.http.post("/backtest/run", json=body)
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "pending"
        return int(response.json()["id"])

    def task(self, task_id: int) -> dict:
        response = self.http.get(f"/backtest/tasks/{task_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_status(self, task_id: int, *statuses: str, timeout: float) -> dict:
        last: dict = {}

        def reached() -> bool:
            nonlocal last
            last = self.task(task_id)
            return last["status"] in statuses

        try:
            wait_for(f"task {task_id} in {statuses}", reached, timeout, interval=0.1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last: {last}") from None
        return last

    def cancel(self, task_id: int) -> httpx.Response:
        return self.http.post(f"/backtest/tasks/{task_id}/cancel", json={})


class Watch(threading.Thread):
    """GET /backtest/tasks/{id}/watch read line by line; each event with its arrival time."""

    def __init__(self, api: Api, task_id: int) -> None:
        super().__init__(name=f"watch-{task_id}", daemon=True)
        self.api, self.task_id = api, task_id
        self.events: list[tuple[float, dict]] = []
        self.status_code = 0
        self.error: BaseException | None = None
        self.opened = threading.Event()

    def run(self) -> None:
        try:
            with self.api.http.stream("GET", f"/backtest/tasks/{self.task_id}/watch", timeout=60) as response:
                self.status_code = response.status_code
                for line in response.iter_lines():
                    if line.strip():
                        self.events.append((time.monotonic(), json.loads(line)))
                        self.opened.set()
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.opened.set()


# ----------------------------------------------------------------------------- the platform


@dataclass
class Market:
    stocks: list[str]
    index: str
    first: str
    last: str


@dataclass
class Platform:
    env: dict[str, str]  # base environment of every service (addresses, DB URLs, credentials)
    db_url: str
    engine: devstack.Handle
    market: Market
    base: Path
    limited_engine_addr: str  # an engine_svc with ZQ_SANDBOX_MAX_SECONDS=3
    limited_engine: devstack.Handle


def service_env(base: dict[str, str], data_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(base)
    env["ZQ_DATA_DIR"] = str(data_dir)  # one per process: devstack's pid files are per data dir
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, envoy_binary: str) -> Iterator[Platform]:
    """auth_svc + engine_svc (synthetic market) on one fresh PostgreSQL database (each service
    has its own tables and version table); task_svc replicas come per test."""
    base = tmp_path_factory.mktemp("replicas")
    handles: list[devstack.Handle] = []
    with temporary_database("zq_e2e_replicas") as db_url:
        env = dict(os.environ)
        for name in ("AUTH", "TASK", "ENGINE"):
            env[f"ZQ_{name}_DATABASE_URL"] = db_url
        env.pop("ZQ_ENGINE_API_KEY", None)
        env.pop("ZQ_ENGINE_TOKEN", None)
        env.update({
            "ZQ_AUTH_ADDR": f"127.0.0.1:{devstack.free_port()}",
            "ZQ_ENGINE_ADDR": f"127.0.0.1:{devstack.free_port()}",
            "ZQ_ADMIN_PASSWORD": PASSWORD,
            "ZQ_SHUTDOWN_GRACE_SECONDS": "1",
            "ZQ_SANDBOX_SPARES": "0",  # the tests count an engine's workers
        })
        try:
            auth_env = devstack.child_env(base=service_env(env, base / "auth"))
            engine_env = devstack.child_env(base=service_env(env, base / "engine"))
            synthetic = subprocess.Popen(
                [sys.executable, "-m", "engine_svc.data", "generate-synthetic", "--symbols", "3", "--days",
                 str(SYNTHETIC_DAYS), "--seed", "5"],
                cwd=devstack.ROOT, env=engine_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            subprocess.run([sys.executable, "-m", "auth_svc", "create-admin"], cwd=devstack.ROOT, env=auth_env,
                           check=True, capture_output=True)
            env.update(devstack.service_credentials(auth_env))
            output, _ = synthetic.communicate(timeout=120)
            assert synthetic.returncode == 0, output.decode(errors="replace")
            limited_addr = f"127.0.0.1:{devstack.free_port()}"

            def start(name: str, service_env: dict[str, str]) -> devstack.Handle:
                handle = devstack.start_service(name, service_env)
                handles.append(handle)  # stopped at teardown even if another start fails
                return handle

            _, engine, limited = parallel(
                lambda: start("auth", service_env(env, base / "auth")),
                lambda: start("engine", service_env(env, base / "engine")),
                # The same engine with a 3 s cap on every job's CPU and wall time.
                lambda: start("engine", service_env(env, base / "engine-3s", ZQ_ENGINE_ADDR=limited_addr,
                                                    ZQ_SANDBOX_MAX_SECONDS="3")),
            )

            # The market as the API reports it (engine_svc's ListSymbols, by gRPC: no gateway yet).
            import grpc
            from zquant.engine.v1 import engine_pb2, engine_pb2_grpc

            with grpc.insecure_channel(env["ZQ_ENGINE_ADDR"]) as channel:
                reply = engine_pb2_grpc.EngineServiceStub(channel).ListSymbols(
                    engine_pb2.ListSymbolsRequest(include_indexes=True), timeout=15,
                    metadata=[("x-api-key", env["ZQ_ENGINE_API_KEY"]),
                              ("x-api-secret", env["ZQ_ENGINE_API_SECRET"])])
            stocks = [s for s in reply.symbols if not s.is_index]
            index = next(s for s in reply.symbols if s.is_index)
            market = Market([s.symbol for s in stocks], index.symbol, index.first_date, index.last_date)
            assert len(market.stocks) == 3 and index.bars == SYNTHETIC_DAYS
            yield Platform(env, db_url, engine, market, base, limited_addr, limited)
        finally:
            parallel(*(lambda h=h: h.stop(grace=5) for h in handles))


@dataclass
class Replica:
    name: str
    addr: str
    handle: devstack.Handle


class Stack:
    """Per test: a fresh task database, task_svc replicas, gateways, REST clients."""

    def __init__(self, platform: Platform, gateways: Callable[..., object], base: Path, task_db: str) -> None:
        self.platform = platform
        self.gateways = gateways
        self.base = base
        self.task_db = task_db
        self.handles: list[devstack.Handle] = []
        self.apis: list[Api] = []

    def start_replica(self, name: str, engine_addr: str | None = None, lease: float = 10.0) -> Replica:
        """task_svc with one worker slot, replica id `name`, on the test's task database."""
        addr = f"127.0.0.1:{devstack.free_port()}"
        settings = {
            "ZQ_TASK_ADDR": addr,
            "ZQ_TASK_REPLICA_ID": name,
            "ZQ_TASK_DATABASE_URL": self.task_db,
            "ZQ_TASK_WORKERS": "1",
            "ZQ_TASK_LEASE_SECONDS": str(lease),
            "ZQ_TASK_POLL_SECONDS": "0.25",
            "ZQ_TASK_PROGRESS_INTERVAL": "0.2",
            "ZQ_ENGINE_ADDR": engine_addr or self.platform.env["ZQ_ENGINE_ADDR"],
        }
        handle = devstack.start_service("task", service_env(self.platform.env, self.base / name, **settings))
        self.handles.append(handle)
        return Replica(name, addr, handle)

    def api(self, replica: Replica, engine_addr: str | None = None) -> Api:
        """A gateway whose task cluster is `replica` (and its engine cluster `engine_addr`)."""
        gateway = self.gateways(auth_addr=self.platform.env["ZQ_AUTH_ADDR"], task_addr=replica.addr,
                                engine_addr=engine_addr or self.platform.env["ZQ_ENGINE_ADDR"])
        gateway.wait_healthy("task")
        gateway.wait_healthy("auth")
        api = Api(gateway.url)
        self.apis.append(api)
        return api

    def close(self) -> None:
        for api in self.apis:
            api.close()
        parallel(*(lambda h=h: h.stop(grace=5) for h in self.handles))


@pytest.fixture
def stack(platform: Platform, module_gateway_factory, tmp_path: Path) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    with temporary_database("zq_e2e_replicas_task") as task_db:
        stack = Stack(platform, module_gateway_factory, tmp_path, task_db)
        try:
            yield stack
        finally:
            stack.close()
    # Whatever a test did, no sandbox worker of the shared engines may be left behind.
    for engine in (platform.engine, platform.limited_engine):
        assert wait_for("no sandbox worker left", lambda e=engine: not sandbox_workers(e.pid), 5)


# ----------------------------------------------------------------------------- tests


def test_watch_on_replica_a_streams_a_task_that_replica_b_runs(stack: Stack, platform: Platform) -> None:
    a = stack.start_replica("replica-a")
    api = stack.api(a)  # Envoy's task cluster is replica A only
    # A's only worker slot is taken by a long blocker (~18 s), so A cannot claim anything else.
    blocker = api.run(SLOW, platform.market, {"pause": 0.15})
    api.wait_status(blocker, "running", timeout=15)
    assert str(task_row(stack.task_db, blocker)["lease_owner"]).startswith("replica-a:")

    target = api.run(SLOW, platform.market, {"pause": 0.02})  # ~2.4 s of bars
    watch = Watch(api, target)
    watch.start()
    assert watch.opened.wait(10) and watch.events, watch.error
    time.sleep(0.3)
    assert api.task(target)["status"] == "pending"  # nobody can run it yet

    b = stack.start_replica("replica-b")  # its dispatcher claims the target at once
    owner = wait_for("the target's lease", lambda: task_row(stack.task_db, target)["lease_owner"], 15)
    assert str(owner).startswith("replica-b:"), owner
    watch.join(40)
    assert not watch.is_alive(), "the watch did not end after the terminal state"
    assert watch.error is None and watch.status_code == 200, watch.error

    events = [e for _, e in watch.events]
    seq = [(e["kind"], e["task"]["status"], e["terminal"]) for e in events]
    assert all(e["task"]["id"] == target for e in events)
    assert seq[0] == ("snapshot", "pending", False), seq
    assert seq[1] == ("status", "running", False), seq
    assert seq[-1] == ("status", "completed", True), seq
    assert [t for _, _, t in seq].count(True) == 1, seq
    assert {k for k, _, _ in seq[2:-1]} == {"progress"}, seq
    progress = [(at, e) for at, e in watch.events if e["kind"] == "progress"]
    assert len(progress) >= 3, seq
    fractions = [e["task"]["progress"] for _, e in progress]
    assert fractions == sorted(fractions) and all(0 < f <= 1 for f in fractions), fractions
    assert all(e["task"]["status"] == "running" and e["task"]["current_date"] for _, e in progress)
    assert events[-1]["task"]["progress"] == 1.0
    # Streamed as they happened, not buffered to the end: the run sleeps 120 x 20 ms.
    completed_at = watch.events[-1][0]
    assert completed_at - progress[0][0] > 1.0, [round(at - completed_at, 2) for at, _ in watch.events]

    done = api.task(target)
    assert done["status"] == "completed" and done["attempts"] == 1 and done["error_message"] == "", done
    result = api.http.get(f"/backtest/tasks/{target}/result")
    assert result.status_code == 200, result.text
    assert result.json()["task_id"] == target
    assert str(task_row(stack.task_db, blocker)["lease_owner"]).startswith("replica-a:")  # A stayed busy
    assert api.cancel(blocker).status_code == 200
    assert a.handle.alive() and b.handle.alive()


def test_kill_9_of_the_running_replica_hands_the_task_to_the_other(stack: Stack, platform: Platform) -> None:
    replicas = dict(zip(("replica-a", "replica-b"), parallel(
        lambda: stack.start_replica("replica-a", lease=LEASE_SECONDS),
        lambda: stack.start_replica("replica-b", lease=LEASE_SECONDS),
    ), strict=True))
    apis = {name: stack.api(replica) for name, replica in replicas.items()}
    task = apis["replica-a"].run(SLOW, platform.market, {"pause": 0.06})  # >= 7 s per run
    apis["replica-a"].wait_status(task, "running", timeout=15)
    owner = str(task_row(stack.task_db, task)["lease_owner"])
    victim = owner.split(":")[0]  # whichever replica claimed it
    survivor = next(name for name in replicas if name != victim)
    api = apis[survivor]  # through the gateway of the replica that stays up
    first_run = wait_for("the first run's sandbox worker", lambda: sandbox_workers(platform.engine.pid), 10)
    wait_for("progress of the first run", lambda: api.task(task)["progress"] > 0, 10)
    running = api.task(task)
    assert running["status"] == "running" and running["progress"] < 0.5, running  # >= 3.5 s still to go

    os.kill(replicas[victim].handle.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for("the victim to die", lambda: not replicas[victim].handle.alive(), 5)
    # The victim's gRPC stream to the engine closed with it: the engine kills that run's worker
    # at once (the run itself had seconds to go), before the survivor starts a new run.
    wait_for("the first run's worker to be killed",
             lambda: not (sandbox_workers(platform.engine.pid) & first_run), 2.5)
    assert time.monotonic() - killed_at < 3

    wait_for("the survivor to take the task over",
             lambda: str(task_row(stack.task_db, task)["lease_owner"] or "").startswith(f"{survivor}:"),
             LEASE_SECONDS + 10)
    assert time.monotonic() - killed_at > 1.0  # only once the lease had expired
    done = api.wait_status(task, "completed", "failed", "cancelled", timeout=40)
    assert done["status"] == "completed", done
    assert done["attempts"] == 2 and done["error_message"] == "" and done["progress"] == 1.0, done
    result = api.http.get(f"/backtest/tasks/{task}/result")
    assert result.status_code == 200, result.text
    assert result.json()["task_id"] == task
    assert wait_for("no sandbox worker left", lambda: not sandbox_workers(platform.engine.pid), 5)


def test_cancel_of_a_running_task_kills_its_sandbox_worker(stack: Stack, platform: Platform) -> None:
    api = stack.api(stack.start_replica("replica-a"))
    task = api.run(SLOW, platform.market, {"pause": 0.1})  # ~12 s if nobody stops it
    api.wait_status(task, "running", timeout=15)
    workers = wait_for("the sandbox worker", lambda: sandbox_workers(platform.engine.pid), 10)
    wait_for("progress", lambda: api.task(task)["progress"] > 0, 10)

    response = api.cancel(task)
    cancelled_at = time.monotonic()
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    wait_for("the worker to be killed", lambda: not (sandbox_workers(platform.engine.pid) & workers), 3)
    assert time.monotonic() - cancelled_at < 3
    time.sleep(0.5)  # the runner's late writes must not overwrite the cancel
    final = api.task(task)
    assert final["status"] == "cancelled" and final["progress"] < 1.0, final
    assert api.http.get(f"/backtest/tasks/{task}/result").status_code == 404
    assert api.cancel(task).status_code == 400  # already finished


def test_endless_strategy_fails_with_the_time_limit(stack: Stack, platform: Platform) -> None:
    engine_addr = platform.limited_engine_addr  # ZQ_SANDBOX_MAX_SECONDS=3
    api = stack.api(stack.start_replica("replica-a", engine_addr=engine_addr), engine_addr=engine_addr)
    task = api.run(ENDLESS, platform.market)
    api.wait_status(task, "running", timeout=15)
    wait_for("the sandbox worker", lambda: sandbox_workers(platform.limited_engine.pid), 10)
    done = api.wait_status(task, "completed", "failed", "cancelled", timeout=20)
    assert done["status"] == "failed", done
    # wall clock ("time limit exceeded (3 s)") or CPU ("CPU time limit exceeded (3 s)"), whichever first
    assert "time limit exceeded (3 s)" in done["error_message"], done["error_message"]
    assert done["attempts"] == 1
    assert wait_for("no sandbox worker left", lambda: not sandbox_workers(platform.limited_engine.pid), 3)
