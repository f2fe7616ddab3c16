"""The real process: ``python -m engine_svc serve`` with RemoteAuthenticator against a stand-in
auth service, health going SERVING after readiness, a backtest, and a clean exit on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from engine_service_helpers import BUY_AND_HOLD, Market
from grpc_health.v1 import health_pb2, health_pb2_grpc
from zquant.auth.v1 import auth_pb2, auth_pb2_grpc
from zquant.engine.v1 import engine_pb2, engine_pb2_grpc

API_KEY = (("x-api-key", "zk_test"), ("x-api-secret", "s3cret"))


class _StandInAuth(auth_pb2_grpc.AuthServiceServicer):
    """auth_svc's Authenticate for one API key pair (what RemoteAuthenticator calls for keys)."""

    def Authenticate(self, request, context):  # type: ignore[no-untyped-def]
        if (request.api_key, request.api_secret) != ("zk_test", "s3cret"):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid API key")
        return auth_pb2.Principal(user_id=7, username="svc", is_admin=False, auth_method="api_key", is_service=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def engine_process(sqlite_market: Market, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    auth = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    auth_pb2_grpc.add_AuthServiceServicer_to_server(_StandInAuth(), auth)
    auth_port = auth.add_insecure_port("127.0.0.1:0")
    auth.start()
    port = _free_port()
    env = {
        **os.environ,
        "ZQ_DATA_DIR": str(tmp_path),
        "ZQ_ENGINE_ADDR": f"127.0.0.1:{port}",
        "ZQ_AUTH_ADDR": f"127.0.0.1:{auth_port}",
        "ZQ_ENGINE_DATABASE_URL": sqlite_market.url,
        "ZQ_ENGINE_SLOTS": "1",
        "ZQ_ENGINE_QUEUE": "1",
        "ZQ_SHUTDOWN_GRACE_SECONDS": "1",
        "ZQ_SANDBOX_CPU_SECONDS": "3",
        "ZQ_SANDBOX_WALL_SECONDS": "8",
    }
    log_path = tmp_path / "engine.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "engine_svc", "serve"], env=env, stdout=log,
                                stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[2])
    try:
        yield proc, port, log_path
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        auth.stop(0)


def test_process_serves_after_readiness_and_exits_on_sigterm(engine_process, sqlite_market: Market) -> None:  # type: ignore[no-untyped-def]
    proc, port, log_path = engine_process
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    health = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + 30
    status = None
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            status = health.Check(health_pb2.HealthCheckRequest(service="zquant.engine.v1.EngineService"),
                                  timeout=1).status
            if status == health_pb2.HealthCheckResponse.SERVING:
                break
        except grpc.RpcError:
            pass
        time.sleep(0.1)
    assert status == health_pb2.HealthCheckResponse.SERVING, log_path.read_text()[-3000:]

    stub = engine_pb2_grpc.EngineServiceStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.ListSymbols(engine_pb2.ListSymbolsRequest(), metadata=(("x-api-key", "zk_test"), ("x-api-secret", "no")))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    config = engine_pb2.BacktestConfig(start_date=sqlite_market.first_date, end_date=sqlite_market.last_date,
                                       symbols=sqlite_market.stocks[:2])
    events = list(stub.RunBacktest(engine_pb2.RunBacktestRequest(strategy_code=BUY_AND_HOLD, config=config),
                                   metadata=API_KEY, timeout=60))
    assert events[-1].WhichOneof("event") == "result"

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    channel.close()
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    isolation = [entry for entry in lines if entry.get("msg") == "sandbox isolation"]
    assert isolation and isolation[0]["isolation"]["seccomp"] is True
    assert any(entry.get("msg") == "stopped" for entry in lines)
