"""`python -m task_svc` as a process: migrates, serves health, wires the real authenticator,
and exits cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tasksvc_fakes import FakeEngineServer
from zquant.backtest.v1 import strategy_pb2, strategy_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_python_m_task_svc(tmp_path: Path) -> None:
    engine = FakeEngineServer().start()
    port = free_port()
    env = {**os.environ, "ZQ_DATA_DIR": str(tmp_path), "ZQ_TASK_ADDR": f"127.0.0.1:{port}",
           "ZQ_AUTH_ADDR": f"127.0.0.1:{free_port()}",  # nothing listens: auth is down
           "ZQ_ENGINE_ADDR": engine.addr, "ZQ_SHUTDOWN_GRACE_SECONDS": "1", "ZQ_TASK_WORKERS": "1"}
    env.pop("ZQ_TASK_DATABASE_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "task_svc"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        health = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status = health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.RpcError:
                pass
            time.sleep(0.1)
        assert status == health_pb2.HealthCheckResponse.SERVING, proc.stdout.read() if proc.poll() else ""
        assert (tmp_path / "task.db").exists()  # the embedded default, migrated
        stub = strategy_pb2_grpc.StrategyServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:  # real RemoteAuthenticator, auth_svc unreachable
            stub.ListTemplates(strategy_pb2.ListTemplatesRequest(), metadata=(("authorization", "Bearer x.y.z"),),
                               timeout=10)
        assert info.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED)
        with pytest.raises(grpc.RpcError) as info:
            stub.ListTemplates(strategy_pb2.ListTemplatesRequest(), timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        channel.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        engine.stop()
