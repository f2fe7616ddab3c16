"""Whole-panel precomputation done once per run: the strategy's adjusted price view, trading
price limits, the last known close for valuation and the ex-rights events in adj_factor.

Everything the daily loop reads is a row of an array built here, so no per-bar pandas or
per-bar adjustment happens in the loop. Arrays handed to strategy code are read-only views.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from engine_svc.engine.panel import Panel
from engine_svc.engine.rules import board_of, price_limits

# Fields whose values are prices, i.e. change under qfq/hfq adjustment. Volume and amount are
# shown as traded (Tushare's pro_bar adjusts prices only).
PRICE_FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "pre_close", "up_limit", "down_limit")
# Fields of a zquant-style bar_data entry, in this order.
BAR_DATA_FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "pre_close", "volume", "amount")


def _readonly(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.flags.writeable = False
    return v


def ffill_rows(a: np.ndarray) -> np.ndarray:
    """Forward-fill NaNs down each column (vectorised; leading NaNs stay NaN)."""
    n = a.shape[0]
    idx = np.where(np.isnan(a), 0, np.arange(n)[:, None])
    np.maximum.accumulate(idx, axis=0, out=idx)
    out = a[idx, np.arange(a.shape[1])[None, :]]
    return out


def adjustment_multipliers(adj: np.ndarray, adjust_type: str) -> tuple[np.ndarray | None, bool]:
    """Per-cell price multiplier for the strategy's view, or None when prices are shown raw.

    qfq: adj / adj_last_in_panel (last known factor per symbol), hfq: adj. Unknown factors are
    carried forward (and backward before the first known one); a symbol with no factor at all
    keeps multiplier 1. The bool says whether the data carried any adj_factor.
    """
    known = np.isfinite(adj)
    if not known.any():
        return None, False
    if adjust_type == "none":
        return None, True
    filled = ffill_rows(np.where(known, adj, np.nan))
    # Backfill the leading gap with the first known factor so early bars are still comparable.
    first_idx = np.argmax(known, axis=0)
    first_val = adj[first_idx, np.arange(adj.shape[1])]
    filled = np.where(np.isnan(filled), first_val[None, :], filled)
    filled = np.where(np.isnan(filled), 1.0, filled)  # symbols without any factor
    if adjust_type == "hfq":
        return filled, True
    last = filled[-1, :]
    return filled / last[None, :], True


def ex_rights_events(
    adj: np.ndarray, has_bar: np.ndarray, pre_close: np.ndarray, prev_close: np.ndarray
) -> dict[int, list[tuple[int, float, float]]]:
    """Day row → [(symbol column, ratio, ex-reference price)] where adj_factor changes.

    Tushare's adj_factor is cumulative: on an ex-rights / ex-dividend day it steps by
    ratio = adj_t / adj_prev (adj_prev: the last known factor on an earlier bar), and the
    exchange's ex-reference price is that day's pre_close (prev_close / ratio when missing).
    """
    known = np.isfinite(adj) & has_bar
    if not known.any():
        return {}
    prev = np.vstack([np.full((1, adj.shape[1]), np.nan), ffill_rows(np.where(known, adj, np.nan))[:-1]])
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = adj / prev
    event = known & np.isfinite(ratio) & (ratio > 0) & (np.abs(ratio - 1.0) > 1e-9)
    rows, cols = event.nonzero()  # row-major: days in order, symbols in column order per day
    ref = np.where(np.isfinite(pre_close), pre_close, prev_close / ratio)
    out: dict[int, list[tuple[int, float, float]]] = {}
    for i, j, r, px in zip(rows.tolist(), cols.tolist(), ratio[event].tolist(), ref[event].tolist(), strict=True):
        out.setdefault(i, []).append((j, r, px))
    return out


class AdjustedView(Mapping[str, np.ndarray]):
    """Bar field → the strategy's (adjusted, read-only) dates × symbols array.

    Each field is computed for the whole panel on first use and kept: a run pays once per
    field it actually reads, and fields nobody reads (often up/down limits) cost no memory.
    """

    def __init__(self, bars: dict[str, np.ndarray], mult: np.ndarray | None) -> None:
        self._bars = bars
        self._mult = mult
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        arr = self._cache.get(name)
        if arr is None:
            raw = self._bars[name]
            adjusted = self._mult is not None and name in PRICE_FIELDS
            arr = self._cache[name] = _readonly(raw * self._mult if adjusted else raw)
        return arr

    def __iter__(self) -> Iterator[str]:
        return iter(self._bars)

    def __len__(self) -> int:
        return len(self._bars)


@dataclass
class MarketData:
    """Arrays (dates × symbols) the engine and strategy read; built once by ``build``."""

    panel: Panel
    dates_str: list[str]
    symbol_index: dict[str, int]
    boards: tuple[str, ...]
    is_star: np.ndarray  # bool (n_symbols,)
    has_bar: np.ndarray  # bool (dates, symbols)
    raw: dict[str, np.ndarray]  # unadjusted trading prices (open/high/low/close)
    up_limit: np.ndarray
    down_limit: np.ndarray
    last_close: np.ndarray  # unadjusted close carried over suspensions; NaN before the first bar
    view: AdjustedView  # what the strategy sees (adjusted prices), read-only
    adjustment_applied: bool
    ex_rights: dict[int, list[tuple[int, float, float]]]  # see ex_rights_events

    @classmethod
    def build(cls, panel: Panel, adjust_type: str) -> MarketData:
        bars = panel.bars
        close = bars["close"]
        has_bar = ~np.isnan(close)
        last_close = ffill_rows(close)
        # pre_close missing on a trading day: fall back to the previous known close.
        prev_close = np.vstack([np.full((1, close.shape[1]), np.nan), last_close[:-1]])
        pre_close = np.where(np.isnan(bars["pre_close"]) & has_bar, prev_close, bars["pre_close"])
        ex_rights = ex_rights_events(bars["adj_factor"], has_bar, bars["pre_close"], prev_close)
        for i, events in ex_rights.items():  # on an ex-date the reference is not yesterday's close
            for j, _, ref in events:
                pre_close[i, j] = ref
        up, down = price_limits(
            panel.symbols, panel.dates, panel.is_st, pre_close, bars["up_limit"], bars["down_limit"]
        )
        mult, has_adj = adjustment_multipliers(bars["adj_factor"], adjust_type)
        boards = tuple(board_of(s) for s in panel.symbols)
        return cls(
            panel=panel,
            dates_str=panel.date_strings(),
            symbol_index={s: j for j, s in enumerate(panel.symbols)},
            boards=boards,
            is_star=np.array([b == "star" for b in boards], dtype=bool),
            has_bar=_readonly(has_bar),
            raw={k: bars[k] for k in ("open", "high", "low", "close")},
            up_limit=up,
            down_limit=down,
            last_close=_readonly(last_close),
            view=AdjustedView(bars, mult),
            adjustment_applied=bool(has_adj and adjust_type != "none"),
            ex_rights=ex_rights,
        )
