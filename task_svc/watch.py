"""WatchTask / WatchTasks: what a watcher is told, and when.

Rules (docs/architecture.md, "Task states": status is data, committed before it is published):
- subscribe FIRST, then read the snapshot: a change committed between the two is still seen
  (its hint is already queued), so the terminal state is never missed;
- hints only trigger a re-read of the row; the row is what is sent (a hint may be stale,
  duplicated or — across replicas — lost);
- with no hint for ``tick`` seconds the row is re-read anyway (safety net for lost NOTIFYs;
  WatchTasks re-reads every unfinished task it has sent, at most once per ``tick``);
- PROGRESS events are throttled to one per ``progress_interval`` per task (the latest state
  is sent when the interval ends); STATUS events are never throttled. Transitions that happen
  within one re-read (e.g. RUNNING then COMPLETED a millisecond later) may coalesce into one
  STATUS event — the terminal one is always delivered.

The watchers are async generators on the server's event loop: waiting for a hint holds no
thread; only the row reads go to the executor, coalesced across streams (``watch_reads``). A
client that goes away cancels the generator.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from services.errors import NotFound
from task_svc.events import EventBus
from task_svc.models import TaskRow, TaskStatus
from task_svc.watch_reads import WatchReads

SNAPSHOT, STATUS, PROGRESS, DELETED = "SNAPSHOT", "STATUS", "PROGRESS", "DELETED"


@dataclass(frozen=True)
class WatchEvent:
    kind: str
    task_id: int
    user_id: int
    task: TaskRow | None  # None for DELETED
    terminal: bool


def _is_terminal(task: TaskRow) -> bool:
    return TaskStatus(task.status).terminal


def _progress_key(task: TaskRow) -> tuple[float, str, float]:
    return (task.progress, task.current_date, task.equity)


async def watch_task(reads: WatchReads, bus: EventBus, user_id: int, task_id: int, *, tick: float,
                     progress_interval: float) -> AsyncIterator[WatchEvent]:
    with bus.subscribe_async(user_id=user_id, task_id=task_id) as sub:
        last = await reads.find(user_id, task_id)
        if last is None:
            raise NotFound(f"task {task_id} not found")
        yield WatchEvent(SNAPSHOT, task_id, user_id, last, _is_terminal(last))
        if _is_terminal(last):
            return
        last_progress_at = 0.0
        wait = tick
        while True:
            try:
                await sub.next(timeout=wait)
            except EOFError:  # server shutting down
                return
            wait = tick
            row = await reads.find(user_id, task_id)
            if row is None:
                yield WatchEvent(DELETED, task_id, user_id, None, True)
                return
            if row.status != last.status:
                last = row
                yield WatchEvent(STATUS, task_id, user_id, row, _is_terminal(row))
                if _is_terminal(row):
                    return
            elif _progress_key(row) != _progress_key(last):
                now = time.monotonic()
                due = last_progress_at + progress_interval - now
                if due <= 0:
                    last, last_progress_at = row, now
                    yield WatchEvent(PROGRESS, task_id, user_id, row, False)
                else:
                    wait = due  # deliver the latest progress when the interval ends


async def watch_tasks(reads: WatchReads, bus: EventBus, user_id: int, *, tick: float,
                      progress_interval: float) -> AsyncIterator[WatchEvent]:
    """Every change to the user's tasks; starts with a SNAPSHOT of each active task."""
    with bus.subscribe_async(user_id=user_id) as sub:
        known: dict[int, TaskRow] = {}
        for task in await reads.active_tasks(user_id):
            known[task.id] = task
            yield WatchEvent(SNAPSHOT, task.id, user_id, task, False)
        sent_at: dict[int, float] = {}
        dirty: set[int] = set()  # tasks with throttled progress still to send
        swept_at = time.monotonic()
        while True:
            wait = tick
            if dirty:
                wait = max(0.0, min(sent_at.get(t, 0.0) + progress_interval for t in dirty) - time.monotonic())
            try:
                hint = await sub.next(timeout=wait)
            except EOFError:
                return
            ids = set(dirty)
            if hint is not None:
                ids.add(hint.task_id)
            if time.monotonic() - swept_at >= tick:  # the safety net for lost hints
                swept_at = time.monotonic()
                ids.update(tid for tid, task in known.items() if not _is_terminal(task))
            dirty.clear()
            for tid in sorted(ids):
                row = await reads.find(user_id, tid)
                before = known.get(tid)
                if row is None:
                    if before is not None or (hint is not None and hint.task_id == tid):
                        known.pop(tid, None)
                        yield WatchEvent(DELETED, tid, user_id, None, True)
                    continue
                if before is None or row.status != before.status:
                    known[tid] = row
                    sent_at[tid] = time.monotonic()
                    yield WatchEvent(STATUS, tid, user_id, row, _is_terminal(row))
                elif _progress_key(row) != _progress_key(before):
                    if time.monotonic() - sent_at.get(tid, 0.0) >= progress_interval:
                        known[tid] = row
                        sent_at[tid] = time.monotonic()
                        yield WatchEvent(PROGRESS, tid, user_id, row, False)
                    else:
                        dirty.add(tid)
