"""The bounded spin before blocking on the other process's next frame (engine_svc.sandbox.spin)."""

from __future__ import annotations

import time

import pytest

from engine_svc.sandbox import spin
from engine_svc.sandbox.api import run_in_sandbox

from .helpers import config_for, limits_for, make_panel, strategy


class FakePoller:
    """Reports an event after ``ready_after`` calls (never when None); counts the calls."""

    def __init__(self, ready_after: int | None) -> None:
        self.ready_after = ready_after
        self.calls = 0

    def poll(self, timeout: int) -> list[tuple[int, int]]:
        assert timeout == 0  # a spin never sleeps
        self.calls += 1
        return [(3, 1)] if self.ready_after is not None and self.calls > self.ready_after else []


def test_spin_returns_the_event_once_the_peer_answers() -> None:
    waiter = spin.SpinWait(10_000)
    poller = FakePoller(ready_after=5)
    assert waiter.poll(poller) == [(3, 1)]
    assert poller.calls == 6
    assert waiter.credit == spin.MAX_CREDIT


def test_spin_is_bounded_and_stops_after_running_out() -> None:
    waiter = spin.SpinWait(200)
    poller = FakePoller(ready_after=None)
    t0 = time.perf_counter()
    assert waiter.poll(poller) == []
    assert 200e-6 <= time.perf_counter() - t0 < 0.05
    for _ in range(spin.MAX_CREDIT // 2 - 1):
        assert waiter.poll(poller) == []
    assert waiter.credit == 0
    calls = poller.calls
    for _ in range(spin.PROBE_EVERY - 1 - waiter.waits % spin.PROBE_EVERY):
        assert waiter.poll(poller) == []
    assert poller.calls == calls  # stopped: no polling at all
    assert waiter.poll(poller) == []  # the periodic probe spins once
    assert poller.calls > calls


def test_a_probe_that_hits_resumes_spinning() -> None:
    waiter = spin.SpinWait(10_000)
    waiter.credit = 0
    waiter.waits = spin.PROBE_EVERY - 1
    assert waiter.poll(FakePoller(ready_after=0)) == [(3, 1)]
    assert waiter.credit == 1
    poller = FakePoller(ready_after=2)
    assert waiter.poll(poller) == [(3, 1)] and poller.calls == 3


def test_zero_budget_never_polls() -> None:
    poller = FakePoller(ready_after=0)
    assert spin.SpinWait(0).poll(poller) == []
    assert poller.calls == 0


@pytest.mark.parametrize(("cpus", "load", "configured", "expected"), [
    (2.0, 0.5, 50, 50),
    (2.0, 2.5, 50, 0),  # the host is busier than its CPUs
    (1.0, 0.0, 50, 0),  # one CPU: the two sides take turns on it
    (1.5, 0.0, 50, 0),  # a fractional cgroup quota below two CPUs
    (4.0, 0.0, 0, 0),  # turned off
])
def test_budget_needs_two_free_cpus(monkeypatch: pytest.MonkeyPatch, cpus: float, load: float,
                                    configured: int, expected: int) -> None:
    monkeypatch.setattr(spin, "usable_cpus", lambda: cpus)
    monkeypatch.setattr(spin.os, "getloadavg", lambda: (load, load, load))
    assert spin.budget_us(configured) == expected


def test_a_spinning_run_gives_the_same_result(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spin, "usable_cpus", lambda: 2.0)
    monkeypatch.setattr(spin.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    panel = make_panel(40, 3)
    code = strategy("for s in bar_data:\n"
                    "    context.order_target_value(s, 10_000 if context.portfolio.cash > 5e4 else 0)")
    results = [
        run_in_sandbox(panel, code, config_for(panel), limits=limits_for(mode, spin_us=us, cpu_seconds=5,
                                                                         wall_seconds=20)).result
        for us in (0, 200)
    ]
    assert results[0] == results[1]
    assert len(results[0]["orders"]) > 3
