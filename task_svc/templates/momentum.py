"""Momentum: every `rebalance_days` trading days hold the `top_n` symbols with the best
return over the last `lookback` days (only those with a positive return)."""

import numpy as np
from zquant.backtest.strategy import BaseStrategy


class Strategy(BaseStrategy):
    def initialize(self):
        self.lookback = int(self.params.get("lookback", 20))
        self.top_n = int(self.params.get("top_n", 3))
        self.rebalance_days = int(self.params.get("rebalance_days", 5))
        self.day = 0

    def on_bar(self, context, bar_data):
        self.day += 1
        if (self.day - 1) % self.rebalance_days:
            return
        scores = {}
        for symbol in bar_data:
            closes = context.history(symbol, "close", self.lookback + 1)
            if len(closes) <= self.lookback or np.isnan(closes).any() or closes[0] <= 0:
                continue
            scores[symbol] = closes[-1] / closes[0] - 1.0
        ranked = sorted((s for s in scores if scores[s] > 0), key=lambda s: scores[s], reverse=True)
        winners = set(ranked[: self.top_n])
        # Sell losers first so their cash funds the winners.
        for symbol, position in context.portfolio.positions.items():
            if symbol not in winners and position.quantity > 0 and symbol in bar_data:
                context.order_target(symbol, 0)
        for symbol in winners:
            context.order_target_percent(symbol, 0.98 / len(winners))
