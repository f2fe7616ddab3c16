"""WatchTask / WatchTasks: snapshot first, every transition, throttled progress, terminal last;
across replicas through LISTEN/NOTIFY (PostgreSQL) or the re-read tick (SQLite)."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from tasksvc_helpers import run_request, wait_status
from zquant.backtest.v1 import task_pb2

S = task_pb2.Task
K = task_pb2.TaskEvent
ALICE, BOB = "user:1", "user:2"


def collect(stream, into: list, done: threading.Event) -> None:  # type: ignore[no-untyped-def]
    try:
        for event in stream:
            into.append(event)
    except grpc.RpcError as exc:
        into.append(exc)
    finally:
        done.set()


def watch_in_background(api, task_id: int, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    events: list = []
    done = threading.Event()
    stream = api.tasks.WatchTask(task_pb2.WatchTaskRequest(task_id=task_id), timeout=timeout)
    threading.Thread(target=collect, args=(stream, events, done), daemon=True).start()
    return events, done


def kinds(events) -> list[tuple[str, str, bool]]:  # type: ignore[no-untyped-def]
    return [(K.Kind.Name(e.kind), S.Status.Name(e.task.status), e.terminal) for e in events]


def test_watch_sees_snapshot_status_progress_and_terminal(make_app, connect, engine_server) -> None:
    app = make_app(workers=1)
    api = connect(app, ALICE)
    blocker = api.tasks.RunBacktest(run_request(fake={"outcome": "hang"}))
    engine_server.engine.wait_run(blocker.id)
    task = api.tasks.RunBacktest(run_request(fake={"steps": 6, "delay": 0.15}))
    events, done = watch_in_background(api, task.id)
    time.sleep(0.3)  # the watch is open on a PENDING task
    api.tasks.CancelTask(task_pb2.CancelTaskRequest(task_id=blocker.id))  # frees the worker
    assert done.wait(20), "the watch did not end after the terminal state"
    assert not any(isinstance(e, Exception) for e in events), events
    seq = kinds(events)
    assert seq[0] == ("SNAPSHOT", "PENDING", False)
    assert seq[1] == ("STATUS", "RUNNING", False)
    progress = [e for e in events if e.kind == K.PROGRESS]
    assert len(progress) >= 2
    fractions = [e.task.progress for e in progress]
    assert fractions == sorted(fractions) and all(0 < f <= 1 for f in fractions)
    assert all(e.task.current_date.startswith("2024-01-") and e.task.equity > 0 for e in progress)
    assert seq[-1] == ("STATUS", "COMPLETED", True)
    assert [t for _, _, t in seq].count(True) == 1
    assert events[-1].task.progress == 1.0


def test_watch_after_completion_gets_snapshot_and_terminal(make_app, connect) -> None:
    app = make_app()
    api = connect(app, ALICE)
    task = api.tasks.RunBacktest(run_request(fake={"steps": 1}))
    wait_status(api, task.id, S.COMPLETED)
    started = time.monotonic()
    events = list(api.tasks.WatchTask(task_pb2.WatchTaskRequest(task_id=task.id)))
    assert time.monotonic() - started < 2
    assert kinds(events) == [("SNAPSHOT", "COMPLETED", True)]


def test_watch_cancel_and_delete_end_the_stream(make_app, connect, engine_server) -> None:
    app = make_app(workers=1)
    api = connect(app, ALICE)
    running = api.tasks.RunBacktest(run_request(fake={"outcome": "hang"}))
    engine_server.engine.wait_run(running.id)
    wait_status(api, running.id, S.RUNNING)
    events, done = watch_in_background(api, running.id)
    time.sleep(0.2)
    api.tasks.CancelTask(task_pb2.CancelTaskRequest(task_id=running.id))
    assert done.wait(10)
    assert kinds(events)[0][0] == "SNAPSHOT" and kinds(events)[-1] == ("STATUS", "CANCELLED", True)

    pending = api.tasks.RunBacktest(run_request(fake={"outcome": "hang"}))
    wait_status(api, pending.id, S.RUNNING)
    events, done = watch_in_background(api, pending.id)
    time.sleep(0.2)
    api.tasks.DeleteTask(task_pb2.DeleteTaskRequest(task_id=pending.id))
    assert done.wait(10)
    last = events[-1]
    assert last.kind == K.DELETED and last.terminal and last.task.id == pending.id


def test_watch_tasks_streams_all_of_my_changes_only(make_app, connect) -> None:
    app = make_app()
    alice, bob = connect(app, ALICE), connect(app, BOB)
    events: list = []
    done = threading.Event()
    stream = alice.tasks.WatchTasks(task_pb2.WatchTasksRequest(), timeout=30)
    threading.Thread(target=collect, args=(stream, events, done), daemon=True).start()
    time.sleep(0.3)
    mine = [alice.tasks.RunBacktest(run_request(fake={"steps": 3, "delay": 0.05})).id for _ in range(2)]
    theirs = bob.tasks.RunBacktest(run_request(fake={"steps": 1})).id
    for tid in mine:
        wait_status(alice, tid, S.COMPLETED)
    wait_status(bob, theirs, S.COMPLETED)

    def terminal_seen() -> bool:
        return {e.task.id for e in events if not isinstance(e, Exception) and e.task.status == S.COMPLETED} \
            >= set(mine)

    deadline = time.monotonic() + 5
    while not terminal_seen() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert terminal_seen(), kinds(events)
    assert not done.is_set(), "WatchTasks must not end by itself"
    assert all(e.task.user_id == 1 for e in events) and theirs not in {e.task.id for e in events}
    for tid in mine:
        statuses = [S.Status.Name(e.task.status) for e in events if e.task.id == tid and e.kind == K.STATUS]
        assert statuses[-1] == "COMPLETED"
    stream.cancel()
    assert done.wait(5)


def test_server_shutdown_ends_watch_streams(make_app, connect, engine_server) -> None:
    app = make_app()
    api = connect(app, ALICE)
    task = api.tasks.RunBacktest(run_request(fake={"outcome": "hang"}))
    engine_server.engine.wait_run(task.id)
    events, done = watch_in_background(api, task.id, timeout=30)
    all_events: list = []
    all_done = threading.Event()
    stream = api.tasks.WatchTasks(task_pb2.WatchTasksRequest(), timeout=30)
    threading.Thread(target=collect, args=(stream, all_events, all_done), daemon=True).start()
    time.sleep(0.3)
    # The hanging run keeps the dispatcher's grace period busy (3 s); the streams must end at
    # once anyway instead of holding the drain.
    stopper = threading.Thread(target=app.stop, kwargs={"grace": 3})
    stopper.start()
    assert done.wait(1.5) and all_done.wait(1.5)
    assert stopper.is_alive()
    stopper.join(10)
    assert kinds(events)[0][0] == "SNAPSHOT"


def test_watch_across_replicas(make_app, connect, db_url) -> None:
    """A watch on replica A sees a task executed by replica B. A never runs tasks (workers=0).
    PostgreSQL: A's tick is 30 s, so only LISTEN/NOTIFY can deliver in time.
    SQLite (no cross-process notifications): A's re-read tick is the delivery path."""
    pg = db_url.startswith("postgresql")
    a = make_app(workers=0, watch_tick_seconds=30.0 if pg else 0.3, replica_id="replica-a")
    make_app(workers=2, replica_id="replica-b")  # b executes
    api = connect(a, ALICE)
    task = api.tasks.RunBacktest(run_request(fake={"steps": 5, "delay": 0.1}))
    events, done = watch_in_background(api, task.id, timeout=25)
    assert done.wait(20), kinds(events)
    assert not any(isinstance(e, Exception) for e in events), events
    seq = kinds(events)
    assert seq[0][0] == "SNAPSHOT" and seq[-1] == ("STATUS", "COMPLETED", True)
    if pg:
        assert any(k == "PROGRESS" for k, _, _ in seq), seq


@pytest.mark.parametrize("token", ["user:2"])
def test_watch_unknown_task_not_found(make_app, connect, token: str) -> None:
    api = connect(make_app(), token)
    with pytest.raises(grpc.RpcError) as info:
        list(api.tasks.WatchTask(task_pb2.WatchTaskRequest(task_id=987654)))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_watch_reads_are_scoped_per_row(make_app, connect) -> None:
    """The batched re-read of many users' watched rows (one query) returns each row only under
    its owner's id: another user's id paired with the same task id reads as gone."""
    app = make_app()
    mine = connect(app, ALICE).tasks.RunBacktest(run_request(fake={"steps": 1}))
    theirs = connect(app, BOB).tasks.RunBacktest(run_request(fake={"steps": 1}))
    rows = app.tasks.find_many([(1, mine.id), (2, theirs.id), (2, mine.id), (1, theirs.id), (1, 987654)])
    assert {key: (t.id, t.user_id) for key, t in rows.items()} == {
        (1, mine.id): (mine.id, 1), (2, theirs.id): (theirs.id, 2)}


def test_cancel_on_one_replica_stops_the_run_on_another(make_app, connect, engine_server, db_url) -> None:
    """CancelTask on A for a task RUNNING on B: B kills the engine call. On PostgreSQL B's lease
    renewal is slow (10 s) so only the NOTIFY hint can do it in time; on SQLite the renewer's
    check (every lease/3) is the path."""
    pg = db_url.startswith("postgresql")
    a = make_app(workers=0, replica_id="replica-a")
    make_app(workers=1, replica_id="replica-b", lease_seconds=30.0 if pg else 1.5)
    api = connect(a, ALICE)
    task = api.tasks.RunBacktest(run_request(fake={"outcome": "hang"}))
    record = engine_server.engine.wait_run(task.id)
    wait_status(api, task.id, S.RUNNING)
    api.tasks.CancelTask(task_pb2.CancelTaskRequest(task_id=task.id))
    assert record.cancelled.wait(4), "replica B did not stop the cancelled run"
    time.sleep(0.3)
    assert api.tasks.GetTask(task_pb2.GetTaskRequest(task_id=task.id)).status == S.CANCELLED
