"""Dual moving average with a trend filter: golden cross buys, death cross sells, and new
positions are only opened while the close is above the long-term trend average."""

import numpy as np
from zquant.backtest.strategy import BaseStrategy


class Strategy(BaseStrategy):
    def initialize(self):
        self.short_window = int(self.params.get("short_window", 5))
        self.long_window = int(self.params.get("long_window", 20))
        self.trend_window = int(self.params.get("trend_window", 60))
        self.position_pct = self.params.get("position_pct")

    def on_bar(self, context, bar_data):
        universe = getattr(context, "universe", None) or list(bar_data)
        weight = float(self.position_pct or 1.0 / max(1, len(universe)))
        need = max(self.long_window, self.trend_window) + 1
        for symbol, bar in bar_data.items():
            closes = context.history(symbol, "close", need)
            if len(closes) < need or np.isnan(closes).any():
                continue
            short_now = closes[-self.short_window:].mean()
            long_now = closes[-self.long_window:].mean()
            short_prev = closes[-self.short_window - 1:-1].mean()
            long_prev = closes[-self.long_window - 1:-1].mean()
            trend = closes[-self.trend_window:].mean()
            holding = context.portfolio.get_position(symbol).quantity > 0
            golden_cross = short_prev <= long_prev and short_now > long_now
            death_cross = short_prev >= long_prev and short_now < long_now
            if golden_cross and bar["close"] > trend and not holding:
                context.order_target_percent(symbol, weight)
            elif death_cross and holding:
                context.order_target(symbol, 0)
