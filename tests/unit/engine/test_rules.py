"""Board rules as pure functions: boards, lots, computed price limits, costs."""

from __future__ import annotations

import numpy as np
import pytest

from engine_svc.engine.market import MarketData, adjustment_multipliers, ffill_rows
from engine_svc.engine.rules import (
    board_of,
    buy_cost,
    limit_pct,
    max_affordable_buy,
    price_limits,
    round_buy_quantity,
    round_price,
    round_quantities,
    round_sell_quantity,
)


@pytest.mark.parametrize(
    ("symbol", "board"),
    [("600000.SH", "main"), ("000001.SZ", "main"), ("300059.SZ", "chinext"), ("301001.SZ", "chinext"),
     ("688981.SH", "star"), ("830799.BJ", "beijing"), ("430047.BJ", "beijing"), ("920001.BJ", "beijing")],
)
def test_board_of(symbol, board):
    assert board_of(symbol) == board


def test_lot_rounding():
    assert [round_buy_quantity(q, "main") for q in (0, 99, 100, 199, 250, -100)] == [0, 0, 100, 100, 200, 0]
    assert [round_buy_quantity(q, "star") for q in (199, 200, 201, 1234)] == [0, 200, 201, 1234]
    # sells: the whole position may include an odd lot, a partial sale may not
    assert round_sell_quantity(250, 250, "main") == 250
    assert round_sell_quantity(999, 250, "main") == 250
    assert round_sell_quantity(230, 250, "main") == 200
    assert round_sell_quantity(50, 250, "main") == 0
    assert round_sell_quantity(30, 30, "star") == 30
    assert round_sell_quantity(150, 250, "star") == 0
    assert round_sell_quantity(201, 250, "star") == 201


def test_round_price_half_up():
    # 10.05 · 1.1 = 11.055 (11.054999… in binary) → 11.06; 9.045 → 9.05
    assert round_price(np.array([10.05 * 1.1, 10.05 * 0.9, 12.344, 3.0])).tolist() == [11.06, 9.05, 12.34, 3.0]


def test_limit_pct_by_board_date_and_st():
    syms = ("600000.SH", "300059.SZ", "688001.SH", "830799.BJ")
    dates = np.array(["2020-08-21", "2020-08-24"], dtype="datetime64[D]")
    st = np.zeros((2, 4), dtype=bool)
    st[1, 0] = True
    st[1, 2] = True  # engine.md: ST ±5% on every board
    assert limit_pct(syms, dates, st).tolist() == [[0.10, 0.10, 0.20, 0.30], [0.05, 0.20, 0.05, 0.30]]


def test_price_limits_prefer_data():
    syms = ("600000.SH", "600001.SH")
    dates = np.array(["2021-01-04"], dtype="datetime64[D]")
    pre = np.array([[10.05, 10.0]])
    up_data = np.array([[np.nan, 10.9]])
    down_data = np.array([[np.nan, 9.1]])
    up, down = price_limits(syms, dates, np.zeros((1, 2), bool), pre, up_data, down_data)
    assert up.tolist() == [[11.06, 10.9]] and down.tolist() == [[9.05, 9.1]]


def test_costs_and_affordability():
    assert buy_cost(100, 10.0, 0.0003, 5.0) == 1005.0
    assert buy_cost(100_000, 10.0, 0.0003, 5.0) == pytest.approx(1_000_300.0)
    assert max_affordable_buy(10_005.0, 10.0, 0.0003, 5.0, "main") == 1000
    assert max_affordable_buy(10_004.99, 10.0, 0.0003, 5.0, "main") == 900
    assert max_affordable_buy(2_010.0, 10.0, 0.0, 5.0, "star") == 200
    assert max_affordable_buy(2_004.0, 10.0, 0.0, 5.0, "star") == 0
    assert max_affordable_buy(0.0, 10.0, 0.0, 0.0, "main") == 0


def test_ffill_and_adjustment_multipliers():
    a = np.array([[np.nan, 1.0], [2.0, np.nan], [np.nan, 3.0]])
    assert np.array_equal(ffill_rows(a), np.array([[np.nan, 1.0], [2.0, 1.0], [2.0, 3.0]]), equal_nan=True)
    adj = np.array([[np.nan, 1.0, np.nan], [1.0, 1.0, np.nan], [2.0, 4.0, np.nan]])
    qfq, has = adjustment_multipliers(adj, "qfq")
    assert has
    # leading unknown → first known factor; no factor at all → 1
    assert qfq.tolist() == [[0.5, 0.25, 1.0], [0.5, 0.25, 1.0], [1.0, 1.0, 1.0]]
    hfq, _ = adjustment_multipliers(adj, "hfq")
    assert hfq.tolist() == [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [2.0, 4.0, 1.0]]
    assert adjustment_multipliers(adj, "none") == (None, True)
    assert adjustment_multipliers(np.full((2, 2), np.nan), "qfq") == (None, False)


def test_market_data_pre_close_fallback_and_readonly_views(make_panel):
    nan = np.nan
    p = make_panel(["600000.SH"], ["2020-01-02", "2020-01-03", "2020-01-06"], open=[[10.0], [nan], [10.5]],
                   pre_close=[[10.0], [nan], [nan]])
    m = MarketData.build(p, "qfq")
    # 01-06 has no pre_close in the data: the last close (10.0, carried over the suspension) is used
    assert m.up_limit[2, 0] == 11.0 and m.down_limit[2, 0] == 9.0
    assert m.last_close[:, 0].tolist() == [10.0, 10.0, 10.5]
    with pytest.raises(ValueError):
        m.view["close"][0, 0] = 1.0


def test_round_quantities_matches_scalar_rules():
    rng = np.random.default_rng(0)
    delta = rng.integers(-600, 600, size=2000)
    available = rng.integers(-5, 500, size=2000)
    star = rng.random(2000) < 0.3
    got = round_quantities(delta, available, star)
    for d, a, s, g in zip(delta.tolist(), available.tolist(), star.tolist(), got.tolist(), strict=True):
        board = "star" if s else "main"
        want = round_buy_quantity(d, board) if d > 0 else round_sell_quantity(-d, max(a, 0), board)
        assert g == want, (d, a, s)
