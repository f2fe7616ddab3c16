"""The template strategies shipped with task_svc, and the strategy framework.

Each template is a plain ``.py`` file in this directory, written in the zquant strategy API
(docs/engine.md). They are *never imported* by task_svc — strategy code only runs inside engine_svc's
sandbox — only read as text: the 0002 data migration seeds them into ``backtest_strategies``
(owned by the system user id 0) and GetStrategyFramework returns ``framework.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

_DIR = Path(__file__).resolve().parent


@cache
def _read(filename: str) -> str:
    return (_DIR / filename).read_text(encoding="utf-8")


def _int(default: int, minimum: int, maximum: int, description: str) -> dict[str, Any]:
    return {"type": "integer", "default": default, "minimum": minimum, "maximum": maximum,
            "description": description}


def _num(default: float, minimum: float, maximum: float, description: str) -> dict[str, Any]:
    return {"type": "number", "default": default, "minimum": minimum, "maximum": maximum,
            "description": description}


_POSITION_PCT = {"type": ["number", "null"], "default": None, "minimum": 0, "maximum": 1,
                 "description": "fraction of total value per symbol; null = equal weight"}


@dataclass(frozen=True)
class Template:
    name: str
    filename: str
    category: str
    description: str
    params: dict[str, dict[str, Any]]

    def code(self) -> str:
        return _read(self.filename)

    def params_schema(self) -> dict[str, Any]:
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": self.params,
            "additionalProperties": True,
        }

    def params_schema_json(self) -> str:
        return json.dumps(self.params_schema(), ensure_ascii=False, sort_keys=True)


TEMPLATES: tuple[Template, ...] = (
    Template("简单均线策略 Simple MA", "simple_ma.py", "trend",
             "Holds a symbol while its close is above its N-day moving average.",
             {"window": _int(20, 2, 250, "moving average window (days)"), "position_pct": _POSITION_PCT}),
    Template("双均线趋势策略 Dual MA with trend filter", "dual_ma_trend.py", "trend",
             "Golden cross buys, death cross sells; buys only above the long-term trend average.",
             {"short_window": _int(5, 1, 120, "short moving average (days)"),
              "long_window": _int(20, 2, 250, "long moving average (days)"),
              "trend_window": _int(60, 2, 500, "trend filter average (days)"),
              "position_pct": _POSITION_PCT}),
    Template("动量策略 Momentum", "momentum.py", "momentum",
             "Periodically holds the top-N symbols by trailing return.",
             {"lookback": _int(20, 1, 250, "return lookback (days)"),
              "top_n": _int(3, 1, 100, "symbols to hold"),
              "rebalance_days": _int(5, 1, 250, "trading days between rebalances")}),
    Template("PE/PB价值策略 PE/PB value", "value_pe_pb.py", "value",
             "Holds the cheapest symbols by PE×PB under caps; needs use_daily_basic (skips symbols "
             "without indicators).",
             {"max_pe": _num(30.0, 0, 1000, "maximum PE"), "max_pb": _num(3.0, 0, 100, "maximum PB"),
              "top_n": _int(5, 1, 100, "symbols to hold"),
              "rebalance_days": _int(20, 1, 250, "trading days between rebalances")}),
    Template("换手率策略 Turnover rate", "turnover_rate.py", "volume",
             "Buys on a turnover (or volume) surge with a rising price, sells when activity fades.",
             {"window": _int(20, 3, 250, "averaging window (days)"),
              "surge_ratio": _num(2.0, 1, 100, "activity / average that triggers a buy"),
              "fade_ratio": _num(0.8, 0, 1, "activity / average that triggers a sell"),
              "position_pct": _POSITION_PCT}),
    Template("均值回归策略 Mean reversion", "mean_reversion.py", "mean_reversion",
             "Buys when the close is far below its N-day mean (z-score), sells when it reverts.",
             {"window": _int(20, 3, 250, "mean/std window (days)"),
              "entry_z": _num(2.0, 0, 10, "z-score below the mean that buys"),
              "exit_z": _num(0.0, -10, 10, "z-score that sells"), "position_pct": _POSITION_PCT}),
    Template("布林带策略 Bollinger bands", "bollinger.py", "mean_reversion",
             "Buys when the close crosses back above the lower band, sells at the upper band.",
             {"window": _int(20, 3, 250, "band window (days)"),
              "num_std": _num(2.0, 0.1, 10, "band width in standard deviations"),
              "position_pct": _POSITION_PCT}),
    Template("RSI策略 RSI", "rsi.py", "oscillator",
             "Buys when RSI is oversold, sells when overbought (Wilder smoothing).",
             {"period": _int(14, 2, 100, "RSI period (days)"),
              "oversold": _num(30, 0, 100, "buy below this RSI"),
              "overbought": _num(70, 0, 100, "sell above this RSI"), "position_pct": _POSITION_PCT}),
    Template("网格交易策略 Grid trading", "grid_trading.py", "grid",
             "Buys a lot per grid step below the first day's price, sells a lot per step back up.",
             {"grid_pct": _num(0.03, 0.001, 0.5, "grid step as a fraction of price"),
              "max_grids": _int(5, 1, 50, "most lots held per symbol"),
              "lot_value": _num(50000, 1, 1e9, "value bought per grid step, CNY")}),
)

FRAMEWORK_DESCRIPTION = (
    "A minimal runnable strategy with the whole strategy API documented in its docstring. "
    "Keep the class name `Strategy`, read parameters from `self.params` in `initialize`, and "
    "place orders in `on_bar`; orders fill at the next trading day's open."
)


def framework_code() -> str:
    return _read("framework.py")
