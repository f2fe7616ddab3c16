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


def test_engine_layout_one_process_per_core_each_with_one_slot() -> None:
    """`up` starts ZQ_ENGINE_PROCESSES engines (default: one per core) on consecutive ports, or
    one per address ZQ_ENGINE_ADDR lists; task_svc and the gateway get every address."""
    from devstack.cli import engine_env

    assert devstack.engine_addrs({"ZQ_ENGINE_ADDR": "127.0.0.1:7000", "ZQ_ENGINE_PROCESSES": "3"}) == [
        "127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"]
    assert devstack.engine_addrs({"ZQ_ENGINE_ADDR": "[::1]:7000", "ZQ_ENGINE_PROCESSES": "2"}) == [
        "[::1]:7000", "[::1]:7001"]
    assert devstack.engine_addrs({"ZQ_ENGINE_ADDR": "10.0.0.1:1,10.0.0.2:2", "ZQ_ENGINE_PROCESSES": "5"}) == [
        "10.0.0.1:1", "10.0.0.2:2"]
    cores = min(os.cpu_count() or 1, devstack.config.MAX_DEFAULT_ENGINES)
    assert len(devstack.engine_addrs({})) == cores
    assert [devstack.engine_label(k) for k in range(3)] == ["engine", "engine-2", "engine-3"]

    env = engine_env({"ZQ_ENGINE_ADDR": "127.0.0.1:7000", "ZQ_ENGINE_PROCESSES": "2"})
    assert (env["ZQ_ENGINE_ADDR"], env["ZQ_ENGINE_SLOTS"]) == ("127.0.0.1:7000,127.0.0.1:7001", "1")
    assert (env["ZQ_TASK_WORKERS"], env["ZQ_SWEEP_WORKERS"]) == ("2", "2")
    own = engine_env({"ZQ_ENGINE_PROCESSES": "2", "ZQ_ENGINE_SLOTS": "3", "ZQ_SWEEP_WORKERS": "1"})
    assert (own["ZQ_ENGINE_SLOTS"], own["ZQ_TASK_WORKERS"], own["ZQ_SWEEP_WORKERS"]) == ("3", "6", "1")
    single = engine_env({"ZQ_ENGINE_PROCESSES": "1", "ZQ_ENGINE_SLOTS": "4"})
    assert (single["ZQ_ENGINE_ADDR"], single["ZQ_TASK_WORKERS"]) == ("127.0.0.1:50053", "4")


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
    # Two engine processes, as `up` starts on two cores (each its own free port here).
    stack_env["ZQ_ENGINE_ADDR"] = f"{stack_env['ZQ_ENGINE_ADDR']},127.0.0.1:{devstack.free_port()}"
    pids: dict[str, str] = {}
    try:
        first = run_cli("up", stack_env)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "curl -s -X POST" in first.stdout
        pids = {p.stem: p.read_text().strip() for p in (directory / "run").glob("*.pid")}
        assert "envoy" in pids
        if devstack.SERVICES["engine"].available():
            assert {"engine", "engine-2"} <= set(pids), pids
        expected = 200 if devstack.SERVICES["auth"].available() else 503
        assert httpx.get(f"{gateway}/healthz", timeout=10).status_code == expected

        second = run_cli("up", stack_env)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "already running" in second.stdout
        assert {p.stem: p.read_text().strip() for p in (directory / "run").glob("*.pid")} == pids

        status = run_cli("status", stack_env)
        assert "envoy  running" in status.stdout, status.stdout
        for addr in stack_env["ZQ_ENGINE_ADDR"].split(","):
            assert f"{addr} SERVING" in status.stdout, status.stdout
    finally:
        down = run_cli("down", stack_env)
    assert down.returncode == 0, down.stdout + down.stderr
    assert list((directory / "run").glob("*.pid")) == []
    for pid in pids.values():
        assert devstack.proc_cmdline(int(pid)) is None, f"pid {pid} still running after down"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{gateway}/healthz", timeout=2)
