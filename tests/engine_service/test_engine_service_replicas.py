"""Replicas need no coordination: two engines over one market-data store behind client-side
round robin serve concurrent backtests that a single replica would have to refuse."""

from __future__ import annotations

import threading
import time
from typing import Any

import grpc
from engine_service_helpers import AUTH, SLEEPY, Harness, Market
from google.protobuf import struct_pb2
from zquant.engine.v1 import engine_pb2, engine_pb2_grpc


def test_round_robin_over_two_replicas(make_server: Any, sqlite_market: Market) -> None:
    a: Harness = make_server(sqlite_market, slots=1, queue=0)
    b: Harness = make_server(sqlite_market, slots=1, queue=0)
    channel = grpc.insecure_channel(f"ipv4:127.0.0.1:{a.running.port},127.0.0.1:{b.running.port}",
                                    options=[("grpc.lb_policy_name", "round_robin")])
    grpc.channel_ready_future(channel).result(timeout=5)
    stub = engine_pb2_grpc.EngineServiceStub(channel)
    params = struct_pb2.Struct()
    params.update({"sleep": 0.005})
    request = engine_pb2.RunBacktestRequest(strategy_code=SLEEPY, params=params, config=a.config(sqlite_market))
    outcomes: list[str] = []
    lock = threading.Lock()

    def call() -> None:
        # What the busy error tells clients to do: retry on another replica (round robin's next
        # pick). Needed only while the second subchannel is still connecting (a few ms).
        outcome = ""
        for _ in range(10):
            try:
                outcome = list(stub.RunBacktest(request, metadata=AUTH, timeout=60))[-1].WhichOneof("event") or ""
                break
            except grpc.RpcError as exc:
                outcome = exc.code().name
                if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    break
                time.sleep(0.03)
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    channel.close()
    # Each replica has one slot and no queue, and each run (≥ 1 s) outlasts the retries (≤ 0.3 s):
    # two results mean the two runs were served by different replicas at the same time.
    assert outcomes == ["result", "result"], outcomes
