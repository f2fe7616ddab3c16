"""Bounds on open server streams (e.g. task_svc's watches): per user and per process.

A stream on a `grpc.aio` server costs no thread, but it does cost memory, a subscription and
re-reads, so one user must not be able to open an unbounded number of them. The aio
interceptor takes a slot once the caller is authenticated and before the handler runs (so a
REST stream is refused with 429 before its headers go out) and gives it back when the stream
ends, however it ends. Used from the server's event loop; the lock only makes it safe anywhere.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from services.errors import ResourceExhausted


@dataclass(frozen=True)
class StreamLimitSettings:
    per_user: int
    total: int
    per_user_variable: str  # named in the refusal, so an operator knows what to raise
    total_variable: str


class StreamLimits:
    def __init__(self, settings: StreamLimitSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._by_user: dict[int, int] = {}
        self._total = 0

    @property
    def open_streams(self) -> int:
        return self._total

    def open_for(self, user_id: int) -> int:
        return self._by_user.get(user_id, 0)

    @contextmanager
    def hold(self, user_id: int) -> Iterator[None]:
        """One slot for the duration of the block; ResourceExhausted (→ 429) when none is left."""
        s = self.settings
        with self._lock:
            mine = self._by_user.get(user_id, 0)
            if mine >= s.per_user:
                raise ResourceExhausted(
                    f"too many open watch streams for this user: the limit is {s.per_user} "
                    f"({s.per_user_variable}); close one first")
            if self._total >= s.total:
                raise ResourceExhausted(
                    f"too many open watch streams on this server: the limit is {s.total} "
                    f"({s.total_variable}); try again later")
            self._by_user[user_id] = mine + 1
            self._total += 1
        try:
            yield
        finally:
            with self._lock:
                left = self._by_user[user_id] - 1
                if left:
                    self._by_user[user_id] = left
                else:
                    del self._by_user[user_id]
                self._total -= 1
