"""The zquant strategy API: ``BaseStrategy``, ``Context``, ``Portfolio``, ``Position`` and the
cross-sectional ``BarArrays``.

Strategy code imports these as ``zquant.backtest.strategy.BaseStrategy`` and
``zquant.backtest.context.Context`` (see ``strategy_loader.install_zquant_aliases``).

Conventions (documented for strategy authors):
- ``context.current_date`` is a ``datetime.date`` (as in zquant); ``context.current_date_str``
  is the same day as ``"YYYY-MM-DD"``.
- Prices in ``bar_data`` and ``history`` are in the run's ``adjust_type`` view, point in time:
  under qfq (the default) a day d's price seen on day T is raw × adj_d / adj_T, so today's bar
  is exactly today's traded price and earlier prices are re-scaled once an ex-date has happened
  (never because of one that is still to come); hfq is raw × adj_d; none is raw. Everything about
  money (``current_price``, ``avg_cost``, fills, values) is in unadjusted traded prices.
- ``portfolio.cash`` is free cash: open buy orders' reservations are already taken out.
- ``context.cancel_order(order)`` cancels an order placed today before it is matched.
- The strategy sees only data up to today. In engine_svc it runs in its own sandboxed process
  that receives each day's bars after answering the day before; the ledger of record is kept
  outside it (docs/engine.md "Trust boundary").
- Orders are matched at the next trading day's open. ``order_target*``/``order_value``/
  ``order_percent`` turn values into shares at today's close (or the limit price), count
  today's open orders towards the target, and place nothing when the lot-rounded quantity is
  0; an explicit ``order()`` below one lot is recorded as rejected.

Cross-sectional mode: a strategy with ``bar_mode = "arrays"`` gets a ``BarArrays`` in
``on_bar`` (numpy rows over all symbols for today, in ``context.symbols`` column order) and
can use ``context.history_matrix(field, n)`` → (≤n, n_symbols) and
``context.order_target_values(values)`` / ``context.order_target_percents(weights)`` (NaN =
leave the symbol alone) with ``context.portfolio.quantities`` — no per-symbol Python.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from engine_svc.engine import intents as it
from engine_svc.engine.broker import Broker
from engine_svc.engine.market import BAR_DATA_FIELDS, MarketTape
from engine_svc.engine.orders import Order
from engine_svc.engine.panel import BAR_FIELDS, DAILY_BASIC_FIELDS
from engine_svc.engine.trader import Trader

MAX_LOG_CHARS = 2_000  # per context.log line
LogSink = Callable[[str], None]


class BaseStrategy:
    """Subclass as ``class Strategy(BaseStrategy)`` and override ``initialize``/``on_bar``.

    Set the class attribute ``bar_mode = "arrays"`` to receive a ``BarArrays`` (numpy rows over
    all symbols) instead of the zquant dict in ``on_bar``.
    """

    bar_mode: str = "dict"

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        self.params: dict[str, Any] = dict(params or {})
        self.initialize()

    def initialize(self) -> None:
        """Called exactly once, from ``__init__``."""

    def on_bar(self, context: Context, bar_data: Any) -> None:
        """Called every trading day after yesterday's orders were matched at today's open."""

    # Optional: def on_order_status(self, context, order) -> None — called when an order fills,
    # is rejected, expires or is cancelled.


class Position:
    """A snapshot of one holding, valued at the last close (unadjusted)."""

    __slots__ = ("avg_cost", "current_price", "quantity", "sellable", "symbol")

    def __init__(
        self, symbol: str, quantity: int, sellable: int, avg_cost: float, current_price: float
    ) -> None:
        self.symbol = symbol
        self.quantity = quantity
        self.sellable = sellable  # shares not bought today (T+1)
        self.avg_cost = avg_cost  # average fill price (slippage included, fees excluded)
        self.current_price = current_price

    @property
    def market_value(self) -> float:
        return self.quantity * self.current_price if self.quantity else 0.0

    @property
    def profit(self) -> float:
        return (self.current_price - self.avg_cost) * self.quantity if self.quantity else 0.0

    @property
    def profit_pct(self) -> float:
        if not self.quantity or self.avg_cost <= 0:
            return 0.0
        return self.current_price / self.avg_cost - 1.0

    def __repr__(self) -> str:
        return (f"Position({self.symbol}, quantity={self.quantity}, sellable={self.sellable}, "
                f"avg_cost={self.avg_cost:.4f}, current_price={self.current_price})")


class Portfolio:
    """Cash and holdings as the strategy sees them on the current day."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._cache_key: tuple[int, int] | None = None
        self._positions: dict[str, Position] = {}
        self.initial_capital = ctx._broker.cash
        self.starting_cash = self.initial_capital

    @property
    def cash(self) -> float:
        return self._ctx._broker.free_cash

    available_cash = cash

    @property
    def reserved_cash(self) -> float:
        """Cash held back for today's open buy orders."""
        return self._ctx._broker.reserved

    @property
    def market_value(self) -> float:
        return self._ctx._broker.market_value(self._ctx._i)

    @property
    def total_value(self) -> float:
        return self._ctx._broker.total_value(self._ctx._i)

    @property
    def quantities(self) -> np.ndarray:
        """Read-only int64 holdings over all symbols (column order of ``context.symbols``)."""
        v = self._ctx._broker.qty.view()
        v.flags.writeable = False
        return v

    @property
    def positions(self) -> dict[str, Position]:
        """Held symbols only. Built once per day (positions only change at the open)."""
        b = self._ctx._broker
        key = (self._ctx._i, b.version)
        if key != self._cache_key:
            i = self._ctx._i
            tape = self._ctx._tape
            held = b.qty.nonzero()[0]
            syms = tape.symbols
            self._positions = {
                syms[j]: Position(syms[j], q, q - bt, ac, lc)
                for j, q, bt, ac, lc in zip(
                    held.tolist(), b.qty[held].tolist(), b.bought_today[held].tolist(),
                    b.avg_cost[held].tolist(), tape.last_close[i, held].tolist(), strict=True,
                )
            }
            self._cache_key = key
        return self._positions

    def get_position(self, symbol: str) -> Position:
        """The holding, or a zero position priced at today's close for an unheld symbol."""
        pos = self.positions.get(symbol)
        if pos is not None:
            return pos
        j = self._ctx._col(symbol)
        return Position(symbol, 0, 0, 0.0, float(self._ctx._tape.last_close[self._ctx._i, j]))


class BarArrays:
    """Today's bars over all symbols as read-only numpy rows (``bar_mode = "arrays"``).

    Price rows are in the adjust_type view, NaN where a symbol has no bar; ``has_bar`` masks
    them. Building one costs O(1): each row is read from the tape's view only when accessed.
    """

    __slots__ = ("_tape", "date", "date_str", "index", "symbols")

    def __init__(self, tape: MarketTape, i: int, date: _dt.date) -> None:
        self._tape = tape
        self.index = i
        self.date = date
        self.date_str = tape.dates_str[i]
        self.symbols = tape.symbols

    def __getitem__(self, field: str) -> np.ndarray:
        if field == "has_bar":
            return self.has_bar
        if field not in BAR_FIELDS:
            raise KeyError(field)
        return self._tape.view[field][self.index]

    @property
    def has_bar(self) -> np.ndarray:
        v = self._tape.has_bar[self.index].view()
        v.flags.writeable = False
        return v

    @property
    def open(self) -> np.ndarray:
        return self._tape.view["open"][self.index]

    @property
    def high(self) -> np.ndarray:
        return self._tape.view["high"][self.index]

    @property
    def low(self) -> np.ndarray:
        return self._tape.view["low"][self.index]

    @property
    def close(self) -> np.ndarray:
        return self._tape.view["close"][self.index]

    @property
    def pre_close(self) -> np.ndarray:
        return self._tape.view["pre_close"][self.index]

    @property
    def volume(self) -> np.ndarray:
        return self._tape.view["volume"][self.index]

    @property
    def amount(self) -> np.ndarray:
        return self._tape.view["amount"][self.index]

    @property
    def adj_factor(self) -> np.ndarray:
        return self._tape.view["adj_factor"][self.index]


class Context:
    """What ``on_bar`` gets: the date, the portfolio, order methods and data access.

    Strategy code may set its own attributes on the context; engine state is underscored.
    ``intents`` (in the strategy's process under engine_svc) records every order call for the
    trusted side to replay; ``log`` receives the strategy's log lines.
    """

    def __init__(self, tape: MarketTape, broker: Broker, log: LogSink,
                 intents: it.DayIntents | None = None) -> None:
        self._tape = tape
        self._broker = broker
        self._log_sink = log
        self._trader = Trader(broker, log)
        self._intents = intents
        self._i = 0
        self._date = _dt.date.min
        self._strategy: Any = None
        self.symbols: tuple[str, ...] = tape.symbols
        self.universe: list[str] = list(tape.symbols)
        self.portfolio = Portfolio(self)

    # ------------------------------------------------------------------ engine side
    def _set_day(self, i: int) -> None:
        self._i = i
        self._trader.i = i
        self._date = _dt.date.fromisoformat(self._tape.dates_str[i])

    def _col(self, symbol: str) -> int:
        try:
            return self._tape.symbol_index[symbol]
        except (KeyError, TypeError):
            raise ValueError(f"unknown symbol {symbol!r}: not one of this backtest's symbols") from None

    def _do(self, op: int, col: int = -1, ival: int = 0, fval: float = 0.0, price: float | None = None,
            array: np.ndarray | None = None) -> Any:
        """Record the intent (when recording), run it against the broker this context sees, then
        tell the strategy about every order that is already closed (rejected at submission,
        cancelled) — after the call, so a callback's own orders come after this call's."""
        rec = self._intents
        k = rec.add(op, col, ival, fval, price, array) if rec is not None else -1
        try:
            out = it.dispatch(self._trader, op, col, 0 if array is not None else ival, fval, price, (array,))
        except BaseException:
            if k >= 0:
                rec.mark_raised(k)  # type: ignore[union-attr]
            raise
        cb = getattr(self._strategy, "on_order_status", None)
        if cb is not None and out is not None:
            for o in (out if isinstance(out, list) else (out,)):
                if not o.is_open:
                    cb(self, o)
        return out

    # ------------------------------------------------------------------ dates
    @property
    def current_date(self) -> _dt.date:
        return self._date

    @property
    def current_date_str(self) -> str:
        return self._tape.dates_str[self._i]

    # ------------------------------------------------------------------ orders
    def order(self, symbol: str, quantity: float, price: float | None = None) -> Order | None:
        """Buy (quantity > 0) or sell (< 0) shares at tomorrow's open, or as a limit order."""
        return self._do(it.ORDER, self._col(symbol), it.normalise_quantity(quantity),
                        price=it.normalise_price(price))

    def order_target(self, symbol: str, quantity: float, price: float | None = None) -> Order | None:
        """Order the difference between ``quantity`` and the holding (incl. today's open orders)."""
        return self._do(it.ORDER_TARGET, self._col(symbol), it.normalise_quantity(quantity),
                        price=it.normalise_price(price))

    def order_value(self, symbol: str, value: float, price: float | None = None) -> Order | None:
        return self._do(it.ORDER_VALUE, self._col(symbol), fval=float(value), price=it.normalise_price(price))

    def order_target_value(self, symbol: str, value: float, price: float | None = None) -> Order | None:
        return self._do(it.ORDER_TARGET_VALUE, self._col(symbol), fval=float(value), price=it.normalise_price(price))

    def order_percent(self, symbol: str, percent: float, price: float | None = None) -> Order | None:
        return self._do(it.ORDER_PERCENT, self._col(symbol), fval=float(percent), price=it.normalise_price(price))

    def order_target_percent(self, symbol: str, percent: float, price: float | None = None) -> Order | None:
        return self._do(it.ORDER_TARGET_PERCENT, self._col(symbol), fval=float(percent),
                        price=it.normalise_price(price))

    # Vectorised helpers for bar_mode = "arrays": one call rebalances every symbol.
    def order_target_values(self, values: Sequence[float] | np.ndarray) -> list[Order]:
        """Target a value (unadjusted money) per symbol column; NaN leaves a symbol alone.

        Same arithmetic as ``order_target_value`` symbol by symbol; sells are submitted before
        buys, each in column order. Symbols without any price are skipped.
        """
        return self._do(it.TARGET_VALUES, array=it.normalise_array(values, len(self.symbols)))

    def order_target_percents(self, weights: Sequence[float] | np.ndarray) -> list[Order]:
        """Target a fraction of total value per symbol column; NaN leaves a symbol alone."""
        return self._do(it.TARGET_PERCENTS, array=it.normalise_array(weights, len(self.symbols)))

    def cancel_order(self, order: Order | int) -> Order | None:
        """Cancel an order placed today (an ``Order`` or its ``order_id``) before it is matched.
        Returns the cancelled order, or None when it is no longer open."""
        order_id = order.order_id if isinstance(order, Order) else it.normalise_quantity(order)
        return self._do(it.CANCEL, ival=order_id)

    def get_open_orders(self) -> list[Order]:
        return list(self._broker.open_orders)

    # ------------------------------------------------------------------ data
    def history(self, symbols: str | Sequence[str], field: str, n: int) -> np.ndarray:
        """The last ``n`` values of ``field`` up to and including today (fewer at the start).

        One symbol → 1-D array; a list of k symbols → 2-D (n, k). NaN on days without a bar.
        """
        arr = self._field(field)
        n = int(n)
        if n <= 0:
            raise ValueError("n must be positive")
        lo = max(0, self._i - n + 1)
        if isinstance(symbols, str):
            return np.array(arr[lo : self._i + 1, self._col(symbols)])
        cols = [self._col(s) for s in symbols]
        return np.array(arr[lo : self._i + 1][:, cols])

    def history_matrix(self, field: str, n: int) -> np.ndarray:
        """Read-only (n, n_symbols) view of the last ``n`` days of ``field`` (arrays mode)."""
        arr = self._field(field)
        return arr[max(0, self._i - int(n) + 1) : self._i + 1]

    def _field(self, field: str) -> np.ndarray:
        if field not in BAR_FIELDS:
            raise ValueError(f"unknown field {field!r}; one of {', '.join(BAR_FIELDS)}")
        return self._tape.view[field]

    def get_daily_basic(
        self, symbol: str, date: str | _dt.date | None = None
    ) -> dict[str, float | None] | None:
        """Daily indicators for ``symbol`` on ``date`` (default today); None when not loaded or
        not a trading day. Asking for a future date is an error (no look-ahead)."""
        j = self._col(symbol)
        basic = self._tape.daily_basic
        i: int | None = self._i
        if date is not None:
            d = _as_day(date)
            if d > np.datetime64(self.current_date_str, "D"):
                raise ValueError(f"get_daily_basic: {date} is after the current date {self.current_date_str}")
            i = self._tape.row_of(d)
            if i is None:
                return None
        if not basic:
            return None
        out: dict[str, float | None] = {}
        for name in DAILY_BASIC_FIELDS:
            a = basic.get(name)
            v = float(a[i, j]) if a is not None else math.nan
            out[name] = v if math.isfinite(v) else None
        return out

    def log(self, *parts: Any) -> None:
        """Append a line to the result's logs (capped)."""
        text = " ".join(str(p) for p in parts)
        self._log_sink(text[:MAX_LOG_CHARS])

    def _bar_dict(self) -> dict[str, dict[str, float]]:
        """zquant-style bar_data for symbols with a bar today, built from numpy rows."""
        tape, i = self._tape, self._i
        cols = tape.has_bar[i].nonzero()[0]
        if cols.size == 0:
            return {}
        view = tape.view
        rows = np.stack([view[f][i, cols] for f in BAR_DATA_FIELDS], axis=1).tolist()
        syms = tape.symbols
        return {
            syms[j]: dict(zip(BAR_DATA_FIELDS, row, strict=True))
            for j, row in zip(cols.tolist(), rows, strict=True)
        }

    def _bar_arrays(self) -> BarArrays:
        return BarArrays(self._tape, self._i, self._date)


def _as_day(value: str | _dt.date) -> np.datetime64:
    """A date, ISO string or Tushare ``YYYYMMDD`` string as datetime64[D]."""
    text = value.isoformat() if isinstance(value, _dt.date) else str(value).strip()
    if len(text) == 8 and text.isdigit():
        text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
    try:
        return np.datetime64(text[:10], "D")
    except ValueError:
        raise ValueError(f"not a date: {value!r}") from None
