"""The market as of one day: ``MarketTape`` grows one trading day at a time.

Everything the engine and the strategy read about the market goes through a tape, and a tape
knows nothing after its current row ``T``:

- derived trading values per day — traded that day (``has_bar``), last close carried over
  suspensions, the reference price (``pre_close``, or the ex-reference price on an ex-rights
  day), up/down limits by board, date and ST status (``rules``), ex-rights events where
  adj_factor steps — are computed row by row as days are appended, with one function, on the
  trusted side and in the strategy's process alike;
- the strategy's price view (``view``) is point in time: on day T, qfq shows every price of a
  day d ≤ T as raw × adj_d / adj_T, so today's bar is today's traded price and history is
  re-scaled only once an ex-date has actually happened; hfq shows raw × adj_d; none shows raw.

The trusted side builds its tape over the whole panel (``MarketTape.over``: rows are the panel's
own arrays, nothing is copied) and advances it day by day; the strategy's process builds an empty
tape (``MarketTape.empty``) and appends each day's raw row as it arrives — a row after T does not
exist there yet.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from engine_svc.engine.panel import BAR_FIELDS, DAILY_BASIC_FIELDS, Panel
from engine_svc.engine.rules import board_limits, board_of, limit_pct_row, price_limits_row

# Fields whose values are prices, i.e. change under qfq/hfq adjustment. Volume and amount are
# shown as traded (Tushare's pro_bar adjusts prices only), and so is adj_factor itself.
PRICE_FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "pre_close", "up_limit", "down_limit")
# Fields of a zquant-style bar_data entry, in this order.
BAR_DATA_FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "pre_close", "volume", "amount")

ExRights = list[tuple[int, float, float]]  # [(symbol column, ratio, ex-reference price)] of one day


def _readonly(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.flags.writeable = False
    return v


def has_adj_factor(panel: Panel) -> bool:
    """Whether the data carries any adj_factor (else qfq/hfq/none all show raw prices)."""
    return bool(np.isfinite(panel.bars["adj_factor"]).any())


class AdjustedView(Mapping[str, np.ndarray]):
    """Bar field → the strategy's read-only (rows × symbols) array, valid up to the tape's row T.

    Price fields under qfq/hfq are materialised lazily, per field and per symbol: rows are
    scaled when first read, and a symbol's already scaled rows are recomputed only when its
    factor history changed (an ex-date under qfq; the first known factor under both), not
    every day.
    """

    def __init__(self, tape: MarketTape, adjust_type: str) -> None:
        self._tape = tape
        self._adjust = adjust_type if adjust_type in ("qfq", "hfq") else "none"
        self._cache: dict[str, np.ndarray] = {}
        self._done: dict[str, int] = {}  # field → last materialised row
        self._epoch: dict[str, np.ndarray] = {}  # field → tape.adj_epoch when materialised

    def __getitem__(self, name: str) -> np.ndarray:
        tape = self._tape
        raw = tape.raw[name]
        if self._adjust == "none" or name not in PRICE_FIELDS:
            return tape.ro_raw[name]
        arr = self._cache.get(name)
        t = tape.t
        if arr is None:
            arr = self._cache[name] = np.full(raw.shape, np.nan)
            self._done[name] = -1
            self._epoch[name] = tape.adj_epoch.copy()
        done = self._done[name]
        stale = (tape.adj_epoch != self._epoch[name]).nonzero()[0]
        if stale.size and done >= 0:
            arr[: done + 1, stale] = raw[: done + 1, stale] * self._mult(slice(0, done + 1), stale)
        if done < t:
            arr[done + 1 : t + 1] = raw[done + 1 : t + 1] * self._mult(slice(done + 1, t + 1), slice(None))
        self._done[name] = t
        if stale.size:
            self._epoch[name] = tape.adj_epoch.copy()
        return _readonly(arr)

    def _mult(self, rows: slice, cols: slice | np.ndarray) -> np.ndarray:
        """Multipliers for ``rows`` as of the tape's day T (1 where no factor is known yet)."""
        tape = self._tape
        adj = tape.adj_known[rows][:, cols]
        with np.errstate(invalid="ignore", divide="ignore"):
            m = adj if self._adjust == "hfq" else adj / tape.adj_known[tape.t][cols]
        return np.where(np.isnan(m), 1.0, m)

    def __iter__(self) -> Iterator[str]:
        return iter(BAR_FIELDS)

    def __len__(self) -> int:
        return len(BAR_FIELDS)


class MarketTape:
    """Rows × symbols arrays filled up to row ``t`` (see the module docstring)."""

    def __init__(
        self, dates: np.ndarray, symbols: tuple[str, ...], raw: dict[str, np.ndarray], is_st: np.ndarray,
        daily_basic: dict[str, np.ndarray] | None, adjust_type: str,
    ) -> None:
        n_rows, n_sym = len(dates), len(symbols)
        self.dates = dates  # datetime64[D]; rows after t may be NaT (strategy side)
        self.symbols = symbols
        self.symbol_index = {s: j for j, s in enumerate(symbols)}
        self.boards = tuple(board_of(s) for s in symbols)
        self.is_star = np.array([b == "star" for b in self.boards], dtype=bool)
        self._pct_base, self._chinext = board_limits(self.boards)
        self.raw = raw  # unadjusted bar fields (BAR_FIELDS)
        self.ro_raw = {k: _readonly(v) for k, v in raw.items()}
        self.is_st = is_st
        self.daily_basic = daily_basic
        self.dates_str: list[str] = []
        self.t = -1
        shape = (n_rows, n_sym)
        self.has_bar = np.zeros(shape, dtype=bool)
        self.last_close = np.full(shape, np.nan)  # unadjusted close carried over suspensions
        self.pre_close = np.full(shape, np.nan)  # reference price the limits are computed from
        self.up_limit = np.full(shape, np.nan)
        self.down_limit = np.full(shape, np.nan)
        self.ex_rights: dict[int, ExRights] = {}
        # adj_factor as known on day t for every row ≤ t: carried forward over gaps, and the
        # leading gap filled with the first factor once one is known.
        self.adj_known = np.full(shape, np.nan)
        self.adj_epoch = np.zeros(n_sym, dtype=np.int64)  # bumped when a symbol's view must re-scale
        self._adj_traded = np.full(n_sym, np.nan)  # last factor seen on a day with a bar (ex-rights)
        self._requalify_on_ex_date = adjust_type == "qfq"
        self.view = AdjustedView(self, adjust_type)

    @classmethod
    def over(cls, panel: Panel, adjust_type: str) -> MarketTape:
        """The trusted side's tape over a whole panel (no copies); advance it with ``advance()``."""
        is_st = panel.is_st if panel.is_st is not None else np.zeros(panel.shape, dtype=bool)
        return cls(panel.dates, panel.symbols, panel.bars, is_st, panel.daily_basic, adjust_type)

    @classmethod
    def empty(cls, symbols: tuple[str, ...], n_rows: int, adjust_type: str, daily_basic: bool) -> MarketTape:
        """The strategy side's tape: nothing known until rows are appended with ``append()``."""
        shape = (n_rows, len(symbols))
        raw = {f: np.full(shape, np.nan) for f in BAR_FIELDS}
        basic = {f: np.full(shape, np.nan) for f in DAILY_BASIC_FIELDS} if daily_basic else None
        return cls(np.full(n_rows, np.datetime64("NaT"), dtype="datetime64[D]"), tuple(symbols), raw,
                   np.zeros(shape, dtype=bool), basic, adjust_type)

    # ------------------------------------------------------------------------------ growing
    def append(self, date: np.datetime64, bars: np.ndarray, is_st: np.ndarray, basic: np.ndarray | None) -> None:
        """Add the next day's raw data (strategy side): ``bars`` is (len(BAR_FIELDS), n_symbols)
        in BAR_FIELDS order, ``basic`` (len(DAILY_BASIC_FIELDS), n_symbols) or None."""
        i = self.t + 1
        self.dates[i] = date
        for k, f in enumerate(BAR_FIELDS):
            self.raw[f][i] = bars[k]
        self.is_st[i] = is_st
        if self.daily_basic is not None and basic is not None:
            for k, f in enumerate(DAILY_BASIC_FIELDS):
                self.daily_basic[f][i] = basic[k]
        self.advance()

    def advance(self) -> None:
        """Make the next row current and derive its trading values (both sides)."""
        i = self.t + 1
        raw = self.raw
        close = raw["close"][i]
        has = ~np.isnan(close)
        self.has_bar[i] = has
        prev_close = self.last_close[i - 1] if i else np.full(close.shape, np.nan)
        self.last_close[i] = np.where(has, close, prev_close)
        pre_data = raw["pre_close"][i]
        # pre_close missing on a trading day: fall back to the previous known close.
        pre = np.where(np.isnan(pre_data) & has, prev_close, pre_data)
        events = self._ex_rights(i, has, pre_data, prev_close)
        for j, _, ref in events:  # on an ex-date the reference is the ex-reference price
            pre[j] = ref
        self.pre_close[i] = pre
        pct = limit_pct_row(self._pct_base, self._chinext, self.dates[i], self.is_st[i])
        self.up_limit[i], self.down_limit[i] = price_limits_row(pct, pre, raw["up_limit"][i], raw["down_limit"][i])
        self._know_adj(i)
        self.dates_str.append(str(self.dates[i]))
        self.t = i

    def _ex_rights(self, i: int, has: np.ndarray, pre_data: np.ndarray, prev_close: np.ndarray) -> ExRights:
        """Tushare's adj_factor is cumulative: on an ex-rights / ex-dividend day it steps by
        ratio = adj_i / adj_prev (the last factor seen on a day with a bar), and the exchange's
        ex-reference price is that day's pre_close (previous close / ratio when missing)."""
        adj = self.raw["adj_factor"][i]
        known = np.isfinite(adj) & has
        if not known.any():
            return []
        prev = self._adj_traded
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = adj / prev
        event = known & np.isfinite(ratio) & (ratio > 0) & (np.abs(ratio - 1.0) > 1e-9)
        self._adj_traded = np.where(known, adj, prev)
        cols = event.nonzero()[0]
        if cols.size == 0:
            return []
        ref = np.where(np.isfinite(pre_data), pre_data, prev_close / ratio)
        events = list(zip(cols.tolist(), ratio[cols].tolist(), ref[cols].tolist(), strict=True))
        self.ex_rights[i] = events
        return events

    def _know_adj(self, i: int) -> None:
        adj = self.raw["adj_factor"][i]
        finite = np.isfinite(adj)
        if i == 0:
            self.adj_known[0] = adj
            if finite.any():
                self.adj_epoch[finite] += 1
            return
        prev = self.adj_known[i - 1]
        first = finite & np.isnan(prev)
        if first.any():  # a symbol's first known factor: earlier rows take it too (known now)
            self.adj_known[:i, first] = adj[first]
            self.adj_epoch[first] += 1
        self.adj_known[i] = np.where(finite, adj, prev)
        if self._requalify_on_ex_date:
            with np.errstate(invalid="ignore"):
                stepped = finite & ~first & (adj != prev)
            self.adj_epoch[stepped] += 1

    # ------------------------------------------------------------------------------ reading
    def row_of(self, day: np.datetime64) -> int | None:
        """Row of a trading day up to ``t``, or None."""
        k = int(np.searchsorted(self.dates[: self.t + 1], day))
        return k if k <= self.t and self.dates[k] == day else None
