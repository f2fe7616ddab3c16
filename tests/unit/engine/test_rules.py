"""The rule book (engine_svc/engine/rules.py): each rule alone, and every array form equal to
its scalar form element by element (the batch path relies on that for byte-identical results)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine_svc.data import codes
from engine_svc.engine import rules
from engine_svc.engine.rules import (
    board_limits,
    board_of,
    buy_cost,
    buy_costs,
    buy_fill_price,
    buy_fill_prices,
    commission,
    commissions,
    limit_pct,
    max_affordable_buy,
    price_limits,
    round_buy_quantity,
    round_price,
    round_quantities,
    round_sell_quantity,
    sell_fill_price,
    sell_fill_prices,
    sell_fill_quantities,
    sell_fill_quantity,
)

BOARDS = [("600000.SH", "main"), ("000001.SZ", "main"), ("002594.SZ", "main"), ("300059.SZ", "chinext"),
          ("301001.SZ", "chinext"), ("688981.SH", "star"), ("689009.SH", "star"), ("830799.BJ", "bse"),
          ("430047.BJ", "bse"), ("920001.BJ", "bse")]


@pytest.mark.parametrize(("symbol", "board"), BOARDS)
def test_board_of_is_one_rule_for_the_engine_and_the_data_layer(symbol, board):
    assert board_of(symbol) == board
    assert codes.board_of(symbol) == board  # what the instruments table and ListSymbols say
    assert codes.board_of(symbol, is_index=True) == "index"


def test_689_is_star_everywhere_lots_and_limits():
    # 689009.SH (a STAR CDR) was main board in the engine before: lots of 100, ±10%.
    assert round_buy_quantity(250, board_of("689009.SH")) == 250
    base, chinext = board_limits(tuple(map(board_of, ("689009.SH", "600000.SH"))))
    pct = limit_pct(base, chinext, np.array(["2021-01-04"], dtype="datetime64[D]"), np.zeros((1, 2), bool))
    assert pct.tolist() == [[0.20, 0.10]]


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


def test_t_plus_one_sell_quantity():
    # 1000 held, 400 of them bought today: at most 600 sellable, and only whole lots of them
    assert sell_fill_quantity(1000, 1000, 400, "main") == 600
    assert sell_fill_quantity(650, 1000, 400, "main") == 600
    assert sell_fill_quantity(1000, 1000, 1000, "main") == 0
    assert sell_fill_quantity(1050, 1050, 0, "main") == 1050  # the whole position with its odd lot


def test_round_price_half_up():
    # 10.05 · 1.1 = 11.055 (11.054999… in binary) → 11.06; 9.045 → 9.05
    assert round_price(np.array([10.05 * 1.1, 10.05 * 0.9, 12.344, 3.0])).tolist() == [11.06, 9.05, 12.34, 3.0]


def test_limit_pct_by_board_date_and_st():
    syms = ("600000.SH", "300059.SZ", "688001.SH", "830799.BJ")
    base, chinext = board_limits(tuple(map(board_of, syms)))
    dates = np.array(["2020-08-21", "2020-08-24"], dtype="datetime64[D]")
    st = np.array([[False] * 4, [True, False, True, False]])
    assert limit_pct(base, chinext, dates, st).tolist() == [[0.10, 0.10, 0.20, 0.30],
                                                            [0.05, 0.20, 0.05, 0.30]]  # ST ±5% on every board
    assert base.tolist() == [0.10, 0.10, 0.20, 0.30]  # not modified by either call


def test_price_limits_prefer_data():
    pct = np.array([0.10, 0.10])
    up, down = price_limits(pct, np.array([10.05, 10.0]), np.array([np.nan, 10.9]), np.array([np.nan, 9.1]))
    assert up.tolist() == [11.06, 10.9] and down.tolist() == [9.05, 9.1]


def test_costs_and_affordability():
    assert buy_cost(100, 10.0, 0.0003, 5.0) == 1005.0
    assert buy_cost(100_000, 10.0, 0.0003, 5.0) == pytest.approx(1_000_300.0)
    assert max_affordable_buy(10_005.0, 10.0, 0.0003, 5.0, "main") == 1000
    assert max_affordable_buy(10_004.99, 10.0, 0.0003, 5.0, "main") == 900
    assert max_affordable_buy(2_010.0, 10.0, 0.0, 5.0, "star") == 200
    assert max_affordable_buy(2_004.0, 10.0, 0.0, 5.0, "star") == 0
    assert max_affordable_buy(0.0, 10.0, 0.0, 0.0, "main") == 0
    assert commission(1000.0, 0.0003, 5.0) == 5.0 and commission(100_000.0, 0.0003, 5.0) == pytest.approx(30.0)
    assert rules.stamp_duty(10_000.0, 0.001) == pytest.approx(10.0)


def test_slippage_is_capped_at_the_price_limits():
    # The audit's cases: 000002.SZ open 13.71 with up limit 13.73, slippage 0.2% → 13.737 capped.
    assert buy_fill_price(13.71, 0.002, 13.73) == (13.73, True)
    assert sell_fill_price(10.0, 0.002, 9.99) == (9.99, True)
    assert buy_fill_price(10.0, 0.002, 11.0) == (10.0 * 1.002, False)
    assert sell_fill_price(10.0, 0.002, 9.0) == (10.0 * 0.998, False)
    assert buy_fill_price(10.0, 0.002, math.nan) == (10.0 * 1.002, False)  # no limit known: no cap
    # the limit test itself is on the price before slippage
    assert not rules.blocked_buy(13.71, 13.73) and rules.blocked_buy(13.73, 13.73)
    assert not rules.blocked_sell(10.0, 9.99) and rules.blocked_sell(9.99, 9.99)


def test_array_forms_equal_the_scalar_forms():
    rng = np.random.default_rng(0)
    n = 3000
    px = np.round(rng.uniform(1, 50, n), 2)
    limit = np.where(rng.random(n) < 0.1, np.nan, np.round(px * rng.uniform(0.98, 1.03, n), 2))
    for s in (0.0, 0.001, 0.02):
        got, capped = buy_fill_prices(px, s, limit)
        want = [buy_fill_price(p, s, lim) for p, lim in zip(px.tolist(), limit.tolist(), strict=True)]
        assert got.tolist() == [w[0] for w in want] and capped.tolist() == [w[1] for w in want]
        got, capped = sell_fill_prices(px, s, limit)
        want = [sell_fill_price(p, s, lim) for p, lim in zip(px.tolist(), limit.tolist(), strict=True)]
        assert got.tolist() == [w[0] for w in want] and capped.tolist() == [w[1] for w in want]
    pairs = list(zip(px.tolist(), limit.tolist(), strict=True))
    assert rules.blocked_buys(px, limit).tolist() == [rules.blocked_buy(p, lim) for p, lim in pairs]
    assert rules.blocked_sells(px, limit).tolist() == [rules.blocked_sell(p, lim) for p, lim in pairs]
    q = rng.integers(0, 50_000, n)
    values = q * px
    assert commissions(values, 0.0003, 5.0).tolist() == [commission(v, 0.0003, 5.0) for v in values.tolist()]
    assert buy_costs(q, px, 0.0003, 5.0).tolist() == [buy_cost(a, b, 0.0003, 5.0)
                                                      for a, b in zip(q.tolist(), px.tolist(), strict=True)]
    held = rng.integers(0, 5000, n)
    bought = np.minimum(held, rng.integers(0, 3000, n))
    star = rng.random(n) < 0.3
    got = sell_fill_quantities(q % 6000, held, bought, star)
    want = [sell_fill_quantity(a, h, b, "star" if st else "main")
            for a, h, b, st in zip((q % 6000).tolist(), held.tolist(), bought.tolist(), star.tolist(), strict=True)]
    assert got.tolist() == want


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
