"""ListTasks benchmark: paging and sorting a user's tasks with 100k tasks in PostgreSQL.

    .venv/bin/python bench/tasks_list_bench.py                          # 100k tasks, 10 users
    .venv/bin/python bench/tasks_list_bench.py --tasks 20000 --calls 5 --json out.json
    .venv/bin/python bench/tasks_list_bench.py --explain all            # every case's query plan
    .venv/bin/python bench/tasks_list_bench.py --extra-sql "CREATE INDEX ix ON backtest_tasks (user_id, status, id)"

Steps:
  1. a fresh database on --pg-url's server (dropped at the end; auth_svc and task_svc share it);
  2. `python -m auth_svc create-admin`, real auth_svc; the admin creates --users users
     (CreateUser over gRPC) and each logs in (their JWTs are used below);
  3. task_svc's migrations (`services.migrations.upgrade("task", engine)`), then --tasks rows
     COPYed into backtest_tasks, dealt round-robin to the users (so each user's rows are spread
     over the whole table, as real submissions interleave); created_at one per 30 s over the
     past, updated_at/started_at/completed_at a few minutes later; status COMPLETED 70 %,
     FAILED 20 %, CANCELLED 10 % (nothing PENDING: the dispatcher must stay idle; no engine
     runs); 40 strategy names; a real strategy snapshot and config_json per row;
     then VACUUM ANALYZE (what autovacuum would have done on a table this age);
  4. real task_svc (engine address points nowhere: not needed for listing) and Envoy;
  5. ListTasks direct over gRPC (one channel, Bearer JWT, users rotated per call) for every
     order_by (id, name, status, created_at, updated_at) × order (asc, desc) × skip (0, 1000,
     9000), limit 100: one warm-up call per case, then --calls calls per case, interleaved
     round-robin over the cases; each answer is checked (100 rows, total = the user's count);
  6. the same 30 cases through Envoy: GET /api/v1/backtest/tasks?order_by=…&order=…&skip=…&limit=100
     (HTTP/1.1 keep-alive; the zquant shape: a bare JSON array, X-Total-Count), one warm-up call per
     case, then --calls calls per case, interleaved the same way, each answer checked;
  7. baseline, interleaved with both loops (one call after every list call, same user): GetTask of
     one task — the fixed cost of a call (auth check, gRPC, Envoy) that every page pays too; the
     report gives each path's p50 as a ratio to it;
  8. CPU per list call (user + system time of task_svc, of the database's PostgreSQL backends and,
     for the gateway loop, of Envoy, over each measured loop ÷ its list calls; each list call's
     GetTask included): far steadier than latency on a shared host;
  9. EXPLAIN (ANALYZE, BUFFERS) of the repository's own statements (TaskRepository.page_statements:
     the page query and the total count) for the cases that miss the target (--explain all:
     every case), with the plan's execution time and the index it used.

Targets: p99 < 20 ms per case over gRPC, < 25 ms per case through the gateway. Prints a table and
one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import httpx
import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from zquant.auth.v1 import auth_pb2, auth_pb2_grpc
from zquant.backtest.v1 import task_pb2, task_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchstats import summary_ms  # noqa: E402  (bench/ is sys.path[0] when run as a script)
from sqlalchemy.orm import Session  # noqa: E402

import devstack  # noqa: E402  (repo on sys.path first when run as a script)
from services.migrations import upgrade  # noqa: E402
from services.paging import Page  # noqa: E402
from task_svc.models import utcnow  # noqa: E402
from task_svc.repository import TaskRepository  # noqa: E402

ORDER_BY = ("id", "name", "status", "created_at", "updated_at")
ORDERS = ("asc", "desc")
SKIPS = (0, 1000, 9000)
LIMIT = 100
TARGET_MS = 20.0
GATEWAY_TARGET_MS = 25.0
CODE = """from zquant.backtest.strategy import BaseStrategy


class Strategy(BaseStrategy):
    def on_bar(self, context, bar_data):
        for symbol in bar_data:
            if context.portfolio.get_position(symbol).quantity == 0:
                context.order_value(symbol, context.portfolio.total_value * 0.3)
        if context.current_date.day == 15:
            for symbol in list(context.portfolio.positions):
                context.order_target(symbol, 0)
"""
COLUMNS = ("user_id", "strategy_id", "strategy_name", "strategy_code", "params_json", "config_json", "start_date",
           "end_date", "status", "error_message", "progress", "equity", "current_date", "attempts", "retries",
           "created_at", "updated_at", "started_at", "completed_at")


def wait_cluster_healthy(admin_port: int, name: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = httpx.get(f"http://127.0.0.1:{admin_port}/clusters?format=json", timeout=5).json()
        for cluster in data.get("cluster_statuses", []):
            if cluster["name"] == name:
                hosts = cluster.get("host_statuses", [])
                if hosts and all(not any(v is True for k, v in h.get("health_status", {}).items()
                                         if k != "eds_health_status") for h in hosts):
                    return
        time.sleep(0.1)
    raise RuntimeError(f"Envoy cluster {name} not healthy after {timeout}s")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes so far (Linux /proc): what a call costs the machine,
    which moves far less with other load than the call's latency does."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def backends(conninfo: str, db_name: str) -> list[int]:
    """The PostgreSQL server processes serving the bench's database."""
    with psycopg.connect(conninfo, autocommit=True) as c:
        return [r[0] for r in c.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (db_name,))]


def insert_tasks(url: str, user_ids: list[int], n: int) -> float:
    """COPY n task rows; returns seconds taken."""
    began = time.perf_counter()
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    now = utcnow() - timedelta(hours=1)  # naive UTC, as task_svc stores times
    first = now - timedelta(seconds=30 * n)
    names = [f"strategy-{k:02d}" for k in range(40)]
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        quoted = ", ".join(f'"{c}"' for c in COLUMNS)  # current_date is also an SQL keyword
        with cur.copy(f"COPY backtest_tasks ({quoted}) FROM STDIN") as copy:
            for i in range(n):
                user = user_ids[i % len(user_ids)]
                created = first + timedelta(seconds=30 * i)
                started = created + timedelta(seconds=(i * 7919) % 240)
                done = started + timedelta(seconds=5 + (i * 104729) % 600)
                r = i % 10
                status = "COMPLETED" if r < 7 else "FAILED" if r < 9 else "CANCELLED"
                error = {"FAILED": "ValueError: bench\n  File \"<strategy>\", line 7, in on_bar",
                         "CANCELLED": "cancelled by the user"}.get(status, "")
                syms = [f"{600000 + (i + k) % 50:06d}.SH" for k in range(3)]
                config = {"start_date": "2015-01-05", "end_date": "2015-12-31", "initial_capital": 1000000.0,
                          "symbols": syms, "frequency": "daily", "adjust_type": "qfq", "commission_rate": 0.0003,
                          "min_commission": 5.0, "tax_rate": 0.001, "slippage_rate": 0.001,
                          "benchmark": "000300.SH", "use_daily_basic": False, "annualization": 252,
                          "risk_free_rate": 0.0}
                copy.write_row((user, None, names[(i * 31) % len(names)], CODE, '{"window":20}',
                                json.dumps(config, separators=(",", ":")), "2015-01-05", "2015-12-31", status,
                                error, 1.0 if status == "COMPLETED" else 0.5, 1_000_000.0 + i, "2015-12-31", 1, 0,
                                created, done, started, done))
        conn.commit()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE backtest_tasks")
    return time.perf_counter() - began


def explain(url: str, user_id: int, order_by: str, order: str, skip: int) -> dict[str, Any]:
    """The repository's statements (TaskRepository.page_statements) with EXPLAIN (ANALYZE, BUFFERS)."""
    dialect = postgresql.dialect()
    out: dict[str, Any] = {}
    engine = create_engine(url)
    try:
        with Session(engine) as session, engine.connect() as conn:
            count, page = TaskRepository(session, user_id).page_statements(Page(skip, LIMIT, order_by, order == "desc"))
            for label, stmt in (("page", page), ("count", count)):
                sql = str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
                plan = [r[0] for r in conn.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {sql}"))]
                exec_ms = next((float(line.split(":")[1].split()[0]) for line in plan
                                if line.strip().startswith("Execution Time")), None)
                indexes = sorted({word for line in plan for word in line.replace("(", " ").split()
                                  if word.startswith(("ix_", "backtest_tasks_pkey"))})
                out[label] = {"sql": " ".join(sql.split()), "execution_ms": exec_ms, "indexes": indexes,
                              "plan": plan}
    finally:
        engine.dispose()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=100_000, help="task rows to insert (default 100000)")
    ap.add_argument("--users", type=int, default=10, help="users owning them (default 10)")
    ap.add_argument("--calls", type=int, default=10, help="measured calls per case (default 10; 30 cases)")
    ap.add_argument("--explain", choices=("missed", "all", "none"), default="missed",
                    help="EXPLAIN ANALYZE the cases that miss the target (default), all, or none")
    ap.add_argument("--pg-url", default=os.environ.get("ZQ_TEST_PG_URL",
                                                       "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
                    help="server to create the temporary database on")
    ap.add_argument("--extra-sql", action="append", default=[], metavar="SQL",
                    help="run after the migrations and the insert, e.g. a candidate index "
                         "(repeatable; the JSON records it)")
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()
    per_user = args.tasks // args.users
    skips = [s for s in SKIPS if s + LIMIT <= per_user] or [0]

    tmp = tempfile.mkdtemp(prefix="zq_tasks_list_bench_")
    data_dir = Path(tmp)
    db_name = f"zq_tasks_list_bench_{secrets.token_hex(4)}"
    admin_conninfo = make_url(args.pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    url = make_url(args.pg_url).set(drivername="postgresql+psycopg", database=db_name).render_as_string(
        hide_password=False)
    password = secrets.token_urlsafe(16)
    ports = {name: devstack.free_port() for name in ("auth", "task", "engine", "gw", "admin")}
    env = devstack.child_env(extra={
        "ZQ_DATA_DIR": str(data_dir), "ZQ_LOG_LEVEL": "WARNING",
        "ZQ_AUTH_ADDR": f"127.0.0.1:{ports['auth']}", "ZQ_TASK_ADDR": f"127.0.0.1:{ports['task']}",
        "ZQ_ENGINE_ADDR": f"127.0.0.1:{ports['engine']}",  # nobody listens: listing needs no engine
        "ZQ_AUTH_DATABASE_URL": url, "ZQ_TASK_DATABASE_URL": url, "ZQ_ENGINE_DATABASE_URL": url,
        "ZQ_ADMIN_USERNAME": "bench_admin", "ZQ_ADMIN_PASSWORD": password,
        "ZQ_ENGINE_TOKEN": "unused-by-listing",
    })
    handles: list[devstack.Handle] = []
    created_db = False
    try:
        with psycopg.connect(admin_conninfo, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{db_name}"')
        created_db = True
        subprocess.run([sys.executable, "-m", "auth_svc", "create-admin"], env=env, cwd=ROOT, check=True,
                       capture_output=True)
        handles.append(devstack.start_service("auth", env))
        auth = auth_pb2_grpc.AuthServiceStub(grpc.insecure_channel(env["ZQ_AUTH_ADDR"]))
        admin_md = [("authorization",
                     "Bearer " + auth.Login(auth_pb2.LoginRequest(username="bench_admin",
                                                                  password=password)).access_token)]
        user_ids, bearers = [], {}
        for k in range(args.users):
            name = f"bench_user_{k}"
            user = auth.CreateUser(auth_pb2.CreateUserRequest(username=name, password=password), metadata=admin_md)
            user_ids.append(user.id)
            bearers[user.id] = "Bearer " + auth.Login(auth_pb2.LoginRequest(username=name,
                                                                            password=password)).access_token

        engine = create_engine(url)
        try:
            upgrade("task", engine)
        finally:
            engine.dispose()
        insert_s = insert_tasks(url, user_ids, args.tasks)
        if args.extra_sql:
            with psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False),
                                 autocommit=True) as c:
                for sql in args.extra_sql:
                    c.execute(sql)
                c.execute("ANALYZE backtest_tasks")
        with psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)) as c:
            table_mb = c.execute("SELECT pg_total_relation_size('backtest_tasks') / 1048576.0").fetchone()[0]
            counts = dict(c.execute("SELECT user_id, count(*) FROM backtest_tasks GROUP BY user_id").fetchall())
            one_task = dict(c.execute("SELECT user_id, max(id) FROM backtest_tasks GROUP BY user_id").fetchall())
            server_version = c.execute("SHOW server_version").fetchone()[0]

        handles.append(devstack.start_service("task", env))
        handles.append(devstack.start_envoy(data_dir / "envoy", ports["gw"], ports["admin"],
                                            auth_addr=env["ZQ_AUTH_ADDR"], task_addr=env["ZQ_TASK_ADDR"],
                                            engine_addr=env["ZQ_ENGINE_ADDR"]))
        wait_cluster_healthy(ports["admin"], "task")

        tasks = task_pb2_grpc.TaskServiceStub(grpc.insecure_channel(env["ZQ_TASK_ADDR"]))
        cases = [(o, d, s) for o in ORDER_BY for d in ORDERS for s in skips]
        timings: dict[tuple[str, str, int], list[float]] = {c: [] for c in cases}
        base_grpc: list[float] = []
        base_gw: list[float] = []
        bad: list[str] = []
        n_call = 0

        def base_call() -> float:
            uid = user_ids[n_call % len(user_ids)]
            began = time.perf_counter()
            task = tasks.GetTask(task_pb2.GetTaskRequest(task_id=one_task[uid]),
                                 metadata=[("authorization", bearers[uid])], timeout=30)
            elapsed = time.perf_counter() - began
            if task.id != one_task[uid]:
                bad.append(f"GetTask user {uid}")
            return elapsed

        def call(case: tuple[str, str, int]) -> float:
            nonlocal n_call
            uid = user_ids[n_call % len(user_ids)]
            n_call += 1
            order_by, order, skip = case
            began = time.perf_counter()
            resp = tasks.ListTasks(task_pb2.ListTasksRequest(order_by=order_by, order=order, skip=skip, limit=LIMIT),
                                   metadata=[("authorization", bearers[uid])], timeout=30)
            elapsed = time.perf_counter() - began
            want = min(LIMIT, max(0, counts[uid] - skip))
            if resp.total != counts[uid] or len(resp.tasks) != want or any(t.user_id != uid for t in resp.tasks):
                bad.append(f"{case} user {uid}: total {resp.total}/{counts[uid]}, rows {len(resp.tasks)}/{want}")
            return elapsed

        for case in cases:  # warm-up: connections, auth cache, plans
            call(case)
            base_call()
        task_pid = next(h.pid for h in handles if h.name == "task")
        envoy_pid = next(h.pid for h in handles if h.name == "envoy")
        pg_pids = backends(admin_conninfo, db_name)
        cpu_before = (cpu_seconds([task_pid]), cpu_seconds(pg_pids))
        for _ in range(args.calls):
            for case in cases:
                timings[case].append(call(case))
                base_grpc.append(base_call())
        n_grpc = args.calls * len(cases)
        cpu_grpc = {"task_svc_ms": round((cpu_seconds([task_pid]) - cpu_before[0]) / n_grpc * 1000, 2),
                    "postgres_ms": round((cpu_seconds(pg_pids) - cpu_before[1]) / n_grpc * 1000, 2)}

        gw_timings: dict[tuple[str, str, int], list[float]] = {c: [] for c in cases}
        with httpx.Client(base_url=f"http://127.0.0.1:{ports['gw']}", timeout=30) as http:
            def gw_call(case: tuple[str, str, int]) -> float:
                nonlocal n_call
                uid = user_ids[n_call % len(user_ids)]
                n_call += 1
                order_by, order, skip = case
                params = {"order_by": order_by, "order": order, "skip": skip, "limit": LIMIT}
                began = time.perf_counter()
                r = http.get("/api/v1/backtest/tasks", params=params, headers={"authorization": bearers[uid]})
                rows = r.json()
                elapsed = time.perf_counter() - began
                want = min(LIMIT, max(0, counts[uid] - skip))
                if r.status_code != 200 or len(rows) != want or r.headers.get("x-total-count") != str(counts[uid]):
                    bad.append(f"gateway {case} user {uid}: HTTP {r.status_code}")
                return elapsed

            def gw_base_call() -> float:
                uid = user_ids[n_call % len(user_ids)]
                began = time.perf_counter()
                r = http.get(f"/api/v1/backtest/tasks/{one_task[uid]}", headers={"authorization": bearers[uid]})
                task = r.json()
                elapsed = time.perf_counter() - began
                if r.status_code != 200 or task["id"] != one_task[uid]:
                    bad.append(f"gateway GetTask user {uid}: HTTP {r.status_code}")
                return elapsed

            for case in cases:
                gw_call(case)
                gw_base_call()
            pg_pids = backends(admin_conninfo, db_name)
            cpu_before = (cpu_seconds([task_pid]), cpu_seconds(pg_pids), cpu_seconds([envoy_pid]))
            for _ in range(args.calls):
                for case in cases:
                    gw_timings[case].append(gw_call(case))
                    base_gw.append(gw_base_call())
            cpu_gw = {"task_svc_ms": round((cpu_seconds([task_pid]) - cpu_before[0]) / n_grpc * 1000, 2),
                      "postgres_ms": round((cpu_seconds(pg_pids) - cpu_before[1]) / n_grpc * 1000, 2),
                      "envoy_ms": round((cpu_seconds([envoy_pid]) - cpu_before[2]) / n_grpc * 1000, 2)}

        results = {f"{o} {d} skip={s}": summary_ms(timings[(o, d, s)]) for o, d, s in cases}
        gw_results = {f"{o} {d} skip={s}": summary_ms(gw_timings[(o, d, s)]) for o, d, s in cases}
        overall = summary_ms([t for ts in timings.values() for t in ts])
        gateway = summary_ms([t for ts in gw_timings.values() for t in ts])
        baseline = {"grpc_get_task": summary_ms(base_grpc), "gateway_get_task": summary_ms(base_gw)}
        ratios = {"grpc_list_p50_over_get_task_p50": round(overall["p50_ms"] / baseline["grpc_get_task"]["p50_ms"], 2),
                  "gateway_list_p50_over_get_task_p50":
                      round(gateway["p50_ms"] / baseline["gateway_get_task"]["p50_ms"], 2)}
        missed = [(o, d, s) for o, d, s in cases if results[f"{o} {d} skip={s}"]["p99_ms"] >= TARGET_MS]
        gw_missed = [name for name, r in gw_results.items() if r["p99_ms"] >= GATEWAY_TARGET_MS]
        to_explain = {"all": cases, "missed": missed, "none": []}[args.explain]
        plans = {f"{o} {d} skip={s}": explain(url, user_ids[0], o, d, s) for o, d, s in to_explain}
    finally:
        for handle in reversed(handles):
            try:
                handle.stop(grace=5)
            except Exception as exc:
                print(f"stopping {handle.name}: {exc}", file=sys.stderr)
        if created_db:
            with psycopg.connect(admin_conninfo, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        shutil.rmtree(data_dir, ignore_errors=True)

    doc = {
        "bench": "task service: ListTasks with many tasks in PostgreSQL",
        "cpus": os.cpu_count(), "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
        "postgresql": server_version, "tasks": args.tasks, "users": args.users, "tasks_per_user": per_user,
        "extra_sql": args.extra_sql, "table_mb": round(float(table_mb), 1), "insert_s": round(insert_s, 2),
        "limit": LIMIT,
        "calls_per_case": args.calls, "cases": results, "overall_grpc": overall,
        "gateway_cases": gw_results, "overall_gateway": gateway, "baseline": baseline, "ratios": ratios,
        "cpu_per_list_call": {"grpc": cpu_grpc, "gateway": cpu_gw},
        "wrong_answers": bad[:10],
        "target_p99_ms": TARGET_MS, "missed": [f"{o} {d} skip={s}" for o, d, s in missed],
        "gateway_target_p99_ms": GATEWAY_TARGET_MS, "gateway_missed": gw_missed,
        "target_met": not missed and not gw_missed,
        "explain": {case: {k: {kk: vv for kk, vv in v.items() if kk != "plan"} for k, v in p.items()}
                    for case, p in plans.items()},
    }
    print(f"{'case (limit 100)':<30} {'gRPC p50':>9} {'p99':>7} {'max':>7} | {'REST p50':>9} {'p99':>7} {'max':>7}")
    print("-" * 84)
    for name, r in results.items():
        g = gw_results[name]
        flag = ("  MISS gRPC" if r["p99_ms"] >= TARGET_MS else "") + \
            ("  MISS REST" if g["p99_ms"] >= GATEWAY_TARGET_MS else "")
        print(f"{name:<30} {r['p50_ms']:>9} {r['p99_ms']:>7} {r['max_ms']:>7} | {g['p50_ms']:>9} {g['p99_ms']:>7} "
              f"{g['max_ms']:>7}{flag}")
    print(f"{'overall':<30} {overall['p50_ms']:>9} {overall['p99_ms']:>7} {overall['max_ms']:>7} | "
          f"{gateway['p50_ms']:>9} {gateway['p99_ms']:>7} {gateway['max_ms']:>7}")
    for name, b in baseline.items():
        print(f"{'baseline ' + name:<30} {b['p50_ms']:>9} {b['p99_ms']:>7} {b['max_ms']:>7}")
    print(f"CPU per list call + its GetTask, ms: gRPC loop task_svc {cpu_grpc['task_svc_ms']} postgres "
          f"{cpu_grpc['postgres_ms']}; gateway loop task_svc {cpu_gw['task_svc_ms']} postgres {cpu_gw['postgres_ms']} "
          f"envoy {cpu_gw['envoy_ms']}")
    print(f"list p50 / GetTask p50: gRPC {ratios['grpc_list_p50_over_get_task_p50']}×, "
          f"gateway {ratios['gateway_list_p50_over_get_task_p50']}×")
    print(f"targets p99 < {TARGET_MS} ms (gRPC) / < {GATEWAY_TARGET_MS} ms (gateway): "
          f"{'met' if not missed and not gw_missed else f'MISSED in {len(missed)} + {len(gw_missed)} cases'}; "
          f"wrong answers: {len(bad)}")
    for case, p in plans.items():
        print(f"\n--- EXPLAIN (ANALYZE, BUFFERS) {case}, user {user_ids[0]}:")
        for label in ("page", "count"):
            print(f"[{label}] {p[label]['sql']}")
            print("\n".join(p[label]["plan"]))
    print(json.dumps(doc, indent=1))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(doc, indent=1))
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
