"""engine_svc.engine.config: the one rule set and the one set of defaults a backtest config meets."""

from __future__ import annotations

import pytest

from engine_svc.engine.config import MAX_SYMBOLS, BacktestConfig, ConfigError, defaults, normalize_config

BASE = {"start_date": "2012-01-04", "end_date": "2016-12-30", "symbols": ["600036.SH"]}


def test_defaults_are_filled_in_and_spelling_normalized() -> None:
    cfg, problems = normalize_config({**BASE, "symbols": [" 600036.sh", "000002.SZ", "600036.SH"],
                                      "benchmark": " 000001.sh ", "adjust_type": "HFQ", "frequency": "Daily",
                                      "commission_rate": None, "initial_capital": None})
    assert problems == [] and cfg is not None
    assert cfg.symbols == ("600036.SH", "000002.SZ") and cfg.benchmark == "000001.SH"
    assert (cfg.adjust_type, cfg.frequency) == ("hfq", "daily")
    assert (cfg.initial_capital, cfg.commission_rate, cfg.min_commission, cfg.tax_rate, cfg.slippage_rate,
            cfg.annualization, cfg.risk_free_rate, cfg.use_daily_basic) == (
        1_000_000.0, 0.0003, 5.0, 0.001, 0.001, 252, 0.0, False)
    assert defaults()["min_commission"] == 5.0 == BacktestConfig.min_commission
    assert "start_date" not in defaults() and "params" not in defaults()


@pytest.mark.parametrize(("change", "field", "description"), [
    ({"min_commission": 2_000_000}, "min_commission", "must be in [0, 1e+06], got 2e+06"),
    ({"min_commission": -1}, "min_commission", "must be in [0, 1e+06], got -1"),
    ({"commission_rate": 0.1}, "commission_rate", "must be in [0, 0.1), got 0.1"),
    ({"initial_capital": 0}, "initial_capital", "must be in (0, 1e+13], got 0"),
    ({"tax_rate": float("nan")}, "tax_rate", "must be a finite number"),
    ({"slippage_rate": "0.01"}, "slippage_rate", "must be a finite number"),
    ({"risk_free_rate": 1.5}, "risk_free_rate", "must be in [0, 1], got 1.5"),
    ({"annualization": 0}, "annualization", "must be between 1 and 366, got 0"),
    ({"start_date": "2013-13-01"}, "start_date", "is not a valid date: '2013-13-01'"),
    ({"start_date": "20120104"}, "start_date", "must be YYYY-MM-DD, got '20120104'"),
    ({"end_date": ""}, "end_date", "is required (YYYY-MM-DD)"),
    ({"end_date": "2011-01-04"}, "end_date", "must be on or after start_date (2012-01-04)"),
    ({"symbols": []}, "symbols", "at least one symbol is required"),
    ({"symbols": [f"{i:06d}.SZ" for i in range(MAX_SYMBOLS + 1)]}, "symbols", f"at most {MAX_SYMBOLS} symbols"),
    ({"frequency": "minute"}, "frequency", "only 'daily' is supported, got 'minute'"),
    ({"adjust_type": "xyz"}, "adjust_type", "must be one of qfq, hfq, none; got 'xyz'"),
    ({"benchmark": "x" * 40}, "benchmark", f"{'X' * 40!r} is not an index symbol like 000300.SH"),
    ({"use_daily_basic": "yes"}, "use_daily_basic", "must be true or false"),
    ({"window": 5}, "window", "unknown config field"),
])
def test_each_rule_names_its_field(change: dict, field: str, description: str) -> None:
    cfg, problems = normalize_config({**BASE, **change})
    assert cfg is None and problems == [(field, description)]


def test_every_problem_is_reported_at_once() -> None:
    _, problems = normalize_config({"start_date": "2012-01-04", "end_date": "bad", "symbols": [],
                                    "tax_rate": 0.5, "min_commission": 2e6})
    assert [f for f, _ in problems] == ["end_date", "symbols", "min_commission", "tax_rate"]


def test_the_dataclass_enforces_the_same_rules() -> None:
    with pytest.raises(ConfigError) as info:
        BacktestConfig(start_date="2012-01-04", end_date="2016-12-30", symbols=("600036.SH",), min_commission=2e6)
    assert (info.value.field, info.value.message) == ("min_commission", "must be in [0, 1e+06], got 2e+06")
    assert BacktestConfig.from_dict({**BASE, "benchmark": None}).benchmark is None
