"""Task change notifications: commit first, then publish.

A *hint* says "task X of user U changed" (with its new status). Hints are never the truth —
subscribers re-read the row before telling anyone anything — so a lost, duplicated or
reordered hint costs at most a little latency (watchers also re-read on a timer).

- ``EventBus``: in-process pub/sub; every replica publishes its own changes here. Publishers
  are threads (dispatcher, request executor); a subscriber is either a thread (``get``) or a
  coroutine on the server's event loop (``AsyncSubscription.next``: the hint is handed to the
  loop, so a waiting watch stream holds no thread).
- ``Publisher``: after a transaction commits, hands hints to the local bus and, on
  PostgreSQL, sends them with ``pg_notify`` on ``zq_task_events`` for the other replicas.
- ``PgListener``: a dedicated psycopg connection in a thread that LISTENs on the channel and
  forwards other replicas' hints to the local bus (its own are skipped: already delivered).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import psycopg
from sqlalchemy import Engine, text

from services.db import is_postgres

log = logging.getLogger("zquant.task.events")

CHANNEL = "zq_task_events"
DELETED = "DELETED"  # pseudo status of a hint for a removed task


@dataclass(frozen=True)
class TaskHint:
    task_id: int
    user_id: int
    status: str  # TaskStatus value, or DELETED
    kind: str  # "status" | "progress" | "deleted"
    progress: float = 0.0
    origin: str = ""  # replica that published it

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, payload: str) -> TaskHint:
        d = json.loads(payload)
        return cls(int(d["task_id"]), int(d["user_id"]), str(d["status"]), str(d["kind"]),
                   float(d.get("progress", 0.0)), str(d.get("origin", "")))


_CLOSED = object()


class Subscription:
    """A queue of hints matching (user_id, task_id); None matches anything."""

    def __init__(self, bus: EventBus, user_id: int | None, task_id: int | None) -> None:
        self._bus = bus
        self.user_id, self.task_id = user_id, task_id
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.closed = False

    def matches(self, hint: TaskHint) -> bool:
        return (self.user_id is None or hint.user_id == self.user_id) and (
            self.task_id is None or hint.task_id == self.task_id
        )

    def put(self, hint: TaskHint) -> None:
        self._queue.put(hint)

    def wake(self) -> None:
        """Unblocks get() (e.g. the client went away) without closing the subscription."""
        self._queue.put(None)

    def get(self, timeout: float) -> TaskHint | None:
        """Next hint, or None on timeout/wake. Raises EOFError once the bus is closed."""
        if self.closed:
            raise EOFError
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _CLOSED:
            self.closed = True
            raise EOFError
        return item if isinstance(item, TaskHint) else None

    def close(self) -> None:
        self._bus.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _shutdown(self) -> None:
        self._queue.put(_CLOSED)


class AsyncSubscription(Subscription):
    """A subscription awaited on an asyncio loop; put/wake/shutdown may come from any thread."""

    def __init__(self, bus: EventBus, user_id: int | None, task_id: int | None,
                 loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(bus, user_id, task_id)
        self._loop = loop
        self._items: asyncio.Queue[object] = asyncio.Queue()

    def _deliver(self, item: object) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            self._loop.call_soon_threadsafe(self._items.put_nowait, item)

    def put(self, hint: TaskHint) -> None:
        self._deliver(hint)

    def wake(self) -> None:
        self._deliver(None)

    def _shutdown(self) -> None:
        self._deliver(_CLOSED)

    def get(self, timeout: float) -> TaskHint | None:
        raise TypeError("an AsyncSubscription is awaited: use next()")

    async def next(self, timeout: float) -> TaskHint | None:
        """Next hint, or None on timeout/wake. Raises EOFError once the bus is closed."""
        if self.closed:
            raise EOFError
        try:
            async with asyncio.timeout(timeout):
                item = await self._items.get()
        except TimeoutError:
            return None
        if item is _CLOSED:
            self.closed = True
            raise EOFError
        return item if isinstance(item, TaskHint) else None


class EventBus:
    """In-process fan-out. publish() never blocks (unbounded queues; subscribers drain fast)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: set[Subscription] = set()
        self._closed = False

    def subscribe(self, *, user_id: int | None = None, task_id: int | None = None) -> Subscription:
        return self._add(Subscription(self, user_id, task_id))

    def subscribe_async(self, *, user_id: int | None = None, task_id: int | None = None) -> AsyncSubscription:
        """A subscription for a coroutine on the running event loop."""
        sub = AsyncSubscription(self, user_id, task_id, asyncio.get_running_loop())
        self._add(sub)
        return sub

    def _add(self, sub: Subscription) -> Subscription:
        with self._lock:
            if self._closed:
                sub._shutdown()
            else:
                self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    def publish(self, hint: TaskHint) -> None:
        with self._lock:
            targets = [s for s in self._subs if s.matches(hint)]
        for sub in targets:
            sub.put(hint)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Ends every subscription (server shutdown: watch streams return cleanly)."""
        with self._lock:
            self._closed = True
            subs, self._subs = self._subs, set()
        for sub in subs:
            sub._shutdown()


class Publisher:
    """Call publish() only after the transaction that made the change has committed."""

    def __init__(self, bus: EventBus, db: Engine, origin: str) -> None:
        self.bus = bus
        self.db = db
        self.origin = origin
        self.notify = is_postgres(db)

    def publish(self, hints: Iterable[TaskHint]) -> None:
        stamped = [TaskHint(h.task_id, h.user_id, h.status, h.kind, h.progress, self.origin) for h in hints]
        if not stamped:
            return
        for hint in stamped:
            self.bus.publish(hint)
        if self.notify:
            try:
                with self.db.begin() as conn:
                    for hint in stamped:
                        conn.execute(text("SELECT pg_notify(:ch, :payload)"),
                                     {"ch": CHANNEL, "payload": hint.to_json()})
            except Exception:
                # The change is committed; other replicas' watchers still see it on their
                # re-read tick. Losing a hint costs latency, never correctness.
                log.warning("pg_notify failed", exc_info=True)


class PgListener:
    """LISTENs on CHANNEL with its own connection and forwards foreign hints to the bus."""

    def __init__(self, bus: EventBus, db: Engine, origin: str) -> None:
        self.bus = bus
        self.origin = origin
        # psycopg wants a libpq URL, not SQLAlchemy's "postgresql+psycopg://".
        self.conninfo = db.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="task-pg-listener", daemon=True)

    def start(self, wait: float = 10.0) -> None:
        self._thread.start()
        self._ready.wait(wait)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._ready.set()
                    backoff = 0.5
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self._forward(note.payload)
            except Exception:
                if self._stop.is_set():
                    return
                log.warning("LISTEN connection lost; reconnecting", exc_info=True)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def _forward(self, payload: str) -> None:
        try:
            hint = TaskHint.from_json(payload)
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring malformed notification", extra={"payload": payload[:200]})
            return
        if hint.origin != self.origin:
            self.bus.publish(hint)
