"""Holdings through ex-rights / ex-dividend days (adj_factor steps): shares × ratio, the
fraction in cash at the ex-reference price, open orders restated, NAV continuous."""

from __future__ import annotations

import math

import pytest

from engine_svc.engine.market import MarketTape

D5 = ["2020-01-02", "2020-01-03", "2020-01-06", "2020-01-07", "2020-01-08"]
SYM = "600000.SH"


def script(actions: dict[str, str]) -> str:
    """A strategy running ``actions[date]`` (a statement on ``context``) on that day."""
    body = "".join(f"        if d == {day!r}:\n            {stmt}\n" for day, stmt in actions.items())
    return (
        "from zquant.backtest.strategy import BaseStrategy\n\n"
        "class Strategy(BaseStrategy):\n"
        "    def on_bar(self, context, bar_data):\n"
        "        d = context.current_date_str\n" + body
    )


@pytest.mark.parametrize("adjust_type", ["none", "qfq", "hfq"])
def test_split_doubles_shares_halves_cost_and_keeps_nav(make_panel, run, adjust_type):
    # 1:1 bonus issue on 01-06: raw prices halve, adj_factor doubles
    p = make_panel([SYM], D5, open=[[20.0], [20.0], [10.0], [10.0], [10.0]],
                   pre_close=[[20.0], [20.0], [math.nan], [10.0], [10.0]],  # missing: 20 / 2 is the reference
                   adj_factor=[[1.0], [1.0], [2.0], [2.0], [2.0]])
    res = run(p, script({"2020-01-02": f"context.order({SYM!r}, 1000)",
                         "2020-01-06": f"context.order_target({SYM!r}, 0)"}), adjust_type=adjust_type)
    d = res["daily"]
    assert [x["total_value"] for x in d] == [100_000.0] * 5  # no phantom 50% loss on the ex-date
    assert d[1]["positions"] == [{"symbol": SYM, "quantity": 1000, "sellable": 0, "avg_cost": 20.0,
                                  "close": 20.0, "market_value": 20_000.0}]
    assert d[2]["positions"] == [{"symbol": SYM, "quantity": 2000, "sellable": 2000, "avg_cost": 10.0,
                                  "close": 10.0, "market_value": 20_000.0}]
    assert res["logs"] == ["2020-01-06 ex-rights 600000.SH: adj_factor x2, 1000 -> 2000 shares"]
    assert res["ex_rights"] == [{"date": "2020-01-06", "symbol": SYM, "ratio": 2.0, "ex_price": 10.0,
                                 "quantity_before": 1000, "quantity_after": 2000, "cash": 0.0}]
    # an ex-date sell is not "limit down" against the pre-split close (limits from 10, not 20)
    res_sell_on_ex = run(p, script({"2020-01-02": f"context.order({SYM!r}, 1000)",
                                    "2020-01-03": f"context.order_target({SYM!r}, 0)"}))
    assert res_sell_on_ex["orders"][1]["status"] == "filled"
    sell = res["trades"][-1]
    assert (sell["side"], sell["quantity"], sell["price"], sell["date"]) == ("sell", 2000, 10.0, "2020-01-07")
    assert d[-1]["positions"] == [] and d[-1]["cash"] == 100_000.0


def test_dividend_is_reinvested_and_the_fraction_paid_in_cash(make_panel, run):
    # adj_factor steps by 1.0345; the exchange's ex-reference price (pre_close) is 19.33
    p = make_panel([SYM], D5, open=[[20.0], [20.0], [19.33], [19.33], [19.33]],
                   pre_close=[[20.0], [20.0], [19.33], [19.33], [19.33]],
                   adj_factor=[[1.0], [1.0], [1.0345], [1.0345], [1.0345]])
    res = run(p, script({"2020-01-02": f"context.order({SYM!r}, 300)"}))
    d = res["daily"]
    pos = d[2]["positions"][0]
    assert pos["quantity"] == 310  # floor(300 × 1.0345 = 310.35)
    assert pos["avg_cost"] == pytest.approx(20.0 * 300 / 310, abs=1e-12)
    fraction_cash = (300 * 1.0345 - 310) * 19.33
    assert d[2]["cash"] == pytest.approx(100_000.0 - 6_000.0 + fraction_cash, abs=1e-9)
    assert fraction_cash == pytest.approx(6.7655, abs=1e-9)
    assert res["logs"] == ["2020-01-06 ex-rights 600000.SH: adj_factor x1.0345, 300 -> 310 shares, "
                           "6.77 cash for the fraction"]
    (event,) = res["ex_rights"]
    assert (event["quantity_before"], event["quantity_after"], event["ex_price"]) == (300, 310, 19.33)
    assert event["cash"] == pytest.approx(fraction_cash, abs=1e-12)
    # NAV moves only by the exchange's rounding of the reference price (19.33 × 1.0345 ≠ 20)
    assert d[2]["total_value"] - d[1]["total_value"] == pytest.approx(310 * 19.33 + fraction_cash - 6_000.0)


def test_open_orders_are_restated_so_sell_everything_still_sells_everything(make_panel, run):
    p = make_panel([SYM, "000001.SZ"], D5, open=[[20.0, 5.0], [20.0, 5.0], [10.0, 5.0], [10.0, 5.0], [10.0, 5.0]],
                   pre_close=[[20.0, 5.0], [20.0, 5.0], [10.0, 5.0], [10.0, 5.0], [10.0, 5.0]],
                   adj_factor=[[1.0, 1.0], [1.0, 1.0], [2.0, 1.0], [2.0, 1.0], [2.0, 1.0]])
    res = run(p, script({
        "2020-01-02": f"context.order({SYM!r}, 1000)",
        "2020-01-03": f"context.order_target({SYM!r}, 0); context.order({SYM!r}, 100, 20.0)",
    }))
    sell, limit_buy = res["orders"][1], res["orders"][2]
    assert sell["status"] == "filled" and sell["filled_quantity"] == 2000 and sell["fill_price"] == 10.0
    assert sell["reason"] == "restated for ex-rights (adj_factor x2): 2000 shares"
    assert limit_buy["status"] == "filled" and limit_buy["filled_quantity"] == 200
    assert limit_buy["limit_price"] == 10.0 and limit_buy["fill_price"] == 10.0
    assert res["daily"][2]["positions"][0]["quantity"] == 200
    # the other symbol has no event: nothing logged for it
    assert res["logs"] == ["2020-01-06 ex-rights 600000.SH: adj_factor x2, 1000 -> 2000 shares"]


def test_event_during_a_suspension_applies_on_the_next_bar(make_panel, run):
    nan = math.nan
    p = make_panel([SYM], D5, open=[[20.0], [20.0], [nan], [10.0], [10.0]],
                   adj_factor=[[1.0], [1.0], [nan], [2.0], [2.0]])
    res = run(p, script({"2020-01-02": f"context.order({SYM!r}, 1000)"}))
    d = res["daily"]
    assert d[2]["positions"][0]["quantity"] == 1000 and d[2]["total_value"] == 100_000.0  # suspended
    assert d[3]["positions"][0]["quantity"] == 2000 and d[3]["total_value"] == 100_000.0
    assert res["logs"] == ["2020-01-07 ex-rights 600000.SH: adj_factor x2, 1000 -> 2000 shares"]


def test_no_holding_no_order_nothing_happens(make_panel, run):
    p = make_panel([SYM], D5, open=[[20.0], [20.0], [10.0], [10.0], [10.0]],
                   adj_factor=[[1.0], [1.0], [2.0], [2.0], [2.0]])
    res = run(p, script({}))
    assert res["logs"] == [] and res["orders"] == [] and res["daily"][-1]["total_value"] == 100_000.0


def _events(make_panel, adj, close, pre):  # type: ignore[no-untyped-def]
    days = D5[: len(adj)]
    p = make_panel(["600000.SH", "600001.SH"], days, close=close, open=close, pre_close=pre, adj_factor=adj)
    tape = MarketTape.over(p, "none")
    for _ in days:
        tape.advance()
    return tape.ex_rights


def test_events_are_found_per_symbol_with_the_reference_price(make_panel) -> None:
    nan = math.nan
    adj = [[1.0, nan], [1.0, 3.0], [nan, 3.0], [1.5, 3.3]]
    close = [[9.0, nan], [9.0, 7.0], [nan, 7.0], [6.0, 6.5]]  # col 0 suspended on row 2
    pre = [[9.0, nan], [9.0, 7.0], [nan, 7.0], [nan, 6.5]]  # pre_close missing on row 3, col 0
    events = _events(make_panel, adj, close, pre)
    assert list(events) == [3]
    (j0, r0, px0), (j1, r1, px1) = events[3]
    assert (j0, r0, px0) == (0, 1.5, 6.0)  # no pre_close: previous close / ratio
    assert (j1, px1) == (1, 6.5) and r1 == pytest.approx(1.1)
    assert _events(make_panel, [[nan, nan], [nan, nan]], [[9.0, 7.0], [9.0, 7.0]], [[9.0, 7.0], [9.0, 7.0]]) == {}
