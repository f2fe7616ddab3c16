"""task_svc's channel to engine_svc: calls spread over every engine replica the address names,
and an engine that goes away is skipped (no call fails while another engine is up)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2
from tasksvc_fakes import FakeEngineServer
from zquant.engine.v1 import engine_pb2

from task_svc.engine_client import GrpcEngineClient, engine_target

CODE = "from zquant.backtest.strategy import BaseStrategy\nclass Strategy(BaseStrategy):\n    pass\n"


@pytest.mark.parametrize(("addr", "target"), [
    ("127.0.0.1:50053", "127.0.0.1:50053"),
    ("zquant-engine:50053", "zquant-engine:50053"),  # DNS: every address of a headless Service
    ("127.0.0.1:1, 127.0.0.1:2", "ipv4:127.0.0.1:1,127.0.0.1:2"),
    ("ipv4:127.0.0.1:1,127.0.0.1:2", "ipv4:127.0.0.1:1,127.0.0.1:2"),
    ("dns:///zquant-engine:50053", "dns:///zquant-engine:50053"),
])
def test_engine_target(addr: str, target: str) -> None:
    assert engine_target(addr) == target


def test_calls_round_robin_over_engines_and_skip_one_that_is_down() -> None:
    engines = [FakeEngineServer().start(), FakeEngineServer().start()]
    client = GrpcEngineClient(",".join(e.addr for e in engines), timeout=5)
    try:
        for _ in range(20):
            assert client.validate_strategy(CODE) == []
        calls = [e.engine.validate_calls for e in engines]
        assert sum(calls) == 20 and min(calls) >= 8, calls  # both used (pick_first would give 20 / 0)

        engines[0].stop()
        before = engines[1].engine.validate_calls
        for _ in range(10):
            assert client.validate_strategy(CODE) == []  # never UNAVAILABLE: the live engine takes them
        assert engines[1].engine.validate_calls - before == 10
    finally:
        for e in engines:
            e.stop()


FROZEN_ENGINE = """
import sys, time
from tasksvc_fakes import FakeEngineServer
server = FakeEngineServer().start()
print(server.port, flush=True)
time.sleep(600)
"""


def test_a_run_on_an_engine_that_hangs_fails_unavailable_after_the_keepalive() -> None:
    """A run's stream has no deadline; an engine that stops answering without closing its
    connection (SIGSTOP here; a partition in life) is found by the keepalive ping: the call fails
    UNAVAILABLE (the dispatcher's "try again on another engine") after ~2 × keepalive."""
    child = subprocess.Popen([sys.executable, "-c", FROZEN_ENGINE], stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).parent, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        port = int(child.stdout.readline())  # type: ignore[union-attr]
        client = GrpcEngineClient(f"127.0.0.1:{port}", timeout=5, keepalive=0.5)
        params = struct_pb2.Struct()
        params.update({"fake": {"outcome": "hang"}})
        run = client.run_backtest(engine_pb2.RunBacktestRequest(reference="task-1", strategy_code=CODE, params=params))
        events = run.events()
        next(events)  # the run streams
        os.kill(child.pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        with pytest.raises(grpc.RpcError) as info:
            for _ in events:
                pass
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
        assert time.monotonic() - frozen_at < 5  # without the keepalive: never
    finally:
        os.kill(child.pid, signal.SIGCONT)
        child.kill()
        child.wait()
