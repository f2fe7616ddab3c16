"""load_panel / list_symbols / coverage against real databases, and the cache's invalidation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from data_helpers import empty_db, write_csv

from engine_svc.data.cache import PanelCache
from engine_svc.data.csv_import import import_csv
from engine_svc.data.db import dispose_all
from engine_svc.data.loader import UnknownSymbolsError, coverage, list_symbols, load_panel
from engine_svc.data.synthetic import generate_panel
from engine_svc.data.synthetic_db import write_synthetic
from engine_svc.engine.panel import BAR_FIELDS

nan = np.nan
# Three symbols over five open days; 000001.SZ is suspended on 01-04, 300059.SZ lists on 01-05.
DAILY = """
ts_code,trade_date,open,high,low,close,pre_close,vol,amount
600000.SH,20240102,10.0,10.5,9.9,10.2,10.0,10,100
600000.SH,20240103,10.2,10.4,10.0,10.1,10.2,20,200
600000.SH,20240104,10.1,10.3,10.0,10.3,10.1,30,300
600000.SH,20240105,10.3,11.33,10.3,11.33,10.3,40,400
600000.SH,20240108,11.3,11.5,11.0,11.1,11.33,50,500
000001.SZ,20240102,9.0,9.1,8.9,9.05,9.0,1,10
000001.SZ,20240103,9.05,9.2,9.0,9.1,9.05,2,20
000001.SZ,20240105,9.1,9.3,9.1,9.2,9.1,3,30
000001.SZ,20240108,9.2,9.2,8.9,9.0,9.2,4,40
300059.SZ,20240105,20.0,24.0,19.5,24.0,20.0,5,50
300059.SZ,20240108,24.0,25.0,23.0,24.5,24.0,6,60
"""
CAL = "exchange,cal_date,is_open\n" + "".join(
    f"SSE,{d},{o}\n"
    for d, o in [
        ("20240101", 0),
        ("20240102", 1),
        ("20240103", 1),
        ("20240104", 1),
        ("20240105", 1),
        ("20240106", 0),
        ("20240107", 0),
        ("20240108", 1),
    ]
)
INDEX = (
    "ts_code,trade_date,open,high,low,close\n"
    "000300.SH,20240102,3390,3410,3380,3400\n000300.SH,20240108,3480,3510,3470,3500\n"
)


@pytest.fixture(scope="module", autouse=True)
def _dispose() -> Iterator[None]:
    yield
    dispose_all()


@pytest.fixture
def known(db_url: str, tmp_path: Path) -> str:
    url = empty_db(db_url)
    for name, body, kind in [("d.csv", DAILY, "daily"), ("c.csv", CAL, "trade_cal"), ("i.csv", INDEX, "index_daily")]:
        assert import_csv(url, [write_csv(tmp_path / name, body)], kind, progress=False).committed
    return url


def test_exact_arrays_with_nan_gaps(known: str) -> None:
    p = load_panel(
        known,
        ["000001.SZ", "600000.SH", "300059.SZ"],
        "2024-01-01",
        "2024-01-08",
        benchmark="000300.SH",
        cache=PanelCache(0),
    )
    assert [str(d) for d in p.dates] == ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-01-08"]
    assert p.symbols == ("000001.SZ", "600000.SH", "300059.SZ")
    expected_close = np.array(
        [
            [9.05, 10.2, nan],
            [9.1, 10.1, nan],
            [nan, 10.3, nan],
            [9.2, 11.33, 24.0],
            [9.0, 11.1, 24.5],
        ]
    )
    assert np.array_equal(p.bars["close"], expected_close, equal_nan=True)
    assert np.array_equal(p.bars["volume"][:, 0], [100, 200, nan, 300, 400], equal_nan=True)  # lots -> shares
    assert np.array_equal(p.bars["amount"][:, 2], [nan, nan, nan, 50000, 60000], equal_nan=True)
    for f in BAR_FIELDS:
        assert p.bars[f].dtype == np.float64 and p.bars[f].shape == (5, 3)
    assert np.isnan(p.bars["adj_factor"]).all() and not p.has_adj_factor
    assert np.array_equal(p.benchmark.close, [3400, nan, nan, nan, 3500], equal_nan=True)  # type: ignore[union-attr]
    assert not p.is_st.any()
    with pytest.raises(ValueError, match="read-only"):
        p.bars["close"][0, 0] = 1.0  # cached panels are shared: they must not be modified


def test_sub_range_and_union_of_bar_dates_without_calendar(db_url: str, tmp_path: Path) -> None:
    url = empty_db(db_url)
    import_csv(url, [write_csv(tmp_path / "d.csv", DAILY)], "daily", progress=False)  # no calendar
    p = load_panel(url, ["300059.SZ", "000001.SZ"], "2024-01-03", "2024-01-31", cache=PanelCache(0))
    assert [str(d) for d in p.dates] == ["2024-01-03", "2024-01-05", "2024-01-08"]  # 01-04: neither traded
    assert np.array_equal(p.bars["open"], [[nan, 9.05], [20.0, 9.1], [24.0, 9.2]], equal_nan=True)


def test_unknown_symbols_and_bad_requests(known: str) -> None:
    with pytest.raises(UnknownSymbolsError) as info:
        load_panel(known, ["600000.SH", "999999.SH", "688999.SH"], "2024-01-01", "2024-01-08", benchmark="000905.SH")
    assert info.value.symbols == ("999999.SH", "688999.SH", "000905.SH")
    assert "999999.SH" in str(info.value)
    with pytest.raises(ValueError, match="duplicate"):
        load_panel(known, ["600000.SH", "600000.SH"], "2024-01-01", "2024-01-08")
    with pytest.raises(ValueError, match="after"):
        load_panel(known, ["600000.SH"], "2024-02-01", "2024-01-08")


def test_cache_hit_and_invalidation_by_import(known: str, tmp_path: Path) -> None:
    cache = PanelCache(64 * 1024 * 1024)
    args = (known, ["600000.SH", "000001.SZ"], "2024-01-01", "2024-01-08")
    first = load_panel(*args, cache=cache)
    assert load_panel(*args, cache=cache) is first and cache.hits == 1
    assert load_panel(*args, benchmark="000300.SH", cache=cache) is not first  # different key
    # any import bumps data_version: the next load re-reads and sees the new value
    changed = DAILY.replace("600000.SH,20240102,10.0,10.5,9.9,10.2", "600000.SH,20240102,10.0,10.5,9.9,10.4")
    import_csv(known, [write_csv(tmp_path / "changed.csv", changed)], "daily", progress=False)
    second = load_panel(*args, cache=cache)
    assert second is not first
    assert first.bars["close"][0, 0] == 10.2 and second.bars["close"][0, 0] == 10.4


def test_list_symbols_and_coverage(known: str) -> None:
    listed = {s["symbol"]: s for s in list_symbols(known)}
    assert listed["600000.SH"] == {
        "symbol": "600000.SH",
        "name": "",
        "first_date": "2024-01-02",
        "last_date": "2024-01-08",
        "bars": 5,
        "is_index": False,
    }
    assert listed["000300.SH"]["is_index"] and listed["000300.SH"]["bars"] == 2
    assert listed["300059.SZ"]["first_date"] == "2024-01-05"
    found, unknown = coverage(known, ["300059.SZ", "123456.SZ", "000001.SZ"])
    assert unknown == ["123456.SZ"]
    assert list(found) == ["300059.SZ", "000001.SZ"]
    assert (str(found["000001.SZ"].first_date), found["000001.SZ"].bars) == ("2024-01-02", 4)


def test_synthetic_round_trip_is_exact(db_url: str) -> None:
    url = empty_db(db_url)
    report = write_synthetic(url, 25, 300, seed=5, progress=False)
    assert report.committed and report.totals()["inserted"] > 0
    again = write_synthetic(url, 25, 300, seed=5, progress=False)
    assert again.totals()["inserted"] == 0 and again.totals()["replaced"] == report.totals()["inserted"]
    mem = generate_panel(25, 300, seed=5, with_daily_basic=True)
    db = load_panel(
        url,
        list(mem.symbols),
        str(mem.dates[0]),
        str(mem.dates[-1]),
        benchmark="000300.SH",
        use_daily_basic=True,
        cache=PanelCache(0),
    )
    assert db.data_hash() == mem.data_hash()  # every bar, ST flag, indicator and the benchmark
    assert db.is_st.any()
    some = list(mem.symbols[3:9])[::-1]
    part = load_panel(url, some, "2015-02-01", "2015-04-30", cache=PanelCache(0))
    sliced = mem.slice(some, "2015-02-01", "2015-04-30")
    for f in BAR_FIELDS:
        assert np.array_equal(part.bars[f], sliced.bars[f], equal_nan=True), f
    assert np.array_equal(part.is_st, sliced.is_st)


def test_list_symbols_sees_new_imports(known: str, tmp_path: Path) -> None:
    before = [s["symbol"] for s in list_symbols(known)]
    assert "688001.SH" not in before
    star = "ts_code,trade_date,open,high,low,close\n688001.SH,20240108,50,55,49,54\n"
    import_csv(known, [write_csv(tmp_path / "star.csv", star)], "daily", progress=False)
    after = {s["symbol"]: s for s in list_symbols(known)}
    assert set(after) == {*before, "688001.SH"}
    assert after["688001.SH"]["bars"] == 1 and after["688001.SH"]["first_date"] == "2024-01-08"
