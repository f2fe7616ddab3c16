"""Drive the ORIGINAL zquant engine (``zquant.backtest.engine.BacktestEngine``) on a synthetic
panel, for ``engine_bench.py --zquant-src DIR``. The original code is not part of this
repository: DIR is a checkout of it (github.com/zquant/zquant; measured: the yoyoung/zquant
mirror at commit dbe34e7). Only its ``zquant/backtest`` package runs unchanged; two modules of
its application layer are replaced here because they need its MySQL schema and settings file:

- ``zquant.data.processor.DataProcessor``: ``get_trading_dates`` and ``get_daily_data_records``
  return what the original returns (a list of ``date``; one dict per bar with the columns of its
  daily table, dates as ISO strings), built from the panel BEFORE the timer starts — so the
  original's constructor (``init_s``, part of ``run_s``) is its own DataFrame + ``iterrows``
  conversion, without any SQL;
- ``zquant.config.settings``: the four cost defaults (the bench passes the costs explicitly).

loguru is set to INFO (the original logs every order at DEBUG; production would not print
those), which leaves the original's f-string formatting of each message in the measurement.
"""

from __future__ import annotations

import datetime as dt
import math
import sys
import time
import types
from typing import Any

import numpy as np


def _install_stand_ins(records: dict[str, list[dict[str, Any]]], dates: list[dt.date]) -> None:
    data_pkg = types.ModuleType("zquant.data")
    data_pkg.__path__ = []
    processor = types.ModuleType("zquant.data.processor")

    class DataProcessor:
        @staticmethod
        def get_trading_dates(db: Any, start_date: dt.date, end_date: dt.date, exchange: str = "SSE") -> list[dt.date]:
            return [d for d in dates if start_date <= d <= end_date]

        @staticmethod
        def get_daily_data_records(db: Any, ts_code: str | None = None, start_date: dt.date | None = None,
                                   end_date: dt.date | None = None) -> list[dict[str, Any]]:
            return records.get(ts_code or "", [])

        @staticmethod
        def get_daily_basic_data_records(db: Any, ts_code: str | None = None, start_date: dt.date | None = None,
                                         end_date: dt.date | None = None) -> list[dict[str, Any]]:
            return []

    processor.DataProcessor = DataProcessor  # type: ignore[attr-defined]
    config = types.ModuleType("zquant.config")
    config.settings = types.SimpleNamespace(  # type: ignore[attr-defined]
        DEFAULT_COMMISSION_RATE=0.0003, DEFAULT_MIN_COMMISSION=5.0, DEFAULT_TAX_RATE=0.001,
        DEFAULT_SLIPPAGE_RATE=0.001,
    )
    sys.modules.update({"zquant.data": data_pkg, "zquant.data.processor": processor, "zquant.config": config})


def _records(panel: Any) -> dict[str, list[dict[str, Any]]]:
    """Per symbol, the dicts the original's ``get_daily_data_records`` returns (bars only: a
    suspended day has no row in its daily table)."""
    bars = panel.bars
    days = [str(d) for d in panel.dates]
    out: dict[str, list[dict[str, Any]]] = {}
    for j, symbol in enumerate(panel.symbols):
        cols = {f: bars[f][:, j].tolist() for f in ("open", "high", "low", "close", "pre_close", "volume", "amount")}
        rows = []
        for i, day in enumerate(days):
            close = cols["close"][i]
            if math.isnan(close):
                continue
            pre = cols["pre_close"][i]
            rows.append({
                "id": len(rows) + 1, "ts_code": symbol, "trade_date": day, "open": cols["open"][i],
                "high": cols["high"][i], "low": cols["low"][i], "close": close, "pre_close": pre,
                "change": close - pre, "pct_chg": (close / pre - 1) * 100, "vol": cols["volume"][i] / 100,
                "amount": cols["amount"][i] / 1000, "created_by": None, "created_time": None,
                "updated_by": None, "updated_time": None,
            })
        out[symbol] = rows
    return out


def run(panel: Any, strategy_code: str, capital: float, params: dict[str, Any]) -> dict[str, Any]:
    """Build the stand-ins, then time the original's constructor (load) and ``run()``."""
    t0 = time.perf_counter()
    dates = [dt.date.fromisoformat(str(d)) for d in np.asarray(panel.dates, dtype="datetime64[D]")]
    _install_stand_ins(_records(panel), dates)
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="INFO")
    from zquant.backtest.engine import BacktestEngine

    namespace: dict[str, Any] = {}
    exec(compile(strategy_code, "<strategy>", "exec"), namespace)  # noqa: S102 - the bench's own strategy
    config = {
        "start_date": dates[0], "end_date": dates[-1], "symbols": list(panel.symbols),
        "initial_capital": capital, "strategy_params": params, "commission_rate": 0.0003,
        "min_commission": 5.0, "tax_rate": 0.001, "slippage_rate": 0.001,
    }
    errors = _count_strategy_errors(logger)
    t1 = time.perf_counter()
    c1 = time.process_time()
    engine = BacktestEngine(None, namespace["Strategy"], config)  # type: ignore[arg-type]
    t2 = time.perf_counter()
    result = engine.run()
    t3 = time.perf_counter()
    if errors:  # the original logs and skips a failing on_bar; a skipped day is not a measurement
        raise RuntimeError(f"the strategy raised on {len(errors)} days in the original engine: {errors[0]}")
    return {
        "records_s": t1 - t0, "init_s": t2 - t1, "loop_s": t3 - t2, "run_s": t3 - t1,
        "run_cpu_s": time.process_time() - c1,
        "orders": len(result["orders"]), "trades": len(result["orders"]),
        "final_value": round(result["portfolio"]["total_value"], 2),
    }


def _count_strategy_errors(logger: Any) -> list[str]:
    errors: list[str] = []
    logger.add(lambda msg: errors.append(str(msg).strip()), level="ERROR")
    return errors
