"""Import Tushare-style CSV exports: parse, validate row by row (vectorised), upsert.

Kinds and their Tushare columns (extra Tushare columns such as ``change``/``pct_chg`` are
accepted and ignored; anything else is reported as an unknown column):

- ``daily`` / ``index_daily``: ts_code, trade_date, open, high, low, close[, pre_close, vol,
  amount]. Tushare's ``vol`` is in lots (100 shares) and ``amount`` in thousand CNY; they are
  stored as shares and CNY. A missing ``pre_close`` is filled from the previous bar of the
  same symbol in the file.
- ``adj_factor``: ts_code, trade_date, adj_factor (only that column of daily_bars is written).
- ``daily_basic``: ts_code, trade_date and any of the 15 indicators.
- ``trade_cal``: exchange, cal_date, is_open[, pretrade_date].
- ``stock_basic``: ts_code, name[, list_date, delist_date, ...].

Dates may be YYYYMMDD (Tushare) or YYYY-MM-DD. Every problem is reported as ``file:line:
reason`` (line 1 is the header). ``on_error="fail"`` keeps nothing at all if any row of any
file is bad; ``"skip"`` writes the good rows. Either way the writes of one invocation are one
transaction, so an interrupted import leaves nothing half-done.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine
from tqdm import tqdm

from engine_svc.data.db import bump_data_version, ensure_schema, get_engine
from engine_svc.data.report import FileReport, ImportReport, RowError
from engine_svc.data.store import ensure_instruments, instrument_frame, write
from engine_svc.engine.panel import DAILY_BASIC_FIELDS

KINDS = ("daily", "daily_basic", "adj_factor", "index_daily", "trade_cal", "stock_basic")
OnError = Literal["skip", "fail"]


@dataclass(frozen=True)
class KindSpec:
    table: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()  # Tushare columns we know and do not store
    dates: tuple[str, ...] = ()  # date columns (required ones must be present)
    numbers: tuple[str, ...] = ()
    key: tuple[str, ...] = ("ts_code", "trade_date")


_BAR_IGNORED = ("change", "pct_chg")
SPECS: dict[str, KindSpec] = {
    "daily": KindSpec(
        "daily_bars",
        required=("ts_code", "trade_date", "open", "high", "low", "close"),
        optional=("pre_close", "vol", "amount", "up_limit", "down_limit"),
        ignored=_BAR_IGNORED,
        dates=("trade_date",),
        numbers=("open", "high", "low", "close", "pre_close", "vol", "amount", "up_limit", "down_limit"),
    ),
    "index_daily": KindSpec(
        "index_bars",
        required=("ts_code", "trade_date", "open", "high", "low", "close"),
        optional=("pre_close", "vol", "amount"),
        ignored=_BAR_IGNORED,
        dates=("trade_date",),
        numbers=("open", "high", "low", "close", "pre_close", "vol", "amount"),
    ),
    "adj_factor": KindSpec(
        "daily_bars", required=("ts_code", "trade_date", "adj_factor"), dates=("trade_date",), numbers=("adj_factor",)
    ),
    "daily_basic": KindSpec(
        "daily_basic",
        required=("ts_code", "trade_date"),
        optional=DAILY_BASIC_FIELDS,
        ignored=("close",),
        dates=("trade_date",),
        numbers=DAILY_BASIC_FIELDS,
    ),
    "trade_cal": KindSpec(
        "trading_calendar",
        required=("exchange", "cal_date", "is_open"),
        ignored=("pretrade_date",),
        dates=("cal_date",),
        key=("exchange", "cal_date"),
    ),
    "stock_basic": KindSpec(
        "instruments",
        required=("ts_code", "name"),
        optional=("list_date", "delist_date"),
        ignored=(
            "symbol",
            "area",
            "industry",
            "fullname",
            "enname",
            "cnspell",
            "market",
            "exchange",
            "curr_type",
            "list_status",
            "is_hs",
            "act_name",
            "act_ent_type",
        ),
        dates=("list_date", "delist_date"),
        key=("ts_code",),
    ),
}


@dataclass
class ParsedFile:
    report: FileReport
    frame: pd.DataFrame  # validated rows, converted to table columns
    fatal: bool = False  # header-level problem: no row of the file is usable


@dataclass
class _Checks:
    """Accumulates (row mask, reason) pairs; a row is bad if any mask hits it."""

    n: int
    problems: list[tuple[np.ndarray, str | Callable[[int], str]]] = field(default_factory=list)

    def add(self, mask: np.ndarray | pd.Series, reason: str | Callable[[int], str]) -> None:
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            self.problems.append((mask, reason))

    def bad(self) -> np.ndarray:
        out = np.zeros(self.n, dtype=bool)
        for mask, _ in self.problems:
            out |= mask
        return out

    def errors(self, file: str, lines: np.ndarray) -> list[RowError]:
        found: list[tuple[int, int, str]] = []
        for order, (mask, reason) in enumerate(self.problems):
            for i in np.flatnonzero(mask):  # Python only per bad row
                text = reason(int(i)) if callable(reason) else reason
                found.append((int(lines[i]), order, text))
        found.sort()
        return [RowError(file, line, text) for line, _, text in found]


def parse_dates(values: pd.Series) -> pd.Series:
    """YYYYMMDD or YYYY-MM-DD strings → datetime64 (NaT where invalid or empty)."""
    s = values.str.strip()
    compact = s.where(s.str.fullmatch(r"\d{8}"), s.where(s.str.fullmatch(r"\d{4}-\d{2}-\d{2}")).str.replace("-", ""))
    return pd.to_datetime(compact, format="%Y%m%d", errors="coerce")


def _header(path: Path) -> list[str]:
    """Column names as written (read_csv's dtype mapping needs them unstripped)."""
    return [str(c) for c in pd.read_csv(path, nrows=0, encoding="utf-8-sig").columns]


def _read(path: Path, header: list[str], numbers: Sequence[str]) -> tuple[pd.DataFrame, bool]:
    """(frame, typed). Fast path: numeric columns parsed as float64 by the C parser (only an
    empty field is NaN). If any value is not a number that raises, and the file is re-read
    all-text so the offending lines can be found and reported."""
    common = {"keep_default_na": False, "skip_blank_lines": False, "encoding": "utf-8-sig", "engine": "c"}
    numeric = [c for c in header if c.strip() in numbers]
    try:
        frame = pd.read_csv(
            path,
            dtype={c: (np.float64 if c in numeric else str) for c in header},
            na_values={c: [""] for c in numeric},
            **common,
        )
        typed = True
    except ValueError:
        frame = pd.read_csv(path, dtype=str, **common)
        typed = False
    frame.columns = [c.strip() for c in header]
    return frame, typed


def _strip(values: pd.Series) -> pd.Series:
    """str.strip over the distinct values only (codes and dates repeat a lot; pandas' string
    methods run a Python function per element)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    stripped = np.array([str(u).strip() for u in uniques], dtype=object)
    return pd.Series(stripped[codes] if len(codes) else np.array([], dtype=object), index=values.index)


def _per_unique(values: pd.Series, fn: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """Apply a vectorised ``fn`` to the distinct values and map the result back."""
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    mapped = fn(pd.Series(uniques, dtype=object)).to_numpy()
    return pd.Series(mapped[codes] if len(codes) else mapped[:0], index=values.index)


def parse_file(path: Path, kind: str) -> ParsedFile:
    """Read and validate one file. Line numbers are physical lines (header = 1)."""
    spec = SPECS[kind]
    name = str(path)
    report = FileReport(file=name, kind=kind)
    try:
        header = _header(path)
        index_col = bool(header) and (header[0].strip() == "" or header[0].startswith("Unnamed: 0"))
        raw, typed = _read(path, header, spec.numbers)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        report.errors.append(RowError(name, 1, f"unreadable CSV: {exc}".splitlines()[0]))
        return ParsedFile(report, pd.DataFrame(), fatal=True)
    if index_col:
        raw = raw.drop(columns=raw.columns[0])  # a pandas index column
    lines = np.arange(len(raw)) + 2
    if len(raw.columns):
        blank = np.all([(raw[c].isna() | (raw[c] == "")).to_numpy() for c in raw.columns], axis=0)
    else:
        blank = np.ones(len(raw), bool)
    raw, lines = raw[~blank].reset_index(drop=True), lines[~blank]
    report.read = len(raw)
    known = set(spec.required) | set(spec.optional) | set(spec.ignored)
    missing = [c for c in spec.required if c not in raw.columns]
    unknown = [c for c in raw.columns if c not in known]
    if missing or unknown:
        parts = ([f"missing columns {missing}"] if missing else []) + (
            [f"unknown columns {unknown} for kind {kind}"] if unknown else []
        )
        report.errors.append(RowError(name, 1, "; ".join(parts)))
        report.skipped = report.read
        return ParsedFile(report, pd.DataFrame(), fatal=True)

    checks = _Checks(len(raw))
    values: dict[str, pd.Series] = {}
    for col in raw.columns:
        if col in spec.ignored:
            continue
        if col in spec.numbers and typed:
            num = raw[col].astype(np.float64)
            empty = num.isna().to_numpy()
            checks.add(np.isinf(num.to_numpy()), lambda i, c=col, t=num: f"non-numeric {c}={t.iloc[i]!r}")
            if col in spec.required:
                checks.add(empty, f"{col} is empty")
            values[col] = num
            continue
        text = _strip(raw[col])
        empty = (text == "").to_numpy()
        if col in spec.required:
            checks.add(empty, f"{col} is empty")
        if col in spec.dates:
            parsed = _per_unique(text, parse_dates)
            parsed = pd.to_datetime(parsed)
            checks.add(parsed.isna().to_numpy() & ~empty, lambda i, c=col, t=text: f"bad date {c}={t.iloc[i]!r}")
            values[col] = parsed
        elif col in spec.numbers:
            num = pd.to_numeric(text.where(~empty), errors="coerce").astype(np.float64)
            bad = (num.isna().to_numpy() & ~empty) | np.isinf(num.to_numpy())
            checks.add(bad, lambda i, c=col, t=text: f"non-numeric {c}={t.iloc[i]!r}")
            values[col] = num
        else:
            values[col] = text
    if "ts_code" in values:
        codes = _per_unique(values["ts_code"], lambda u: u.str.upper())
        valid = _per_unique(codes, lambda u: u.str.fullmatch(r"\d{6}\.(SH|SZ|BJ)")).astype(bool)
        checks.add(
            ~valid.to_numpy() & (codes != "").to_numpy(),
            lambda i, t=raw["ts_code"]: f"bad ts_code {t.iloc[i]!r}",
        )
        values["ts_code"] = codes
    _kind_checks(kind, values, checks)
    _duplicate_check(spec, values, checks, lines)

    errors = checks.errors(name, lines)
    report.errors.extend(errors)
    good = ~checks.bad()
    report.skipped = int((~good).sum())
    clean = pd.DataFrame({k: v[good].reset_index(drop=True) for k, v in values.items()})
    frame = _to_table(kind, clean, report)
    return ParsedFile(report, frame)


def _kind_checks(kind: str, v: dict[str, pd.Series], checks: _Checks) -> None:
    if kind in ("daily", "index_daily"):
        o, h, lo, c = (v[k].to_numpy() for k in ("open", "high", "low", "close"))
        with np.errstate(invalid="ignore"):
            checks.add(h < lo, "high < low")
            checks.add((h < np.fmax(o, c)) | (lo > np.fmin(o, c)), "open/close outside [low, high]")
            checks.add((o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0), "non-positive price")
            for col in ("vol", "amount"):
                if col in v:
                    checks.add(v[col].to_numpy() < 0, f"negative {col}")
            if "pre_close" in v:
                checks.add(v["pre_close"].to_numpy() <= 0, "non-positive pre_close")
    elif kind == "adj_factor":
        with np.errstate(invalid="ignore"):
            checks.add(v["adj_factor"].to_numpy() <= 0, "adj_factor must be positive")
    elif kind == "trade_cal":
        checks.add(
            ~v["is_open"].isin(["0", "1"]).to_numpy() & (v["is_open"] != "").to_numpy(),
            lambda i, t=v["is_open"]: f"is_open must be 0 or 1, got {t.iloc[i]!r}",
        )
        checks.add((v["exchange"].str.len() > 8).to_numpy(), "exchange longer than 8 characters")
    elif kind == "stock_basic":
        checks.add((v["name"].str.len() > 64).to_numpy(), "name longer than 64 characters")


def _duplicate_check(spec: KindSpec, v: dict[str, pd.Series], checks: _Checks, lines: np.ndarray) -> None:
    keys = pd.DataFrame({k: v[k] for k in spec.key})
    dup = keys.duplicated(keep="first").to_numpy()
    if dup.any():
        first_line = keys.groupby(list(spec.key), sort=False, dropna=False).ngroup().to_numpy()
        first_of_group: dict[int, int] = {}
        for i, g in enumerate(first_line):
            first_of_group.setdefault(int(g), int(lines[i]))
        checks.add(
            dup, lambda i: f"duplicate key {tuple(spec.key)}, first on line {first_of_group[int(first_line[i])]}"
        )


def _to_table(kind: str, f: pd.DataFrame, report: FileReport) -> pd.DataFrame:
    """Validated Tushare columns → table columns (units converted)."""
    if kind in ("daily", "index_daily"):
        out = pd.DataFrame({"symbol": f["ts_code"], "trade_date": f["trade_date"]})
        for col in ("open", "high", "low", "close"):
            out[col] = f[col]
        out["pre_close"] = f.get("pre_close", np.nan)
        missing = out["pre_close"].isna()
        if missing.any():  # from the previous bar of the same symbol, in date order
            order = out.sort_values(["symbol", "trade_date"]).index
            prev = out.loc[order].groupby("symbol")["close"].shift(1)
            out.loc[order, "pre_close"] = out.loc[order, "pre_close"].fillna(prev)
            filled = int(missing.sum() - out["pre_close"].isna().sum())
            report.notes.append(f"pre_close filled from the previous bar on {filled} rows")
        if "vol" in f:
            out["volume"] = f["vol"] * 100.0  # lots -> shares
        if "amount" in f:
            out["amount"] = f["amount"] * 1000.0  # thousand CNY -> CNY
        for col in ("up_limit", "down_limit"):
            if col in f:
                out[col] = f[col]
        return out
    if kind == "adj_factor":
        return pd.DataFrame({"symbol": f["ts_code"], "trade_date": f["trade_date"], "adj_factor": f["adj_factor"]})
    if kind == "daily_basic":
        out = pd.DataFrame({"symbol": f["ts_code"], "trade_date": f["trade_date"]})
        for col in DAILY_BASIC_FIELDS:
            if col in f:
                out[col] = f[col]
        return out
    if kind == "trade_cal":
        return pd.DataFrame({"exchange": f["exchange"], "cal_date": f["cal_date"], "is_open": f["is_open"] == "1"})
    # stock_basic
    out = instrument_frame(f["ts_code"], f["name"]).drop(columns=["list_date"])
    for col in ("list_date", "delist_date"):  # absent columns are not written (kept as stored)
        if col in f:
            out[col] = [None if pd.isna(d) else d.date() for d in f[col]]
    return out


def expand_paths(items: Iterable[str | Path]) -> list[Path]:
    """Files as given; directories → their ``*.csv`` files (sorted)."""
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out.extend(sorted(x for x in p.iterdir() if x.suffix.lower() == ".csv" and x.is_file()))
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"no such file or directory: {p}")
    return out


def _write_file(conn: Connection, kind: str, parsed: ParsedFile) -> None:
    frame, rep = parsed.frame, parsed.report
    if frame.empty:
        return
    spec = SPECS[kind]
    if kind in ("daily", "adj_factor", "daily_basic"):
        ensure_instruments(conn, frame["symbol"].unique())
    elif kind == "index_daily":
        ensure_instruments(conn, frame["symbol"].unique(), is_index=True)
    stats = write(conn, spec.table, frame)
    rep.inserted += stats.inserted
    rep.replaced += stats.replaced


def import_csv(
    url_or_engine: str | Engine,
    paths: Sequence[str | Path],
    kind: str,
    on_error: OnError = "fail",
    progress: bool = True,
) -> ImportReport:
    """Import files of one kind; see the module docstring for the fail/skip contract."""
    if kind not in SPECS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    started = time.perf_counter()
    files = expand_paths(paths)
    engine = get_engine(url_or_engine)
    ensure_schema(engine)
    report = ImportReport()
    failed = False
    # Files are parsed and written one at a time inside ONE transaction, so memory stays at
    # one file's rows however many files there are. With on_error="fail" the first bad row
    # stops the writing (the remaining files are still validated, so every problem is
    # reported) and the transaction is rolled back: nothing of the invocation is kept.
    with engine.connect() as conn, conn.begin() as tx:
        for path in tqdm(files, desc=f"import {kind}", unit="file", disable=not progress):
            parsed = parse_file(path, kind)
            report.files.append(parsed.report)
            failed = failed or (on_error == "fail" and bool(parsed.report.errors))
            if not failed:
                _write_file(conn, kind, parsed)
        if failed:
            tx.rollback()
            for rep in report.files:  # those writes were undone
                rep.inserted = rep.replaced = 0
            report.seconds = time.perf_counter() - started
            return report
        report.data_version = bump_data_version(conn)
    report.committed = True
    report.seconds = time.perf_counter() - started
    return report
