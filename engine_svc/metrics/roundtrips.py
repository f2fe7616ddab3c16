"""FIFO round-trip ledger over the engine's fills.

A **round trip** is one sell fill together with the buy shares it closes. Buys open lots; a sell
consumes quantity from the oldest open lots of its symbol first (FIFO), taking only as many
shares as it sells: a partial sell leaves the rest of a lot open for later sells, and a sell
larger than the oldest lot continues into the next one. This is pyfolio's convention (one round
trip per closing transaction, opened at the earliest lot it consumes), with per-share FIFO.

PnL is net of costs::

    pnl = Σ_lots q·(sell_price − buy_price)               # gross, at the fill prices
          − Σ_lots q·(buy_commission / buy_quantity)      # buy commission, pro rata per share
          − (sell_commission + sell_tax)                  # the sell's own costs, all of them

Fill prices already include slippage (the engine moves the fill price against the order), so
``slippage_cost`` is informational and is not subtracted again. Buys carry no tax (stamp duty is
charged on sells only); a ``tax`` on a buy, if ever present, is allocated like its commission.

Fills are processed in date order (a stable sort, so fills of the same day keep the engine's
order). Shares still held at the end are open lots, not round trips. A sell of more shares than
are held is an inconsistent fill list (the engine never sells short) and raises ``ValueError``.

Ex-rights records (the result's ``ex_rights``) restate the open lots of their symbol before that
day's fills: the lots' shares are scaled to ``quantity_after`` (each lot ``floor(q × ratio)``, the
shares left over going to the lots with the largest fractions, older first) and each lot keeps
its open value and buy costs, so its price per share falls accordingly. The cash paid for a
fractional share is not part of any round trip.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["open_lots", "round_trips"]


@dataclass
class _Lot:
    date: str
    order_id: Any
    quantity: int  # shares still open
    price: float
    cost_per_share: float  # the buy's commission (and tax) divided by the buy's quantity


def _side(trade: Mapping[str, Any]) -> str:
    side = str(trade["side"]).lower()
    if side not in ("buy", "sell"):
        raise ValueError(f"trade {trade.get('order_id')!r}: side must be 'buy' or 'sell', got {side!r}")
    return side


def _quantity(trade: Mapping[str, Any]) -> int:
    q = trade["quantity"]
    if int(q) != q or q < 0:
        raise ValueError(
            f"trade {trade.get('order_id')!r}: quantity must be a non-negative integer, got {q!r}"
        )
    return int(q)


def _restate(book: deque[_Lot], event: Mapping[str, Any]) -> None:
    """Scale ``book``'s lots through one ex-rights event (see the module docstring)."""
    held = sum(lot.quantity for lot in book)
    before, after, ratio = int(event["quantity_before"]), int(event["quantity_after"]), float(event["ratio"])
    if held != before:
        raise ValueError(f"ex-rights {event['symbol']} on {event['date']}: {before} shares before, "
                         f"but the fills leave {held} held")
    exact = [lot.quantity * ratio for lot in book]
    new = [int(x + 1e-6) for x in exact]
    by_fraction = sorted(range(len(book)), key=lambda k: -(exact[k] - new[k]))  # stable: older first on ties
    for k in by_fraction[: max(after - sum(new), 0)]:
        new[k] += 1
    for lot, q in zip(list(book), new, strict=True):
        if q == 0:
            book.remove(lot)
            continue
        lot.price *= lot.quantity / q
        lot.cost_per_share *= lot.quantity / q
        lot.quantity = q


def _run(
    trades: Iterable[Mapping[str, Any]], ex_rights: Iterable[Mapping[str, Any]] = ()
) -> tuple[list[dict[str, Any]], dict[str, deque[_Lot]]]:
    # An ex-date's restatement happens at the open, before that day's fills.
    timeline = sorted([(str(e["date"]), 0, e) for e in ex_rights] + [(str(t["date"]), 1, t) for t in trades],
                      key=lambda x: x[:2])
    books: dict[str, deque[_Lot]] = {}
    closed: list[dict[str, Any]] = []
    for _, kind, t in timeline:
        if kind == 0:
            _restate(books.setdefault(str(t["symbol"]), deque()), t)
            continue
        side, qty = _side(t), _quantity(t)
        if qty == 0:
            continue
        symbol, date, price = str(t["symbol"]), str(t["date"]), float(t["price"])
        costs = float(t.get("commission") or 0.0) + float(t.get("tax") or 0.0)
        book = books.setdefault(symbol, deque())
        if side == "buy":
            book.append(_Lot(date, t.get("order_id"), qty, price, costs / qty))
            continue

        held = sum(lot.quantity for lot in book)
        if qty > held:
            raise ValueError(
                f"trade {t.get('order_id')!r}: sells {qty} {symbol} on {date} but only {held} are held"
            )
        remaining = qty
        open_value = 0.0
        buy_costs = 0.0
        lots: list[dict[str, Any]] = []
        while remaining:
            lot = book[0]
            take = min(remaining, lot.quantity)
            open_value += take * lot.price
            buy_costs += take * lot.cost_per_share
            lots.append(
                {"open_date": lot.date, "order_id": lot.order_id, "quantity": take, "price": lot.price}
            )
            lot.quantity -= take
            remaining -= take
            if lot.quantity == 0:
                book.popleft()
        close_value = qty * price
        total_costs = buy_costs + costs
        pnl = close_value - open_value - total_costs
        basis = open_value + buy_costs
        closed.append(
            {
                "symbol": symbol,
                "open_date": lots[0]["open_date"],
                "close_date": date,
                "quantity": qty,
                "open_value": open_value,
                "close_value": close_value,
                "costs": total_costs,
                "pnl": pnl,
                "return": pnl / basis if basis > 0 else None,
                "close_order_id": t.get("order_id"),
                "lots": lots,
            }
        )
    return closed, books


def round_trips(
    trades: Iterable[Mapping[str, Any]], ex_rights: Iterable[Mapping[str, Any]] = ()
) -> list[dict[str, Any]]:
    """The closed round trips of a fill list, in the order their sells were filled.

    Each is a JSON-serialisable dict: ``symbol``, ``open_date`` (earliest buy consumed),
    ``close_date`` (the sell's date), ``quantity`` (shares sold), ``open_value`` (Σ q·buy price),
    ``close_value`` (q·sell price), ``costs`` (allocated buy commission + sell commission + tax),
    ``pnl`` (close_value − open_value − costs), ``return`` (pnl / (open_value + allocated buy
    commission)), ``close_order_id``, and ``lots``: the consumed pieces of buy lots, each
    ``{open_date, order_id, quantity, price}``.
    """
    return _run(trades, ex_rights)[0]


def open_lots(
    trades: Iterable[Mapping[str, Any]], ex_rights: Iterable[Mapping[str, Any]] = ()
) -> list[dict[str, Any]]:
    """Buy lots (or their unsold remainders) still open after all fills, oldest first per symbol."""
    return [
        {
            "symbol": symbol,
            "open_date": lot.date,
            "order_id": lot.order_id,
            "quantity": lot.quantity,
            "price": lot.price,
        }
        for symbol, book in _run(trades, ex_rights)[1].items()
        for lot in book
    ]
