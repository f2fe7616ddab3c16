"""The market as of one day: ``MarketTape`` grows one trading day at a time.

Everything the engine and the strategy read about the market goes through a tape, and a tape
knows nothing after its current row ``T``:

- derived trading values per day — traded that day (``has_bar``), last close carried over
  suspensions, the reference price (``pre_close``, or the ex-reference price on an ex-rights
  day), up/down limits by board, date and ST status (``rules``), ex-rights events where
  adj_factor steps, and the factors of the price view — are derived on the trusted side only,
  for the whole panel in one vectorised pass (``_derive``); the strategy's process receives each
  day's derived values with its raw bars (``daywire``) and stores them (``append``);
- the strategy's price view (``view``) is point in time: on day T, qfq shows every price of a
  day d ≤ T as raw × adj_d / adj_T, so today's bar is today's traded price and history is
  re-scaled only once an ex-date has actually happened; hfq shows raw × adj_d; none shows raw.

The trusted side builds its tape over the whole panel (``MarketTape.over``: rows are the panel's
own arrays, nothing is copied) and advances it day by day; the strategy's process builds an empty
tape (``MarketTape.empty``) and appends each day's row as it arrives — a row after T does not
exist there yet.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from engine_svc.engine.panel import BAR_FIELDS, DAILY_BASIC_FIELDS, Panel
from engine_svc.engine.rules import board_limits, board_of, limit_pct, price_limits

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


def ffill_rows(a: np.ndarray, carry: np.ndarray | None = None) -> np.ndarray:
    """Forward-fill NaNs down each column, starting from ``carry`` (the row before ``a``)."""
    if carry is not None:
        a = np.vstack([carry[None, :], a])
    n = a.shape[0]
    idx = np.where(np.isnan(a), 0, np.arange(n)[:, None])
    np.maximum.accumulate(idx, axis=0, out=idx)
    out = a[idx, np.arange(a.shape[1])[None, :]]
    return out[1:] if carry is not None else out


def has_adj_factor(panel: Panel) -> bool:
    """Whether the data carries any adj_factor (else qfq/hfq/none all show raw prices)."""
    return bool(np.isfinite(panel.bars["adj_factor"]).any())


# Derived per-row values the strategy side receives after the bar fields: last close, the
# trading up/down limits, and the view's adj_factor (NaN until the symbol's first one is known).
DERIVED_CHANNELS: tuple[str, ...] = ("last_close", "up", "down", "adj")


def channels(daily_basic: bool) -> tuple[str, ...]:
    """The float64 channels of ``DerivedRows.block``, in order."""
    return BAR_FIELDS + DERIVED_CHANNELS + (DAILY_BASIC_FIELDS if daily_basic else ())


@dataclass(frozen=True)
class DerivedRows:
    """Consecutive rows of a tape: raw data plus the derived values the strategy side stores."""

    dates: np.ndarray  # datetime64[D] (n,)
    block: np.ndarray  # float64 (n, len(channels(daily_basic)), n_symbols)
    is_st: np.ndarray  # bool (n, n_symbols)
    ex_rights: list[tuple[int, int, float, float]]  # (row, column, ratio, ex-reference price)
    first_factor: list[tuple[int, int]]  # (row, column): the column's first adj_factor
    rescale: list[tuple[int, int]]  # (row, column): the column's price view re-scales


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
        self._version: dict[str, int] = {}  # field → tape.adj_version when materialised
        self._ro: dict[str, np.ndarray] = {}  # field → the read-only view handed out

    def __getitem__(self, name: str) -> np.ndarray:
        tape = self._tape
        if self._adjust == "none" or name not in PRICE_FIELDS:
            return tape.ro_raw[name]
        raw = tape.raw[name]
        arr = self._cache.get(name)
        t = tape.t
        if arr is not None and self._version[name] == tape.adj_version:
            # No factor changed since this field was last scaled: only new rows, and under qfq
            # their multiplier adj_d / adj_T is exactly 1 (the factor has not stepped since).
            done = self._done[name]
            if done < t:
                new = slice(done + 1, t + 1)
                arr[new] = raw[new] if self._adjust == "qfq" else raw[new] * self._mult(new, slice(None))
                self._done[name] = t
            return self._ro[name]
        if arr is None:
            arr = self._cache[name] = np.empty(raw.shape)  # rows up to T are always written first
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
        self._version[name] = tape.adj_version
        ro = self._ro[name] = _readonly(arr)
        return ro

    def _mult(self, rows: slice, cols: slice | np.ndarray) -> np.ndarray:
        """Multipliers for ``rows`` as of the tape's day T: hfq adj_d, qfq adj_d / adj_T, and 1
        for a symbol whose first factor is still to come."""
        tape = self._tape
        t = tape.t
        adj = tape.adj_filled[rows][:, cols]
        known = tape.adj_first[cols] <= t
        with np.errstate(invalid="ignore", divide="ignore"):
            m = adj if self._adjust == "hfq" else adj / tape.adj_filled[t][cols]
        return np.where(known & ~np.isnan(m), m, 1.0)

    def __iter__(self) -> Iterator[str]:
        return iter(BAR_FIELDS)

    def __len__(self) -> int:
        return len(BAR_FIELDS)


class MarketTape:
    """Rows × symbols arrays, current up to row ``t`` (see the module docstring)."""

    def __init__(
        self, dates: np.ndarray, symbols: tuple[str, ...], raw: dict[str, np.ndarray], is_st: np.ndarray,
        daily_basic: dict[str, np.ndarray] | None, adjust_type: str,
    ) -> None:
        n_rows, n_sym = len(dates), len(symbols)
        self.dates = dates  # datetime64[D]; rows not yet appended are NaT (strategy side)
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
        self.t = -1  # the current day
        self._derived = 0  # rows [0, _derived) have their trading values
        shape = (n_rows, n_sym)
        # Rows are written before they are read (by _derive or append): np.empty touches no memory.
        self.has_bar = np.empty(shape, dtype=bool)
        self.last_close = np.empty(shape)  # unadjusted close carried over suspensions
        self.up_limit = np.empty(shape)
        self.down_limit = np.empty(shape)
        self.ex_rights: dict[int, ExRights] = {}
        self._adj_traded = np.full(n_sym, np.nan)  # last factor seen on a day with a bar (ex-rights)
        # The price view's factors: adj_factor carried forward over gaps, and before a symbol's
        # first factor that first factor — which the view uses only from day adj_first on.
        self.adj_filled = np.empty(shape)
        self.adj_first = np.full(n_sym, n_rows, dtype=np.int64)
        self.adj_epoch = np.zeros(n_sym, dtype=np.int64)  # bumped when a symbol's view must re-scale
        self.adj_version = 0  # bumped with any adj_epoch
        self._rescale: dict[int, list[int]] = {}  # row → symbols whose view re-scales that day
        self._first_at: dict[int, list[int]] = {}  # row → symbols whose first factor it is
        self._qfq = adjust_type == "qfq"
        self._store: np.ndarray | None = None  # strategy side: every channel, see empty()
        self.view = AdjustedView(self, adjust_type)

    @classmethod
    def over(cls, panel: Panel, adjust_type: str) -> MarketTape:
        """The trusted side's tape over a whole panel (no copies; derived in one pass); make
        each day current with ``advance()``."""
        is_st = panel.is_st if panel.is_st is not None else np.zeros(panel.shape, dtype=bool)
        tape = cls(panel.dates, panel.symbols, panel.bars, is_st, panel.daily_basic, adjust_type)
        tape._derive(len(panel.dates))
        return tape

    @classmethod
    def empty(cls, symbols: tuple[str, ...], n_rows: int, adjust_type: str, daily_basic: bool) -> MarketTape:
        """The strategy side's tape: nothing known until rows are appended with ``append()``.
        Every channel of a row lives in one store, so appending a day is one copy."""
        names = channels(daily_basic)
        store = np.empty((n_rows, len(names), len(symbols)))
        # Every row is written before the run ends: touch the pages now, in one pass (M: 66 MB,
        # ~10-20 ms) rather than one day at a time in append (page faults cost ~35 µs a day there,
        # measured in place). NaN: a row not appended yet holds no value.
        store.fill(np.nan)
        chan = {name: store[:, k] for k, name in enumerate(names)}
        basic = {f: chan[f] for f in DAILY_BASIC_FIELDS} if daily_basic else None
        tape = cls(np.full(n_rows, np.datetime64("NaT"), dtype="datetime64[D]"), tuple(symbols),
                   {f: chan[f] for f in BAR_FIELDS}, np.zeros((n_rows, len(symbols)), dtype=bool), basic, adjust_type)
        tape.last_close, tape.up_limit, tape.down_limit, tape.adj_filled = (chan[c] for c in DERIVED_CHANNELS)
        tape._store = store
        return tape

    # ------------------------------------------------------------------------------ growing
    def append(self, rows: DerivedRows) -> None:
        """Add the next rows (strategy side): raw data and the trusted side's derived values.
        They become current one by one with ``advance()``."""
        lo, hi = self._derived, self._derived + len(rows.dates)
        if self._store is None or rows.block.shape[1:] != self._store.shape[1:]:
            raise ValueError("rows do not fit this tape")
        self.dates[lo:hi] = rows.dates
        self._store[lo:hi] = rows.block
        self.is_st[lo:hi] = rows.is_st
        self.has_bar[lo:hi] = ~np.isnan(self.raw["close"][lo:hi])
        for r, j, ratio, ref in rows.ex_rights:
            self.ex_rights.setdefault(r, []).append((j, ratio, ref))
        for r, j in rows.first_factor:
            self._first_factor(j, r)
        for r, j in rows.rescale:
            self._rescale_at(r, j)
        if len(rows.dates) == 1:  # a day's feed: str() of one date is a fraction of the array call
            self.dates_str.append(str(rows.dates[0]))
        else:
            self.dates_str += np.datetime_as_string(rows.dates, unit="D").tolist()
        self._derived = hi

    def rows(self, lo: int, hi: int) -> DerivedRows:
        """Rows [lo, hi) as the strategy side needs them (trusted side → ``daywire``)."""
        sources = self._channel_arrays()
        block = np.empty((hi - lo, len(sources), len(self.symbols)))
        for k, src in enumerate(sources):
            block[:, k] = src[lo:hi] if src is not None else np.nan
        # a factor is sent only from the day it is known (the trusted tape has it backfilled)
        adj = block[:, len(BAR_FIELDS) + DERIVED_CHANNELS.index("adj")]
        adj[self.adj_first[None, :] > np.arange(lo, hi)[:, None]] = np.nan
        return DerivedRows(
            dates=self.dates[lo:hi], block=block, is_st=self.is_st[lo:hi],
            ex_rights=[(r, j, q, px) for r in range(lo, hi) for j, q, px in self.ex_rights.get(r, ())],
            first_factor=[(r, j) for r in range(lo, hi) for j in self._first_at.get(r, ())],
            rescale=[(r, j) for r in range(lo, hi) for j in self._rescale.get(r, ())],
        )

    def _channel_arrays(self) -> list[np.ndarray | None]:
        """The arrays behind ``channels()``, in order (None: an indicator the data lacks)."""
        arrays: list[np.ndarray | None] = [self.raw[f] for f in BAR_FIELDS]
        arrays += [self.last_close, self.up_limit, self.down_limit, self.adj_filled]
        if self.daily_basic is not None:
            arrays += [self.daily_basic.get(f) for f in DAILY_BASIC_FIELDS]
        return arrays

    def advance(self) -> None:
        """Make the next derived row the current day."""
        i = self.t + 1
        if i >= self._derived:
            raise IndexError("no data for the next day yet")
        cols = self._rescale.get(i)
        if cols is not None:
            self.adj_epoch[cols] += 1
            self.adj_version += 1
        self.t = i

    def _derive(self, hi: int) -> None:
        """Trading values of rows [_derived, hi), from those rows and the row before them only."""
        lo = self._derived
        if hi <= lo:
            return
        raw = self.raw
        close = raw["close"][lo:hi]
        has = ~np.isnan(close)
        carry = self.last_close[lo - 1] if lo else np.full(close.shape[1], np.nan)
        last = ffill_rows(close, carry)
        prev_close = np.vstack([carry[None, :], last[:-1]])
        pre_data = raw["pre_close"][lo:hi]
        # pre_close missing on a trading day: fall back to the previous known close.
        pre = np.where(np.isnan(pre_data) & has, prev_close, pre_data)
        # Ex-rights: Tushare's adj_factor is cumulative, so on an ex-rights / ex-dividend day it
        # steps by ratio = adj / adj_prev (adj_prev: the last factor on a day with a bar); the
        # ex-reference price is that day's pre_close (previous close / ratio when missing).
        adj = raw["adj_factor"][lo:hi]
        known = np.isfinite(adj) & has
        traded = ffill_rows(np.where(known, adj, np.nan), self._adj_traded)
        prev_traded = np.vstack([self._adj_traded[None, :], traded[:-1]])
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = adj / prev_traded
            event = known & np.isfinite(ratio) & (ratio > 0) & (np.abs(ratio - 1.0) > 1e-9)
            ref = np.where(np.isfinite(pre_data), pre_data, prev_close / ratio)
        rows, cols = event.nonzero()  # row-major: days in order, symbols in column order per day
        for r, j, q, px in zip(rows.tolist(), cols.tolist(), ratio[event].tolist(), ref[event].tolist(), strict=True):
            self.ex_rights.setdefault(lo + r, []).append((j, q, px))
        pre = np.where(event, ref, pre)
        pct = limit_pct(self._pct_base, self._chinext, self.dates[lo:hi], self.is_st[lo:hi])
        up, down = price_limits(pct, pre, raw["up_limit"][lo:hi], raw["down_limit"][lo:hi])
        self.has_bar[lo:hi], self.last_close[lo:hi] = has, last
        self.up_limit[lo:hi], self.down_limit[lo:hi] = up, down
        self._adj_traded = traded[-1]
        self._derive_view_factors(lo, hi, adj)
        self.dates_str += np.datetime_as_string(self.dates[lo:hi], unit="D").tolist()
        self._derived = hi

    def _derive_view_factors(self, lo: int, hi: int, adj: np.ndarray) -> None:
        finite = np.isfinite(adj)
        carry = self.adj_filled[lo - 1] if lo else np.full(adj.shape[1], np.nan)
        filled = ffill_rows(np.where(finite, adj, np.nan), carry)
        self.adj_filled[lo:hi] = filled
        first = (self.adj_first == len(self.dates)) & finite.any(axis=0)  # none known before this block
        for j in first.nonzero()[0].tolist():
            f = lo + int(np.argmax(finite[:, j]))
            self._first_factor(j, f)
            self._first_at.setdefault(f, []).append(j)
            self._rescale_at(f, j)
        if self._qfq:  # qfq re-scales a symbol's history on each of its ex-dates
            prev = np.vstack([carry[None, :], filled[:-1]])
            with np.errstate(invalid="ignore"):
                step = finite & ~np.isnan(prev) & (filled != prev)
            for r, j in zip(*step.nonzero(), strict=True):
                self._rescale_at(lo + int(r), int(j))

    def _first_factor(self, j: int, f: int) -> None:
        """Symbol j's first adj_factor is on row f: from then on earlier rows take it too."""
        self.adj_first[j] = f
        self.adj_filled[:f, j] = self.adj_filled[f, j]

    def _rescale_at(self, row: int, j: int) -> None:
        self._rescale.setdefault(row, []).append(j)

    # ------------------------------------------------------------------------------ reading
    def row_of(self, day: np.datetime64) -> int | None:
        """Row of a trading day up to ``t``, or None."""
        k = int(np.searchsorted(self.dates[: self.t + 1], day))
        return k if k <= self.t and self.dates[k] == day else None
