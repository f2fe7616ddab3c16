"""task service benchmark: many small backtests through the REST gateway, with one live watcher.

    .venv/bin/python bench/tasks_bench.py                       # 200 tasks, SQLite
    .venv/bin/python bench/tasks_bench.py --pg                  # a fresh PostgreSQL database
    .venv/bin/python bench/tasks_bench.py --tasks 50 --submitters 2 --json out.json

Starts the whole stack as `make up` does (devstack/), in a temporary ZQ_DATA_DIR:
synthetic market data (`python -m engine_svc.data generate-synthetic`, default 20 symbols ×
300 days), the admin (`python -m auth_svc create-admin`), task_svc's engine credentials
(`devstack.service_credentials`), auth_svc, engine_svc (ZQ_ENGINE_SLOTS=2), task_svc
(ZQ_TASK_WORKERS=2) and Envoy. Databases: SQLite files in the data dir, or with --pg one new
PostgreSQL database (on --pg-url's server) shared by the three services, dropped at the end.

ZQ_TASK_MAX_ACTIVE_PER_USER is raised to 1000 (default 20) and ZQ_TASK_MAX_PENDING to at
least --tasks: the bench submits everything at once as one user, which the default per-user
quota would refuse with RESOURCE_EXHAUSTED.

Then, all through Envoy (HTTP/1.1, Bearer JWT of the admin):
  1. one WatchTasks stream (GET /api/v1/backtest/watch, NDJSON) is opened in a thread that
     stamps every line with time.time() as it arrives;
  2. --tasks backtests are submitted (POST /api/v1/backtest/run) by --submitters threads, one
     keep-alive connection each: a short buy / monthly-sell strategy_code on 3 symbols over
     about a year; every --fail-every'th task runs code that raises (FAILED path);
  3. the bench waits until the watcher has seen every task terminal (a GET /tasks/{id} sweep
     every 15 s covers a watcher that missed one), then checks each task: GET /tasks/{id} must
     be terminal; COMPLETED must have GET /result 200, FAILED/CANCELLED an error_message.

Reported:
  throughput       terminal tasks per minute, first submit → last terminal event seen;
  submit latency   per POST /backtest/run call, p50 / p99;
  watch latency    for each STATUS event: receive time − the transition's own timestamp in the
                   event's task JSON (PENDING: created_at, RUNNING: started_at, COMPLETED /
                   FAILED / CANCELLED: completed_at). Both clocks are this machine's wall clock
                   (task_svc stamps utcnow() just before its UPDATE), so the figure covers
                   commit + publish + the watcher's re-read + proto/JSON + Envoy + client;
  watch coverage   tasks whose terminal STATUS the watcher never delivered, RUNNING events
                   coalesced into the terminal one (allowed by design, see task_svc/watch.py);
  nothing lost     count by status; exit status 1 if any task is not terminal, lacks its
                   result / error message, or a submit failed.

Target: watch latency p99 < 100 ms. Prints a table and one JSON document.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent import futures
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchstats import summary_ms  # noqa: E402  (bench/ is sys.path[0] when run as a script)

import devstack  # noqa: E402  (repo on sys.path first when run as a script)

STRATEGY = """
from zquant.backtest.strategy import BaseStrategy

class Strategy(BaseStrategy):
    def on_bar(self, context, bar_data):
        for symbol in bar_data:
            if context.portfolio.get_position(symbol).quantity == 0:
                context.order_value(symbol, context.portfolio.total_value * 0.3)
        if context.current_date.day == 15:
            for symbol in list(context.portfolio.positions):
                context.order_target(symbol, 0)
"""
FAILING = """
from zquant.backtest.strategy import BaseStrategy

class Strategy(BaseStrategy):
    def on_bar(self, context, bar_data):
        if context.current_date.month == 6:
            raise ValueError("bench: deliberate failure in June")
"""
TERMINAL = {"completed", "failed", "cancelled"}
# Which timestamp of the task JSON marks the transition that a STATUS event reports.
TRANSITION_FIELD = {"pending": "created_at", "running": "started_at", "completed": "completed_at",
                    "failed": "completed_at", "cancelled": "completed_at"}


def parse_ts(value: str | None) -> float | None:
    """RFC 3339 from the transcoder (always UTC, 'Z', 0/3/6/9 fraction digits) → epoch seconds."""
    if not value:
        return None
    head, _, frac = value.rstrip("Z").partition(".")
    base = datetime.fromisoformat(head + "+00:00").timestamp()
    return base + (float("0." + frac) if frac else 0.0)


class Watcher(threading.Thread):
    """Reads GET /api/v1/backtest/watch and stamps every NDJSON line on arrival."""

    def __init__(self, base_url: str, bearer: str) -> None:
        super().__init__(name="watcher", daemon=True)
        self.base_url, self.bearer = base_url, bearer
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.connected = threading.Event()
        self.terminal_seen: dict[int, str] = {}
        self.reconnects = 0
        self.headers_at: float | None = None
        self.errors: list[str] = []
        self.changed = threading.Condition(self.lock)

    def run(self) -> None:
        while not self.stop_flag.is_set():
            try:
                with (httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(10.0, read=None)) as client,
                      client.stream("GET", "/api/v1/backtest/watch",
                                    headers={"authorization": self.bearer}) as response):
                    if response.status_code != 200:
                        raise RuntimeError(f"watch: HTTP {response.status_code} {response.read()[:200]!r}")
                    self.headers_at = time.time()
                    self.connected.set()
                    for line in response.iter_lines():
                        received = time.time()
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        with self.changed:
                            self.events.append((received, event))
                            task = event.get("task") or {}
                            if event.get("kind") in ("status", "snapshot") and task.get("status") in TERMINAL:
                                self.terminal_seen[int(task["id"])] = task["status"]
                            self.changed.notify_all()
                        if self.stop_flag.is_set():
                            return
            except Exception as exc:
                if self.stop_flag.is_set():
                    return
                self.errors.append(f"{type(exc).__name__}: {exc}")
            if not self.stop_flag.is_set():
                self.reconnects += 1
                time.sleep(0.2)


class Rest:
    """One keep-alive HTTP/1.1 connection to the gateway (one per thread)."""

    def __init__(self, port: int, bearer: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"authorization": bearer, "content-type": "application/json"}

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        payload = json.dumps(body) if body is not None else None
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, body=payload, headers=self.headers)
                resp = self.conn.getresponse()
                data = resp.read()
                return resp.status, (json.loads(data) if data else None)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()  # keep-alive connection closed by Envoy: one retry on a new one
                if attempt:
                    raise
        raise AssertionError("unreachable")


def wait_clusters_healthy(admin_port: int, names: list[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    state: dict[str, list[str]] = {}
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/clusters?format=json", timeout=5) as r:
            data = json.load(r)
        state = {}
        for cluster in data.get("cluster_statuses", []):
            flags = []
            for host in cluster.get("host_statuses", []):
                status = host.get("health_status", {})
                failed = [k for k, v in status.items() if k != "eds_health_status" and v is True]
                flags.append(",".join(failed) or status.get("eds_health_status", "HEALTHY"))
            state[cluster["name"]] = flags
        if all(state.get(n) and all(f == "HEALTHY" for f in state[n]) for n in names):
            return
        time.sleep(0.1)
    raise RuntimeError(f"Envoy clusters not healthy after {timeout}s: {state}")


def run_step(argv: list[str], env: dict[str, str], what: str) -> None:
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")


def pg_admin(base_url: str) -> str:
    return make_url(base_url).set(drivername="postgresql").render_as_string(hide_password=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=200, help="backtests to submit (default 200)")
    ap.add_argument("--submitters", type=int, default=4, help="concurrent submitting threads (default 4)")
    ap.add_argument("--symbols", type=int, default=20, help="synthetic market: symbols (default 20)")
    ap.add_argument("--days", type=int, default=300, help="synthetic market: trading days (default 300)")
    ap.add_argument("--task-symbols", type=int, default=3, help="symbols per backtest (default 3)")
    ap.add_argument("--fail-every", type=int, default=25,
                    help="every n-th task runs code that raises (0: none; default 25)")
    ap.add_argument("--workers", type=int, default=2, help="ZQ_TASK_WORKERS (default 2)")
    ap.add_argument("--slots", type=int, default=2, help="ZQ_ENGINE_SLOTS (default 2)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for all tasks to end")
    ap.add_argument("--pg", action="store_true", help="PostgreSQL instead of SQLite (fresh database)")
    ap.add_argument("--pg-url", default=os.environ.get("ZQ_TEST_PG_URL",
                                                       "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
                    help="server for --pg (a database is created there and dropped afterwards)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary data dir (logs) for inspection")
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="zq_tasks_bench_")
    data_dir = Path(tmp)
    password = secrets.token_urlsafe(16)
    ports = {name: devstack.free_port() for name in ("auth", "task", "engine", "gw", "admin")}
    extra = {
        "ZQ_DATA_DIR": str(data_dir), "ZQ_LOG_LEVEL": "WARNING",
        "ZQ_AUTH_ADDR": f"127.0.0.1:{ports['auth']}", "ZQ_TASK_ADDR": f"127.0.0.1:{ports['task']}",
        "ZQ_ENGINE_ADDR": f"127.0.0.1:{ports['engine']}",
        "ZQ_ADMIN_USERNAME": "bench_admin", "ZQ_ADMIN_PASSWORD": password,
        "ZQ_ENGINE_SLOTS": str(args.slots), "ZQ_TASK_WORKERS": str(args.workers),
        "ZQ_TASK_MAX_ACTIVE_PER_USER": str(max(1000, args.tasks)),
        "ZQ_TASK_MAX_PENDING": str(max(1000, args.tasks)),
        "ZQ_ACCESS_TOKEN_TTL_SECONDS": "86400",  # a long run must not outlive the bench's token
    }
    env = devstack.child_env(extra=extra)
    for name in ("AUTH", "TASK", "ENGINE"):
        env.pop(f"ZQ_{name}_DATABASE_URL", None)
    env.pop("ZQ_ENGINE_API_KEY", None)
    env.pop("ZQ_ENGINE_API_SECRET", None)
    env.pop("ZQ_ENGINE_TOKEN", None)

    pg_name = None
    handles: list[devstack.Handle] = []
    watcher: Watcher | None = None
    doc: dict[str, Any] = {}
    ok = False
    try:
        if args.pg:
            pg_name = f"zq_tasks_bench_{secrets.token_hex(4)}"
            with psycopg.connect(pg_admin(args.pg_url), autocommit=True, connect_timeout=5) as admin:
                admin.execute(f'CREATE DATABASE "{pg_name}"')
            url = make_url(args.pg_url).set(drivername="postgresql+psycopg", database=pg_name).render_as_string(
                hide_password=False)
            for name in ("AUTH", "TASK", "ENGINE"):
                env[f"ZQ_{name}_DATABASE_URL"] = url

        t0 = time.perf_counter()
        run_step([sys.executable, "-m", "engine_svc.data", "--quiet", "generate-synthetic", "--symbols",
                  str(args.symbols), "--days", str(args.days), "--seed", "1"], env, "generate-synthetic")
        run_step([sys.executable, "-m", "auth_svc", "create-admin"], env, "create-admin")
        env.update(devstack.service_credentials(env))
        for name in ("auth", "engine", "task"):
            handles.append(devstack.start_service(name, env))
        handles.append(devstack.start_envoy(data_dir / "envoy", ports["gw"], ports["admin"],
                                            auth_addr=env["ZQ_AUTH_ADDR"], task_addr=env["ZQ_TASK_ADDR"],
                                            engine_addr=env["ZQ_ENGINE_ADDR"]))
        wait_clusters_healthy(ports["admin"], ["auth", "task", "engine"])
        setup_s = time.perf_counter() - t0
        base = f"http://127.0.0.1:{ports['gw']}"

        with httpx.Client(base_url=base, timeout=30) as client:
            login = client.post("/api/v1/auth/login", json={"username": "bench_admin", "password": password})
            login.raise_for_status()
            bearer = f"Bearer {login.json()['access_token']}"
            symbols_resp = client.get("/api/v1/backtest/data/symbols", headers={"authorization": bearer})
            symbols_resp.raise_for_status()
        infos = [s for s in symbols_resp.json()["symbols"] if not s["is_index"]]
        start = min(s["first_date"] for s in infos)
        last = min(s["last_date"] for s in infos)
        stocks = sorted(s["symbol"] for s in infos if s["first_date"] == start)  # listed from day one
        # ~1 year: 243 weekdays on (the synthetic calendar is every weekday), within the data.
        end = min(last, str(np.busday_offset(np.datetime64(start), 243, roll="forward")))

        watcher = Watcher(base, bearer)
        watch_opened = time.time()
        watcher.start()
        # The 200 only arrives with the first event (see the README: with no active task, the
        # stream sends no headers until something changes), so this wait normally times out.
        watcher.connected.wait(2.0)
        if watcher.errors:
            raise RuntimeError(f"watch stream failed: {watcher.errors}")

        local = threading.local()
        submits: list[tuple[int, float, int, Any]] = []  # (index, latency s, HTTP status, body)
        submit_lock = threading.Lock()

        def submit(i: int) -> None:
            if not hasattr(local, "rest"):
                local.rest = Rest(ports["gw"], bearer)
            failing = args.fail_every > 0 and i % args.fail_every == args.fail_every - 1
            chosen = [stocks[(i * 7 + k) % len(stocks)] for k in range(args.task_symbols)]
            body = {"strategy_code": FAILING if failing else STRATEGY, "strategy_name": f"bench-{i}",
                    "config": {"start_date": start, "end_date": end, "symbols": chosen, "benchmark": "000300.SH"}}
            began = time.perf_counter()
            status, reply = local.rest.call("POST", "/api/v1/backtest/run", body)
            latency = time.perf_counter() - began
            with submit_lock:
                submits.append((i, latency, status, reply))

        first_submit = time.time()
        with futures.ThreadPoolExecutor(args.submitters) as pool:
            list(pool.map(submit, range(args.tasks)))
        submit_wall = time.time() - first_submit
        submitted = {int(r["id"]): i for i, _, s, r in submits if s == 201}
        submit_errors = [(i, s, r) for i, _, s, r in submits if s != 201]

        # Wait for the watcher to report every task terminal; sweep with GET every 15 s.
        checker = Rest(ports["gw"], bearer)
        deadline = time.monotonic() + args.timeout
        swept_terminal: dict[int, str] = {}
        next_sweep = time.monotonic() + 15
        while time.monotonic() < deadline:
            with watcher.changed:
                missing = [t for t in submitted if t not in watcher.terminal_seen and t not in swept_terminal]
                if not missing:
                    break
                watcher.changed.wait(1.0)
            if time.monotonic() >= next_sweep:
                for tid in missing:
                    status, task = checker.call("GET", f"/api/v1/backtest/tasks/{tid}")
                    if status == 200 and task["status"] in TERMINAL:
                        swept_terminal[tid] = task["status"]
                next_sweep = time.monotonic() + 15
        with watcher.lock:
            last_event = max((t for t, e in watcher.events
                              if e.get("kind") == "status" and (e.get("task") or {}).get("status") in TERMINAL),
                             default=time.time())
        time.sleep(0.5)  # late events still count for the latency figures
        watcher.stop_flag.set()

        # Verify every task: terminal, with a result or an error message.
        by_status: dict[str, int] = {}
        lost: list[dict[str, Any]] = []
        for tid in sorted(submitted):
            status, task = checker.call("GET", f"/api/v1/backtest/tasks/{tid}")
            st = task.get("status") if status == 200 else f"HTTP {status}"
            by_status[st] = by_status.get(st, 0) + 1
            if st == "completed":
                rstatus, result = checker.call("GET", f"/api/v1/backtest/tasks/{tid}/result")
                if rstatus != 200 or int(result.get("task_id", 0)) != tid:
                    lost.append({"task_id": tid, "why": f"COMPLETED but GET /result → {rstatus}"})
            elif st in ("failed", "cancelled"):
                if not task.get("error_message"):
                    lost.append({"task_id": tid, "why": f"{st} without error_message"})
            else:
                lost.append({"task_id": tid, "why": f"not terminal: {st}"})
        error_samples = sorted({task_error for task_error in (
            checker.call("GET", f"/api/v1/backtest/tasks/{tid}")[1].get("error_message", "")
            for tid in list(submitted)[args.fail_every - 1::max(1, args.fail_every)][:3]) if task_error})

        # Transition → watcher latency.
        with watcher.lock:
            events = list(watcher.events)
        latencies: dict[str, list[float]] = {}
        seen: dict[int, list[str]] = {}
        kinds: dict[str, int] = {}
        slowest: list[tuple[float, int, str, float]] = []
        for received, event in events:
            kinds[event.get("kind", "?")] = kinds.get(event.get("kind", "?"), 0) + 1
            task = event.get("task") or {}
            if event.get("kind") != "status" or int(task.get("id", 0)) not in submitted:
                continue
            status = task["status"]
            seen.setdefault(int(task["id"]), []).append(status)
            stamp = parse_ts(task.get(TRANSITION_FIELD.get(status, "updated_at")))
            if stamp is not None:
                latencies.setdefault(status, []).append(received - stamp)
                slowest.append((received - stamp, int(task["id"]), status, received - first_submit))
        all_lat = [v for vs in latencies.values() for v in vs]
        never_terminal = sorted(t for t in submitted if t not in watcher.terminal_seen)
        running_coalesced = sum(1 for t in submitted if "running" not in seen.get(t, []))
        pending_unseen = sum(1 for t in submitted if "pending" not in seen.get(t, []))

        terminal_n = sum(n for s, n in by_status.items() if s in TERMINAL)
        # After the last submit the engine no longer shares the CPUs with ValidateStrategy
        # sandboxes: the drain rate is the run-only throughput.
        submit_end = first_submit + submit_wall
        ends = sorted(t for t, e in events if e.get("kind") == "status"
                      and (e.get("task") or {}).get("status") in TERMINAL)
        drained = [t for t in ends if t > submit_end]
        drain_rate = round(len(drained) / max(1e-9, ends[-1] - submit_end) * 60, 1) if len(drained) > 1 else None
        span = max(1e-9, last_event - first_submit)
        watch_summary = summary_ms(all_lat)
        doc = {
            "bench": "task service: submit, run and watch through Envoy",
            "database": "postgresql" if args.pg else "sqlite", "cpus": os.cpu_count(),
            "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
            "settings": {"tasks": args.tasks, "submitters": args.submitters, "ZQ_TASK_WORKERS": args.workers,
                         "ZQ_ENGINE_SLOTS": args.slots, "ZQ_TASK_MAX_ACTIVE_PER_USER": max(1000, args.tasks),
                         "market": f"synthetic {args.symbols} symbols x {args.days} days, seed 1",
                         "backtest": f"{args.task_symbols} symbols, {start}..{end}, benchmark 000300.SH",
                         "fail_every": args.fail_every},
            "setup_s": round(setup_s, 2),
            "submit_wall_s": round(submit_wall, 2),
            "run_wall_s": round(span, 2),
            "tasks_per_minute": round(terminal_n / span * 60, 1),
            "terminal_before_last_submit": len(ends) - len(drained),
            "drain_tasks_per_minute": drain_rate,
            "submit_latency": summary_ms([lat for _, lat, _, _ in submits]),
            "submit_errors": len(submit_errors),
            "submit_error_samples": [f"#{i}: HTTP {s} {r}" for i, s, r in submit_errors[:3]],
            "watch_latency": watch_summary,
            # Transitions the dispatcher makes (PENDING excluded: its timing includes submit-side
            # queueing on the per-user lock).
            "watch_latency_transitions_after_submit": summary_ms(
                [v for k, vs in latencies.items() if k != "pending" for v in vs]),
            "watch_slowest": [{"ms": round(lat * 1000, 1), "task_id": tid, "status": st,
                               "at_s_after_first_submit": round(at, 2)}
                              for lat, tid, st, at in sorted(slowest, reverse=True)[:8]],
            "watch_latency_by_status": {k: summary_ms(v) for k, v in sorted(latencies.items())},
            "watch_events_by_kind": kinds,
            "watch_headers_after_first_submit_s": (round(watcher.headers_at - first_submit, 3)
                                                   if watcher.headers_at else None),
            "watch_opened_before_first_submit_s": round(first_submit - watch_opened, 3),
            "watch_reconnects": watcher.reconnects, "watch_errors": watcher.errors[:3],
            "watch_terminal_missed": len(never_terminal), "watch_terminal_missed_ids": never_terminal[:20],
            "watch_running_coalesced": running_coalesced, "watch_pending_unseen": pending_unseen,
            "watch_pending_unseen_ids": [t for t in sorted(submitted) if "pending" not in seen.get(t, [])][:10],
            "by_status": dict(sorted(by_status.items())),
            "lost": len(lost), "lost_detail": lost[:20], "failed_error_samples": error_samples,
            "target_watch_p99_ms": 100, "target_met": watch_summary["p99_ms"] < 100,
        }
        ok = not lost and not submit_errors and len(submitted) == args.tasks
        doc["nothing_lost"] = ok
    finally:
        if watcher is not None:
            watcher.stop_flag.set()
        for handle in reversed(handles):
            try:
                handle.stop(grace=5)
            except Exception as exc:
                print(f"stopping {handle.name}: {exc}", file=sys.stderr)
        if pg_name is not None:
            with psycopg.connect(pg_admin(args.pg_url), autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
        if args.keep:
            print(f"data dir kept: {data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)

    print(f"{'measure':<36} {'value':>12}")
    print("-" * 49)
    rows = [
        ("database", doc["database"]),
        ("tasks submitted / terminal", f"{len(submitted)} / {sum(n for s, n in by_status.items() if s in TERMINAL)}"),
        ("by status", ", ".join(f"{k} {v}" for k, v in doc["by_status"].items())),
        ("completed tasks / minute", doc["tasks_per_minute"]),
        ("run wall s (1st submit → last end)", doc["run_wall_s"]),
        ("submit wall s / ended by then", f"{doc['submit_wall_s']} / {doc['terminal_before_last_submit']}"),
        ("drain tasks / minute (after last submit)", doc["drain_tasks_per_minute"]),
        ("submit p50 / p99 ms", f"{doc['submit_latency']['p50_ms']} / {doc['submit_latency']['p99_ms']}"),
        ("watch latency p50 / p99 ms", f"{watch_summary['p50_ms']} / {watch_summary['p99_ms']}"),
    ]
    ex = doc["watch_latency_transitions_after_submit"]
    rows.append(("  RUNNING + terminal p50 / p99 ms", f"{ex['p50_ms']} / {ex['p99_ms']}"))
    rows += [(f"  {k} p50 / p99 ms (n={v['n']})", f"{v['p50_ms']} / {v['p99_ms']}")
             for k, v in doc["watch_latency_by_status"].items()]
    rows += [
        ("watch: terminal missed / RUNNING coalesced", f"{doc['watch_terminal_missed']} / {running_coalesced}"),
        ("lost (not terminal / no result / no error)", doc["lost"]),
    ]
    for name, value in rows:
        print(f"{name:<44} {value!s:>20}")
    print(f"watch p99 {watch_summary['p99_ms']} ms (target < 100): {'met' if doc['target_met'] else 'MISSED'}; "
          f"nothing lost: {ok}")
    print(json.dumps(doc, indent=1))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(doc, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
