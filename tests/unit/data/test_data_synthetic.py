from __future__ import annotations

import time

import numpy as np
import pytest

from engine_svc.data.synthetic import BENCHMARK_SYMBOL, generate_market, generate_panel
from engine_svc.engine.panel import BAR_FIELDS, DAILY_BASIC_FIELDS


@pytest.fixture(scope="module")
def panel():  # type: ignore[no-untyped-def]
    return generate_panel(120, 600, seed=7, with_daily_basic=True)


def test_same_seed_same_data_different_seed_different_data() -> None:
    a, b = generate_panel(20, 200, seed=3), generate_panel(20, 200, seed=3)
    for f in BAR_FIELDS:
        assert np.array_equal(a.bars[f], b.bars[f], equal_nan=True)
    assert a.data_hash() == b.data_hash()
    assert generate_panel(20, 200, seed=4).data_hash() != a.data_hash()


def test_daily_basic_does_not_change_the_bars() -> None:
    plain, rich = generate_panel(15, 100, seed=1), generate_panel(15, 100, seed=1, with_daily_basic=True)
    for f in BAR_FIELDS:
        assert np.array_equal(plain.bars[f], rich.bars[f], equal_nan=True)
    assert plain.daily_basic is None
    assert rich.daily_basic is not None and set(rich.daily_basic) == set(DAILY_BASIC_FIELDS)


def test_dates_are_weekdays_from_start() -> None:
    p = generate_panel(3, 10, start="2015-01-03")  # a Saturday
    assert str(p.dates[0]) == "2015-01-05"
    assert np.all(np.is_busday(p.dates))
    assert len(p.dates) == 10


def test_ohlc_invariants(panel) -> None:  # type: ignore[no-untyped-def]
    b, has = panel.bars, panel.has_bar
    o, h, lo, c = b["open"][has], b["high"][has], b["low"][has], b["close"][has]
    assert np.all(lo > 0)
    assert np.all(lo <= np.minimum(o, c)) and np.all(h >= np.maximum(o, c))
    assert np.all(h <= b["up_limit"][has]) and np.all(lo >= b["down_limit"][has])
    assert np.all(b["volume"][has] > 0) and np.all(b["amount"][has] > 0)
    for f in BAR_FIELDS:  # NaN exactly where there is no bar
        assert np.array_equal(np.isnan(b[f]), ~has), f


def test_pre_close_is_previous_close_except_on_ex_rights_days(panel) -> None:  # type: ignore[no-untyped-def]
    b = panel.bars
    for j in range(len(panel.symbols)):
        rows = np.flatnonzero(panel.has_bar[:, j])
        prev_close = b["close"][rows[:-1], j]
        pre = b["pre_close"][rows[1:], j]
        adj = b["adj_factor"][rows, j]
        stepped = adj[1:] != adj[:-1]
        assert np.array_equal(pre[~stepped], prev_close[~stepped])
        assert np.all(pre[stepped] < prev_close[stepped])  # dividends/splits lower the reference price
        assert np.allclose(adj[1:][stepped] / adj[:-1][stepped], prev_close[stepped] / pre[stepped])


def test_market_features_present(panel) -> None:  # type: ignore[no-untyped-def]
    b, has = panel.bars, panel.has_bar
    # suspensions: a listed symbol without a bar for several consecutive days
    gaps = [np.diff(np.flatnonzero(has[:, j])).max() for j in range(has.shape[1])]
    assert max(gaps) > 2
    assert int((b["close"] == b["up_limit"]).sum()) > 10
    assert int((b["close"] == b["down_limit"]).sum()) > 10
    assert panel.is_st.any()
    assert (np.nanmax(b["adj_factor"], axis=0) > 1).any()
    boards = {s[:3] for s in panel.symbols}
    assert {"300", "688"} <= boards and ({"600", "000"} & boards)
    assert panel.benchmark is not None and panel.benchmark.symbol == BENCHMARK_SYMBOL
    assert np.all(np.isfinite(panel.benchmark.close))


def test_st_days_use_5pct_limit(panel) -> None:  # type: ignore[no-untyped-def]
    b = panel.bars
    st = panel.is_st & panel.has_bar
    assert st.any()
    assert np.allclose(b["up_limit"][st], np.round(b["pre_close"][st] * 1.05, 2))


def test_st_periods_match_mask() -> None:
    m = generate_market(60, 400, seed=11)
    mask = np.zeros_like(m.panel.is_st)
    col = {s: i for i, s in enumerate(m.panel.symbols)}
    for sym, lo, hi in m.st_periods:
        rows = (m.panel.dates >= np.datetime64(lo)) & (m.panel.dates <= np.datetime64(hi))
        mask[rows, col[sym]] = True
    assert np.array_equal(mask, m.panel.is_st)


def test_generation_is_fast() -> None:
    generate_panel(50, 50)  # warm the allocator
    started = time.process_time()  # CPU time: other jobs on a shared box must not fail this
    p = generate_panel(1000, 2500, seed=1)
    elapsed = time.process_time() - started
    assert p.shape == (2500, 1000)
    assert elapsed < 3.0, f"1000x2500 took {elapsed:.2f}s of CPU"
