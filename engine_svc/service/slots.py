"""Bounded concurrency for backtests: a fixed number of run slots and a bounded FIFO wait queue.

A backtest worker uses a whole CPU core for seconds to minutes, so a replica runs at most
``slots`` of them at once. A few more may wait (``queue``) so short bursts are absorbed;
anything beyond that is turned away at once, which lets the caller retry on another replica
instead of piling up invisible work here. Plain Python (no gRPC) so it is testable alone.

Life of a call::

    ticket = pool.reserve()            # admitted (counts as waiting) or SlotsBusy / SlotsClosed
    if ticket.acquire(cancel):         # FIFO wait for a slot; False when cancelled or closed
        ...run...
    ticket.release()                   # idempotent; frees the slot or the queue place
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

# How often a waiter re-checks its cancel event. Cancellation is delivered by setting an Event
# from another thread (a gRPC callback), which cannot notify our Condition, so waiters poll.
_POLL_SECONDS = 0.05


class SlotsBusy(Exception):
    """Every slot is taken and the wait queue is full."""

    def __init__(self, running: int, waiting: int) -> None:
        super().__init__(
            f"engine busy: {running} running, {waiting} waiting; retry later or use another replica"
        )
        self.running = running
        self.waiting = waiting


class SlotsClosed(Exception):
    """The pool no longer admits work (the service is shutting down)."""


@dataclass(frozen=True)
class PoolStats:
    slots: int
    queue: int
    running: int
    waiting: int


class SlotPool:
    def __init__(self, slots: int, queue: int) -> None:
        if slots < 1:
            raise ValueError("slots must be at least 1")
        if queue < 0:
            raise ValueError("queue must be non-negative")
        self.slots = slots
        self.queue = queue
        self._cond = threading.Condition()
        self._running = 0
        self._waiting: deque[Ticket] = deque()
        self._closed = False

    def reserve(self, *, wait: bool = True) -> Ticket:
        """Admit one call (as waiting) or raise SlotsBusy / SlotsClosed without blocking.
        ``wait=False``: only when a slot is free now (nothing ahead of it), never into the queue."""
        with self._cond:
            if self._closed:
                raise SlotsClosed("engine shutting down; not accepting new backtests")
            if self._running + len(self._waiting) >= self.slots + (self.queue if wait else 0):
                raise SlotsBusy(self._running, len(self._waiting))
            ticket = Ticket(self)
            self._waiting.append(ticket)
            return ticket

    def close(self) -> None:
        """Refuse new reservations and wake waiters (they give up their place)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def stats(self) -> PoolStats:
        with self._cond:
            return PoolStats(self.slots, self.queue, self._running, len(self._waiting))

    # -- used by Ticket, under self._cond ------------------------------------------------------

    def _acquire(self, ticket: Ticket, cancel: threading.Event | None, timeout: float | None) -> bool:
        deadline = None if timeout is None else _now() + timeout
        with self._cond:
            while True:
                if ticket._state != "waiting":
                    return ticket._state == "running"
                if (cancel is not None and cancel.is_set()) or self._closed:
                    self._leave_queue(ticket)
                    return False
                # FIFO: only the head of the queue may take a free slot, so a long-waiting call
                # is never overtaken by a later one.
                if self._running < self.slots and self._waiting and self._waiting[0] is ticket:
                    self._waiting.popleft()
                    self._running += 1
                    ticket._state = "running"
                    self._cond.notify_all()  # the next in line may also find a free slot
                    return True
                remaining = None if deadline is None else deadline - _now()
                if remaining is not None and remaining <= 0:
                    self._leave_queue(ticket)
                    return False
                wait = _POLL_SECONDS if remaining is None else min(_POLL_SECONDS, remaining)
                self._cond.wait(wait)

    def _leave_queue(self, ticket: Ticket) -> None:
        if ticket._state == "waiting":
            self._waiting.remove(ticket)
            ticket._state = "released"
            self._cond.notify_all()

    def _release(self, ticket: Ticket) -> None:
        with self._cond:
            if ticket._state == "running":
                self._running -= 1
                ticket._state = "released"
                self._cond.notify_all()
            else:
                self._leave_queue(ticket)


class Ticket:
    """One admitted call: a place in the queue, then a slot."""

    def __init__(self, pool: SlotPool) -> None:
        self._pool = pool
        self._state = "waiting"  # waiting -> running -> released, or waiting -> released

    @property
    def state(self) -> str:
        return self._state

    def acquire(self, cancel: threading.Event | None = None, timeout: float | None = None) -> bool:
        """Block until this call holds a slot (True), or give up its place and return False when
        ``cancel`` is set, the pool is closed or ``timeout`` passes."""
        return self._pool._acquire(self, cancel, timeout)

    def release(self) -> None:
        self._pool._release(self)

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _now() -> float:
    return time.monotonic()
