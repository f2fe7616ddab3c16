"""bench/strategy_timing.py: the split of on_bar time between the strategy and the engine."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bench import strategy_timing


class _Portfolio:
    def __init__(self) -> None:
        self.positions = {"600000.SH": 1}
        self.quantities = np.zeros(3)

    @property
    def total_value(self) -> float:
        time.sleep(0.03)  # engine work behind a property
        return 1.0


class _Context:
    def __init__(self) -> None:
        self.portfolio = _Portfolio()
        self.placed: list[tuple[str, int]] = []

    def order(self, symbol: str, quantity: int) -> str:
        time.sleep(0.05)  # engine work behind a method
        self.placed.append((symbol, quantity))
        return "order-1"


class _Strategy:
    def on_bar(self, context: object, bar_data: dict) -> object:
        time.sleep(0.04)  # the strategy's own work
        context.flag = True  # type: ignore[attr-defined]
        assert context.portfolio.positions == {"600000.SH": 1}  # type: ignore[attr-defined]
        assert isinstance(context.portfolio.quantities, np.ndarray)  # type: ignore[attr-defined]
        assert context.portfolio.total_value == 1.0  # type: ignore[attr-defined]
        return context.order("600000.SH", 100)  # type: ignore[attr-defined]


def test_on_bar_time_is_split_between_strategy_and_engine() -> None:
    strategy_timing.CLOCK.__init__()
    timed = strategy_timing.timed(_Strategy)
    assert issubclass(timed, _Strategy) and timed.__name__ == "_Strategy"
    ctx = _Context()
    assert timed().on_bar(ctx, {}) == "order-1"
    assert ctx.placed == [("600000.SH", 100)] and ctx.flag  # calls and writes reach the real context
    clock = strategy_timing.CLOCK
    assert 0.08 <= clock.engine_calls_s < 0.12  # 0.03 property + 0.05 method
    assert 0.04 <= clock.strategy_s < 0.08
    assert clock.on_bar_s == pytest.approx(clock.strategy_s + clock.engine_calls_s)
