"""The zquant strategy API: ``BaseStrategy``, ``Context``, ``Portfolio``, ``Position`` and the
cross-sectional ``BarArrays``.

Strategy code imports these as ``zquant.backtest.strategy.BaseStrategy`` and
``zquant.backtest.context.Context`` (see ``strategy_loader.install_zquant_aliases``).

Conventions (documented for strategy authors):
- ``context.current_date`` is a ``datetime.date`` (as in zquant); ``context.current_date_str``
  is the same day as ``"YYYY-MM-DD"``.
- Prices in ``bar_data`` and ``history`` are in the run's ``adjust_type`` view; everything about
  money (``current_price``, ``avg_cost``, fills, values) is in unadjusted traded prices.
- ``portfolio.cash`` is free cash: open buy orders' reservations are already taken out.
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
from collections.abc import Sequence
from typing import Any

import numpy as np

from engine_svc.engine import batch
from engine_svc.engine.broker import Broker
from engine_svc.engine.market import BAR_DATA_FIELDS, MarketData
from engine_svc.engine.orders import OPEN, Order
from engine_svc.engine.panel import BAR_FIELDS, DAILY_BASIC_FIELDS
from engine_svc.engine.rules import round_quantities

MAX_LOG_LINES = 10_000
MAX_LOG_CHARS = 2_000


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
    # is rejected or expires.


class Position:
    """A snapshot of one holding, valued at the last close (unadjusted)."""

    __slots__ = ("avg_cost", "current_price", "quantity", "sellable", "symbol")

    def __init__(
        self, symbol: str, quantity: int, sellable: int, avg_cost: float, current_price: float
    ) -> None:
        self.symbol = symbol
        self.quantity = quantity
        self.sellable = sellable  # shares not bought today (T+1)
        self.avg_cost = avg_cost  # average fill price, fees excluded
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
            m = self._ctx._market
            held = b.qty.nonzero()[0]
            self._positions = {
                m.panel.symbols[j]: Position(
                    m.panel.symbols[j], q, q - bt, ac, lc
                )
                for j, q, bt, ac, lc in zip(
                    held.tolist(), b.qty[held].tolist(), b.bought_today[held].tolist(),
                    b.avg_cost[held].tolist(), m.last_close[i, held].tolist(), strict=True,
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
        return Position(symbol, 0, 0, 0.0, float(self._ctx._market.last_close[self._ctx._i, j]))


class BarArrays:
    """Today's bars over all symbols as read-only numpy rows (``bar_mode = "arrays"``).

    Price rows are in the adjust_type view, NaN where a symbol has no bar; ``has_bar`` masks
    them. Building one costs O(1): each row is a view into an array computed once per run, and
    only on first access (fields a strategy never reads are never computed).
    """

    __slots__ = ("_m", "date", "date_str", "index", "symbols")

    def __init__(self, m: MarketData, i: int, date: _dt.date) -> None:
        self._m = m
        self.index = i
        self.date = date
        self.date_str = m.dates_str[i]
        self.symbols = m.panel.symbols

    def __getitem__(self, field: str) -> np.ndarray:
        if field == "has_bar":
            return self.has_bar
        if field not in BAR_FIELDS:
            raise KeyError(field)
        return self._m.view[field][self.index]

    @property
    def has_bar(self) -> np.ndarray:
        return self._m.has_bar[self.index]

    @property
    def open(self) -> np.ndarray:
        return self._m.view["open"][self.index]

    @property
    def high(self) -> np.ndarray:
        return self._m.view["high"][self.index]

    @property
    def low(self) -> np.ndarray:
        return self._m.view["low"][self.index]

    @property
    def close(self) -> np.ndarray:
        return self._m.view["close"][self.index]

    @property
    def pre_close(self) -> np.ndarray:
        return self._m.view["pre_close"][self.index]

    @property
    def volume(self) -> np.ndarray:
        return self._m.view["volume"][self.index]

    @property
    def amount(self) -> np.ndarray:
        return self._m.view["amount"][self.index]

    @property
    def adj_factor(self) -> np.ndarray:
        return self._m.view["adj_factor"][self.index]


class Context:
    """What ``on_bar`` gets: the date, the portfolio, order methods and data access.

    Strategy code may set its own attributes on the context; engine state is underscored.
    """

    def __init__(self, market: MarketData, broker: Broker) -> None:
        self._market = market
        self._broker = broker
        self._i = 0
        self._date = _dt.date.fromisoformat(market.dates_str[0])
        self._strategy: Any = None
        self._logs: list[str] = []
        self._dropped_logs = 0
        self.symbols: tuple[str, ...] = market.panel.symbols
        self.universe: list[str] = list(market.panel.symbols)
        self.portfolio = Portfolio(self)

    # ------------------------------------------------------------------ engine side
    def _set_day(self, i: int) -> None:
        self._i = i
        self._date = _dt.date.fromisoformat(self._market.dates_str[i])

    def _col(self, symbol: str) -> int:
        try:
            return self._market.symbol_index[symbol]
        except KeyError:
            raise ValueError(f"unknown symbol {symbol!r}: not one of this backtest's symbols") from None

    def _notify(self, order: Order | None) -> Order | None:
        cb = getattr(self._strategy, "on_order_status", None)
        if order is not None and not order.is_open and cb is not None:
            cb(self, order)
        return order

    # ------------------------------------------------------------------ dates
    @property
    def current_date(self) -> _dt.date:
        return self._date

    @property
    def current_date_str(self) -> str:
        return self._market.dates_str[self._i]

    # ------------------------------------------------------------------ prices
    def _price(self, j: int, price: float | None) -> float:
        """Price used to turn values into share counts: the limit price, else today's close."""
        return float(price) if price is not None else float(self._market.last_close[self._i, j])

    def _effective_qty(self, j: int) -> int:
        b = self._broker
        return int(b.qty[j] + b.pending_buy[j] - b.pending_sell[j])

    # ------------------------------------------------------------------ orders
    def order(self, symbol: str, quantity: float, price: float | None = None) -> Order | None:
        """Buy (quantity > 0) or sell (< 0) shares at tomorrow's open, or as a limit order."""
        j = self._col(symbol)
        limit = _check_limit_price(price)
        return self._notify(self._broker.submit(self._i, j, int(quantity), limit, drop_zero=False))

    def _order_delta(self, j: int, delta: int, limit: float | None) -> Order | None:
        return self._notify(self._broker.submit(self._i, j, delta, limit, drop_zero=True))

    def order_target(self, symbol: str, quantity: float, price: float | None = None) -> Order | None:
        """Order the difference between ``quantity`` and the holding (incl. today's open orders)."""
        j = self._col(symbol)
        limit = _check_limit_price(price)
        return self._order_delta(j, int(quantity) - self._effective_qty(j), limit)

    def order_value(self, symbol: str, value: float, price: float | None = None) -> Order | None:
        j = self._col(symbol)
        limit = _check_limit_price(price)
        px = self._price(j, limit)
        if not (math.isfinite(px) and px > 0 and math.isfinite(value)):
            self.log(f"order_value({symbol}): no price today, order skipped")
            return None
        return self._order_delta(j, int(value / px), limit)

    def order_target_value(self, symbol: str, value: float, price: float | None = None) -> Order | None:
        j = self._col(symbol)
        limit = _check_limit_price(price)
        px = self._price(j, limit)
        if not (math.isfinite(px) and px > 0 and math.isfinite(value)):
            self.log(f"order_target_value({symbol}): no price today, order skipped")
            return None
        return self._order_delta(j, int(value / px) - self._effective_qty(j), limit)

    def order_percent(self, symbol: str, percent: float, price: float | None = None) -> Order | None:
        return self.order_value(symbol, self.portfolio.total_value * percent, price)

    def order_target_percent(self, symbol: str, percent: float, price: float | None = None) -> Order | None:
        return self.order_target_value(symbol, self.portfolio.total_value * percent, price)

    # Vectorised helpers for bar_mode = "arrays": one call rebalances every symbol.
    def order_target_values(self, values: Sequence[float] | np.ndarray) -> list[Order]:
        """Target a value (unadjusted money) per symbol column; NaN leaves a symbol alone.

        Same arithmetic as ``order_target_value`` symbol by symbol; sells are submitted before
        buys, each in column order. Symbols without any price are skipped.
        """
        target = np.asarray(values, dtype=np.float64)
        m, b = self._market, self._broker
        if target.shape != (len(m.panel.symbols),):
            raise ValueError(f"expected {len(m.panel.symbols)} values, got shape {target.shape}")
        px = m.last_close[self._i]
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
        working = round_quantities(delta, held - sold, m.is_star[cand])
        keep = working != 0
        cand, delta, working = cand[keep], delta[keep], working[keep]
        is_sell = delta < 0
        sells, buys = cand[is_sell], cand[~is_sell]
        placed: list[Order] = []
        # Sells never need cash, so a batch of them is always equivalent to one-by-one (and
        # cheaper even for a few: no per-order numpy scalar work).
        if sells.size >= batch.SELL_BATCH_MIN:
            placed += batch.submit_sells(b, self._i, sells, -delta[is_sell], working[is_sell])
        else:
            self._submit_each(sells, delta[is_sell], placed)
        fast = (
            batch.submit_buys(b, self._i, buys, delta[~is_sell], working[~is_sell])
            if buys.size >= batch.BATCH_MIN else None
        )
        if fast is not None:
            placed += fast
        else:
            self._submit_each(buys, delta[~is_sell], placed)
        return placed

    def _submit_each(self, cols: np.ndarray, delta: np.ndarray, placed: list[Order]) -> None:
        """``_order_delta`` per column (market orders), appending what was placed; an order
        that is still open needs no ``on_order_status`` call, so ``_notify`` is skipped then."""
        submit, i = self._broker.submit, self._i
        for j, d in zip(cols.tolist(), delta.tolist(), strict=True):
            o = submit(i, j, d, None, drop_zero=True)
            if o is not None:
                if o.status != OPEN:
                    self._notify(o)
                placed.append(o)

    def order_target_percents(self, weights: Sequence[float] | np.ndarray) -> list[Order]:
        """Target a fraction of total value per symbol column; NaN leaves a symbol alone."""
        w = np.asarray(weights, dtype=np.float64)
        return self.order_target_values(self.portfolio.total_value * w)

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
        return self._market.view[field]

    def get_daily_basic(
        self, symbol: str, date: str | _dt.date | None = None
    ) -> dict[str, float | None] | None:
        """Daily indicators for ``symbol`` on ``date`` (default today); None when not loaded or
        not a trading day. Asking for a future date is an error (no look-ahead)."""
        j = self._col(symbol)
        basic = self._market.panel.daily_basic
        i = self._i
        if date is not None:
            d = _as_day(date)
            if d > np.datetime64(self.current_date_str, "D"):
                raise ValueError(f"get_daily_basic: {date} is after the current date {self.current_date_str}")
            k = int(np.searchsorted(self._market.panel.dates, d))
            if k >= len(self._market.panel.dates) or self._market.panel.dates[k] != d:
                return None
            i = k
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
        if len(self._logs) >= MAX_LOG_LINES:
            self._dropped_logs += 1
            return
        text = " ".join(str(p) for p in parts)
        self._logs.append(f"{self.current_date_str} {text[:MAX_LOG_CHARS]}")

    def _bar_dict(self) -> dict[str, dict[str, float]]:
        """zquant-style bar_data for symbols with a bar today, built from numpy rows."""
        m, i = self._market, self._i
        cols = m.has_bar[i].nonzero()[0]
        if cols.size == 0:
            return {}
        rows = np.stack([m.view[f][i, cols] for f in BAR_DATA_FIELDS], axis=1).tolist()
        syms = m.panel.symbols
        return {
            syms[j]: dict(zip(BAR_DATA_FIELDS, row, strict=True))
            for j, row in zip(cols.tolist(), rows, strict=True)
        }

    def _bar_arrays(self) -> BarArrays:
        return BarArrays(self._market, self._i, self._date)


def _as_day(value: str | _dt.date) -> np.datetime64:
    """A date, ISO string or Tushare ``YYYYMMDD`` string as datetime64[D]."""
    text = value.isoformat() if isinstance(value, _dt.date) else str(value).strip()
    if len(text) == 8 and text.isdigit():
        text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
    try:
        return np.datetime64(text[:10], "D")
    except ValueError:
        raise ValueError(f"not a date: {value!r}") from None


def _check_limit_price(price: float | None) -> float | None:
    if price is None:
        return None
    p = float(price)
    if not (math.isfinite(p) and p > 0):
        raise ValueError(f"limit price must be a positive number, got {price!r}")
    return p
