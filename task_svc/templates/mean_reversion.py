"""Mean reversion: buy when the close falls `entry_z` standard deviations below its N-day
mean, sell when it reverts to the mean."""

import numpy as np
from zquant.backtest.strategy import BaseStrategy


class Strategy(BaseStrategy):
    def initialize(self):
        self.window = int(self.params.get("window", 20))
        self.entry_z = float(self.params.get("entry_z", 2.0))
        self.exit_z = float(self.params.get("exit_z", 0.0))
        self.position_pct = self.params.get("position_pct")

    def on_bar(self, context, bar_data):
        universe = getattr(context, "universe", None) or list(bar_data)
        weight = float(self.position_pct or 1.0 / max(1, len(universe)))
        for symbol, bar in bar_data.items():
            closes = context.history(symbol, "close", self.window)
            if len(closes) < self.window or np.isnan(closes).any():
                continue
            std = float(np.std(closes, ddof=1))
            if std <= 0:
                continue
            z = (bar["close"] - float(np.mean(closes))) / std
            holding = context.portfolio.get_position(symbol).quantity > 0
            if z <= -self.entry_z and not holding:
                context.order_target_percent(symbol, weight)
            elif z >= self.exit_z and holding:
                context.order_target(symbol, 0)
