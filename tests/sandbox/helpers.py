"""Helpers shared by the sandbox tests: tiny panels, zquant-style strategy wrappers, small limits."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine_svc.engine.panel import BAR_FIELDS, Panel
from engine_svc.sandbox import bwrap
from engine_svc.sandbox.limits import SandboxLimits

BWRAP_USABLE = bwrap.bwrap_path() is not None
# Every isolation path that works on this host: plain (rlimits+Landlock+seccomp) always, and
# the same inside bubblewrap when bwrap can create namespaces here.
MODES = ["plain", *(["bwrap"] if BWRAP_USABLE else [])]

STRATEGY_TEMPLATE = """\
import os, sys, time
from zquant.backtest.strategy import BaseStrategy

class Strategy(BaseStrategy):
    def on_bar(self, context, bar_data):
{body}
"""


def strategy(body: str) -> str:
    """A zquant-style strategy whose on_bar runs ``body`` (indented here)."""
    lines = body.strip("\n").splitlines()
    return STRATEGY_TEMPLATE.format(body="\n".join("        " + line for line in lines))


def make_panel(n_dates: int = 5, n_symbols: int = 2) -> Panel:
    dates = np.arange(np.datetime64("2024-01-02"), np.datetime64("2024-01-02") + n_dates)
    rng = np.random.default_rng(7)
    close = 10 * np.cumprod(1 + rng.normal(0, 0.01, (n_dates, n_symbols)), axis=0)
    bars = {f: np.full((n_dates, n_symbols), np.nan) for f in BAR_FIELDS}
    opens = close * (1 + rng.normal(0, 0.005, (n_dates, n_symbols)))
    bars.update(
        open=opens, high=np.fmax(opens, close) * 1.01, low=np.fmin(opens, close) * 0.99, close=close,
        pre_close=np.vstack([close[:1], close[:-1]]),
        volume=np.full((n_dates, n_symbols), 1e6), amount=close * 1e6,
    )
    return Panel(dates=dates, symbols=tuple(f"60000{i}.SH" for i in range(n_symbols)), bars=bars)


def config_for(panel: Panel, **params: Any) -> dict[str, Any]:
    return {
        "start_date": str(panel.dates[0]), "end_date": str(panel.dates[-1]),
        "symbols": list(panel.symbols), "params": params,
    }


def limits_for(mode: str, **overrides: Any) -> SandboxLimits:
    """Small limits so hostile runs end fast; pandas is not preloaded (faster starts)."""
    base = {
        "memory_mb": 512, "data_memory_factor": 0.0, "cpu_seconds": 2, "wall_seconds": 15, "preload": ("numpy",),
        "bwrap": "on" if mode == "bwrap" else "off",
    }
    base.update(overrides)
    return SandboxLimits(**base)
