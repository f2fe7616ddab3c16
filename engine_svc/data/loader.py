"""Load a backtest's market data from SQL as a dates × symbols ``Panel``, with a process cache.

One query per table (bars, optionally daily_basic, the benchmark's index bars), scattered into
2-D arrays by row (date) and column (symbol) indices computed in numpy. The rows of the panel
are the open days of the trading calendar in [start, end], or — when the calendar has none
there — the union of the requested symbols' bar dates.

Cached panels are shared between callers: their arrays are made read-only so an engine that
tried to modify one in place fails loudly instead of corrupting every later backtest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
from sqlalchemy import BindParameter, Connection, Engine, bindparam, text

from engine_svc.data.cache import PanelCache, default_cache
from engine_svc.data.db import engine_key, get_engine, read_data_version
from engine_svc.data.reader import Rows, fetch_open_days, fetch_rows
from engine_svc.engine.panel import BAR_FIELDS, DAILY_BASIC_FIELDS, Benchmark, Panel


class UnknownSymbolsError(LookupError):
    """Some requested symbols are not in the instruments table."""

    def __init__(self, symbols: Sequence[str]) -> None:
        self.symbols = tuple(symbols)
        super().__init__(f"unknown symbols: {', '.join(self.symbols)}")


@dataclass(frozen=True)
class Coverage:
    symbol: str
    name: str
    is_index: bool
    first_date: date | None  # None: known instrument without bars
    last_date: date | None
    bars: int


def _as_date(value: str | date) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def _instruments(conn: Connection, symbols: Sequence[str]) -> dict[str, tuple[str, bool]]:
    found: dict[str, tuple[str, bool]] = {}
    for i in range(0, len(symbols), 500):
        chunk = list(symbols[i : i + 500])
        rows = conn.execute(
            text("SELECT symbol, name, is_index FROM instruments WHERE symbol IN :syms").bindparams(_expanding("syms")),
            {"syms": chunk},
        )
        found.update({r[0]: (r[1] or "", bool(r[2])) for r in rows})
    return found


def _expanding(name: str) -> BindParameter[object]:
    return bindparam(name, expanding=True)


def _scatter(rows: Rows, fields: Sequence[str], day_index: np.ndarray, n_symbols: int) -> dict[str, np.ndarray]:
    """Rows → (n_dates, n_symbols) float64 arrays; rows on days outside the panel are dropped."""
    pos = np.searchsorted(day_index, rows.day)
    inside = pos < len(day_index)
    inside[inside] = day_index[pos[inside]] == rows.day[inside]
    r, c = pos[inside], rows.col[inside]
    out = {}
    for f in fields:
        arr = np.full((len(day_index), n_symbols), np.nan)
        arr[r, c] = rows.values[f][inside]
        out[f] = arr
    return out


def _st_mask(conn: Connection, symbols: Sequence[str], dates: np.ndarray) -> np.ndarray:
    mask = np.zeros((len(dates), len(symbols)), dtype=bool)
    if len(dates) == 0:
        return mask
    col = {s: i for i, s in enumerate(symbols)}
    rows = conn.execute(
        text(
            "SELECT symbol, start_date, end_date FROM st_periods WHERE symbol IN :syms "
            "AND start_date <= :end AND (end_date IS NULL OR end_date >= :start)"
        ).bindparams(_expanding("syms")),
        {"syms": list(symbols), "start": _py_date(dates[0]), "end": _py_date(dates[-1])},
    )
    for symbol, start, end in rows:  # a handful of periods: a Python loop is fine here
        lo = np.searchsorted(dates, np.datetime64(_as_date(start), "D"), "left")
        hi = len(dates) if end is None else np.searchsorted(dates, np.datetime64(_as_date(end), "D"), "right")
        mask[lo:hi, col[symbol]] = True
    return mask


def _py_date(d: np.datetime64) -> date:
    return date.fromisoformat(str(d.astype("datetime64[D]")))


def _read_only(panel: Panel) -> Panel:
    arrays = [panel.dates, panel.is_st, *panel.bars.values(), *(panel.daily_basic or {}).values()]
    if panel.benchmark is not None:
        arrays.append(panel.benchmark.close)
    for arr in arrays:
        if arr is not None:
            arr.setflags(write=False)
    return panel


def _build(
    conn: Connection,
    symbols: tuple[str, ...],
    start: date,
    end: date,
    benchmark: str | None,
    use_daily_basic: bool,
) -> Panel:
    wanted = list(symbols) + ([benchmark] if benchmark and benchmark not in symbols else [])
    known = _instruments(conn, wanted)
    unknown = [s for s in wanted if s not in known]
    if unknown:
        raise UnknownSymbolsError(unknown)

    bars = fetch_rows(conn, "daily_bars", BAR_FIELDS, symbols, start, end)
    dates = fetch_open_days(conn, start, end)
    if len(dates) == 0:  # no calendar for this range: use the days that have bars
        dates = np.unique(bars.day).astype("datetime64[D]")
    day_index = dates.astype(np.int64)
    n = len(symbols)
    bar_arrays = _scatter(bars, BAR_FIELDS, day_index, n)
    basic = None
    if use_daily_basic:
        basic_rows = fetch_rows(conn, "daily_basic", DAILY_BASIC_FIELDS, symbols, start, end)
        basic = _scatter(basic_rows, DAILY_BASIC_FIELDS, day_index, n)
    bench = None
    if benchmark:
        idx = fetch_rows(conn, "index_bars", ("close",), [benchmark], start, end)
        if len(idx) == 0:  # a stock used as benchmark
            idx = fetch_rows(conn, "daily_bars", ("close",), [benchmark], start, end)
        bench = Benchmark(benchmark, _scatter(idx, ("close",), day_index, 1)["close"][:, 0].copy())
    return Panel(
        dates=dates,
        symbols=symbols,
        bars=bar_arrays,
        names=tuple(known[s][0] for s in symbols),
        is_st=_st_mask(conn, symbols, dates),
        daily_basic=basic,
        benchmark=bench,
    )


def load_panel(
    url_or_engine: str | Engine,
    symbols: list[str],
    start: str,
    end: str,
    benchmark: str | None = None,
    use_daily_basic: bool = False,
    *,
    cache: PanelCache | None = None,
) -> Panel:
    """The panel for ``symbols`` (in that order) over [start, end] (ISO dates, inclusive).

    Raises ``UnknownSymbolsError`` listing every requested symbol (or benchmark) that is not
    in the instruments table, and ``ValueError`` for duplicate symbols or start > end.
    """
    syms = tuple(symbols)
    if len(set(syms)) != len(syms):
        raise ValueError("duplicate symbols in request")
    if not syms:
        raise ValueError("at least one symbol is required")
    lo, hi = _as_date(start), _as_date(end)
    if lo > hi:
        raise ValueError(f"start {start} is after end {end}")
    engine = get_engine(url_or_engine)
    cache = default_cache() if cache is None else cache
    key = (engine_key(engine), syms, lo.isoformat(), hi.isoformat(), benchmark, use_daily_basic)
    with engine.connect() as conn:
        version = read_data_version(conn)
        hit = cache.get(key, version)
        if hit is not None:
            return hit
        # REPEATABLE READ-like consistency is not needed: the version read above is at most
        # older than the rows, so a concurrent import only causes one extra reload later.
        panel = _read_only(_build(conn, syms, lo, hi, benchmark, use_daily_basic))
    cache.put(key, version, panel)
    return panel


def coverage(url_or_engine: str | Engine, symbols: Sequence[str]) -> tuple[dict[str, Coverage], list[str]]:
    """Up-front validation: (known symbols → their bar coverage, unknown symbols in request order)."""
    engine = get_engine(url_or_engine)
    with engine.connect() as conn:
        known = _instruments(conn, list(symbols))
        stats = _bar_stats(conn, [s for s in symbols if s in known])
    found = {s: Coverage(s, known[s][0], known[s][1], *stats.get(s, (None, None, 0))) for s in symbols if s in known}
    return found, [s for s in symbols if s not in known]


def _bar_stats(conn: Connection, symbols: Sequence[str] | None) -> dict[str, tuple[date, date, int]]:
    """symbol → (first bar date, last bar date, bar count) over daily_bars and index_bars.

    Rows without a close (e.g. written by an adj_factor-only import) are not bars.
    """
    out: dict[str, tuple[date, date, int]] = {}
    for table in ("daily_bars", "index_bars"):
        if symbols is None:
            rows = conn.execute(
                text(
                    f"SELECT symbol, MIN(trade_date), MAX(trade_date), COUNT(*) FROM {table} "  # noqa: S608 (identifiers are our constants)
                    "WHERE close IS NOT NULL GROUP BY symbol"
                )
            )
            out.update({r[0]: (_as_date(r[1]), _as_date(r[2]), int(r[3])) for r in rows})
            continue
        for i in range(0, len(symbols), 500):
            rows = conn.execute(
                text(
                    f"SELECT symbol, MIN(trade_date), MAX(trade_date), COUNT(*) FROM {table} "  # noqa: S608 (identifiers are our constants)
                    "WHERE symbol IN :syms AND close IS NOT NULL GROUP BY symbol"
                ).bindparams(_expanding("syms")),
                {"syms": list(symbols[i : i + 500])},
            )
            out.update({r[0]: (_as_date(r[1]), _as_date(r[2]), int(r[3])) for r in rows})
    return out


_LISTINGS: dict[str, tuple[int, list[dict[str, object]]]] = {}  # engine key -> (data_version, rows)


def list_symbols(url_or_engine: str | Engine) -> list[dict[str, object]]:
    """Every instrument with its bar coverage, for the ListSymbols API (sorted by symbol).

    The aggregate scans every bar, so the answer is memoised per database until the next
    import bumps data_version.
    """
    engine = get_engine(url_or_engine)
    key = engine_key(engine)
    with engine.connect() as conn:
        version = read_data_version(conn)
        cached = _LISTINGS.get(key)
        if cached is not None and cached[0] == version:
            return [dict(row) for row in cached[1]]
        instruments = conn.execute(text("SELECT symbol, name, is_index FROM instruments ORDER BY symbol")).all()
        stats = _bar_stats(conn, None)
    result: list[dict[str, object]] = []
    for symbol, name, is_index in instruments:
        first, last, n_bars = stats.get(symbol, (None, None, 0))
        result.append(
            {
                "symbol": symbol,
                "name": name or "",
                "first_date": first.isoformat() if first else None,
                "last_date": last.isoformat() if last else None,
                "bars": n_bars,
                "is_index": bool(is_index),
            }
        )
    _LISTINGS[key] = (version, result)
    return [dict(row) for row in result]
