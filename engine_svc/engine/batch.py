"""Vectorised fast paths for many orders at once (the cross-sectional ``bar_mode = "arrays"``).

Each function gives exactly what the per-order path in ``broker.Broker`` gives — the rule
book's array forms apply the same float operations as its scalar forms, in the same order, so
results are byte-identical — and is only taken when that is provable: no cash cut can happen
anywhere in the batch (checked with a safety margin far above float rounding), symbols are
unique and orders are market orders. Otherwise the caller falls back to the per-order path.
Python work left per order is creating and updating its record.

The broker calls these and they update the broker through its public bookkeeping methods; this
module depends only on the ``Ledger`` protocol below, not on the broker (no import cycle).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from engine_svc.engine.orders import (
    BUY,
    REASON_LIMIT_DOWN,
    REASON_LIMIT_UP,
    REASON_SUSPENDED,
    REJECTED,
    SELL,
    Order,
)
from engine_svc.engine.rules import (
    blocked_buys,
    blocked_sells,
    buy_costs,
    buy_fill_prices,
    capped_note,
    commissions,
    sell_fill_prices,
    sell_fill_quantities,
    sellable,
    stamp_duty,
)

BATCH_MIN = 32  # measured break-even: below ~30 orders a side the per-order path is as fast
# Submitting sells needs no cash check, so the batch form has little fixed cost: used from 2 on.
SELL_BATCH_MIN = 2


class Ledger(Protocol):
    """What the batch paths read and update (``broker.Broker``)."""

    m: Any  # MarketTape
    cash: float
    reserved: float
    rate: float
    min_commission: float
    tax_rate: float
    slippage: float
    qty: np.ndarray
    bought_today: np.ndarray
    avg_cost: np.ndarray
    pending_buy: np.ndarray
    pending_sell: np.ndarray
    open_orders: list[Order]
    orders: list[Order]

    def fill(self, o: Order, date: str, q: int, price: float, value: float, comm: float, tax: float,
             slip: float) -> None: ...
    def release(self, o: Order) -> None: ...
    def close(self, o: Order, status: str, reason: str) -> None: ...
    def note(self, o: Order, text: str) -> None: ...


def _margin(cash: float) -> float:
    """Cash headroom that dwarfs float rounding of sums of money (relative 1e-16)."""
    return 1e-6 * abs(cash) + 1e-6


def _eligible(orders: list[Order]) -> bool:
    if len(orders) < BATCH_MIN:
        return False
    cols = {o.index for o in orders}
    return len(cols) == len(orders) and all(o.limit_price is None for o in orders)


# ---------------------------------------------------------------------------------- submission
def submit_sells(b: Ledger, i: int, cols: np.ndarray, requested: np.ndarray, working: np.ndarray) -> list[Order]:
    """Sell orders whose working quantities were rounded by ``rules.round_quantities``."""
    date, syms, orders = b.m.dates_str[i], b.m.symbols, b.orders
    placed = []
    for j, req, wq in zip(cols.tolist(), requested.tolist(), working.tolist(), strict=True):
        o = Order(len(orders) + 1, date, syms[j], j, SELL, req, None)
        o.working_quantity = wq
        if wq < req:
            o.reason = f"rounded to {wq} (lot size / position)"
        orders.append(o)
        placed.append(o)
    b.pending_sell[cols] += working
    b.open_orders.extend(placed)
    return placed


def submit_buys(b: Ledger, i: int, cols: np.ndarray, requested: np.ndarray, working: np.ndarray) -> list[Order] | None:
    """Buy orders at once when free cash covers every reservation in sequence; None otherwise
    (nothing changed — the caller submits them one by one, with cuts and rejections)."""
    est = b.m.last_close[i, cols] * (1.0 + b.slippage)
    reserve = buy_costs(working, est, b.rate, b.min_commission)
    if not np.all(np.isfinite(reserve)):
        return None
    free_before = b.cash - (b.reserved + np.concatenate(([0.0], np.cumsum(reserve)[:-1])))
    if np.any(reserve > free_before - _margin(b.cash)):
        return None
    date, syms, orders = b.m.dates_str[i], b.m.symbols, b.orders
    placed = []
    for j, req, wq, r in zip(cols.tolist(), requested.tolist(), working.tolist(), reserve.tolist(), strict=True):
        o = Order(len(orders) + 1, date, syms[j], j, BUY, req, None)
        o.working_quantity = wq
        if wq < req:
            o.reason = f"rounded to {wq} (lot size / position)"
        o.reserved = r
        b.reserved += r
        orders.append(o)
        placed.append(o)
    b.pending_buy[cols] += working
    b.open_orders.extend(placed)
    return placed


# ------------------------------------------------------------------------------------ matching
def match_sells(b: Ledger, orders: list[Order], i: int, date: str) -> bool:
    """Match market sells on day ``i`` at the open; False when the batch is not eligible."""
    if not _eligible(orders):
        return False
    m = b.m
    cols = np.fromiter((o.index for o in orders), dtype=np.intp, count=len(orders))
    wq = np.fromiter((o.working_quantity for o in orders), dtype=np.int64, count=len(orders))
    has = m.has_bar[i, cols]
    px = m.raw["open"][i, cols]
    down = m.down_limit[i, cols]
    limit_down = has & blocked_sells(px, down)
    held = b.qty[cols]
    can = sellable(held, b.bought_today[cols])
    q = sell_fill_quantities(wq, held, b.bought_today[cols], m.is_star[cols])
    fill, capped = sell_fill_prices(px, b.slippage, down)
    value = q * fill
    comm = commissions(value, b.rate, b.min_commission)
    tax = stamp_duty(value, b.tax_rate)
    net = value - comm - tax
    slip = q * (px - fill)
    ok = has & ~limit_down & (q > 0)
    b.qty[cols[ok]] = held[ok] - q[ok]
    b.avg_cost[cols[ok & (held == q)]] = 0.0
    for o, h, d, qk, s, wk, f, cp, v, c, t, n, sl in zip(
        orders, has.tolist(), limit_down.tolist(), q.tolist(), can.tolist(), wq.tolist(), fill.tolist(),
        capped.tolist(), value.tolist(), comm.tolist(), tax.tolist(), net.tolist(), slip.tolist(), strict=True,
    ):
        if not h:
            b.close(o, REJECTED, REASON_SUSPENDED)
        elif d:
            b.close(o, REJECTED, REASON_LIMIT_DOWN)
        elif qk == 0:
            b.close(o, REJECTED, "no sellable shares (T+1)" if s <= 0 else "quantity below one lot")
        else:
            if qk < wk:
                b.note(o, f"cut to sellable quantity {qk} (T+1)")
            if cp:
                b.note(o, capped_note(False, f))
            b.cash += n
            b.fill(o, date, qk, f, v, c, t, sl)
    return True


def match_buys(b: Ledger, orders: list[Order], i: int, date: str) -> bool:
    """Match market buys on day ``i`` at the open when no buy needs a cash cut."""
    if not _eligible(orders):
        return False
    m = b.m
    n = len(orders)
    cols = np.fromiter((o.index for o in orders), dtype=np.intp, count=n)
    q = np.fromiter((o.working_quantity for o in orders), dtype=np.int64, count=n)
    r = np.fromiter((o.reserved for o in orders), dtype=np.float64, count=n)
    has = m.has_bar[i, cols]
    px = m.raw["open"][i, cols]
    limit_up = has & blocked_buys(px, m.up_limit[i, cols])
    ok = has & ~limit_up
    fill, capped = buy_fill_prices(px, b.slippage, m.up_limit[i, cols])
    value = q * fill
    comm = commissions(value, b.rate, b.min_commission)
    cost = value + comm  # rules.buy_costs, with value and comm kept for the records
    # Per-order path: available_k = cash_k − reserved_k + r_k, with cash_k after the earlier
    # fills and reserved_k after releasing every earlier order. Require a margin everywhere.
    spent = np.concatenate(([0.0], np.cumsum(np.where(ok, cost, 0.0))[:-1]))
    released = np.concatenate(([0.0], np.cumsum(r)[:-1]))
    available = (b.cash - spent) - (b.reserved - released) + r
    if np.any(ok & ~(cost <= available - _margin(b.cash))):
        return False
    held = b.qty[cols]
    avg = (b.avg_cost[cols] * held + value) / (held + q)
    b.avg_cost[cols[ok]] = avg[ok]
    b.qty[cols[ok]] = held[ok] + q[ok]
    b.bought_today[cols[ok]] += q[ok]
    for o, h, u, qk, f, cp, v, c, k, p in zip(
        orders, has.tolist(), limit_up.tolist(), q.tolist(), fill.tolist(), capped.tolist(), value.tolist(),
        comm.tolist(), cost.tolist(), px.tolist(), strict=True,
    ):
        if not h:
            b.close(o, REJECTED, REASON_SUSPENDED)
        elif u:
            b.close(o, REJECTED, REASON_LIMIT_UP)
        else:
            if cp:
                b.note(o, capped_note(True, f))
            b.release(o)
            b.cash -= k
            b.fill(o, date, qk, f, v, c, 0.0, qk * (f - p))
    return True
