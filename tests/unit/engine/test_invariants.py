"""Randomised strategies on random panels (suspensions, gaps to limit prices, STAR and ChiNext
symbols, limit and market orders): accounting invariants that must hold for any input."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest

RANDOM_TRADER = '''
import random
from zquant.backtest.strategy import BaseStrategy

class Strategy(BaseStrategy):
    def initialize(self):
        self.rng = random.Random(self.params["seed"])

    def on_bar(self, context, bar_data):
        for symbol in context.symbols:
            r = self.rng.random()
            pos = context.portfolio.get_position(symbol)
            limit = None
            if self.rng.random() < 0.3 and pos.current_price == pos.current_price:
                limit = round(pos.current_price * self.rng.uniform(0.95, 1.05), 2)
            if r < 0.25:
                context.order(symbol, self.rng.choice([50, 100, 150, 200, 250, 1000, 5000]), price=limit)
            elif r < 0.4:
                context.order(symbol, -self.rng.choice([50, 100, 200, 250, 10**6]), price=limit)
            elif r < 0.5:
                context.order_target_percent(symbol, self.rng.uniform(0, 0.4), price=limit)
            elif r < 0.55:
                context.order_target(symbol, 0)
'''


def _panel(make_panel, seed: int):
    rng = np.random.default_rng(seed)
    n_days, syms = 60, ["600000.SH", "300059.SZ", "688001.SH", "000002.SZ", "830799.BJ"]
    close = np.round(10 * np.exp(np.cumsum(rng.normal(0, 0.04, (n_days, len(syms))), axis=0)), 2)
    prev = np.vstack([close[:1], close[:-1]])
    open_ = np.round(prev * (1 + rng.normal(0, 0.04, close.shape)), 2)
    open_ = np.clip(open_, np.round(prev * 0.9, 2), np.round(prev * 1.1, 2))  # some opens at the limit
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.02, close.shape))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.02, close.shape))
    suspended = rng.random(close.shape) < 0.08
    for a in (open_, close, high, low):
        a[suspended] = np.nan
    dates = [str(d) for d in np.busday_offset("2020-08-03", np.arange(n_days), roll="forward")]
    is_st = np.zeros(close.shape, dtype=bool)
    is_st[30:, 3] = True
    return make_panel(syms, dates, open=open_.tolist(), close=close.tolist(), high=high.tolist(),
                      low=low.tolist(), is_st=is_st.tolist())


@pytest.mark.parametrize("seed", range(6))
def test_accounting_invariants(make_panel, run, seed):
    p = _panel(make_panel, seed)
    kw = {"commission_rate": 0.0003, "min_commission": 5.0, "tax_rate": 0.001, "slippage_rate": 0.001,
          "initial_capital": 200_000.0, "params": {"seed": seed}}
    res = run(p, RANDOM_TRADER, **kw)
    dates = [str(d) for d in p.dates]
    col = {s: j for j, s in enumerate(p.symbols)}
    bars = p.bars
    orders = {o["order_id"]: o for o in res["orders"]}
    assert [o["order_id"] for o in res["orders"]] == list(range(1, len(orders) + 1))
    statuses = defaultdict(int)
    for o in res["orders"]:
        statuses[o["status"]] += 1
        assert o["status"] in ("filled", "rejected", "expired")
        if o["status"] == "filled":
            assert 0 < o["filled_quantity"] <= o["quantity"]
            assert (o["reason"] == "") == (o["filled_quantity"] == o["quantity"])
            # matched on the next trading day, never the day it was placed
            assert dates.index(o["fill_date"]) == dates.index(o["created_date"]) + 1
        else:
            assert o["filled_quantity"] == 0 and o["fill_price"] is None and o["reason"]
    assert statuses["filled"] > 20 and statuses["rejected"] > 0 and statuses["expired"] > 0

    cash = 200_000.0
    holdings: dict[str, int] = defaultdict(int)
    by_day = defaultdict(list)
    for t in res["trades"]:
        by_day[t["date"]].append(t)
    for k, day in enumerate(res["daily"]):
        bought_today: dict[str, int] = defaultdict(int)
        for t in by_day[day["date"]]:
            o = orders[t["order_id"]]
            i, j = dates.index(t["date"]), col[t["symbol"]]
            raw = t["price"] / (1.001 if t["side"] == "buy" else 0.999)
            assert bars["low"][i, j] - 1e-6 <= raw <= bars["high"][i, j] + 1e-6  # inside the day's range
            if o["limit_price"] is not None:
                assert raw <= o["limit_price"] + 1e-9 if t["side"] == "buy" else raw >= o["limit_price"] - 1e-9
            assert t["commission"] == pytest.approx(max(t["value"] * 0.0003, 5.0))
            if t["side"] == "buy":
                if t["symbol"] == "688001.SH":
                    assert t["quantity"] >= 200
                else:
                    assert t["quantity"] % 100 == 0
                cash -= t["value"] + t["commission"]
                holdings[t["symbol"]] += t["quantity"]
                bought_today[t["symbol"]] += t["quantity"]
                assert t["tax"] == 0.0
            else:
                sellable = holdings[t["symbol"]] - bought_today[t["symbol"]]
                assert t["quantity"] <= sellable  # T+1
                assert t["quantity"] % 100 == 0 or t["quantity"] == holdings[t["symbol"]] or (
                    t["symbol"] == "688001.SH" and t["quantity"] >= 200)
                assert t["tax"] == pytest.approx(t["value"] * 0.001)
                cash += t["value"] - t["commission"] - t["tax"]
                holdings[t["symbol"]] -= t["quantity"]
        assert day["cash"] == pytest.approx(cash, abs=1e-6)
        assert day["cash"] >= -1e-6
        held = {x["symbol"]: x for x in day["positions"]}
        assert {s: q for s, q in holdings.items() if q} == {s: x["quantity"] for s, x in held.items()}
        mv = 0.0
        for s, x in held.items():
            j = col[s]
            closes = bars["close"][: k + 1, j]
            last = closes[~np.isnan(closes)][-1]  # valued at the last traded close
            assert x["close"] == last and x["market_value"] == pytest.approx(x["quantity"] * last)
            mv += x["market_value"]
        assert day["market_value"] == pytest.approx(mv)
        assert day["total_value"] == pytest.approx(day["cash"] + day["market_value"])
        assert math.isfinite(day["total_value"])
