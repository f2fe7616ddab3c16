"""Fixtures for engine tests: tiny hand-made panels and a one-call backtest runner."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from engine_svc.engine.config import BacktestConfig
from engine_svc.engine.panel import BAR_FIELDS, Benchmark, Panel
from engine_svc.engine.runner import run_backtest


def build_panel(
    symbols: list[str],
    dates: list[str],
    *,
    open: list[list[float]],
    close: list[list[float]] | None = None,
    high: list[list[float]] | None = None,
    low: list[list[float]] | None = None,
    pre_close: list[list[float]] | None = None,
    adj_factor: list[list[float]] | None = None,
    up_limit: list[list[float]] | None = None,
    down_limit: list[list[float]] | None = None,
    is_st: list[list[bool]] | None = None,
    daily_basic: dict[str, list[list[float]]] | None = None,
    benchmark: tuple[str, list[float]] | None = None,
) -> Panel:
    """Rows are dates, columns symbols; NaN in ``open`` means no bar (suspended).

    Defaults: close = open, high/low = max/min(open, close), pre_close = the previous day's
    close (the first day's open), limits and adj_factor unknown (NaN).
    """
    o = np.array(open, dtype=float)
    c = o.copy() if close is None else np.array(close, dtype=float)
    c[np.isnan(o)] = np.nan
    h = np.fmax(o, c) if high is None else np.array(high, dtype=float)
    lo = np.fmin(o, c) if low is None else np.array(low, dtype=float)
    if pre_close is None:
        pc = np.vstack([o[:1], c[:-1]])
        # carry the last close over suspensions, as an exchange does
        for j in range(pc.shape[1]):
            last = o[0, j]
            for i in range(pc.shape[0]):
                pc[i, j] = last
                if not np.isnan(c[i, j]):
                    last = c[i, j]
        pc[np.isnan(o)] = np.nan
    else:
        pc = np.array(pre_close, dtype=float)
    shape = o.shape
    nan = np.full(shape, np.nan)
    bars = {
        "open": o, "high": h, "low": lo, "close": c, "pre_close": pc,
        "volume": np.where(np.isnan(o), np.nan, 1e6), "amount": np.where(np.isnan(o), np.nan, 1e6 * c),
        "adj_factor": nan.copy() if adj_factor is None else np.array(adj_factor, dtype=float),
        "up_limit": nan.copy() if up_limit is None else np.array(up_limit, dtype=float),
        "down_limit": nan.copy() if down_limit is None else np.array(down_limit, dtype=float),
    }
    assert set(bars) == set(BAR_FIELDS)
    return Panel(
        dates=np.array(dates, dtype="datetime64[D]"),
        symbols=tuple(symbols),
        bars=bars,
        is_st=None if is_st is None else np.array(is_st, dtype=bool),
        daily_basic=None if daily_basic is None else {k: np.array(v, dtype=float) for k, v in daily_basic.items()},
        benchmark=None if benchmark is None else Benchmark(benchmark[0], np.array(benchmark[1], dtype=float)),
    )


def run_code(panel: Panel, code: str, *, hosted: bool = False, **cfg: Any) -> dict[str, Any]:
    """Run ``code`` over the whole panel. Costs default to zero so hand computations stay simple;
    tests that check costs set them explicitly. ``hosted``: the strategy runs in a StrategyHost
    (the sandbox's protocol, in-process) instead of against the ledger directly."""
    dates = [str(d) for d in panel.dates]
    base: dict[str, Any] = {
        "start_date": dates[0], "end_date": dates[-1], "symbols": panel.symbols,
        "initial_capital": 100_000.0, "commission_rate": 0.0, "min_commission": 0.0,
        "tax_rate": 0.0, "slippage_rate": 0.0, "adjust_type": "none",
    }
    base.update(cfg)
    return run_backtest(panel, code, BacktestConfig(**base), hosted=hosted)


@pytest.fixture
def make_panel() -> Callable[..., Panel]:
    return build_panel


@pytest.fixture(params=["direct", "hosted"])
def run(request: pytest.FixtureRequest) -> Callable[..., dict[str, Any]]:
    """Every engine test runs both ways: the strategy against the ledger in-process, and hosted
    apart from it with its order intents replayed (what engine_svc does) — same results."""
    hosted = request.param == "hosted"
    return lambda panel, code, **cfg: run_code(panel, code, hosted=hosted, **cfg)
