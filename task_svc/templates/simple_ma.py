"""Simple moving average: hold a symbol while its close is above its N-day average."""

import numpy as np
from zquant.backtest.strategy import BaseStrategy


class Strategy(BaseStrategy):
    def initialize(self):
        self.window = int(self.params.get("window", 20))
        # Equal weight per symbol unless a fixed fraction is given.
        self.position_pct = self.params.get("position_pct")

    def on_bar(self, context, bar_data):
        universe = getattr(context, "universe", None) or list(bar_data)
        weight = float(self.position_pct or 1.0 / max(1, len(universe)))
        for symbol, bar in bar_data.items():
            closes = context.history(symbol, "close", self.window)
            if len(closes) < self.window or np.isnan(closes).any():
                continue  # not enough history yet
            ma = float(np.mean(closes))
            holding = context.portfolio.get_position(symbol).quantity > 0
            if bar["close"] > ma and not holding:
                context.order_target_percent(symbol, weight)
            elif bar["close"] < ma and holding:
                context.order_target(symbol, 0)
