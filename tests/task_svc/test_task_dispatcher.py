"""The dispatcher: claiming, concurrency, engine outages, lease expiry, graceful stop."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from sqlalchemy import select
from tasksvc_helpers import db_task, insert_task, run_request, wait_status
from zquant.backtest.v1 import task_pb2

from services.db import transaction
from task_svc.models import Task, utcnow
from task_svc.repository import QueueRepository

S = task_pb2.Task
ALICE = "user:1"


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_claims_in_creation_order_with_bounded_concurrency(make_app, connect, engine_server) -> None:
    app = make_app(workers=2)
    api = connect(app, ALICE)
    ids = [api.tasks.RunBacktest(run_request(fake={"steps": 4, "delay": 0.1})).id for _ in range(5)]
    peak = 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        running = api.tasks.ListTasks(task_pb2.ListTasksRequest(status=S.RUNNING)).total
        peak = max(peak, running)
        assert running <= 2
        if api.tasks.ListTasks(task_pb2.ListTasksRequest(status=S.COMPLETED)).total == 5:
            break
        time.sleep(0.03)
    assert peak == 2
    started = [int(r.request.reference.removeprefix("task-")) for r in engine_server.engine.runs]
    assert started == ids  # oldest first


def test_concurrent_claimers_never_share_a_task(make_app) -> None:
    app = make_app(workers=0)
    ids = {insert_task(app) for _ in range(20)}
    claimed: list[int] = []
    lock = threading.Lock()

    def claimer(n: int) -> None:
        while True:
            with transaction(app.sessions) as session:
                task = QueueRepository(session).claim_next(f"t{n}", utcnow() + timedelta(seconds=30), utcnow())
                if task is None:
                    return
                with lock:
                    claimed.append(task.id)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)  # every task exactly once
    with app.sessions() as session:
        rows = session.scalars(select(Task).where(Task.id.in_(ids))).all()
    assert all(r.status == "RUNNING" and r.attempts == 1 and r.lease_owner for r in rows)


def test_engine_down_keeps_task_pending_then_completes(make_app, engine_server) -> None:
    engine_server.stop()
    app = make_app()
    tid = insert_task(app, fake={"steps": 2})
    wait_for(lambda: db_task(app, tid).retries >= 2, what="retries while the engine is down")
    row = db_task(app, tid)
    assert row.status in ("PENDING", "RUNNING") and row.attempts <= 1  # attempts are not charged
    assert row.error_message == ""
    engine_server.start()
    done = wait_for(lambda: (t := db_task(app, tid)).status == "COMPLETED" and t, timeout=15, what="completion")
    assert done.attempts == 1 and len(engine_server.engine.runs_for(tid)) == 1


def test_engine_busy_requeues_with_backoff(make_app, connect, engine_server) -> None:
    app = make_app()
    api = connect(app, ALICE)
    task = api.tasks.RunBacktest(run_request(fake={"steps": 1, "busy_runs": 2}))
    done = wait_status(api, task.id, S.COMPLETED, timeout=15)
    runs = engine_server.engine.runs_for(task.id)
    assert len(runs) == 3 and done.attempts == 1
    assert db_task(app, task.id).retries == 2


def test_expired_lease_is_taken_over_and_rerun(make_app, engine_server) -> None:
    app = make_app(workers=0)  # insert first, then start a dispatcher
    now = utcnow()
    dead = insert_task(app, fake={"steps": 2}, status="RUNNING", attempts=1, started_at=now - timedelta(minutes=1),
                       lease_owner="dead-replica:abc", lease_expires_at=now - timedelta(seconds=1), progress=0.5)
    exhausted = insert_task(app, status="RUNNING", attempts=3, started_at=now - timedelta(minutes=1),
                            lease_owner="dead-replica:def", lease_expires_at=now - timedelta(seconds=1))
    alive = insert_task(app, status="RUNNING", attempts=1, started_at=now,
                        lease_owner="live-replica:xyz", lease_expires_at=now + timedelta(minutes=5))
    make_app(workers=2, replica_id="test-b")
    rerun = wait_for(lambda: (t := db_task(app, dead)).status == "COMPLETED" and t, what="takeover")
    assert rerun.attempts == 2 and len(engine_server.engine.runs_for(dead)) == 1
    failed = wait_for(lambda: (t := db_task(app, exhausted)).status == "FAILED" and t, what="max attempts")
    assert failed.error_message == "task failed after 3 attempts: the runner stopped responding"
    assert (failed.failure_kind, failed.failure_line) == ("ENGINE_UNAVAILABLE", 0)
    assert engine_server.engine.runs_for(exhausted) == []
    time.sleep(0.5)
    untouched = db_task(app, alive)
    assert untouched.status == "RUNNING" and untouched.lease_owner == "live-replica:xyz"


def test_lease_is_renewed_while_running(make_app, connect, engine_server) -> None:
    app = make_app(lease_seconds=0.6, progress_interval=10.0)  # progress writes won't extend it
    api = connect(app, ALICE)
    task = api.tasks.RunBacktest(run_request(fake={"steps": 3, "delay": 0.6}))
    done = wait_status(api, task.id, S.COMPLETED, timeout=10)
    assert done.attempts == 1 and len(engine_server.engine.runs_for(task.id)) == 1  # never taken over


def test_graceful_stop_releases_running_tasks(make_app, connect, engine_server) -> None:
    app = make_app(workers=1)
    api = connect(app, ALICE)
    task = api.tasks.RunBacktest(run_request(fake={"steps": 30, "delay": 0.1}))
    record = engine_server.engine.wait_run(task.id)
    app.stop(grace=0.2)
    assert record.cancelled.wait(5)
    row = db_task(app, task.id)
    assert row.status == "PENDING" and row.attempts == 0 and row.lease_owner is None
    successor = make_app(replica_id="test-b")
    b = connect(successor, ALICE)
    done = wait_status(b, task.id, S.COMPLETED, timeout=15)
    assert done.attempts == 1 and len(engine_server.engine.runs_for(task.id)) == 2


def test_progress_writes_are_throttled(make_app, connect, engine_server) -> None:
    app = make_app(progress_interval=0.25)
    api = connect(app, ALICE)
    hints = []
    with app.bus.subscribe(user_id=1) as sub:
        started = time.monotonic()
        task = api.tasks.RunBacktest(run_request(fake={"steps": 100, "delay": 0.01}))  # ~1 s, 100 ticks
        wait_status(api, task.id, S.COMPLETED)
        elapsed = time.monotonic() - started
        while (hint := sub.get(timeout=0.2)) is not None:
            hints.append(hint)
    progress_writes = [h for h in hints if h.task_id == task.id and h.kind == "progress"]
    # At most one per interval of the run's (load-dependent) duration, plus the first and the
    # final one; far fewer than the 100 engine events.
    assert 2 <= len(progress_writes) <= min(elapsed / 0.25 + 2, 20), (len(progress_writes), elapsed)
