"""A bounded, self-limiting spin before blocking on the other process's next frame.

In a split backtest each side waits for the other once a day, usually for well under 100 µs.
Sleeping in poll()/read() for that long costs more than the wait: the woken process pays for the
wake-up and for cold caches (measured: ~100 µs of CPU a day per side on M, more than the work
itself). So a side first polls without sleeping for up to ``budget`` µs, then blocks as before.

It must not burn a CPU the other side (or another process) needs: the parent turns it off for a
run when fewer than two CPUs are usable (affinity, the cgroup's CPU quota) or the host's load
average is already above its CPUs, and each side stops spinning on its own when its spins keep
running out (the peer is not running), probing again now and then.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import Any

MAX_CREDIT = 8  # spins that may run out in a row (net) before spinning stops
PROBE_EVERY = 32  # while stopped, spin once per this many waits to notice the host got quiet


@functools.lru_cache(maxsize=1)
def usable_cpus() -> float:
    """CPUs this process may use: its affinity, capped by a cgroup v2 CPU quota."""
    cpus = float(len(os.sched_getaffinity(0)))
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            cpus = min(cpus, int(quota) / int(period))
    except (OSError, ValueError):
        pass
    return cpus


def budget_us(configured: int) -> int:
    """The spin budget both sides of a run use: ``configured`` µs when two CPUs are usable and the
    host is not already busier than its CPUs (1-minute load average), else 0. Measured on M at
    load 3–4 on 2 CPUs: a 100 µs spin cost each side 0.2–0.3 s of CPU and made the run slower."""
    cpus = usable_cpus()
    if configured <= 0 or cpus < 2:
        return 0
    return configured if os.getloadavg()[0] < cpus else 0


class SpinWait:
    def __init__(self, budget_us: int) -> None:
        self.budget_ns = max(0, int(budget_us)) * 1000
        self.credit = MAX_CREDIT
        self.waits = 0

    def poll(self, poller: Any) -> list[tuple[int, int]]:
        """``poller.poll(0)`` repeatedly until it reports an event (returned) or the budget is
        spent ([]: the caller blocks as usual)."""
        if not self.budget_ns:
            return []
        self.waits += 1
        if self.credit <= 0 and self.waits % PROBE_EVERY:
            return []
        return self._spin(poller.poll)

    def _spin(self, probe: Callable[[int], list[tuple[int, int]]]) -> list[tuple[int, int]]:
        end = time.perf_counter_ns() + self.budget_ns
        while True:
            events = probe(0)
            if events:
                self.credit = min(MAX_CREDIT, self.credit + 1)
                return events
            if time.perf_counter_ns() >= end:
                self.credit = max(0, self.credit - 2)
                return []
            os.sched_yield()  # a peer waiting for this CPU gets it
