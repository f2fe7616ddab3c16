"""Simulated broker: cash, positions, order submission (with cash reservation) and matching at
the next day's open, following the execution model in docs/engine.md. Every rule it applies
comes from ``rules``.

Positions live in numpy arrays indexed by symbol column so valuation is a vector operation;
orders are Python objects because each one is recorded individually anyway.

The same class keeps the ledger of record on the trusted side and, in the strategy's process,
a mirror that answers the strategy's questions (portfolio, order outcomes) without a round trip
(see ``engine_svc.engine.session``). Both see the same market data and the same order intents,
so they compute the same state; only the trusted one is recorded.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from engine_svc.engine import batch
from engine_svc.engine.config import BacktestConfig
from engine_svc.engine.market import MarketTape
from engine_svc.engine.orders import (
    BUY,
    CANCELLED,
    EXPIRED,
    FILLED,
    REASON_CANCELLED,
    REASON_CASH,
    REASON_ENDED,
    REASON_LIMIT_DOWN,
    REASON_LIMIT_UP,
    REASON_NOT_REACHED,
    REASON_SUSPENDED,
    REJECTED,
    SELL,
    Order,
)
from engine_svc.engine.rules import (
    blocked_buy,
    blocked_sell,
    buy_cost,
    buy_fill_price,
    capped_note,
    commission,
    max_affordable_buy,
    round_buy_quantity,
    round_sell_quantity,
    scaled_shares,
    sell_fill_price,
    sell_fill_quantity,
    sellable,
    stamp_duty,
)


class Broker:
    def __init__(self, market: MarketTape, config: BacktestConfig, *, records: bool = True) -> None:
        self.m = market
        self.records = records  # trade and ex-rights records (the ledger); a mirror needs none
        self.rate = float(config.commission_rate)
        self.min_commission = float(config.min_commission)
        self.tax_rate = float(config.tax_rate)
        self.slippage = float(config.slippage_rate)
        n = len(market.symbols)
        # Total cash; open buy orders hold ``reserved`` of it back. Reservations never touch
        # ``cash`` itself so reserving and releasing cannot introduce rounding drift.
        self.cash = float(config.initial_capital)
        self.reserved = 0.0
        self.qty = np.zeros(n, dtype=np.int64)
        self.bought_today = np.zeros(n, dtype=np.int64)  # T+1: not sellable before tomorrow
        self.avg_cost = np.zeros(n, dtype=np.float64)  # average fill price (slippage in, fees out)
        # Open orders' working quantities per symbol, so order_target* does not double-order.
        self.pending_buy = np.zeros(n, dtype=np.int64)
        self.pending_sell = np.zeros(n, dtype=np.int64)
        self.open_orders: list[Order] = []
        self.orders: list[Order] = []
        self.trades: list[dict[str, Any]] = []
        self.ex_rights: list[dict[str, Any]] = []  # result records, see apply_ex_rights
        self.version = 0  # bumped on every fill: lets views cache per-day position snapshots

    @property
    def free_cash(self) -> float:
        """What the strategy may still spend: cash minus open buy orders' reservations."""
        return self.cash - self.reserved

    # ------------------------------------------------------------------ day boundaries
    def open_day(self, i: int) -> tuple[list[str], list[Order]]:
        """Everything that happens on day ``i`` before the strategy runs: T+1 reset, ex-rights
        restatements (their log lines) and matching of yesterday's orders (now resolved)."""
        self.bought_today[:] = 0
        lines = self.apply_ex_rights(i)
        return lines, self.match(i)

    def apply_ex_rights(self, i: int) -> list[str]:
        """Carry holdings through day ``i``'s ex-rights / ex-dividend events, before the open.

        Only adj_factor is known, not how an event splits into bonus shares and cash, so a
        holding becomes ``quantity × ratio`` shares: exact for splits and bonus issues, a cash
        dividend reinvested at the ex-reference price otherwise (the total-return convention of
        hfq prices). The fractional share is paid out in cash at the ex-reference price. Total
        cost is kept, so avg_cost becomes avg_cost / ratio. Orders still open (placed yesterday
        for today's open) are restated the same way: quantity × ratio (a buy rounded down to
        lots), limit price / ratio, so "sell everything" still sells everything. Returns one log
        line per holding and records it in ``ex_rights``.
        """
        events = self.m.ex_rights.get(i)
        if not events:
            return []
        lines = []
        for j, ratio, ref in events:
            self._restate_open_orders(j, ratio)
            held = int(self.qty[j])
            if held == 0:
                continue
            new = scaled_shares(held, ratio)
            cash = max(held * ratio - new, 0.0) * ref if math.isfinite(ref) else 0.0
            self.cash += cash
            self.avg_cost[j] = float(self.avg_cost[j]) * held / new if new else 0.0
            self.qty[j] = new
            self.version += 1
            if not self.records:
                continue
            symbol = self.m.symbols[j]
            self.ex_rights.append({"date": self.m.dates_str[i], "symbol": symbol, "ratio": ratio, "ex_price": ref,
                                   "quantity_before": held, "quantity_after": new, "cash": cash})
            lines.append(f"ex-rights {symbol}: adj_factor x{ratio:.6g}, {held} -> {new} shares"
                         + (f", {cash:.2f} cash for the fraction" if cash else ""))
        return lines

    def _restate_open_orders(self, j: int, ratio: float) -> None:
        still_open = []
        for o in self.open_orders:
            if o.index == j:
                q = scaled_shares(o.working_quantity, ratio)
                if o.side == BUY:
                    q = round_buy_quantity(q, self.m.boards[j])
                o.working_quantity = q  # pending_* are rebuilt by match(), which runs next
                if o.limit_price is not None:
                    o.limit_price = round(o.limit_price / ratio, 2)
                self.note(o, f"restated for ex-rights (adj_factor x{ratio:.6g}): {q} shares"
                             + (f" at {o.limit_price}" if o.limit_price is not None else ""))
                if q == 0:  # restated to nothing: closed here, not matched
                    self.close(o, REJECTED, "quantity below one lot after ex-rights")
                    continue
            still_open.append(o)
        self.open_orders = still_open

    def match(self, i: int) -> list[Order]:
        """Match yesterday's open orders on day ``i``'s bar; returns them, all resolved.

        Sells go first (in submission order) so their proceeds can absorb a buy's gap-up.
        """
        orders, self.open_orders = self.open_orders, []
        self.pending_buy[:] = 0
        self.pending_sell[:] = 0
        date = self.m.dates_str[i]
        sells = [o for o in orders if o.side == SELL]
        buys = [o for o in orders if o.side == BUY]
        if not batch.match_sells(self, sells, i, date):
            for o in sells:
                self._match_sell(o, i, date)
        if not batch.match_buys(self, buys, i, date):
            for o in buys:
                self._match_buy(o, i, date)
        self.reserved = 0.0  # nothing is open any more; drop float residue of the sum
        return orders

    def expire_open(self, reason: str = REASON_ENDED) -> list[Order]:
        orders, self.open_orders = self.open_orders, []
        for o in orders:
            self.close(o, EXPIRED, reason)
        self.reserved = 0.0
        return orders

    # ------------------------------------------------------------------ submission
    def submit(
        self, i: int, j: int, amount: int, limit_price: float | None, *, drop_zero: bool
    ) -> Order | None:
        """Place an order on day ``i`` for symbol column ``j`` (``amount`` < 0 sells).

        Quantities are rounded to valid lots now; a buy reserves its estimated cost (today's
        close, or the limit price, with slippage and commission) and is cut to what free cash
        covers. ``drop_zero``: the order_target*/value helpers create no order when rounding
        leaves nothing to trade, an explicit ``order()`` is recorded as rejected instead.
        """
        if amount == 0:
            return None
        m = self.m
        side = BUY if amount > 0 else SELL
        requested = abs(amount)
        board = m.boards[j]
        if side == BUY:
            working = round_buy_quantity(requested, board)
            zero_reason = "quantity below one lot"
        else:
            available = int(self.qty[j]) - int(self.pending_sell[j])
            working = round_sell_quantity(requested, available, board)
            zero_reason = "no position to sell" if available <= 0 else "quantity below one lot"
        if working == 0 and drop_zero:
            return None
        orders = self.orders
        o = Order(len(orders) + 1, m.dates_str[i], m.symbols[j], j, side, requested, limit_price)
        orders.append(o)
        if working == 0:
            self.close(o, REJECTED, zero_reason)
            return o
        reason = f"rounded to {working} (lot size / position)" if working < requested else ""
        if side == BUY:
            ref = limit_price if limit_price is not None else float(m.last_close[i, j])
            if not math.isfinite(ref):
                self.close(o, REJECTED, "no price to value the order")
                return o
            est = ref * (1.0 + self.slippage)
            affordable = max_affordable_buy(self.cash - self.reserved, est, self.rate, self.min_commission, board)
            if affordable == 0:
                self.close(o, REJECTED, REASON_CASH)
                return o
            if affordable < working:
                working = affordable
                cut = f"{REASON_CASH}: cut to {working}"
                reason = f"{reason}; {cut}" if reason else cut
            o.reserved = buy_cost(working, est, self.rate, self.min_commission)
            self.reserved += o.reserved
            self.pending_buy[j] += working
        else:
            self.pending_sell[j] += working
        o.working_quantity = working
        o.reason = reason
        self.open_orders.append(o)
        return o

    def cancel(self, order_id: int) -> Order | None:
        """Cancel an order placed today that is still open; returns it, or None when no open
        order has that id (already resolved, or never placed)."""
        for k, o in enumerate(self.open_orders):
            if o.order_id == order_id:
                del self.open_orders[k]
                if o.side == BUY:
                    self.pending_buy[o.index] -= o.working_quantity
                else:
                    self.pending_sell[o.index] -= o.working_quantity
                self.close(o, CANCELLED, REASON_CANCELLED)
                return o
        return None

    # ------------------------------------------------------------------ matching
    def _trade_price(self, o: Order, i: int) -> float | None:
        """The price (before slippage) order `o` trades at on bar i, or None after closing it:
        suspended, limit price not reached, or at the price limit in the order's direction."""
        j, m, buy = o.index, self.m, o.side == BUY
        if not m.has_bar[i, j]:
            self.close(o, REJECTED, REASON_SUSPENDED)
            return None
        px = float(m.raw["open"][i, j])
        if o.limit_price is not None:
            if (float(m.raw["low"][i, j]) > o.limit_price) if buy else (float(m.raw["high"][i, j]) < o.limit_price):
                self.close(o, EXPIRED, REASON_NOT_REACHED)
                return None
            px = min(px, o.limit_price) if buy else max(px, o.limit_price)
        if buy and blocked_buy(px, float(m.up_limit[i, j])):
            self.close(o, REJECTED, REASON_LIMIT_UP)
            return None
        if not buy and blocked_sell(px, float(m.down_limit[i, j])):
            self.close(o, REJECTED, REASON_LIMIT_DOWN)
            return None
        return px

    def _match_buy(self, o: Order, i: int, date: str) -> None:
        px = self._trade_price(o, i)
        if px is None:
            return
        j = o.index
        rate, min_comm = self.rate, self.min_commission
        fill_px, capped = buy_fill_price(px, self.slippage, float(self.m.up_limit[i, j]))
        if capped:
            self.note(o, capped_note(True, fill_px))
        # The reservation was an estimate: the real cost may use any free cash as well.
        available = (self.cash - self.reserved) + o.reserved
        q = o.working_quantity
        if buy_cost(q, fill_px, rate, min_comm) > available:
            q = min(q, max_affordable_buy(available, fill_px, rate, min_comm, self.m.boards[j]))
            if q == 0:
                self.close(o, REJECTED, REASON_CASH)
                return
            self.note(o, f"{REASON_CASH}: cut to {q}")
        value = q * fill_px
        self.release(o)
        comm = commission(value, rate, min_comm)
        self.cash -= value + comm
        held = int(self.qty[j])
        # Python floats: the same IEEE double operations as on numpy scalars, without the boxing.
        self.avg_cost[j] = (float(self.avg_cost[j]) * held + value) / (held + q)
        self.qty[j] = held + q
        self.bought_today[j] += q
        self.fill(o, date, q, fill_px, value, comm, 0.0, q * (fill_px - px))

    def _match_sell(self, o: Order, i: int, date: str) -> None:
        px = self._trade_price(o, i)
        if px is None:
            return
        j = o.index
        held = int(self.qty[j])
        q = sell_fill_quantity(o.working_quantity, held, int(self.bought_today[j]), self.m.boards[j])
        if q == 0:
            can = sellable(held, int(self.bought_today[j]))
            self.close(o, REJECTED, "no sellable shares (T+1)" if can <= 0 else "quantity below one lot")
            return
        if q < o.working_quantity:
            self.note(o, f"cut to sellable quantity {q} (T+1)")
        fill_px, capped = sell_fill_price(px, self.slippage, float(self.m.down_limit[i, j]))
        if capped:
            self.note(o, capped_note(False, fill_px))
        value = q * fill_px
        comm = commission(value, self.rate, self.min_commission)
        tax = stamp_duty(value, self.tax_rate)
        self.cash += value - comm - tax
        self.qty[j] = held - q
        if held == q:
            self.avg_cost[j] = 0.0
        self.fill(o, date, q, fill_px, value, comm, tax, q * (px - fill_px))

    # ------------------------------------------------------------------ bookkeeping (also batch.py's)
    def fill(self, o: Order, date: str, q: int, price: float, value: float, comm: float,
             tax: float, slip: float) -> None:
        o.status = FILLED
        o.filled_quantity = q
        o.fill_date = date
        o.fill_price = price
        o.commission = comm
        o.tax = tax
        o.slippage_cost = slip
        self.version += 1
        if self.records:
            self.trades.append({
                "order_id": o.order_id, "date": date, "symbol": o.symbol, "side": o.side,
                "quantity": q, "price": price, "value": value, "commission": comm, "tax": tax,
                "slippage_cost": slip,
            })

    def release(self, o: Order) -> None:
        """Give an order's cash reservation back to free cash."""
        self.reserved -= o.reserved
        o.reserved = 0.0

    def close(self, o: Order, status: str, reason: str) -> None:
        self.release(o)
        o.status = status
        self.note(o, reason)

    @staticmethod
    def note(o: Order, text: str) -> None:
        o.reason = f"{o.reason}; {text}" if o.reason else text

    # ------------------------------------------------------------------ valuation
    def market_value(self, i: int) -> float:
        held = self.qty.nonzero()[0]
        if held.size == 0:
            return 0.0
        return float((self.qty[held] * self.m.last_close[i, held]).sum())

    def total_value(self, i: int) -> float:
        return self.cash + self.market_value(i)
