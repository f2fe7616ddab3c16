"""watch_task's ordering guarantee, without servers: a change committed while the snapshot is
being read is still delivered (subscribe first, then read), long before the safety-net tick."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace

from task_svc.events import EventBus, TaskHint
from task_svc.watch import watch_task, watch_tasks


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
    events = asyncio.run(_collect(watch_task(tasks, bus, 1, 7, tick=30.0,  # type: ignore[arg-type]
                                             progress_interval=0.1)))
    assert time.monotonic() - started < 2  # delivered by the hint, not by the 30 s tick
    assert [(e.kind, e.task.status, e.terminal) for e in events] == [  # type: ignore[attr-defined]
        ("SNAPSHOT", "RUNNING", False), ("STATUS", "COMPLETED", True)]


def test_watch_tasks_change_during_snapshot_is_not_missed() -> None:
    async def scenario() -> None:
        bus = EventBus()
        tasks = RacingTasks(bus)
        stream = watch_tasks(tasks, bus, 1, tick=30.0, progress_interval=0.1)  # type: ignore[arg-type]
        first = await anext(stream)
        assert (first.kind, first.task.status) == ("SNAPSHOT", "RUNNING")
        started = time.monotonic()
        second = await anext(stream)
        assert time.monotonic() - started < 2
        assert (second.kind, second.task.status, second.terminal) == ("STATUS", "COMPLETED", True)
        bus.close()  # shutdown ends the endless stream
        assert await _collect(stream) == []

    asyncio.run(scenario())


def test_a_waiting_watcher_holds_no_thread() -> None:
    """Hundreds of watchers waiting for a change run on one loop thread: the executor only
    serves their row reads, then every one receives the terminal event it waits for."""
    async def scenario() -> None:
        bus = EventBus()
        store = {7: SimpleNamespace(id=7, user_id=1, status="RUNNING", progress=0.5, current_date="", equity=0.0)}
        tasks = SimpleNamespace(find=lambda user_id, task_id: store.get(task_id))
        streams = [watch_task(tasks, bus, 1, 7, tick=30.0, progress_interval=0.1)  # type: ignore[arg-type]
                   for _ in range(300)]
        for stream in streams:
            assert (await anext(stream)).kind == "SNAPSHOT"
        pending = [asyncio.ensure_future(anext(stream)) for stream in streams]
        await asyncio.sleep(0.05)
        assert not any(p.done() for p in pending)
        threads_before = threading.active_count()
        store[7] = SimpleNamespace(id=7, user_id=1, status="CANCELLED", progress=0.5, current_date="", equity=0.0)
        await asyncio.to_thread(bus.publish, TaskHint(7, 1, "CANCELLED", "status"))
        events = await asyncio.wait_for(asyncio.gather(*pending), 10)
        assert [(e.kind, e.task.status, e.terminal) for e in events] == [("STATUS", "CANCELLED", True)] * 300
        assert threading.active_count() <= threads_before + 8  # the executor's few threads, not 300

    asyncio.run(scenario())
