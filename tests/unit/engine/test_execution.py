"""Execution model (docs/engine.md): every expected fill and cash figure is hand-computed in comments.

Defaults from conftest.run_code: capital 100 000, zero costs, adjust_type none.
"""

from __future__ import annotations

import math

import pytest

NAN = math.nan
D3 = ["2020-01-02", "2020-01-03", "2020-01-06"]
D4 = [*D3, "2020-01-07"]


def strat(body: str, on_status: str = "") -> str:
    """Strategy source whose on_bar runs ``body`` with ``d`` = current ISO date, ``c`` = context."""
    indented = "\n".join("        " + line for line in body.strip().splitlines())
    status = ""
    if on_status:
        status = "\n    def on_order_status(self, context, order):\n" + "\n".join(
            "        " + line for line in on_status.strip().splitlines()
        )
    return (
        "from zquant.backtest.context import Context\n"
        "from zquant.backtest.strategy import BaseStrategy\n\n"
        "class Strategy(BaseStrategy):\n"
        "    def on_bar(self, context: Context, bar_data):\n"
        "        c = context\n"
        "        d = context.current_date_str\n"
        f"{indented}\n{status}\n"
    )


def one_order(res: dict) -> dict:
    assert len(res["orders"]) == 1, res["orders"]
    return res["orders"][0]


# ---------------------------------------------------------------------------- matching
def test_market_order_fills_at_next_open(make_panel, run):
    p = make_panel(["600000.SH"], D3, open=[[10.0], [10.5], [11.0]], close=[[10.2], [10.6], [11.2]])
    res = run(p, strat('if d == "2020-01-02": c.order("600000.SH", 1000)'),
              commission_rate=0.0003, min_commission=5.0)
    o = one_order(res)
    # placed 01-02, matched on 01-03's open 10.5 (not 01-02's close 10.2)
    assert (o["status"], o["fill_date"], o["fill_price"], o["filled_quantity"]) == ("filled", "2020-01-03", 10.5, 1000)
    # value 10 500, commission max(10 500·0.0003 = 3.15, 5) = 5 → cash 100 000 − 10 505
    assert o["commission"] == 5.0 and o["tax"] == 0.0 and o["reason"] == ""
    assert res["daily"][0]["cash"] == 100_000.0 and res["daily"][0]["positions"] == []
    assert res["daily"][1]["cash"] == pytest.approx(89_495.0, abs=1e-9)
    # valued at 01-03's close: 1000·10.6
    assert res["daily"][1]["market_value"] == pytest.approx(10_600.0)
    assert res["daily"][1]["total_value"] == pytest.approx(100_095.0)
    assert res["daily"][2]["total_value"] == pytest.approx(89_495.0 + 11_200.0)
    assert res["trades"] == [{
        "order_id": 1, "date": "2020-01-03", "symbol": "600000.SH", "side": "buy", "quantity": 1000,
        "price": 10.5, "value": 10_500.0, "commission": 5.0, "tax": 0.0, "slippage_cost": 0.0,
    }]


def test_limit_buy_fills_at_min_open_limit(make_panel, run):
    p = make_panel(["600000.SH"], D3, open=[[10.0], [10.5], [10.5]], low=[[10.0], [10.2], [10.5]],
                   high=[[10.0], [10.8], [10.5]], close=[[10.0], [10.6], [10.5]])
    res = run(p, strat('if d == "2020-01-02": c.order("600000.SH", 1000, price=10.3)'))
    o = one_order(res)
    # low 10.2 ≤ 10.3 → fills at min(open 10.5, 10.3) = 10.3
    assert (o["status"], o["fill_price"], o["fill_date"], o["limit_price"]) == ("filled", 10.3, "2020-01-03", 10.3)
    assert res["daily"][1]["cash"] == pytest.approx(100_000 - 10_300)


def test_limit_buy_not_reached_expires_and_releases_cash(make_panel, run):
    p = make_panel(["600000.SH"], D3, open=[[10.0], [10.5], [10.5]], low=[[10.0], [10.2], [9.0]],
                   high=[[10.0], [10.8], [10.5]], close=[[10.0], [10.6], [10.5]])
    code = strat('''
if d == "2020-01-02":
    c.order("600000.SH", 1000, price=10.1)
    c.log("free", c.portfolio.cash)
if d == "2020-01-03":
    c.log("free", c.portfolio.cash)
''')
    res = run(p, code)
    o = one_order(res)
    # low 10.2 > 10.1 on 01-03 → expired at the end of 01-03; 01-06's low of 9.0 is irrelevant
    assert o["status"] == "expired" and "limit price not reached" in o["reason"]
    assert o["filled_quantity"] == 0 and o["fill_date"] is None and o["fill_price"] is None
    assert res["trades"] == []
    # 1000·10.1 reserved on 01-02 (limit price, no costs); released by 01-03
    assert res["logs"] == ["2020-01-02 free 89900.0", "2020-01-03 free 100000.0"]


def test_limit_sell_fills_at_max_open_limit(make_panel, run):
    p = make_panel(["600000.SH"], D4, open=[[10.0], [10.0], [10.8], [10.8]],
                   high=[[10.0], [10.0], [11.3], [10.8]], close=[[10.0], [10.0], [11.0], [10.8]])
    code = strat('''
if d == "2020-01-02": c.order("600000.SH", 1000)
if d == "2020-01-03": c.order("600000.SH", -1000, price=11.0)
''')
    res = run(p, code)
    sell = res["orders"][1]
    # high 11.3 ≥ 11.0 → max(open 10.8, 11.0) = 11.0
    assert (sell["side"], sell["status"], sell["fill_price"]) == ("sell", "filled", 11.0)
    assert sell["fill_date"] == "2020-01-06"
    assert res["daily"][2]["cash"] == pytest.approx(100_000 - 10_000 + 11_000)
    assert res["daily"][2]["positions"] == []


# ---------------------------------------------------------------------------- lots
def test_main_board_buy_rounds_down_to_100(make_panel, run):
    p = make_panel(["600000.SH"], D3, open=[[10.0], [10.0], [10.0]])
    res = run(p, strat('if d == "2020-01-02":\n    c.order("600000.SH", 150)\n    c.order("600000.SH", 50)'))
    a, b = res["orders"]
    assert (a["quantity"], a["filled_quantity"], a["status"]) == (150, 100, "filled")
    assert "rounded" in a["reason"]
    # below one lot: recorded as rejected at once, never matched
    assert (b["quantity"], b["status"], b["reason"], b["fill_date"]) == (50, "rejected", "quantity below one lot", None)
    assert res["daily"][1]["cash"] == 99_000.0


def test_star_board_min_200_then_step_1(make_panel, run):
    p = make_panel(["688001.SH"], D3, open=[[10.0], [10.0], [10.0]])
    res = run(p, strat('if d == "2020-01-02":\n    c.order("688001.SH", 150)\n    c.order("688001.SH", 201)'))
    a, b = res["orders"]
    assert (a["status"], a["reason"]) == ("rejected", "quantity below one lot")
    assert (b["status"], b["filled_quantity"], b["reason"]) == ("filled", 201, "")
    assert res["daily"][1]["positions"][0]["quantity"] == 201


def test_odd_lot_only_sold_with_whole_position(make_panel, run):
    dates = [*D4, "2020-01-08", "2020-01-09"]
    p = make_panel(["688001.SH"], dates, open=[[10.0]] * 6)
    code = strat('''
if d == "2020-01-02": c.order("688001.SH", 250)
if d == "2020-01-03": c.order("688001.SH", -220)
if d == "2020-01-06": c.order("688001.SH", -20)
if d == "2020-01-07": c.order("688001.SH", -30)
''')
    res = run(p, code)
    buy, sell220, sell20, sell30 = res["orders"]
    assert buy["filled_quantity"] == 250
    assert sell220["filled_quantity"] == 220  # STAR: ≥ 200, any step → 30 odd shares left
    # 20 of the 30 odd shares: a partial sale below 200 is not allowed
    assert (sell20["status"], sell20["reason"]) == ("rejected", "quantity below one lot")
    # all 30: the whole position, the odd lot may go
    assert (sell30["status"], sell30["filled_quantity"], sell30["fill_date"]) == ("filled", 30, "2020-01-08")
    assert res["daily"][4]["positions"] == []


def test_main_board_partial_sell_rounds_to_lots_whole_position_does_not(make_panel, run):
    p = make_panel(["600000.SH"], D4, open=[[10.0]] * 4)
    code = strat('''
if d == "2020-01-02": c.order("600000.SH", 500)
if d == "2020-01-03": c.order("600000.SH", -250)
if d == "2020-01-06": c.order("600000.SH", -1000)
''')
    res = run(p, code)
    _, s1, s2 = res["orders"]
    assert s1["filled_quantity"] == 200  # 250 of 500 → whole lots only
    assert s2["filled_quantity"] == 300  # more than held → cut to the whole remaining position
    assert res["daily"][3]["positions"] == []


# ---------------------------------------------------------------------------- T+1
def test_t_plus_one_sell_only_older_shares(make_panel, run):
    p = make_panel(["600000.SH"], D4, open=[[10.0]] * 4)
    code = strat('''
if d == "2020-01-02": c.order("600000.SH", 1000)
if d == "2020-01-03":
    c.log("sellable", c.portfolio.positions["600000.SH"].sellable)
    c.order("600000.SH", 500)
    c.order("600000.SH", -1500)
''')
    res = run(p, code)
    _, buy2, sell = res["orders"]
    # bought at 01-03's open → not sellable on 01-03
    assert res["logs"] == ["2020-01-03 sellable 0"]
    assert res["daily"][1]["positions"][0]["sellable"] == 0
    # on 01-06 the 1000 old shares may go, the 500 bought that morning may not
    assert (sell["filled_quantity"], sell["fill_date"]) == (1000, "2020-01-06")
    assert (buy2["filled_quantity"], buy2["fill_date"]) == (500, "2020-01-06")
    pos = res["daily"][2]["positions"]
    assert [(x["quantity"], x["sellable"]) for x in pos] == [(500, 0)]
    assert res["daily"][3]["positions"][0]["sellable"] == 500


# ---------------------------------------------------------------------------- price limits
def test_up_limit_from_data_rejects_buy(make_panel, run):
    p = make_panel(["600000.SH"], D3, open=[[10.0], [11.0], [11.0]],
                   up_limit=[[11.0], [11.0], [12.1]], down_limit=[[9.0], [9.0], [9.9]])
    res = run(p, strat('if d == "2020-01-02": c.order("600000.SH", 1000)'))
    o = one_order(res)
    assert (o["status"], o["reason"], o["filled_quantity"]) == ("rejected", "limit up", 0)
    assert res["daily"][1]["cash"] == 100_000.0


def test_down_limit_from_data_rejects_sell(make_panel, run):
    p = make_panel(["600000.SH"], D4, open=[[10.0], [10.0], [9.0], [9.5]],
                   down_limit=[[9.0], [9.0], [9.0], [8.1]], up_limit=[[11.0], [11.0], [11.0], [9.9]])
    code = strat('''
if d == "2020-01-02": c.order("600000.SH", 1000)
if d == "2020-01-03": c.order("600000.SH", -1000)
''')
    res = run(p, code)
    sell = res["orders"][1]
    assert (sell["status"], sell["reason"]) == ("rejected", "limit down")
    assert res["daily"][2]["positions"][0]["quantity"] == 1000


def test_st_limit_is_5_percent(make_panel, run):
    # pre_close 10.00 for both; ST → up limit 10.50, so 10.50 is limit-up and 10.49 is not
    p = make_panel(["600001.SH", "600002.SH"], D3,
                   open=[[10.0, 10.0], [10.5, 10.49], [10.5, 10.49]],
                   is_st=[[True, True]] * 3)
    res = run(p, strat('if d == "2020-01-02":\n    c.order("600001.SH", 100)\n    c.order("600002.SH", 100)'))
    a, b = res["orders"]
    assert (a["status"], a["reason"]) == ("rejected", "limit up")
    assert (b["status"], b["fill_price"]) == ("filled", 10.49)


@pytest.mark.parametrize(
    ("dates", "open_next", "status"),
    [
        (["2020-08-20", "2020-08-21"], 11.0, "rejected"),  # before the reform: ±10% → 11.00 is limit-up
        (["2020-08-21", "2020-08-24"], 11.0, "filled"),  # from 2020-08-24: ±20% → up limit 12.00
        (["2020-08-21", "2020-08-24"], 12.0, "rejected"),
    ],
)
def test_chinext_limit_switches_on_2020_08_24(make_panel, run, dates, open_next, status):
    p = make_panel(["300001.SZ"], dates, open=[[10.0], [open_next]], close=[[10.0], [open_next]],
                   pre_close=[[10.0], [10.0]])
    res = run(p, strat(f'if d == "{dates[0]}": c.order("300001.SZ", 100)'))
    first = res["orders"][0]
    assert first["status"] == status
    if status == "rejected":
        assert first["reason"] == "limit up"


def test_computed_down_limit_rejects_sell(make_panel, run):
    # pre_close 10.00 on 01-06, main board → down limit 9.00; open 9.00 → sell rejected
    p = make_panel(["600000.SH"], D3, open=[[10.0], [10.0], [9.0]], close=[[10.0], [10.0], [9.0]])
    code = strat('''
if d == "2020-01-02": c.order("600000.SH", 100)
if d == "2020-01-03": c.order("600000.SH", -100)
''')
    res = run(p, code)
    assert (res["orders"][1]["status"], res["orders"][1]["reason"]) == ("rejected", "limit down")


# ---------------------------------------------------------------------------- suspension
def test_suspended_next_day_rejects_and_values_at_last_close(make_panel, run):
    p = make_panel(["600000.SH"], D4, open=[[10.0], [10.0], [NAN], [10.4]], close=[[10.0], [10.2], [NAN], [10.4]])
    code = strat('''
if d == "2020-01-02": c.order("600000.SH", 1000)
if d == "2020-01-03": c.order("600000.SH", -1000)
if d == "2020-01-06": c.log(sorted(bar_data))
''')
    res = run(p, code)
    sell = res["orders"][1]
    assert (sell["status"], sell["reason"], sell["fill_date"]) == ("rejected", "suspended", None)
    # 01-06: no bar, the position keeps 01-03's close 10.2; bar_data has no entry for it
    assert res["daily"][2]["market_value"] == pytest.approx(10_200.0)
    assert res["daily"][2]["positions"][0]["close"] == 10.2
    assert res["logs"] == ["2020-01-06 []"]


# ---------------------------------------------------------------------------- cash
def test_buy_cut_to_affordable_lots_at_fill(make_panel, run):
    # capital 10 000, close 10 → 1000 reserved at 10.0; the open gaps to 10.5:
    # int(10 000 / 10.5) = 952 → 900 shares, cost 9450, cash 550
    p = make_panel(["600000.SH"], D3, open=[[10.0], [10.5], [10.5]])
    res = run(p, strat('if d == "2020-01-02": c.order("600000.SH", 1000)'), initial_capital=10_000.0)
    o = one_order(res)
    assert (o["status"], o["quantity"], o["filled_quantity"]) == ("filled", 1000, 900)
    assert o["reason"] == "insufficient cash: cut to 900"
    assert res["daily"][1]["cash"] == pytest.approx(550.0)


def test_buy_cut_at_submission_and_rejected_when_nothing_affordable(make_panel, run):
    p = make_panel(["600000.SH"], D3, open=[[10.0], [9.0], [9.0]])
    code = strat('''
if d == "2020-01-02":
    c.order("600000.SH", 2000)
    c.order("600000.SH", 100)
''')
    res = run(p, code, initial_capital=10_000.0)
    a, b = res["orders"]
    # 2000·10 = 20 000 > 10 000 → cut to 1000 at submission (reserving all the cash) …
    assert (a["quantity"], a["filled_quantity"], a["fill_price"]) == (2000, 1000, 9.0)
    assert "insufficient cash: cut to 1000" in a["reason"]
    # … so the second order cannot be covered: rejected at once, on the day it was placed
    assert (b["status"], b["reason"], b["created_date"], b["fill_date"]) == (
        "rejected", "insufficient cash", "2020-01-02", None)
    assert res["daily"][1]["cash"] == pytest.approx(1_000.0)


def test_min_commission_can_cut_a_lot(make_panel, run):
    # capital 10 003 at price 10, rate 0.0003, min 5: 1000 shares cost 10 000 + 5 > 10 003 → 900
    # (900: 9000 + max(2.7, 5) = 9005), cash 10 003 − 9005 = 998
    p = make_panel(["600000.SH"], D3, open=[[10.0]] * 3)
    res = run(p, strat('if d == "2020-01-02": c.order("600000.SH", 1000)'),
              initial_capital=10_003.0, commission_rate=0.0003, min_commission=5.0)
    o = one_order(res)
    assert (o["filled_quantity"], o["commission"]) == (900, 5.0)
    assert res["daily"][1]["cash"] == pytest.approx(998.0)


def test_min_commission_is_per_order(make_panel, run):
    p = make_panel(["600000.SH"], D3, open=[[10.0]] * 3)
    code = strat('''
if d == "2020-01-02":
    c.order("600000.SH", 100)
    c.order("600000.SH", 100)
    c.order("600000.SH", 10000)
''')
    res = run(p, code, commission_rate=0.0003, min_commission=5.0, initial_capital=1_000_000.0)
    # 1000 each → 0.30 < 5 → 5 per order (not pooled per day); 100 000·0.0003 = 30
    assert [o["commission"] for o in res["orders"]] == [5.0, 5.0, pytest.approx(30.0)]
    assert res["daily"][1]["cash"] == pytest.approx(1_000_000 - 102_000 - 40.0)


def test_stamp_duty_on_sells_only_and_slippage_on_price(make_panel, run):
    p = make_panel(["600000.SH"], D4, open=[[10.0], [10.0], [11.0], [11.0]])
    code = strat('''
if d == "2020-01-02": c.order("600000.SH", 1000)
if d == "2020-01-03": c.order("600000.SH", -1000)
''')
    res = run(p, code, tax_rate=0.001, slippage_rate=0.001, commission_rate=0.0003, min_commission=5.0)
    buy, sell = res["trades"]
    # buy at 10·1.001 = 10.01: value 10 010, commission max(3.003, 5) = 5, no tax, slippage 1000·0.01
    assert buy["price"] == pytest.approx(10.01) and buy["value"] == pytest.approx(10_010.0)
    assert (buy["commission"], buy["tax"]) == (5.0, 0.0)
    assert buy["slippage_cost"] == pytest.approx(10.0)
    # sell at 11·0.999 = 10.989: value 10 989, commission 3.2967 → 5, tax 10.989, slippage 11
    assert sell["price"] == pytest.approx(10.989) and sell["value"] == pytest.approx(10_989.0)
    assert sell["commission"] == 5.0
    assert sell["tax"] == pytest.approx(10.989)
    assert sell["slippage_cost"] == pytest.approx(11.0)
    assert res["daily"][2]["cash"] == pytest.approx(100_000 - 10_015 + 10_989 - 5 - 10.989)
    assert res["orders"][1]["tax"] == pytest.approx(10.989)


def test_open_orders_reserve_cash(make_panel, run):
    p = make_panel(["600000.SH"], D3, open=[[10.0]] * 3)
    code = strat('''
if d == "2020-01-02":
    c.log("before", c.portfolio.cash, c.portfolio.total_value)
    c.order("600000.SH", 1000)
    c.log("after", round(c.portfolio.cash, 6), round(c.portfolio.total_value, 6))
    c.order("600000.SH", 9000)
    c.log("left", round(c.portfolio.cash, 6))
''')
    res = run(p, code, slippage_rate=0.001, commission_rate=0.0003, min_commission=5.0)
    # estimate 10·1.001 = 10.01: 1000 → 10 010 + max(3.003, 5) = 10 015 reserved; total unchanged
    assert res["logs"][:2] == ["2020-01-02 before 100000.0 100000.0", "2020-01-02 after 89985.0 100000.0"]
    # 9000 → 90 117.03 > 89 985 free → int(89 985 / (10.01·1.0003)) = 8986 → 8900 shares,
    # reserving 89 089 + 26.7267 = 89 115.7267 → 869.2733 left
    assert res["logs"][2] == "2020-01-02 left 869.2733"
    a, b = res["orders"]
    assert (a["filled_quantity"], b["filled_quantity"]) == (1000, 8900)
    # the day's record shows total cash (reservations are still cash)
    assert res["daily"][0]["cash"] == 100_000.0
    assert res["daily"][1]["cash"] == pytest.approx(100_000 - 10_015 - 89_115.7267)


def test_orders_open_at_the_end_are_expired(make_panel, run):
    p = make_panel(["600000.SH"], D3, open=[[10.0]] * 3)
    res = run(p, strat('if d == "2020-01-06": c.order("600000.SH", 100)'))
    o = one_order(res)
    assert (o["status"], o["created_date"], o["fill_date"]) == ("expired", "2020-01-06", None)
    assert "backtest ended" in o["reason"]


def test_on_order_status_callback(make_panel, run):
    p = make_panel(["600000.SH"], D3, open=[[10.0], [11.0], [11.0]], up_limit=[[11.0]] * 3)
    code = strat('''
if d == "2020-01-02":
    c.order("600000.SH", 100)
    c.order("600000.SH", 10)
''', on_status='context.log(order.order_id, order.status, order.reason)')
    res = run(p, code)
    assert res["logs"] == [
        "2020-01-02 2 rejected quantity below one lot",  # rejected at submission
        "2020-01-03 1 rejected limit up",  # resolved at the next open, before on_bar
    ]


def test_broker_never_sells_shares_bought_the_same_day(make_panel):
    # With next-open matching and sells matched before buys this cannot happen through the
    # strategy API; the broker's own guard is checked directly (same-day buy then sell).
    from engine_svc.engine.broker import Broker
    from engine_svc.engine.config import BacktestConfig
    from engine_svc.engine.market import MarketTape

    p = make_panel(["600000.SH"], D3, open=[[10.0]] * 3)
    cfg = BacktestConfig(start_date=D3[0], end_date=D3[-1], symbols=p.symbols, commission_rate=0.0,
                         min_commission=0.0, slippage_rate=0.0, tax_rate=0.0)
    tape = MarketTape.over(p, "none")
    b = Broker(tape, cfg)
    tape.advance()
    b.submit(0, 0, 1000, None, drop_zero=False)
    tape.advance()
    b.open_day(1)  # 1000 bought on day 1
    tape.advance()
    b.submit(1, 0, 500, None, drop_zero=False)
    b.open_day(2)  # 500 more bought on day 2
    sell = b.submit(2, 0, -1500, None, drop_zero=False)
    b._match_sell(sell, 2, D3[2])  # same day as the 500 bought
    assert (sell.status, sell.filled_quantity) == ("filled", 1000)
    assert "T+1" in sell.reason
    assert int(b.qty[0]) == 500


def test_submission_reasons_compose_and_rejections_drop_the_rounding_note(make_panel, run):
    # 2050 → 2000 (lots); 2000·10 = 20 000 > 10 000 → cut to 1000: both notes, in that order.
    # 150 → 100, but no cash is left: rejected with the cash reason alone (no rounding note).
    p = make_panel(["600000.SH"], D3, open=[[10.0]] * 3)
    code = strat('''
if d == "2020-01-02":
    c.order("600000.SH", 2050)
    c.order("600000.SH", 150)
''')
    a, b = run(p, code, initial_capital=10_000.0)["orders"]
    assert a["reason"] == "rounded to 2000 (lot size / position); insufficient cash: cut to 1000"
    assert (a["status"], a["filled_quantity"]) == ("filled", 1000)
    assert (b["status"], b["reason"]) == ("rejected", "insufficient cash")


def test_arrays_orders_notify_only_resolved_orders(make_panel, run):
    # order_target_values places orders without calling on_order_status for the open ones;
    # the callback sees each order once, when it resolves (filled the next day).
    p = make_panel(["600000.SH", "600001.SH"], D3, open=[[10.0, 20.0]] * 3)
    code = '''
import numpy as np
from zquant.backtest.strategy import BaseStrategy

class Strategy(BaseStrategy):
    bar_mode = "arrays"

    def initialize(self):
        self.seen = []

    def on_bar(self, context, bars):
        if bars.date_str == "2020-01-02":
            context.order_target_values(np.array([5_000.0, 5_000.0]))
        context.log(str(self.seen))  # log lines carry the date

    def on_order_status(self, context, order):
        self.seen.append((order.order_id, order.status))
'''
    res = run(p, code)
    assert [o["status"] for o in res["orders"]] == ["filled", "filled"]
    assert res["logs"] == ["2020-01-02 []", "2020-01-03 [(1, 'filled'), (2, 'filled')]",
                           "2020-01-06 [(1, 'filled'), (2, 'filled')]"]


def test_cancel_order_releases_the_reservation_and_is_recorded(make_panel, run):
    p = make_panel(["600000.SH"], D3, open=[[10.0]] * 3)
    code = strat('''
if d == "2020-01-02":
    o = c.order("600000.SH", 1000)
    before = c.portfolio.cash
    same = c.cancel_order(o)
    c.log(before, c.portfolio.cash, same is o, o.status, c.get_open_orders(), c.cancel_order(o.order_id))
    c.order_target("600000.SH", 300)  # the cancelled order no longer counts towards a target
if d == "2020-01-03":
    c.log(c.cancel_order(2))  # filled at today's open: nothing to cancel
''', on_status='context.log("status", order.order_id, order.status)')
    res = run(p, code)
    assert res["logs"] == [
        "2020-01-02 status 1 cancelled",
        "2020-01-02 90000.0 100000.0 True cancelled [] None",
        "2020-01-03 status 2 filled",
        "2020-01-03 None",
    ]
    first, second = res["orders"]
    assert (first["status"], first["reason"], first["filled_quantity"]) == ("cancelled", "cancelled by the strategy", 0)
    assert (second["status"], second["filled_quantity"]) == ("filled", 300)


def test_daily_cash_includes_reservations_and_avg_cost_excludes_fees(make_panel, run):
    # proto DailyPortfolio.cash: total cash at the close, reservations of open orders included;
    # Position.avg_cost: average fill price with slippage, without commission.
    p = make_panel(["600000.SH"], D3, open=[[10.0]] * 3)
    code = strat('''
if d == "2020-01-02":
    c.order("600000.SH", 1000)
    c.log(c.portfolio.cash, c.portfolio.reserved_cash)
''')
    res = run(p, code, commission_rate=0.001, min_commission=5.0, slippage_rate=0.01)
    free, reserved = map(float, res["logs"][0].split()[1:])
    assert reserved == pytest.approx(1000 * 10.0 * 1.01 * 1.001, rel=1e-12)  # close + slippage + commission
    assert free == pytest.approx(100_000.0 - reserved, rel=1e-12)
    day0, day1 = res["daily"][:2]
    assert day0["cash"] == 100_000.0 and day0["total_value"] == 100_000.0  # reserved, still cash
    fill = 10.0 * 1.01
    (pos,) = day1["positions"]
    assert pos["avg_cost"] == fill  # slippage in, the 10.1 commission out
    assert day1["cash"] == pytest.approx(100_000.0 - 1000 * fill - 1000 * fill * 0.001, rel=1e-15)
    assert day1["total_value"] == day1["cash"] + 1000 * 10.0
