"""Spare workers: started ahead of time, hardened with the run's own limits when taken."""

from __future__ import annotations

import os
import signal
import time

import pytest

from engine_svc.sandbox.api import run_in_sandbox
from engine_svc.sandbox.errors import SandboxError
from engine_svc.sandbox.launcher import SparePool

from .helpers import config_for, limits_for, make_panel, strategy

BUY = strategy("for s in bar_data:\n    context.order_value(s, 10_000)")


def _wait_spare(pool: SparePool, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with pool._lock:
            if pool._spares:
                return
        time.sleep(0.02)
    raise AssertionError("no spare was started")


def test_a_spare_runs_the_same_backtest_and_is_replaced(mode: str) -> None:
    limits = limits_for(mode, cpu_seconds=5, wall_seconds=20)
    panel = make_panel(30, 3)
    fresh = run_in_sandbox(panel, BUY, config_for(panel), limits=limits)
    pool = SparePool(limits)
    try:
        _wait_spare(pool)
        spare_pid = pool._spares[0].pid
        outcome = run_in_sandbox(panel, BUY, config_for(panel), limits=limits, spares=pool)
        assert outcome.result == fresh.result
        assert outcome.timings["start_s"] < fresh.timings["start_s"]  # no interpreter start-up on the clock
        assert outcome.isolation["seccomp"] and outcome.isolation["rlimits"]  # hardened as any worker
        _wait_spare(pool)
        assert pool._spares[0].pid != spare_pid  # a new one is ready for the next run
    finally:
        pool.close()


def test_a_spare_takes_the_runs_limits(mode: str) -> None:
    limits = limits_for(mode, cpu_seconds=5, wall_seconds=20)
    pool = SparePool(limits)
    try:
        _wait_spare(pool)
        panel = make_panel(5, 2)
        hog = strategy("x = bytearray(900 * 1024 * 1024)\nx[::4096] = b'1' * len(x[::4096])")
        with pytest.raises(SandboxError) as info:
            run_in_sandbox(panel, hog, config_for(panel), limits=limits.with_(memory_mb=256), spares=pool)
        assert info.value.kind == "memory"
    finally:
        pool.close()


def test_a_dead_spare_is_not_handed_out_and_close_leaves_nothing(mode: str) -> None:
    limits = limits_for(mode, cpu_seconds=5, wall_seconds=20)
    pool = SparePool(limits)
    try:
        _wait_spare(pool)
        victim = pool._spares[0]
        os.killpg(victim.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while victim.alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        panel = make_panel(10, 2)
        assert run_in_sandbox(panel, BUY, config_for(panel), limits=limits, spares=pool).result["trades"]
    finally:
        pool.close()


def test_a_taken_spare_is_replaced_once_its_run_has_ended(mode: str) -> None:
    """Starting an interpreter takes CPU a run on a one-CPU pod would lose: the slot of a taken
    spare is held by its run and refilled after the run's worker is closed."""
    limits = limits_for(mode, cpu_seconds=5, wall_seconds=20)
    pool = SparePool(limits)
    try:
        _wait_spare(pool)
        first = pool._spares[0]
        handle = pool.take(limits)
        assert handle is first
        with pool._lock:  # the run holds the only slot: nothing to start while it goes on
            assert pool._busy == 1 and not pool._spares and pool._starting is None
        handle.close()
        with pool._lock:
            assert pool._busy == 0
        _wait_spare(pool)
        assert pool._spares[0].pid != first.pid
    finally:
        pool.close()


def test_closing_the_pool_stops_a_spare_still_starting(mode: str) -> None:
    """close() kills a spare whose imports are under way instead of waiting for them."""
    limits = limits_for(mode, cpu_seconds=5, wall_seconds=20)
    pool = SparePool(limits)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with pool._lock:
            starting = pool._starting
        if starting is not None:
            break
        time.sleep(0.001)
    assert starting is not None
    pool.close()
    assert not pool._thread.is_alive()
    assert starting.returncode is not None  # reaped: killed or, had it just got ready, closed
