"""bench/benchext.py's export and bench/sweep_external.py's signal: what backtesting.py and
vectorbt are fed in the sweep bench is the data and the dual-MA template's decisions that the
engine has."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench import benchext, sweep_external
from engine_svc.data.synthetic import generate_panel
from engine_svc.engine.config import BacktestConfig
from engine_svc.engine.market import MarketTape
from engine_svc.engine.panel import BAR_FIELDS, Panel
from engine_svc.engine.runner import run_backtest

TEMPLATE = Path(__file__).resolve().parents[3] / "task_svc" / "templates" / "dual_ma_trend.py"


def _panel(adj: list[list[float]], close: list[list[float]]) -> Panel:
    a, c = np.array(adj, dtype=float), np.array(close, dtype=float)
    dates = np.arange(np.datetime64("2020-01-06"), np.datetime64("2020-01-06") + len(c))
    bars = {f: np.full(c.shape, np.nan) for f in BAR_FIELDS}
    bars.update({k: c.copy() for k in ("open", "high", "low", "close", "pre_close")})
    bars["volume"] = np.where(np.isnan(c), np.nan, 100.0)
    bars["adj_factor"] = a
    return Panel(dates=dates, symbols=("600000.SH", "000001.SZ"), bars=bars)


def test_qfq_prices_by_hand() -> None:
    # Symbol 0: no factor on day 0, a step 1 → 2 on day 3, none again on day 4 (carried).
    # Symbol 1: no factor at all → raw prices; suspended on day 2 → NaN.
    nan = np.nan
    panel = _panel(adj=[[nan, nan], [1, nan], [1, nan], [2, nan], [nan, nan]],
                   close=[[10, 5], [10, 5], [12, nan], [6, 6], [7, 7]])
    view = benchext.qfq_prices(panel)
    np.testing.assert_allclose(view["close"][:, 0], [5, 5, 6, 6, 7])
    np.testing.assert_allclose(view["close"][:, 1], [5, 5, nan, 6, 7])


def test_export_agrees_with_the_engines_point_in_time_view(tmp_path: Path) -> None:
    panel = generate_panel(4, 260, seed=3)
    path = benchext.write_adjusted_npz(panel, tmp_path / "p.npz")
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    assert data["symbols"].tolist() == list(panel.symbols)
    assert (data["dates"] == panel.dates).all()
    np.testing.assert_array_equal(data["volume"], panel.bars["volume"])
    assert (np.isnan(data["close"]) == ~panel.has_bar).all() and (~panel.has_bar).any()
    tape = MarketTape.over(panel, "qfq")
    assert tape.ex_rights, "the synthetic market must have ex-rights days for this to test anything"
    for t in range(len(panel.dates)):
        tape.advance()
        for field in ("open", "close"):
            seen = tape.view[field][: t + 1]
            # A window seen on day t differs from the export only by one factor per symbol.
            with np.errstate(invalid="ignore"):
                ratio = data[field][: t + 1] / seen
            for j in range(len(panel.symbols)):
                r = ratio[:, j][~np.isnan(ratio[:, j])]
                if r.size:
                    np.testing.assert_allclose(r, r[-1], rtol=1e-12)


def test_signal_matches_the_template_run_by_the_engine(tmp_path: Path) -> None:
    panel = generate_panel(4, 260, seed=3)
    short, long, trend = 5, 20, 30
    config = BacktestConfig(start_date=str(panel.dates[0]), end_date=str(panel.dates[-1]), symbols=panel.symbols,
                            params={"short_window": short, "long_window": long, "trend_window": trend})
    result = run_backtest(panel, TEMPLATE.read_text(), config)
    with np.load(benchext.write_adjusted_npz(panel, tmp_path / "p.npz")) as z:
        close = z["close"]
    ext = sweep_external
    valid = ext.gap_free(close, np.arange(len(close)), max(long, trend) + 1)
    with np.errstate(invalid="ignore"):
        buy, sell = ext.crossings(ext.window_mean(close, short), ext.window_mean(close, long),
                                  close > ext.window_mean(close, trend), valid)
    # What the template sees as held in on_bar of day t is the position at t's close.
    index = {s: j for j, s in enumerate(panel.symbols)}
    held = np.zeros(close.shape, dtype=bool)
    for t, day in enumerate(result["daily"]):
        for pos in day["positions"]:
            held[t, index[pos["symbol"]]] = pos["quantity"] > 0
    row = {str(d): t for t, d in enumerate(panel.dates)}
    placed = {(o["side"], row[o["created_date"]], index[o["symbol"]]) for o in result["orders"]}
    expected = ({("buy", int(t), int(j)) for t, j in zip(*np.nonzero(buy & ~held), strict=True)}
                | {("sell", int(t), int(j)) for t, j in zip(*np.nonzero(sell & held), strict=True)})
    assert len(placed) >= 10  # the comparison covers real trading, buys and sells
    assert {side for side, _, _ in placed} == {"buy", "sell"}
    assert placed == expected
