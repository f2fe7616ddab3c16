"""watch_task's ordering guarantee, without servers: a change committed while the snapshot is
being read is still delivered (subscribe first, then read), long before the safety-net tick."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace

from task_svc.events import EventBus, TaskHint
from task_svc.watch import watch_task, watch_tasks
from task_svc.watch_reads import WatchReads


class RacingTasks:
    """find() returns RUNNING for the snapshot, but the task completes (and the hint is
    published) during that very read — the race a read-then-subscribe watcher would lose."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self.status = "RUNNING"
        self.calls = 0

    def _row(self) -> SimpleNamespace:
        return SimpleNamespace(id=7, user_id=1, status=self.status, progress=1.0 if self.status == "COMPLETED"
                               else 0.5, current_date="", equity=0.0)

    def find(self, user_id: int, task_id: int) -> SimpleNamespace | None:
        self.calls += 1
        row = self._row()
        if self.calls == 1:
            self.status = "COMPLETED"
            self.bus.publish(TaskHint(7, 1, "COMPLETED", "status"))
        return row

    def find_many(self, keys: list[tuple[int, int]]) -> dict[tuple[int, int], SimpleNamespace]:
        return {key: row for key in keys if (row := self.find(*key)) is not None}

    def active_tasks(self, user_id: int) -> list[SimpleNamespace]:
        return self.find(user_id, 7) and [self._row_before_completion()]

    def _row_before_completion(self) -> SimpleNamespace:
        return SimpleNamespace(id=7, user_id=1, status="RUNNING", progress=0.5, current_date="", equity=0.0)


async def _collect(stream: object) -> list[object]:
    return [event async for event in stream]  # type: ignore[attr-defined]


def test_change_during_snapshot_read_is_not_missed() -> None:
    bus = EventBus()
    tasks = RacingTasks(bus)
    started = time.monotonic()
    events = asyncio.run(_collect(watch_task(WatchReads(tasks), bus, 1, 7,  # type: ignore[arg-type]
                                             tick=30.0, progress_interval=0.1)))
    assert time.monotonic() - started < 2  # delivered by the hint, not by the 30 s tick
    assert [(e.kind, e.task.status, e.terminal) for e in events] == [  # type: ignore[attr-defined]
        ("SNAPSHOT", "RUNNING", False), ("STATUS", "COMPLETED", True)]


def test_watch_tasks_change_during_snapshot_is_not_missed() -> None:
    async def scenario() -> None:
        bus = EventBus()
        tasks = RacingTasks(bus)
        stream = watch_tasks(WatchReads(tasks), bus, 1, tick=30.0, progress_interval=0.1)  # type: ignore[arg-type]
        first = await anext(stream)
        assert (first.kind, first.task.status) == ("SNAPSHOT", "RUNNING")
        started = time.monotonic()
        second = await anext(stream)
        assert time.monotonic() - started < 2
        assert (second.kind, second.task.status, second.terminal) == ("STATUS", "COMPLETED", True)
        bus.close()  # shutdown ends the endless stream
        assert await _collect(stream) == []

    asyncio.run(scenario())


class Store:
    """Rows by (user_id, task_id), counting the queries made (each find_many is one)."""

    def __init__(self, rows: dict[tuple[int, int], SimpleNamespace]) -> None:
        self.rows = rows
        self.queries: list[int] = []

    def find_many(self, keys: list[tuple[int, int]]) -> dict[tuple[int, int], SimpleNamespace]:
        self.queries.append(len(keys))
        time.sleep(0.01)  # a query takes a while: reads asked for meanwhile go into the next one
        return {k: self.rows[k] for k in keys if k in self.rows}


def _row(task_id: int, user_id: int, status: str) -> SimpleNamespace:
    return SimpleNamespace(id=task_id, user_id=user_id, status=status, progress=0.5, current_date="", equity=0.0)


def test_a_waiting_watcher_holds_no_thread() -> None:
    """Hundreds of watchers waiting for a change run on one loop thread: the executor only
    serves their row reads (a few batched queries, not one per watcher), then every one
    receives the terminal event it waits for."""
    async def scenario() -> None:
        bus = EventBus()
        store = Store({(1, 7): _row(7, 1, "RUNNING")})
        reads = WatchReads(store)  # type: ignore[arg-type]
        streams = [watch_task(reads, bus, 1, 7, tick=30.0, progress_interval=0.1) for _ in range(300)]
        snapshots = await asyncio.gather(*(anext(stream) for stream in streams))
        assert {e.kind for e in snapshots} == {"SNAPSHOT"}
        assert len(store.queries) <= 2 and max(store.queries) == 1  # one row for all 300, not 300 queries
        pending = [asyncio.ensure_future(anext(stream)) for stream in streams]
        await asyncio.sleep(0.05)
        assert not any(p.done() for p in pending)
        threads_before = threading.active_count()
        store.queries.clear()
        store.rows[(1, 7)] = _row(7, 1, "CANCELLED")
        await asyncio.to_thread(bus.publish, TaskHint(7, 1, "CANCELLED", "status"))
        events = await asyncio.wait_for(asyncio.gather(*pending), 10)
        assert [(e.kind, e.task.status, e.terminal) for e in events] == [("STATUS", "CANCELLED", True)] * 300
        assert len(store.queries) <= 3 and max(store.queries) == 1  # one key: the same row for all 300
        assert threading.active_count() <= threads_before + 8  # the executor's few threads, not 300

    asyncio.run(scenario())


def test_batched_reads_stay_scoped_to_each_watcher_and_batches_are_bounded() -> None:
    """One query serves many users' watchers, each gets its own row only (a task id of another
    user reads as gone); a batch holds at most MAX_BATCH keys; a failed query fails the waiting
    reads with the error (the stream ends with it) and the next reads work again."""
    from task_svc import watch_reads

    async def scenario() -> None:
        rows = {(u, 100 + u): _row(100 + u, u, "RUNNING") for u in range(1, 1201)}
        store = Store(rows)
        reads = WatchReads(store)  # type: ignore[arg-type]
        found = await asyncio.gather(*(reads.find(u, 100 + u) for u in range(1, 1201)))
        assert [(r.user_id, r.id) for r in found] == [(u, 100 + u) for u in range(1, 1201)]
        assert max(store.queries) <= watch_reads.MAX_BATCH and sum(store.queries) == 1200
        assert await reads.find(2, 101) is None  # task 101 is user 1's
        store.find_many = lambda keys: 1 / 0  # type: ignore[method-assign]
        results = await asyncio.gather(reads.find(1, 101), reads.find(3, 103), return_exceptions=True)
        assert all(isinstance(r, ZeroDivisionError) for r in results)
        del store.find_many
        assert (await reads.find(3, 103)).status == "RUNNING"

    asyncio.run(scenario())


def test_watch_tasks_delivers_a_change_whose_hint_was_lost() -> None:
    """The tick is WatchTasks' safety net too: a task that finishes without a hint reaching this
    replica (a lost NOTIFY) still shows its terminal state, while another task's progress keeps
    hints coming."""
    async def scenario() -> None:
        bus = EventBus()
        store = Store({(1, 7): _row(7, 1, "RUNNING"), (1, 8): _row(8, 1, "RUNNING")})
        store.active_tasks = lambda user_id: [store.rows[(1, 7)], store.rows[(1, 8)]]  # type: ignore[attr-defined]
        stream = watch_tasks(WatchReads(store), bus, 1, tick=0.3, progress_interval=0.05)  # type: ignore[arg-type]
        assert [(e.kind, e.task_id) for e in [await anext(stream), await anext(stream)]] == [
            ("SNAPSHOT", 7), ("SNAPSHOT", 8)]
        store.rows[(1, 7)] = _row(7, 1, "COMPLETED")  # committed, but its hint never arrives

        async def progress_of_8() -> None:
            for i in range(40):
                store.rows[(1, 8)] = SimpleNamespace(**{**vars(_row(8, 1, "RUNNING")), "progress": i / 40})
                bus.publish(TaskHint(8, 1, "RUNNING", "progress"))
                await asyncio.sleep(0.05)

        feeder = asyncio.create_task(progress_of_8())
        started = time.monotonic()
        while True:
            event = await asyncio.wait_for(anext(stream), 5)
            if event.task_id == 7:
                break
        assert (event.kind, event.task.status, event.terminal) == ("STATUS", "COMPLETED", True)
        assert time.monotonic() - started < 1.5  # within a tick or two, not never
        feeder.cancel()
        bus.close()

    asyncio.run(scenario())
