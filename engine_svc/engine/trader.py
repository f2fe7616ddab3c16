"""Turning the strategy's order calls into broker orders: sizing by value, target or percent.

``Trader`` is the single implementation of every ``context.order*`` call and
``context.cancel_order``. The strategy's ``Context`` calls it against the broker it sees; on the
trusted side the same calls, replayed from the strategy's intents (``intents.py``), run against
the ledger — same code, same inputs, same orders. Arguments arrive already normalised
(``intents.normalise_*``): a symbol column, Python ints and floats, None for a market order.

Sizing uses today's unadjusted close (or the limit price) and counts today's open orders
towards a target; nothing is placed when the lot-rounded quantity is 0, while an explicit
``order()`` below one lot is recorded as rejected.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from engine_svc.engine import batch
from engine_svc.engine.broker import Broker
from engine_svc.engine.orders import Order
from engine_svc.engine.rules import round_quantities

LogFn = Callable[[str], None]


class Trader:
    def __init__(self, broker: Broker, log: LogFn) -> None:
        self.broker = broker
        self.m = broker.m
        self.log = log  # the strategy's log: "order skipped" notes belong next to its own lines
        self.i = 0  # today's row

    # ------------------------------------------------------------------ helpers
    def _price(self, j: int, limit: float | None) -> float:
        """Price used to turn values into share counts: the limit price, else today's close."""
        return limit if limit is not None else float(self.m.last_close[self.i, j])

    def effective_quantity(self, j: int) -> int:
        """Holding plus today's open buys minus today's open sells (what a target counts)."""
        b = self.broker
        return int(b.qty[j] + b.pending_buy[j] - b.pending_sell[j])

    def total_value(self) -> float:
        return self.broker.total_value(self.i)

    def _delta(self, j: int, delta: int, limit: float | None) -> Order | None:
        return self.broker.submit(self.i, j, delta, limit, drop_zero=True)

    # ------------------------------------------------------------------ single symbol
    def order(self, j: int, quantity: int, limit: float | None) -> Order | None:
        return self.broker.submit(self.i, j, quantity, limit, drop_zero=False)

    def order_target(self, j: int, quantity: int, limit: float | None) -> Order | None:
        return self._delta(j, quantity - self.effective_quantity(j), limit)

    def order_value(self, j: int, value: float, limit: float | None) -> Order | None:
        px = self._price(j, limit)
        if not (math.isfinite(px) and px > 0 and math.isfinite(value)):
            self.log(f"order_value({self.m.symbols[j]}): no price today, order skipped")
            return None
        return self._delta(j, int(value / px), limit)

    def order_target_value(self, j: int, value: float, limit: float | None) -> Order | None:
        px = self._price(j, limit)
        if not (math.isfinite(px) and px > 0 and math.isfinite(value)):
            self.log(f"order_target_value({self.m.symbols[j]}): no price today, order skipped")
            return None
        return self._delta(j, int(value / px) - self.effective_quantity(j), limit)

    def order_percent(self, j: int, percent: float, limit: float | None) -> Order | None:
        return self.order_value(j, self.total_value() * percent, limit)

    def order_target_percent(self, j: int, percent: float, limit: float | None) -> Order | None:
        return self.order_target_value(j, self.total_value() * percent, limit)

    def cancel(self, order_id: int) -> Order | None:
        return self.broker.cancel(order_id)

    # ------------------------------------------------------------------ every symbol at once
    def order_target_values(self, target: np.ndarray) -> list[Order]:
        """Target a value (unadjusted money) per symbol column; NaN leaves a symbol alone.

        Same arithmetic as ``order_target_value`` symbol by symbol; sells are submitted before
        buys, each in column order. Symbols without any price are skipped.
        """
        b, i = self.broker, self.i
        px = self.m.last_close[i]
        with np.errstate(invalid="ignore"):
            cand = (np.isfinite(target) & (px > 0)).nonzero()[0]  # NaN price → False
        if cand.size == 0:
            return []
        # Work on the candidates only (usually a few of many symbols). int() truncates toward
        # zero; np.trunc does the same, on the same IEEE quotient as the scalar path.
        tq = np.trunc(target[cand] / px[cand]).astype(np.int64)
        held, bought, sold = b.qty[cand], b.pending_buy[cand], b.pending_sell[cand]
        delta = tq - (held + bought - sold)
        # Drop deltas that round to no shares here, vectorised, so the Python loop below only
        # sees real orders (submit applies the same rounding again, one symbol at a time).
        working = round_quantities(delta, held - sold, self.m.is_star[cand])
        keep = working != 0
        cand, delta, working = cand[keep], delta[keep], working[keep]
        is_sell = delta < 0
        sells, buys = cand[is_sell], cand[~is_sell]
        placed: list[Order] = []
        # Sells never need cash, so a batch of them is always equivalent to one-by-one (and
        # cheaper even for a few: no per-order numpy scalar work).
        if sells.size >= batch.SELL_BATCH_MIN:
            placed += batch.submit_sells(b, i, sells, -delta[is_sell], working[is_sell])
        else:
            self._submit_each(sells, delta[is_sell], placed)
        fast = (
            batch.submit_buys(b, i, buys, delta[~is_sell], working[~is_sell])
            if buys.size >= batch.BATCH_MIN else None
        )
        if fast is not None:
            placed += fast
        else:
            self._submit_each(buys, delta[~is_sell], placed)
        return placed

    def _submit_each(self, cols: np.ndarray, delta: np.ndarray, placed: list[Order]) -> None:
        submit, i = self.broker.submit, self.i
        for j, d in zip(cols.tolist(), delta.tolist(), strict=True):
            o = submit(i, j, d, None, drop_zero=True)
            if o is not None:
                placed.append(o)

    def order_target_percents(self, weights: np.ndarray) -> list[Order]:
        """Target a fraction of total value per symbol column; NaN leaves a symbol alone."""
        return self.order_target_values(self.total_value() * weights)
