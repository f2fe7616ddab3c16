"""Turnover rate: buy when trading activity surges while the price rises, sell when it fades.

Uses daily_basic's turnover_rate when loaded (use_daily_basic = true); otherwise falls back
to volume relative to its own average, so it also runs on data without daily indicators.
"""

import numpy as np
from zquant.backtest.strategy import BaseStrategy


class Strategy(BaseStrategy):
    def initialize(self):
        self.window = int(self.params.get("window", 20))
        self.surge = float(self.params.get("surge_ratio", 2.0))
        self.fade = float(self.params.get("fade_ratio", 0.8))
        self.position_pct = self.params.get("position_pct")
        self.turnover = {}  # symbol -> recent turnover_rate values from daily_basic

    def activity_ratio(self, context, symbol):
        basic = context.get_daily_basic(symbol)
        rate = basic.get("turnover_rate") if basic else None
        if rate is not None:
            seen = self.turnover.setdefault(symbol, [])
            seen.append(rate)
            del seen[: -self.window]
            if len(seen) < self.window:
                return None
            mean = float(np.mean(seen[:-1]))
            return rate / mean if mean > 0 else None
        volumes = context.history(symbol, "volume", self.window)
        if len(volumes) < self.window or np.isnan(volumes).any():
            return None
        mean = float(np.mean(volumes[:-1]))
        return float(volumes[-1]) / mean if mean > 0 else None

    def on_bar(self, context, bar_data):
        universe = getattr(context, "universe", None) or list(bar_data)
        weight = float(self.position_pct or 1.0 / max(1, len(universe)))
        for symbol, bar in bar_data.items():
            ratio = self.activity_ratio(context, symbol)
            if ratio is None:
                continue
            holding = context.portfolio.get_position(symbol).quantity > 0
            rising = bar["close"] > bar["open"]
            if ratio >= self.surge and rising and not holding:
                context.order_target_percent(symbol, weight)
            elif ratio <= self.fade and holding:
                context.order_target(symbol, 0)
