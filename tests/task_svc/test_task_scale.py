"""ListTasks / ListResults stay fast with 100k tasks (the indexes are used: no full sorts of a
user's tasks per request)."""

from __future__ import annotations

import json
import time

from sqlalchemy import text
from zquant.backtest.v1 import task_pb2

from task_svc.models import utcnow

N = 100_000


def test_listing_100k_tasks_is_fast(make_app, connect) -> None:
    app = make_app(workers=0)
    now = utcnow()
    cfg = json.dumps({"start_date": "2024-01-01", "end_date": "2024-03-31", "symbols": ["600000.SH"]})
    # Generated inside the database (a recursive CTE works on both): 100k rows in well under a second.
    with app.db.begin() as conn:
        conn.execute(text("""
            WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < :n - 1)
            INSERT INTO backtest_tasks (user_id, strategy_name, strategy_code, params_json, config_json,
                start_date, end_date, status, error_message, progress, equity, "current_date", attempts,
                retries, created_at, updated_at)
            SELECT 1 + i % 2, 's' || CAST(i % 997 AS VARCHAR(8)), '', '{}', :cfg, '2024-01-01', '2024-03-31',
                CASE i % 5 WHEN 1 THEN 'FAILED' WHEN 2 THEN 'CANCELLED' WHEN 4 THEN 'PENDING'
                     ELSE 'COMPLETED' END,
                '', 0.0, 0.0, '', 1, 0, :now, :now
            FROM seq"""), {"n": N, "cfg": cfg, "now": now})
    with app.db.begin() as conn:
        conn.execute(text("""
            INSERT INTO backtest_results (task_id, user_id, total_return, metrics_json, trades_json,
                portfolio_json, result_pb, engine_version, data_hash, created_at)
            SELECT id, user_id, (id % 101) / 100.0, '{}', '[]', '[]', :pb, 'x', 'y', :now
            FROM backtest_tasks WHERE user_id = 1 AND status = 'COMPLETED'"""), {"pb": b"", "now": now})
    n_results = N // 2 * 2 // 5
    api = connect(app, "user:1")
    api.tasks.ListTasks(task_pb2.ListTasksRequest())  # warm up connections/caches
    slowest = 0.0
    for order_by in ("id", "name", "status", "created_at", "updated_at"):
        for order in ("asc", "desc"):
            started = time.perf_counter()
            resp = api.tasks.ListTasks(task_pb2.ListTasksRequest(order_by=order_by, order=order, skip=100,
                                                                 limit=100))
            slowest = max(slowest, time.perf_counter() - started)
            assert resp.total == N // 2 and len(resp.tasks) == 100
    started = time.perf_counter()
    pending = api.tasks.ListTasks(task_pb2.ListTasksRequest(status=task_pb2.Task.PENDING))
    slowest = max(slowest, time.perf_counter() - started)
    assert pending.total == N // 10
    started = time.perf_counter()
    results = api.tasks.ListResults(task_pb2.ListResultsRequest(order_by="total_return"))
    slowest = max(slowest, time.perf_counter() - started)
    assert results.total == n_results and results.results[0].total_return == 1.0
    # Generous bound for a 2-core CI box; a full sort/scan of 50k rows per page is what it guards.
    assert slowest < 0.5, f"slowest list call took {slowest:.3f} s"
