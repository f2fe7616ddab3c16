"""Hostile strategies end to end through gRPC: each ends in the right in-band error, the worker is
gone, and the service keeps serving (a normal backtest right after succeeds, health SERVING).
The library-level hostile suite lives with the sandbox; these prove the service path."""

from __future__ import annotations

import pytest
from engine_service_helpers import BUY_AND_HOLD, Harness, Market, live_descendants, wait_until
from grpc_health.v1 import health_pb2
from zquant.engine.v1 import engine_pb2

from engine_svc.service.runner import MALFORMED_RESULT_MESSAGE

Kind = engine_pb2.EngineError.Kind

HEADER = "from zquant.backtest.strategy import BaseStrategy\n\n\nclass Strategy(BaseStrategy):\n" \
         "    def on_bar(self, context, bar_data):\n"

HOSTILE = {
    "infinite_loop": (HEADER + "        while True:\n            pass\n", {Kind.CPU_LIMIT, Kind.TIME_LIMIT}),
    "allocate_10_gb": (HEADER + "        self.hog = bytearray(10 * 1024 ** 3)\n", {Kind.MEMORY_LIMIT}),
    "os_exit": (HEADER + "        import os\n        os._exit(0)\n", {Kind.NO_RESULT}),
    # The engine runs in the strategy's process, so the strategy can forge the records it returns.
    "forged_result": (HEADER + "        trade = {'date': 'x', 'side': 'sell', 'price': 'free'}\n"
                               "        context._broker.trades.append(trade)\n", {Kind.NO_RESULT}),
    "kill_parent": (HEADER + "        import os, signal\n        os.kill(os.getppid(), signal.SIGKILL)\n",
                    {Kind.STRATEGY_ERROR}),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_strategy_is_contained(case: str, shared_server: Harness, sqlite_market: Market) -> None:
    code, kinds = HOSTILE[case]
    h = shared_server
    events = h.run(engine_pb2.RunBacktestRequest(strategy_code=code, config=h.config(sqlite_market)), timeout=30)
    last = events[-1]
    assert last.WhichOneof("event") == "error", last
    assert last.error.kind in kinds, (Kind.Name(last.error.kind), last.error.message)
    assert last.error.message
    if case == "forged_result":
        assert last.error.message == MALFORMED_RESULT_MESSAGE
    assert wait_until(lambda: not live_descendants(), timeout=2) is not None, "worker survived"

    after = h.run(engine_pb2.RunBacktestRequest(strategy_code=BUY_AND_HOLD, config=h.config(sqlite_market)))
    assert after[-1].WhichOneof("event") == "result"
    assert h.health_status() == health_pb2.HealthCheckResponse.SERVING
