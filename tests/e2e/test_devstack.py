"""devstack/: pid files, idempotent start, stop, and the `up/status/down` CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import devstack

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)", "zq-devstack-test"]
SIGNATURE = ("zq-devstack-test",)


def spawn_sleeper(directory: Path) -> devstack.Handle:
    return devstack.spawn("sleeper", SLEEPER, directory=directory, env=os.environ, signature=SIGNATURE)


def test_spawn_writes_pid_and_log_and_refuses_to_start_twice(tmp_path):
    first = spawn_sleeper(tmp_path)
    try:
        assert first.started and first.alive()
        assert first.pid_path == tmp_path / "run" / "sleeper.pid"
        assert first.pid_path.read_text().strip() == str(first.pid)
        assert "starting:" in first.log_path.read_text()
        second = spawn_sleeper(tmp_path)
        assert not second.started
        assert second.pid == first.pid
    finally:
        first.stop(grace=2)
    assert not first.alive()
    assert not first.pid_path.exists()


def test_stale_pid_file_is_replaced(tmp_path):
    (tmp_path / "run").mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "run" / "sleeper.pid").write_text(f"{dead.pid}\n")
    handle = spawn_sleeper(tmp_path)
    try:
        assert handle.started and handle.pid != dead.pid
    finally:
        handle.stop(grace=2)


def test_pid_file_of_an_unrelated_process_is_not_ours(tmp_path):
    """A reused pid must neither block a start nor be killed by stop/down."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "sleeper.pid").write_text(f"{os.getpid()}\n")  # this pytest process
    assert devstack.find_running("sleeper", tmp_path, SIGNATURE) is None
    handle = spawn_sleeper(tmp_path)
    try:
        assert handle.started and handle.pid != os.getpid()
    finally:
        handle.stop(grace=2)


def test_stop_escalates_to_sigkill(tmp_path):
    stubborn = [
        sys.executable,
        "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
        "time.sleep(600)",
        "zq-devstack-test",
    ]
    handle = devstack.spawn("stubborn", stubborn, directory=tmp_path, env=os.environ, signature=SIGNATURE)
    deadline = time.monotonic() + 10
    while "ready" not in handle.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    handle.stop(grace=0.5)
    assert not handle.alive()
    assert time.monotonic() - started < 5


def test_wait_grpc_serving_reports_the_log_tail_when_the_process_dies(tmp_path):
    crash = [sys.executable, "-c", "print('boom: cannot open database'); raise SystemExit(3)", "zq-devstack-test"]
    handle = devstack.spawn("crasher", crash, directory=tmp_path, env=os.environ, signature=SIGNATURE)
    with pytest.raises(devstack.StartError, match="boom: cannot open database"):
        devstack.wait_grpc_serving(handle, f"127.0.0.1:{devstack.free_port()}", timeout=10)
    assert not handle.pid_path.exists()


def run_cli(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack", command, "--timeout", "60"],
        cwd=devstack.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.envoy
@pytest.mark.slow
def test_cli_up_is_idempotent_and_down_stops_everything(stack_env, envoy_binary):
    """`up` twice keeps the same processes; `down` leaves no process and no pid file.

    Runs whatever services exist in the tree (each is skipped until its __main__.py exists),
    with every port private to this test so it can run beside a developer's `make up`.
    """
    directory = Path(stack_env["ZQ_DATA_DIR"])
    gateway = f"http://127.0.0.1:{stack_env['ZQ_GATEWAY_PORT']}"
    pids: dict[str, str] = {}
    try:
        first = run_cli("up", stack_env)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "curl -s -X POST" in first.stdout
        pids = {p.stem: p.read_text().strip() for p in (directory / "run").glob("*.pid")}
        assert "envoy" in pids
        expected = 200 if devstack.SERVICES["auth"].available() else 503
        assert httpx.get(f"{gateway}/healthz", timeout=10).status_code == expected

        second = run_cli("up", stack_env)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "already running" in second.stdout
        assert {p.stem: p.read_text().strip() for p in (directory / "run").glob("*.pid")} == pids

        status = run_cli("status", stack_env)
        assert "envoy  running" in status.stdout, status.stdout
    finally:
        down = run_cli("down", stack_env)
    assert down.returncode == 0, down.stdout + down.stderr
    assert list((directory / "run").glob("*.pid")) == []
    for pid in pids.values():
        assert devstack.proc_cmdline(int(pid)) is None, f"pid {pid} still running after down"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{gateway}/healthz", timeout=2)
