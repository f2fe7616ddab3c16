"""RSI: buy when the N-day relative strength index is oversold, sell when overbought."""

import numpy as np
from zquant.backtest.strategy import BaseStrategy


def rsi(closes, period):
    """Wilder's RSI of the last value; None when undefined."""
    deltas = np.diff(closes)
    gains = np.where(deltas > 0, deltas, 0.0)
    losses = np.where(deltas < 0, -deltas, 0.0)
    avg_gain, avg_loss = gains[:period].mean(), losses[:period].mean()
    for g, loss in zip(gains[period:], losses[period:], strict=True):
        avg_gain = (avg_gain * (period - 1) + g) / period
        avg_loss = (avg_loss * (period - 1) + loss) / period
    if avg_gain == 0 and avg_loss == 0:
        return None
    if avg_loss == 0:
        return 100.0
    return 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)


class Strategy(BaseStrategy):
    def initialize(self):
        self.period = int(self.params.get("period", 14))
        self.oversold = float(self.params.get("oversold", 30))
        self.overbought = float(self.params.get("overbought", 70))
        self.position_pct = self.params.get("position_pct")

    def on_bar(self, context, bar_data):
        universe = getattr(context, "universe", None) or list(bar_data)
        weight = float(self.position_pct or 1.0 / max(1, len(universe)))
        need = self.period * 3 + 1  # extra history lets Wilder's smoothing settle
        for symbol in bar_data:
            closes = context.history(symbol, "close", need)
            if len(closes) <= self.period or np.isnan(closes).any():
                continue
            value = rsi(closes, self.period)
            if value is None:
                continue
            holding = context.portfolio.get_position(symbol).quantity > 0
            if value < self.oversold and not holding:
                context.order_target_percent(symbol, weight)
            elif value > self.overbought and holding:
                context.order_target(symbol, 0)
