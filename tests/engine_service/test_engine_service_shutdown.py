"""Graceful shutdown: new work refused, running backtests get the grace period, then are killed and
told why in-band (CANCELLED "engine shutting down; the run was cancelled")."""

from __future__ import annotations

import threading
import time
from typing import Any

import grpc
from engine_service_helpers import AUTH, BUY_AND_HOLD, SLEEPY, Harness, Market, live_descendants, wait_until
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2
from zquant.engine.v1 import engine_pb2

from engine_svc.service.core import SHUTDOWN_MESSAGE

Kind = engine_pb2.EngineError.Kind


def _collect(call: Any, into: list[Any]) -> None:
    try:
        for event in call:
            into.append(event)
    except grpc.RpcError as exc:
        into.append(exc)


def test_shutdown_finishes_short_runs_and_cancels_long_ones_in_band(make_server: Any, sqlite_market: Market) -> None:
    h: Harness = make_server(sqlite_market, slots=2, queue=1, grace=2.5)
    quick_params = struct_pb2.Struct()
    quick_params.update({"sleep": 0.004})  # ~0.7 s of bars: ends inside the grace period
    quick = h.stub.RunBacktest(
        engine_pb2.RunBacktestRequest(strategy_code=SLEEPY, params=quick_params, config=h.config(sqlite_market)),
        metadata=AUTH, timeout=60)
    slow = h.stub.RunBacktest(engine_pb2.RunBacktestRequest(strategy_code=SLEEPY, config=h.config(sqlite_market)),
                              metadata=AUTH, timeout=60)
    quick_events: list[Any] = []
    slow_events: list[Any] = []
    readers = [threading.Thread(target=_collect, args=(quick, quick_events)),
               threading.Thread(target=_collect, args=(slow, slow_events))]
    for r in readers:
        r.start()
    assert wait_until(lambda: bool(quick_events) and bool(slow_events), timeout=10) is not None  # both running
    queued = h.stub.RunBacktest(engine_pb2.RunBacktestRequest(strategy_code=SLEEPY, config=h.config(sqlite_market)),
                                metadata=AUTH, timeout=60)
    queued_events: list[Any] = []
    readers.append(threading.Thread(target=_collect, args=(queued, queued_events)))
    readers[-1].start()
    assert wait_until(lambda: h.core.pool.stats().waiting == 1, timeout=5) is not None

    started = time.monotonic()
    stopper = threading.Thread(target=h.running.stop)
    stopper.start()
    assert wait_until(lambda: h.core.shutting_down, timeout=2) is not None
    assert h.health_status() == health_pb2.HealthCheckResponse.NOT_SERVING
    # A new call during the drain is refused, not queued.
    try:
        h.run(engine_pb2.RunBacktestRequest(strategy_code=BUY_AND_HOLD, config=h.config(sqlite_market)), timeout=5)
        raise AssertionError("a new run was accepted during shutdown")
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc

    for r in readers:
        r.join(15)
    stopper.join(15)
    elapsed = time.monotonic() - started
    assert quick_events[-1].WhichOneof("event") == "result"  # finished within the grace period
    last = slow_events[-1]
    assert not isinstance(last, grpc.RpcError), last
    assert last.WhichOneof("event") == "error"
    assert last.error.kind == Kind.CANCELLED and last.error.message == SHUTDOWN_MESSAGE
    assert 2.0 <= elapsed < 5.0, elapsed  # waited (most of) the grace, then cancelled promptly
    # The queued call never started; it ends with the same in-band message.
    queued_error = queued_events[-1].error
    assert queued_error.kind == Kind.CANCELLED and queued_error.message == SHUTDOWN_MESSAGE
    assert not live_descendants()
