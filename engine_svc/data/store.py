"""Writing market data: the tables' keys, wide arrays → long frames, instruments and calendar rows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Table

from engine_svc.data import models
from engine_svc.data.codes import board_of, exchange_of
from engine_svc.data.upsert import WriteStats, upsert_frame

TABLES: dict[str, tuple[Table, tuple[str, ...]]] = {
    "daily_bars": (models.DailyBar.__table__, ("symbol", "trade_date")),  # type: ignore[dict-item]
    "daily_basic": (models.DailyBasic.__table__, ("symbol", "trade_date")),  # type: ignore[dict-item]
    "index_bars": (models.IndexBar.__table__, ("symbol", "trade_date")),  # type: ignore[dict-item]
    "instruments": (models.Instrument.__table__, ("symbol",)),  # type: ignore[dict-item]
    "trading_calendar": (models.TradingCalendar.__table__, ("exchange", "cal_date")),  # type: ignore[dict-item]
    "st_periods": (models.StPeriod.__table__, ("symbol", "start_date")),  # type: ignore[dict-item]
}
CALENDAR_EXCHANGES = ("SSE", "SZSE")


def write(conn: Connection, table: str, frame: pd.DataFrame, on_conflict: str = "update") -> WriteStats:
    tbl, key = TABLES[table]
    return upsert_frame(conn, tbl, frame, key, on_conflict)  # type: ignore[arg-type]


def long_frame(
    symbols: Sequence[str], dates: np.ndarray, arrays: dict[str, np.ndarray], present: np.ndarray
) -> pd.DataFrame:
    """(n_dates, n_symbols) arrays → one row per present (date, symbol), symbol-major order."""
    cols, rows = np.nonzero(present.T)  # transpose: rows of one symbol end up adjacent
    frame = {"symbol": np.asarray(symbols, dtype=object)[cols], "trade_date": np.asarray(dates)[rows]}
    frame.update({name: arr[rows, cols] for name, arr in arrays.items()})
    return pd.DataFrame(frame)


def instrument_frame(
    symbols: Iterable[str],
    names: Iterable[str] | None = None,
    is_index: bool = False,
    list_dates: Iterable[date | None] | None = None,
) -> pd.DataFrame:
    syms = list(symbols)
    return pd.DataFrame(
        {
            "symbol": syms,
            "name": list(names) if names is not None else [""] * len(syms),
            "board": [board_of(s, is_index) for s in syms],
            "exchange": [exchange_of(s) for s in syms],
            "list_date": list(list_dates) if list_dates is not None else [None] * len(syms),
            "is_index": [is_index] * len(syms),
        }
    )


def ensure_instruments(conn: Connection, symbols: Iterable[str], is_index: bool = False) -> WriteStats:
    """Create minimal instruments rows (board/exchange from the code) for symbols not yet known."""
    frame = instrument_frame(sorted(set(symbols)), is_index=is_index).drop(columns=["list_date"])
    return write(conn, "instruments", frame, on_conflict="ignore")


def calendar_frame(open_days: np.ndarray, exchanges: Sequence[str] = CALENDAR_EXCHANGES) -> pd.DataFrame:
    days = np.asarray(open_days, dtype="datetime64[D]")
    return pd.DataFrame(
        {
            "exchange": np.repeat(np.asarray(exchanges, dtype=object), len(days)),
            "cal_date": np.tile(days, len(exchanges)),
            "is_open": True,
        }
    )
