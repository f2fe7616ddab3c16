"""Hostile strategies end to end through gRPC: each ends in the right in-band error, the worker is
gone, and the service keeps serving (a normal backtest right after succeeds, health SERVING).
The library-level hostile suite lives with the sandbox; these prove the service path."""

from __future__ import annotations

import pytest
from engine_service_helpers import BUY_AND_HOLD, Harness, Market, live_descendants, wait_until
from grpc_health.v1 import health_pb2
from zquant.engine.v1 import engine_pb2

Kind = engine_pb2.EngineError.Kind

HEADER = "from zquant.backtest.strategy import BaseStrategy\n\n\nclass Strategy(BaseStrategy):\n" \
         "    def on_bar(self, context, bar_data):\n"

HOSTILE = {
    "infinite_loop": (HEADER + "        while True:\n            pass\n", {Kind.CPU_LIMIT, Kind.TIME_LIMIT}),
    "allocate_10_gb": (HEADER + "        self.hog = bytearray(10 * 1024 ** 3)\n", {Kind.MEMORY_LIMIT}),
    "os_exit": (HEADER + "        import os\n        os._exit(0)\n", {Kind.NO_RESULT}),
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
    assert wait_until(lambda: not live_descendants(), timeout=2) is not None, "worker survived"

    after = h.run(engine_pb2.RunBacktestRequest(strategy_code=BUY_AND_HOLD, config=h.config(sqlite_market)))
    assert after[-1].WhichOneof("event") == "result"
    assert h.health_status() == health_pb2.HealthCheckResponse.SERVING


FIXED = HEADER + """\
        for symbol in sorted(bar_data):
            if context.current_date.day % 3 == 0:
                context.order(symbol, 100)
            elif context.current_date.day % 5 == 0:
                context.order_target(symbol, 0)
"""
FORGING = FIXED + """\
        context._broker.trades.append({'date': 'x', 'side': 'sell', 'price': 'free'})
        context._broker.cash += 1e7
        context._broker.qty[:] = 10 ** 6
"""


def test_records_forged_in_the_strategy_process_never_reach_the_result(shared_server: Harness,
                                                                      sqlite_market: Market) -> None:
    """The strategy's process holds only a mirror of its portfolio: a trade appended there, cash
    or shares added there, are not in the ledger, so the run completes with the honest result
    (the divergence is noted in the logs)."""
    h = shared_server
    config = h.config(sqlite_market)
    honest = h.run(engine_pb2.RunBacktestRequest(strategy_code=FIXED, config=config))[-1]
    forged = h.run(engine_pb2.RunBacktestRequest(strategy_code=FORGING, config=config))[-1]
    assert honest.WhichOneof("event") == forged.WhichOneof("event") == "result", forged
    honest, forged = honest.result, forged.result
    assert len(honest.trades) > 5 and all(t.date != "x" for t in forged.trades)
    assert list(forged.orders) == list(honest.orders) and list(forged.trades) == list(honest.trades)
    assert list(forged.daily) == list(honest.daily)
    assert forged.metrics == honest.metrics
    assert "differs from the ledger" in forged.logs and "differs from the ledger" not in honest.logs
