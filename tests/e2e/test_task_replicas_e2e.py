"""Two task_svc replicas on one PostgreSQL database, the real engine_svc and auth_svc, all as
real processes, driven through the real Envoy gateway (REST):

- a watch opened on replica A streams, as they happen, the life of a task that replica B runs;
- kill -9 of the replica running a task: the other takes it over once the lease expires and
  finishes it (attempts == 2), and the dead replica's sandbox worker does not survive it;
- cancel of a RUNNING task kills its sandbox worker; an endless strategy hits the time limit;
- both replicas in one gateway cluster: one frozen (SIGSTOP) under read traffic costs a read at
  most the route's per-try timeout plus a retry (every read succeeds), then Envoy takes it out
  and reads are fast again; a write it holds is answered once when it resumes (SIGCONT), after
  which it serves again; the same for the gateway's engine cluster over two engines; one killed
  (SIGKILL) under traffic costs a read nothing (reset or refused tries are retried at once).

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
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import psycopg
import pytest
import yaml
from sqlalchemy.engine import make_url

import devstack
from tests.pgtools import temporary_database

if TYPE_CHECKING:
    from tests.e2e.conftest import Gateway

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
            "SELECT status, lease_owner, attempts, retries FROM backtest_tasks WHERE id = %s", (task_id,)
        ).fetchone()
    assert row is not None, task_id
    return {"status": row[0], "lease_owner": row[1], "attempts": row[2], "retries": row[3]}


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

    def start_replica(self, name: str, engine_addr: str | None = None, lease: float = 10.0,
                      **extra: str) -> Replica:
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
            **extra,
        }
        handle = devstack.start_service("task", service_env(self.platform.env, self.base / name, **settings))
        self.handles.append(handle)
        return Replica(name, addr, handle)

    def start_engine(self, name: str) -> tuple[str, devstack.Handle]:
        """Another engine_svc on the platform's market data (stopped with the test)."""
        addr = f"127.0.0.1:{devstack.free_port()}"
        handle = devstack.start_service("engine", service_env(self.platform.env, self.base / name, ZQ_ENGINE_ADDR=addr))
        self.handles.append(handle)
        return addr, handle

    def api(self, replica: Replica, engine_addr: str | None = None) -> Api:
        """A gateway whose task cluster is `replica` (and its engine cluster `engine_addr`)."""
        return self.gateway([replica], [engine_addr] if engine_addr else [])[1]

    def gateway(self, replicas: Sequence[Replica], engine_addrs: Sequence[str] = ()) -> tuple[Gateway, Api]:
        """A gateway whose task cluster lists every one of `replicas` (and whose engine cluster
        lists `engine_addrs`, by default the platform's engine), with its admin's REST client."""
        gateway = self.gateways(auth_addr=self.platform.env["ZQ_AUTH_ADDR"],
                                task_addr=[r.addr for r in replicas] or None,  # none: a cluster that is down
                                engine_addr=list(engine_addrs) or self.platform.env["ZQ_ENGINE_ADDR"])
        for cluster in ("task", "auth", "engine") if replicas else ("auth", "engine"):
            gateway.wait_healthy(cluster)
        api = Api(gateway.url)
        self.apis.append(api)
        return gateway, api

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


# ----------------------------------------------------------------------------- hung or dead replicas

# What a retried read may cost beyond the try that hung: its retry on the healthy replica and a
# loaded 2-core machine. Far below the route timeout (15 s), which is what a hung try cost
# before the per-try timeout (~16 s).
RETRY_SLACK = 2.5
NORMAL_P95 = 0.75  # s: reads once the frozen replica is out (20-120 ms measured on a busy 2-core machine)


@dataclass(frozen=True)
class Sample:
    started: float  # time.monotonic()
    seconds: float
    status: int  # HTTP status; 0: no response (transport error)
    path: str
    body: str  # of a failure, for the assertion message


class Traffic:
    """`clients` threads GETting `paths` in turn through the gateway, as fast as they are
    answered, until stop(), which waits for the requests in flight (a hung one included)."""

    def __init__(self, api: Api, paths: Sequence[str], clients: int = 4) -> None:
        self.api, self.paths = api, list(paths)
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def done(self) -> int:
        return len(self.samples)

    def stop(self) -> list[Sample]:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        assert not any(t.is_alive() for t in self._threads), "a request outlived its route timeout"
        return self.samples

    def _run(self, offset: int) -> None:
        with httpx.Client(base_url=self.api.http.base_url, headers=self.api.http.headers, timeout=60) as http:
            i = offset
            while not self._stop.is_set():
                path = self.paths[i % len(self.paths)]
                i += 1
                started = time.monotonic()
                try:
                    response = http.get(path)
                    status, body = response.status_code, "" if response.is_success else response.text[:300]
                except httpx.HTTPError as exc:
                    status, body = 0, repr(exc)
                self.samples.append(Sample(started, time.monotonic() - started, status, path, body))


def timed_reads(api: Api, paths: Sequence[str], count: int) -> list[Sample]:
    """`count` GETs one after another (the client's view once the gateway has settled)."""
    samples = []
    for i in range(count):
        path = paths[i % len(paths)]
        started = time.monotonic()
        response = api.http.get(path)
        samples.append(Sample(started, time.monotonic() - started, response.status_code, path,
                              "" if response.is_success else response.text[:300]))
    return samples


def p95(samples: Sequence[Sample]) -> float:
    ordered = sorted(s.seconds for s in samples)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def failures(samples: Sequence[Sample]) -> list[Sample]:
    return [s for s in samples if s.status != 200]


def read_route(gateway: Gateway, grpc_prefix: str) -> dict[str, float]:
    """timeout, per_try_timeout (s) and num_retries of the route for `grpc_prefix` in the config
    this gateway runs: the bounds below come from the configuration under test."""
    doc = yaml.safe_load(gateway.config_path.read_text())
    hcm = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    route = next(r["route"] for r in hcm["route_config"]["virtual_hosts"][0]["routes"]
                 if r["match"].get("prefix") == grpc_prefix)
    policy = route.get("retry_policy", {})
    return {"timeout": float(route["timeout"].rstrip("s")),
            "per_try_timeout": float(policy.get("per_try_timeout", "0s").rstrip("s")),
            "num_retries": float(policy.get("num_retries", 1))}


def served(gateway: Gateway, cluster: str) -> dict[str, int]:
    return {addr: host.rq_total for addr, host in gateway.hosts(cluster).items()}


@dataclass
class Freeze:
    during: list[Sample]  # reads from SIGSTOP until Envoy had taken the replica out
    after: list[Sample]  # reads after that, one by one
    taken_out_after: float  # s from SIGSTOP to the replica flagged by Envoy
    flags: frozenset[str]  # how Envoy flagged it
    per_try_timeouts: int  # tries Envoy cut at the per-try timeout
    retried: int  # requests Envoy retried
    sent_to_frozen_after: int  # requests Envoy sent to the frozen replica once it was out


def freeze_one_of_two(gateway: Gateway, cluster: str, api: Api, paths: Sequence[str], victim_pid: int,
                      victim_addr: str, on_freeze: Callable[[], object] = lambda: None,
                      while_out: Callable[[], object] = lambda: None) -> Freeze:
    """SIGSTOP one of the cluster's two hosts (then `on_freeze`) under read traffic, until Envoy
    takes it out; then reads one by one, and `while_out`; SIGCONT before returning, whatever
    happened."""
    before = gateway.stats(f"cluster.{cluster}.")
    os.kill(victim_pid, signal.SIGSTOP)
    frozen_at = time.monotonic()
    try:
        on_freeze()
        with Traffic(api, paths) as traffic:
            flags = wait_for(f"Envoy to take {victim_addr} out of {cluster}",
                             lambda: gateway.hosts(cluster)[victim_addr].flags, 10, interval=0.05)
            taken_out_after = time.monotonic() - frozen_at
        # Requests of the traffic that hung on the frozen replica have all ended (stop() waits).
        sent = gateway.hosts(cluster)[victim_addr].rq_total
        after = timed_reads(api, paths, 40)
        sent_to_frozen_after = gateway.hosts(cluster)[victim_addr].rq_total - sent
        while_out()
        stats = gateway.stats(f"cluster.{cluster}.")
    finally:
        os.kill(victim_pid, signal.SIGCONT)

    def delta(name: str) -> int:
        return stats.get(f"cluster.{cluster}.{name}", 0) - before.get(f"cluster.{cluster}.{name}", 0)

    return Freeze(traffic.samples, after, taken_out_after, flags, delta("upstream_rq_per_try_timeout"),  # type: ignore[arg-type]
                  delta("upstream_rq_retry"), sent_to_frozen_after)


def assert_freeze_bounded(freeze: Freeze, route: dict[str, float], name: str) -> None:
    during, after = freeze.during, freeze.after
    worst = max(s.seconds for s in during)
    print(f"\n{name}: {len(during)} reads while frozen, worst {worst:.2f} s; out after {freeze.taken_out_after:.2f} s"
          f" ({sorted(freeze.flags)}); {freeze.per_try_timeouts} tries cut, {freeze.retried} retried;"
          f" then p95 {p95(after) * 1000:.0f} ms, worst {max(s.seconds for s in after) * 1000:.0f} ms")
    # Every read succeeds, and a hung try costs the per-try timeout, not the route's timeout
    # (without a per-try timeout: 15 s, a 504 for the read that hung).
    assert not failures(during), failures(during)[:3]
    bound = route["per_try_timeout"] + RETRY_SLACK
    assert bound < route["timeout"]
    assert worst <= bound, (worst, sorted((round(s.seconds, 2), s.path) for s in during)[-5:])
    # The freeze was felt: some reads reached the frozen replica and were cut at the per-try
    # timeout, then retried (without that the bound above would prove nothing).
    assert freeze.per_try_timeouts >= 1 and freeze.retried >= freeze.per_try_timeouts, freeze
    assert worst >= route["per_try_timeout"] * 0.9, worst
    # Once Envoy has taken it out (health check or outlier ejection), reads are normal again.
    assert not failures(after), failures(after)[:3]
    assert freeze.sent_to_frozen_after == 0
    assert p95(after) <= NORMAL_P95, sorted(round(s.seconds, 3) for s in after)[-5:]


def idle_task(api: Api, market: Market) -> int:
    """A task to read that no replica works on (cancelled at once: no lease, no run to wait for)."""
    task = api.run(SLOW, market, {"pause": 0.1})
    response = api.cancel(task)
    assert response.status_code == 200 and response.json()["status"] == "cancelled", response.text
    return task


def assert_both_serve(gateway: Gateway, cluster: str, api: Api, paths: Sequence[str], timeout: float = 15) -> float:
    """Reads until Envoy has sent some to each host of `cluster`: the seconds that took. Every
    read must succeed meanwhile. (A host back from an outlier ejection, 5 s, or a failed health
    check gets requests again a moment after the admin API shows it healthy.)"""
    started = time.monotonic()
    before = served(gateway, cluster)
    samples: list[Sample] = []

    def both_served() -> bool:
        samples.extend(timed_reads(api, paths, 4))
        now = served(gateway, cluster)
        return all(now[addr] > before[addr] for addr in before)

    wait_for(f"both hosts of {cluster} to serve reads", both_served, timeout, interval=0.05)
    assert not failures(samples), failures(samples)[:3]
    return time.monotonic() - started


def test_a_frozen_task_replica_costs_a_read_at_most_one_per_try_timeout(stack: Stack, platform: Platform) -> None:
    a, b = parallel(lambda: stack.start_replica("replica-a"), lambda: stack.start_replica("replica-b"))
    gateway, api = stack.gateway([a, b])  # one task cluster, two endpoints
    _, only_b = stack.gateway([b])  # a gateway that has nowhere else to send b's requests
    task = idle_task(api, platform.market)
    paths = ["/backtest/tasks?skip=0&limit=20", f"/backtest/tasks/{task}"]
    route = read_route(gateway, "/zquant.backtest.v1.TaskRestService/Get")
    assert read_route(gateway, "/zquant.backtest.v1.TaskRestService/List") == route
    assert_both_serve(gateway, "task", api, paths)

    # A write is not retried after it may have reached a service (no double submissions): one
    # sent to the frozen replica waits for it (up to the route's 30 s, then 504).
    write: dict[str, object] = {}

    def submit_to_frozen_b() -> None:
        started = time.monotonic()
        try:
            write["id"] = only_b.run(SLOW, platform.market, {"pause": 0})
        except BaseException as exc:  # reported below
            write["error"] = exc
        write["seconds"] = time.monotonic() - started

    writer = threading.Thread(target=submit_to_frozen_b, daemon=True)
    submitted: list[float] = []

    def submit_while_b_is_out() -> None:
        # Writes through the two-replica gateway go to the live replica.
        started = time.monotonic()
        api.run(SLOW, platform.market, {"pause": 0})
        submitted.append(time.monotonic() - started)

    freeze = freeze_one_of_two(gateway, "task", api, paths, b.handle.pid, b.addr,
                               on_freeze=writer.start, while_out=submit_while_b_is_out)
    writer.join(40)
    assert_freeze_bounded(freeze, route, "task_svc")
    # (Had it gone to b, it would have waited for the SIGCONT that comes after it: a 504 at 30 s.)
    print(f"write through the two-replica gateway: 201 after {submitted[0]:.2f} s")
    # The write held by the frozen replica was answered when it woke, once: no second copy.
    assert "error" not in write, write
    assert write["seconds"] >= 1.0, write  # type: ignore[operator]
    print(f"write held by the frozen replica answered after {write['seconds']:.2f} s (201, task {write['id']})")
    listed = api.http.get("/backtest/tasks?skip=0&limit=100")
    assert int(listed.headers["x-total-count"]) == 3, listed.json()
    print(f"both replicas serve again {assert_both_serve(gateway, 'task', api, paths):.2f} s after SIGCONT")


def test_a_frozen_engine_replica_costs_a_read_at_most_one_per_try_timeout(stack: Stack, platform: Platform) -> None:
    """The gateway's engine cluster (market-data reads) over the platform's two engines."""
    gateway, api = stack.gateway([], [platform.env["ZQ_ENGINE_ADDR"], platform.limited_engine_addr])
    paths = ["/backtest/data/symbols?include_indexes=true", "/backtest/data/symbols"]
    route = read_route(gateway, "/zquant.engine.v1.EngineRestService/")
    assert_both_serve(gateway, "engine", api, paths)
    freeze = freeze_one_of_two(gateway, "engine", api, paths, platform.limited_engine.pid, platform.limited_engine_addr)
    assert_freeze_bounded(freeze, route, "engine_svc")
    print(f"both engines serve again {assert_both_serve(gateway, 'engine', api, paths):.2f} s after SIGCONT")


def test_a_killed_task_replica_costs_a_read_nothing(stack: Stack, platform: Platform) -> None:
    a, b = parallel(lambda: stack.start_replica("replica-a"), lambda: stack.start_replica("replica-b"))
    gateway, api = stack.gateway([a, b])
    task = idle_task(api, platform.market)
    paths = ["/backtest/tasks?skip=0&limit=20", f"/backtest/tasks/{task}"]
    assert_both_serve(gateway, "task", api, paths)
    before = gateway.stats("cluster.task.")
    with Traffic(api, paths, clients=8) as traffic:  # reads in flight on b when it dies
        start = served(gateway, "task")[b.addr]
        wait_for("reads served by b", lambda: served(gateway, "task")[b.addr] >= start + 10, 10)
        os.kill(b.handle.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for("Envoy to take b out", lambda: gateway.hosts("task")[b.addr].flags, 10)
        out_after = time.monotonic() - killed_at
        count = traffic.done()
        wait_for("reads after that", lambda: traffic.done() >= count + 20, 10)
    stats = gateway.stats("cluster.task.")
    samples = traffic.samples
    worst = max(s.seconds for s in samples)
    retried, overflow = (stats.get(f"cluster.task.{name}", 0) - before.get(f"cluster.task.{name}", 0)
                         for name in ("upstream_rq_retry", "upstream_rq_retry_overflow"))
    print(f"\nkill -9: {len(samples)} reads, worst {worst:.2f} s, {retried} retried, b out after {out_after:.2f} s")
    # (Envoy's default of 3 retries in flight per cluster left the 4th read in flight on b unretried.)
    assert not failures(samples), (f"{overflow} not retried (retry budget)", failures(samples)[:3])
    # Reads in flight on b were reset (and any sent after it died found no listener): retried at
    # once on a, no try hangs.
    assert retried >= 1, stats
    assert worst <= RETRY_SLACK, sorted(round(s.seconds, 2) for s in samples)[-5:]
    assert a.handle.alive() and not b.handle.alive()


def test_a_frozen_engine_under_a_run_sends_the_task_to_another_engine(stack: Stack, platform: Platform) -> None:
    """task_svc's own channel to the engines (round-robin over both, keepalive 1 s here): a run
    whose engine freezes mid-stream (no RST, so only the keepalive can tell) goes back to the
    queue and completes on the other engine, instead of staying RUNNING for ever."""
    other_addr, other = stack.start_engine("engine-b")
    replica = stack.start_replica("replica-a", engine_addr=f"{platform.env['ZQ_ENGINE_ADDR']},{other_addr}",
                                  ZQ_TASK_ENGINE_KEEPALIVE_SECONDS="1", ZQ_TASK_RETRY_BASE_SECONDS="0.5")
    api = stack.api(replica)
    engines = {platform.engine.pid: platform.engine, other.pid: other}
    task = api.run(SLOW, platform.market, {"pause": 0.06})  # >= 7 s per run
    running_on = wait_for("a sandbox worker for the run",
                          lambda: next((pid for pid in engines if sandbox_workers(pid)), None), 20)
    api.wait_status(task, "running", timeout=10)
    victim = engines[running_on]  # type: ignore[index]
    survivor = next(h for pid, h in engines.items() if pid != running_on)
    os.kill(victim.pid, signal.SIGSTOP)
    frozen_at = time.monotonic()
    try:
        wait_for("the run to start again on the other engine", lambda: sandbox_workers(survivor.pid), 15)
        moved_after = time.monotonic() - frozen_at
        done = api.wait_status(task, "completed", "failed", "cancelled", timeout=40)
    finally:
        os.kill(victim.pid, signal.SIGCONT)
    print(f"\nrun moved to the other engine {moved_after:.2f} s after its engine froze")
    assert done["status"] == "completed" and done["error_message"] == "" and done["progress"] == 1.0, done
    # An unavailable engine is not the run's fault: not counted as an attempt, but as a retry.
    row = task_row(stack.task_db, task)
    assert (done["attempts"], row["retries"]) == (1, 1), row
    # keepalive 1 s + 1 s to answer, then the retry back-off (0.5 s) and a new worker's start.
    assert moved_after < 8, moved_after
