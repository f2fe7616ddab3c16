"""ListTasks / ListResults page 100k tasks correctly: every order, the status filter, the results
ranking. How fast they are is measured by bench/tasks_list_bench.py (p50/p99 per order and page
against a baseline in the same run), not asserted here: a wall-clock bound in a test only measures
how busy the machine is."""

from __future__ import annotations

import json

from sqlalchemy import text
from zquant.backtest.v1 import task_pb2

from task_svc.models import utcnow

N = 100_000


def test_listing_100k_tasks_pages_in_every_order(make_app, connect) -> None:
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
    for order_by in ("id", "name", "status", "created_at", "updated_at"):
        for order in ("asc", "desc"):
            resp = api.tasks.ListTasks(task_pb2.ListTasksRequest(order_by=order_by, order=order, skip=100,
                                                                 limit=100))
            assert resp.total == N // 2 and len(resp.tasks) == 100
            assert {t.user_id for t in resp.tasks} == {1}
            ids = [t.id for t in resp.tasks]
            assert len(set(ids)) == 100
            if order_by == "id":
                # User 1 owns the odd ids (1 + i % 2): skip 100 starts at the 101st of them.
                expected = range(201, 401, 2) if order == "asc" else range(N - 1 - 200, N - 1 - 400, -2)
                assert ids == list(expected), (order, ids[:3])
            if order_by == "name":
                names = [t.strategy_name for t in resp.tasks]
                assert names == sorted(names, reverse=order == "desc")
    pending = api.tasks.ListTasks(task_pb2.ListTasksRequest(status=task_pb2.Task.PENDING))
    assert pending.total == N // 10
    assert {t.status for t in pending.tasks} == {task_pb2.Task.PENDING}
    results = api.tasks.ListResults(task_pb2.ListResultsRequest(order_by="total_return"))
    assert results.total == n_results and results.results[0].total_return == 1.0
