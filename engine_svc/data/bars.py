"""Daily bars of one symbol out of a panel, as chart rows (unadjusted: the prices fills use)."""

from __future__ import annotations

import math
from typing import Any

from engine_svc.engine.panel import Panel


def panel_bars(panel: Panel, symbol: str) -> list[dict[str, Any]]:
    """[{date, open, high, low, close, volume}] for the days ``symbol`` traded, in date order."""
    j = panel.symbols.index(symbol)
    bars = panel.bars
    out: list[dict[str, Any]] = []
    for i, day in enumerate(panel.dates.astype(str).tolist()):
        close = float(bars["close"][i, j])
        if not math.isfinite(close):  # no bar that day (suspended, not listed yet)
            continue
        out.append({
            "date": day, "open": float(bars["open"][i, j]), "high": float(bars["high"][i, j]),
            "low": float(bars["low"][i, j]), "close": close, "volume": float(bars["volume"][i, j]),
        })
    return out
