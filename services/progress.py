"""The one rule for progress updates: at most one per interval, and the final one always.

The engine service uses it for the progress events it streams (``EngineCore``), task_svc's
dispatcher for the progress it writes to a task row (each write is what watchers see).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class ProgressGate:
    """``admit(fraction)`` is True for the first update, then at most once per ``interval``
    seconds, and for the first update with ``fraction >= 1`` (the final one), after which
    nothing more passes. Thread-safe: a sandbox reports progress from its reader thread."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._last = float("-inf")
        self._done = False
        self._lock = threading.Lock()

    @property
    def done(self) -> bool:
        """The final update has passed."""
        return self._done

    def admit(self, fraction: float) -> bool:
        now = self._clock()
        with self._lock:
            if self._done or (fraction < 1.0 and now - self._last < self._interval):
                return False
            self._last = now
            self._done = fraction >= 1.0
            return True
