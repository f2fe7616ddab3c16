"""Write a synthetic market (``synthetic.generate_market``) into the market-data tables."""

from __future__ import annotations

import time

import pandas as pd
from sqlalchemy import Engine
from tqdm import tqdm

from engine_svc.data.db import bump_data_version, ensure_schema, get_engine
from engine_svc.data.report import FileReport, ImportReport
from engine_svc.data.store import calendar_frame, instrument_frame, long_frame, write
from engine_svc.data.synthetic import BENCHMARK_SYMBOL, SyntheticMarket, generate_market
from engine_svc.engine.panel import BAR_FIELDS

CHUNK_SYMBOLS = 50  # symbols per upsert batch (also the progress bar's step)


def write_market(url_or_engine: str | Engine, market: SyntheticMarket, progress: bool = True) -> ImportReport:
    """Upsert every table of ``market`` in one transaction; returns per-table counts."""
    engine = get_engine(url_or_engine)
    ensure_schema(engine)
    started = time.perf_counter()
    panel = market.panel
    report = ImportReport()
    reports = {
        t: FileReport(file=f"synthetic:{t}", kind=t)
        for t in ("instruments", "trading_calendar", "st_periods", "daily_bars", "daily_basic", "index_bars")
    }
    n = len(panel.symbols)
    with engine.begin() as conn:
        instruments = pd.concat(
            [
                instrument_frame(panel.symbols, panel.names, list_dates=market.list_dates.astype(object)),
                instrument_frame([BENCHMARK_SYMBOL], ["Synthetic CSI 300"], is_index=True),
            ]
        )
        _count(reports["instruments"], len(instruments), write(conn, "instruments", instruments))
        cal = calendar_frame(panel.dates)
        _count(reports["trading_calendar"], len(cal), write(conn, "trading_calendar", cal))
        st = pd.DataFrame(market.st_periods, columns=["symbol", "start_date", "end_date"])
        _count(reports["st_periods"], len(st), write(conn, "st_periods", st))
        idx = pd.DataFrame({"symbol": BENCHMARK_SYMBOL, "trade_date": panel.dates, **market.index_bars})
        _count(reports["index_bars"], len(idx), write(conn, "index_bars", idx))
        present = panel.has_bar
        bar = tqdm(total=n, desc="synthetic bars", unit="sym", file=None, disable=not progress)
        for lo in range(0, n, CHUNK_SYMBOLS):
            cols = slice(lo, min(lo + CHUNK_SYMBOLS, n))
            syms = panel.symbols[cols]
            bars = long_frame(syms, panel.dates, {f: panel.bars[f][:, cols] for f in BAR_FIELDS}, present[:, cols])
            _count(reports["daily_bars"], len(bars), write(conn, "daily_bars", bars))
            if panel.daily_basic is not None:
                basic = long_frame(
                    syms, panel.dates, {f: a[:, cols] for f, a in panel.daily_basic.items()}, present[:, cols]
                )
                _count(reports["daily_basic"], len(basic), write(conn, "daily_basic", basic))
            bar.update(cols.stop - cols.start)
        bar.close()
        report.data_version = bump_data_version(conn)
    report.files = list(reports.values())
    report.committed = True
    report.seconds = time.perf_counter() - started
    return report


def _count(rep: FileReport, read: int, stats: object) -> None:
    rep.read += read
    rep.inserted += stats.inserted  # type: ignore[attr-defined]
    rep.replaced += stats.replaced  # type: ignore[attr-defined]


def write_synthetic(
    url_or_engine: str | Engine,
    n_symbols: int,
    n_days: int,
    seed: int = 0,
    start: str = "2015-01-05",
    progress: bool = True,
) -> ImportReport:
    """Generate the synthetic market (with daily_basic) and store it; same data as generate_panel."""
    market = generate_market(n_symbols, n_days, seed, start, with_daily_basic=True)
    return write_market(url_or_engine, market, progress)
