"""Cancellation from another thread: the worker (and with bwrap its whole PID namespace) is dead
and reaped within 1 s of the request; conftest.no_leftovers checks nothing survives."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine_svc.sandbox import launcher
from engine_svc.sandbox.api import run_in_sandbox
from engine_svc.sandbox.errors import CANCELLED_MESSAGE, SandboxError

from .helpers import config_for, limits_for, make_panel, strategy

# Sleeps in a loop (wall time, no CPU) and never returns on its own within the test.
SLOW = strategy("for _ in range(600):\n    time.sleep(0.1)")
BUSY = strategy("while True:\n    pass")
SLEEPER = "import time\ndef main(args, progress):\n    time.sleep(60)\n"


def _cancel_after(delay: float, cancel: threading.Event, stamp: list[float]) -> threading.Timer:
    def fire() -> None:
        stamp.append(time.monotonic())
        cancel.set()

    timer = threading.Timer(delay, fire)
    timer.start()
    return timer


@pytest.mark.parametrize("code", [SLOW, BUSY], ids=["sleeping", "busy"])
def test_cancel_event_kills_the_worker_within_a_second(mode: str, code: str) -> None:
    panel = make_panel()
    cancel = threading.Event()
    stamp: list[float] = []
    timer = _cancel_after(1.0, cancel, stamp)  # after start-up: the strategy is running
    try:
        with pytest.raises(SandboxError) as info:
            run_in_sandbox(panel, code, config_for(panel), limits=limits_for(mode, cpu_seconds=30, wall_seconds=30),
                           cancel=cancel)
        returned = time.monotonic()
    finally:
        timer.cancel()
    assert (info.value.kind, info.value.message) == ("cancelled", CANCELLED_MESSAGE)
    assert stamp, "the run ended before it was cancelled"
    assert returned - stamp[0] < 1.0, f"cancel took {returned - stamp[0]:.3f} s"


def test_handle_cancel_from_another_thread(mode: str) -> None:
    handles: list[launcher.WorkerHandle] = []
    stamp: list[float] = []

    def cancel_soon() -> None:
        time.sleep(1.0)
        stamp.append(time.monotonic())
        handles[0].cancel()

    canceller = threading.Thread(target=cancel_soon)
    with pytest.raises(SandboxError) as info:
        launcher.run_job("script", {"code": SLEEPER}, limits=limits_for(mode, wall_seconds=30),
                         on_start=lambda h: (handles.append(h), canceller.start()))
    returned = time.monotonic()
    canceller.join()
    assert info.value.kind == "cancelled"
    assert returned - stamp[0] < 1.0
    assert handles[0].returncode is not None  # reaped


def test_cancel_before_start_up_finishes(mode: str) -> None:
    panel = make_panel()
    cancel = threading.Event()
    cancel.set()
    t0 = time.monotonic()
    with pytest.raises(SandboxError) as info:
        run_in_sandbox(panel, SLOW, config_for(panel), limits=limits_for(mode), cancel=cancel)
    assert info.value.kind == "cancelled"
    assert time.monotonic() - t0 < 1.0


PARENT = """
import sys
from engine_svc.sandbox.launcher import run_job
from engine_svc.sandbox.limits import SandboxLimits

def started(handle):
    print(handle.tag, flush=True)

run_job("script", {"code": "import time\\ndef main(a, p):\\n    time.sleep(60)"},
        limits=SandboxLimits(bwrap=sys.argv[1], preload=(), wall_seconds=60), on_start=started)
"""


def _alive_with_tag(tag: str) -> list[str]:
    alive = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if tag.encode() not in fh.read():
                    continue
            with open(f"/proc/{pid}/stat", "rb") as fh:
                state = fh.read().rpartition(b")")[2].split()[0]
        except OSError:
            continue
        if state != b"Z":  # a zombie is dead, waiting for init to reap it
            alive.append(pid)
    return alive


def test_worker_dies_with_the_service(mode: str) -> None:
    """SIGKILL the process that started a worker: PR_SET_PDEATHSIG (and bwrap's
    --die-with-parent) take the worker down with it."""
    repo = Path(__file__).resolve().parents[2]
    service = subprocess.Popen([sys.executable, "-c", PARENT, "on" if mode == "bwrap" else "off"],
                               cwd=repo, stdout=subprocess.PIPE, text=True)
    try:
        tag = service.stdout.readline().strip()  # type: ignore[union-attr]
        assert tag and _alive_with_tag(tag)
        time.sleep(0.3)  # let the worker get into the strategy
        service.kill()
        service.wait(timeout=5)
        # Seconds, not the usual milliseconds: on a loaded host the kernel's reaping of the bwrap
        # chain can lag (seen once at 1 s); a worker that survives its parent still fails.
        deadline = time.monotonic() + 5.0
        while _alive_with_tag(tag) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _alive_with_tag(tag) == []
    finally:
        service.kill()
        service.wait(timeout=5)
        service.stdout.close()  # type: ignore[union-attr]
