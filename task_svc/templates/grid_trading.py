"""Grid trading: around a base price set on the first day, buy one grid lot each time the
price falls a grid step lower and sell one each time it rises a step higher."""

import math

from zquant.backtest.strategy import BaseStrategy


class Strategy(BaseStrategy):
    def initialize(self):
        self.grid_pct = float(self.params.get("grid_pct", 0.03))
        self.max_grids = int(self.params.get("max_grids", 5))
        self.lot_value = float(self.params.get("lot_value", 50000))
        self.base = {}  # symbol -> base price
        self.level = {}  # symbol -> grid lots currently held

    def on_bar(self, context, bar_data):
        for symbol, bar in bar_data.items():
            price = bar["close"]
            if not price or price <= 0:
                continue
            if symbol not in self.base:
                self.base[symbol] = price
                self.level[symbol] = 0
                continue
            # How many steps below the base the price is now (negative above it).
            steps = math.floor(math.log(self.base[symbol] / price) / math.log(1 + self.grid_pct))
            target = max(0, min(self.max_grids, steps))
            held = self.level[symbol]
            if target > held:
                context.order_value(symbol, self.lot_value * (target - held))
                self.level[symbol] = target
            elif target < held:
                position = context.portfolio.get_position(symbol)
                if target == 0:
                    context.order_target(symbol, 0)
                elif held > 0:
                    context.order(symbol, -int(position.quantity * (held - target) / held))
                self.level[symbol] = target
