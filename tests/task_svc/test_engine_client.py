"""task_svc's channel to engine_svc: calls spread over every engine replica the address names,
and an engine that goes away is skipped (no call fails while another engine is up)."""

from __future__ import annotations

import pytest
from tasksvc_fakes import FakeEngineServer

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
