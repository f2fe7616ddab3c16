"""bench/strategy_timing.py: the split of on_bar time between the strategy and the engine."""

from __future__ import annotations

import numpy as np
import pytest

from bench import strategy_timing


class _FakeClock:
    """perf_counter stand-in: time passes only when the test says work is done (exact numbers
    whatever the load on the machine)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def work(self, seconds: float) -> None:
        self.now += seconds


CLOCK = _FakeClock()


class _Portfolio:
    def __init__(self) -> None:
        self.positions = {"600000.SH": 1}
        self.quantities = np.zeros(3)

    @property
    def total_value(self) -> float:
        CLOCK.work(0.25)  # engine work behind a property
        return 1.0


class _Context:
    def __init__(self) -> None:
        self.portfolio = _Portfolio()
        self.placed: list[tuple[str, int]] = []

    def order(self, symbol: str, quantity: int) -> str:
        CLOCK.work(0.5)  # engine work behind a method
        self.placed.append((symbol, quantity))
        return "order-1"


class _Strategy:
    def on_bar(self, context: object, bar_data: dict) -> object:
        CLOCK.work(2.0)  # the strategy's own work
        context.flag = True  # type: ignore[attr-defined]
        assert context.portfolio.positions == {"600000.SH": 1}  # type: ignore[attr-defined]
        assert isinstance(context.portfolio.quantities, np.ndarray)  # type: ignore[attr-defined]
        assert context.portfolio.total_value == 1.0  # type: ignore[attr-defined]
        return context.order("600000.SH", 100)  # type: ignore[attr-defined]


def test_on_bar_time_is_split_between_strategy_and_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(strategy_timing, "perf_counter", CLOCK)
    strategy_timing.CLOCK.__init__()
    timed = strategy_timing.timed(_Strategy)
    assert issubclass(timed, _Strategy) and timed.__name__ == "_Strategy"
    ctx = _Context()
    assert timed().on_bar(ctx, {}) == "order-1"
    assert ctx.placed == [("600000.SH", 100)] and ctx.flag  # calls and writes reach the real context
    clock = strategy_timing.CLOCK
    assert clock.engine_calls_s == 0.75  # 0.25 in the property + 0.5 in the method
    assert clock.strategy_s == 2.0 and clock.on_bar_s == 2.75
