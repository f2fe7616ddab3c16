"""Bollinger bands: buy when the close crosses back above the lower band, sell at the
upper band (or when it breaks below the lower band again as a stop)."""

import numpy as np
from zquant.backtest.strategy import BaseStrategy


class Strategy(BaseStrategy):
    def initialize(self):
        self.window = int(self.params.get("window", 20))
        self.num_std = float(self.params.get("num_std", 2.0))
        self.position_pct = self.params.get("position_pct")

    def bands(self, closes):
        mid = float(np.mean(closes))
        width = self.num_std * float(np.std(closes, ddof=1))
        return mid - width, mid, mid + width

    def on_bar(self, context, bar_data):
        universe = getattr(context, "universe", None) or list(bar_data)
        weight = float(self.position_pct or 1.0 / max(1, len(universe)))
        for symbol in bar_data:
            closes = context.history(symbol, "close", self.window + 1)
            if len(closes) <= self.window or np.isnan(closes).any():
                continue
            lower_prev, _, _ = self.bands(closes[:-1])
            lower, _, upper = self.bands(closes[1:])
            close, close_prev = closes[-1], closes[-2]
            holding = context.portfolio.get_position(symbol).quantity > 0
            if not holding and close_prev < lower_prev and close >= lower:
                context.order_target_percent(symbol, weight)
            elif holding and (close >= upper or close < lower * 0.97):
                context.order_target(symbol, 0)
