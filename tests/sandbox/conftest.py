"""Fixtures for sandbox tests: real workers, small limits, and a leftover check after every test.

Every test that starts a worker must leave no process behind (no child of the test process, no
process carrying this test process's worker tag, no zombie) and no temporary file: the autouse
``no_leftovers`` fixture checks that after each test.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine_svc.engine.panel import Panel
from engine_svc.sandbox.api import run_in_sandbox
from engine_svc.sandbox.launcher import SandboxOutcome

from .helpers import MODES, config_for, limits_for, make_panel, strategy


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def run_strategy(mode: str) -> Callable[..., SandboxOutcome]:
    """run_strategy(body_or_code, *, limits overrides..., params=None) → outcome (or raises)."""

    def run(code: str, *, params: dict[str, Any] | None = None, panel: Panel | None = None,
            on_progress: Any = None, cancel: Any = None, **overrides: Any) -> SandboxOutcome:
        if "class Strategy" not in code:
            code = strategy(code)
        p = panel or make_panel()
        return run_in_sandbox(p, code, config_for(p, **(params or {})), limits=limits_for(mode, **overrides),
                              on_progress=on_progress, cancel=cancel)

    return run


# ---- leftovers -----------------------------------------------------------------------------------


def _proc_stat(pid: str) -> tuple[int, str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            _, _, after = fh.read().rpartition(b")")
        fields = after.split()
        return int(fields[1]), fields[0].decode()  # ppid, state
    except (OSError, ValueError, IndexError):
        return None


def _cmdline(pid: str) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def leftover_processes() -> list[str]:
    """Children of this test process, and any process carrying a worker tag of ours."""
    me = os.getpid()
    tag = f'"tag": "{me}-'.encode()
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        stat = _proc_stat(pid)
        if stat is None:
            continue
        ppid, state = stat
        if ppid == me or tag in _cmdline(pid):
            found.append(f"pid {pid} state {state}: {_cmdline(pid)[:120]!r}")
    return found


@pytest.fixture(scope="module", autouse=True)  # module: restored before other test directories run
def private_tmpdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point tempfile at an empty private directory, so 'no temp files left' is checkable
    even while other processes use /tmp."""
    path = tmp_path_factory.mktemp("sandbox-tmpdir")
    old_env, old_tempdir = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"] = str(path)
    tempfile.tempdir = str(path)
    yield path
    tempfile.tempdir = old_tempdir
    if old_env is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = old_env


@pytest.fixture(autouse=True)
def no_leftovers(private_tmpdir: Path) -> Iterator[None]:
    assert leftover_processes() == []
    before = set(os.listdir(private_tmpdir))
    yield
    deadline = time.monotonic() + 1.0  # bwrap's namespace init may take a moment to go
    while (left := leftover_processes()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert left == [], "worker processes left behind"
    assert set(os.listdir(private_tmpdir)) == before, "temporary files left behind"
