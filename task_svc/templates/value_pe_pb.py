"""PE/PB value: hold the cheapest symbols by PE and PB (run with use_daily_basic = true).

Symbols without daily indicators (None, or a non-positive PE) are skipped, so a data set
without daily_basic simply trades nothing instead of failing.
"""

from zquant.backtest.strategy import BaseStrategy


class Strategy(BaseStrategy):
    def initialize(self):
        self.max_pe = float(self.params.get("max_pe", 30.0))
        self.max_pb = float(self.params.get("max_pb", 3.0))
        self.top_n = int(self.params.get("top_n", 5))
        self.rebalance_days = int(self.params.get("rebalance_days", 20))
        self.day = 0

    def on_bar(self, context, bar_data):
        self.day += 1
        if (self.day - 1) % self.rebalance_days:
            return
        candidates = []
        for symbol in bar_data:
            basic = context.get_daily_basic(symbol)
            if not basic:
                continue
            pe, pb = basic.get("pe"), basic.get("pb")
            if pe is None or pb is None or pe <= 0 or pb <= 0:
                continue  # missing or loss-making: not a value candidate
            if pe <= self.max_pe and pb <= self.max_pb:
                candidates.append((pe * pb, symbol))
        chosen = {symbol for _, symbol in sorted(candidates)[: self.top_n]}
        for symbol, position in context.portfolio.positions.items():
            if symbol not in chosen and position.quantity > 0 and symbol in bar_data:
                context.order_target(symbol, 0)
        for symbol in chosen:
            context.order_target_percent(symbol, 0.98 / len(chosen))
