"""Backtests through the sandbox give exactly what the engine gives in-process."""

from __future__ import annotations

import json

import pytest

from engine_svc.engine.config import BacktestConfig, ConfigError
from engine_svc.engine.runner import run_backtest
from engine_svc.sandbox.api import run_in_sandbox

from .helpers import config_for, limits_for, make_panel, strategy

MOMENTUM = strategy("""
for s, bar in bar_data.items():
    pos = context.portfolio.get_position(s)
    if bar["close"] > bar["open"] and pos.quantity == 0:
        context.order_value(s, 50_000)
    elif bar["close"] < bar["open"] and pos.quantity > 0:
        context.order_target(s, 0)
""")


def test_sandboxed_result_equals_in_process_result(mode: str) -> None:
    panel = make_panel(60, 5)
    cfg = config_for(panel, window=3)
    expected = json.loads(json.dumps(run_backtest(panel, MOMENTUM, BacktestConfig.from_dict(cfg))))
    outcome = run_in_sandbox(panel, MOMENTUM, cfg, limits=limits_for(mode))
    assert outcome.result == expected
    assert outcome.result["trades"]


def test_symbol_subset_matches_in_process_result() -> None:
    panel = make_panel(30, 6)
    cfg = config_for(panel)
    cfg["symbols"] = [panel.symbols[4], panel.symbols[1]]
    expected = json.loads(json.dumps(run_backtest(panel, MOMENTUM, BacktestConfig.from_dict(cfg))))
    assert run_in_sandbox(panel, MOMENTUM, cfg, limits=limits_for("plain")).result == expected


def test_set_iteration_order_is_reproducible() -> None:
    """PYTHONHASHSEED=0 in the worker: a strategy iterating a set of strings trades in the
    same order on every run, so identical inputs give byte-identical results."""
    code = strategy("for s in set(bar_data) | {'x' + s for s in bar_data}:\n"
                    "    if s in bar_data:\n        context.order_value(s, 10_000)\n"
                    "        print(s)")
    panel = make_panel(5, 6)
    runs = [run_in_sandbox(panel, code, config_for(panel), limits=limits_for("plain")) for _ in range(2)]
    assert runs[0].logs == runs[1].logs and runs[0].logs
    assert json.dumps(runs[0].result) == json.dumps(runs[1].result)


def test_memory_limit_scales_with_the_data() -> None:
    lim = limits_for("plain", memory_mb=512, data_memory_factor=3.0, max_memory_mb=4096)
    assert lim.memory_limit(0) == 512
    assert lim.memory_limit(100 * 2**20) == 812
    assert lim.memory_limit(10 * 2**30) == 4096
    panel = make_panel(250, 400)  # ~9 MB of arrays
    outcome = run_in_sandbox(panel, strategy("pass"), config_for(panel), limits=lim)
    assert outcome.isolation["rlimits"]["as_mb"] > 512


def test_bad_config_fails_in_the_parent_before_any_worker() -> None:
    panel = make_panel()
    cfg = config_for(panel)
    with pytest.raises(ConfigError) as info:
        run_in_sandbox(panel, MOMENTUM, {**cfg, "end_date": "2020-01-01"}, limits=limits_for("plain"))
    assert info.value.field == "end_date"
    with pytest.raises(ConfigError) as info:
        run_in_sandbox(panel, MOMENTUM, {**cfg, "params": {"x": object()}}, limits=limits_for("plain"))
    assert info.value.field == "params"
