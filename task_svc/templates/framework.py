"""A minimal zquant strategy: buy a fixed weight of every symbol and hold it.

Copy this file and change on_bar. The class must be called ``Strategy``.

The API (zquant-compatible):
- ``self.params``: the task's ``params`` dict (read it in ``initialize``).
- ``initialize(self)``: called once, before the first bar.
- ``on_bar(self, context, bar_data)``: called every trading day.
  ``bar_data`` is ``{symbol: {"open", "high", "low", "close", "volume", ...}}`` for the
  symbols trading today (prices in the run's adjust_type view).
- ``context.current_date``: today (``datetime.date``).
- ``context.portfolio``: ``cash`` (free cash), ``total_value``, ``positions`` (dict),
  ``get_position(symbol)`` → ``quantity``, ``avg_cost``, ``current_price``, ``market_value``,
  ``profit``, ``profit_pct``.
- Orders fill at the NEXT trading day's open (no look-ahead), in 100-share lots, T+1:
  ``context.order(symbol, quantity, price=None)`` (negative quantity sells; a price makes it a
  limit order), ``order_target(symbol, quantity)``, ``order_value(symbol, value)``,
  ``order_target_value(symbol, value)``, ``order_percent(symbol, pct)``,
  ``order_target_percent(symbol, pct)``.
- ``context.history(symbol, field, n)``: numpy array of the last n values of a bar field up to
  today (fewer at the start, NaN on suspended days).
- ``context.get_daily_basic(symbol)``: dict with pe, pb, turnover_rate … or None (needs
  ``use_daily_basic`` in the config; may be None when the data has no indicators).
- Optional ``on_order_status(self, context, order)``: called when an order fills, is rejected
  or expires.
"""

from zquant.backtest.context import Context
from zquant.backtest.strategy import BaseStrategy


class Strategy(BaseStrategy):
    def initialize(self):
        # Fraction of total value to put into each symbol.
        self.weight = float(self.params.get("weight", 0.1))

    def on_bar(self, context: Context, bar_data: dict):
        for symbol in bar_data:
            # Buy what is not held yet. An order that was rejected (suspended, limit up, not
            # enough cash) leaves the position at 0, so it is simply tried again the next day.
            if context.portfolio.get_position(symbol).quantity == 0:
                context.order_target_percent(symbol, self.weight)
