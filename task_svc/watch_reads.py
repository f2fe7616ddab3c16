"""The watch streams' row reads, coalesced: one query for every row asked for at about the same time.

Every open watch re-reads its task's row when a hint arrives and, as the safety net for lost
hints, every ``watch_tick_seconds`` anyway: with 5 000 open streams and a 2 s tick that is
2 500 reads a second, each a thread hop and a query on the executor the unary calls share.
Here a read asked for while another batch is in flight waits for the next one, so the reads
cost a handful of queries a second, not thousands, and a hint that wakes many watchers of one
task (a terminal state) costs one query. Nothing waits for a batch to fill: a read with nothing
in flight starts a query at once.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from task_svc.models import Task, TaskRow

MAX_BATCH = 500  # keys per query (PostgreSQL and SQLite bind parameters stay well within limits)

Key = tuple[int, int]  # (user_id, task_id)


class RowSource(Protocol):
    def find_many(self, keys: list[Key]) -> dict[Key, Task]: ...
    def active_tasks(self, user_id: int) -> list[TaskRow]: ...


class WatchReads:
    """Reads for the watch streams of one event loop (the task service's server loop)."""

    def __init__(self, source: RowSource) -> None:
        self.source = source
        self._waiting: dict[Key, list[asyncio.Future[Task | None]]] = {}
        self._drainer: asyncio.Task[None] | None = None
        self.queries = 0  # batches run (for tests and the bench's explanation)

    async def find(self, user_id: int, task_id: int) -> Task | None:
        """The row as it is now (None: gone or not this user's), read in the next batch."""
        future: asyncio.Future[Task | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault((user_id, task_id), []).append(future)
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def active_tasks(self, user_id: int) -> list[TaskRow]:
        return await asyncio.to_thread(self.source.active_tasks, user_id)

    async def _drain(self) -> None:
        try:
            while self._waiting:
                keys = list(self._waiting)[:MAX_BATCH]
                batch = {key: self._waiting.pop(key) for key in keys}
                self.queries += 1
                try:
                    rows = await asyncio.to_thread(self.source.find_many, keys)
                except Exception as exc:  # the database is down: each waiting stream gets the error
                    for futures in batch.values():
                        for future in futures:
                            if not future.done():
                                future.set_exception(exc)
                    continue
                for key, futures in batch.items():
                    for future in futures:
                        if not future.done():  # a cancelled stream's future is done already
                            future.set_result(rows.get(key))
        finally:
            self._drainer = None
