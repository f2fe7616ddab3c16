"""compute_metrics end to end: engine result dict in, plain JSON-ready metrics out."""

from __future__ import annotations

import json
import math
from typing import Any

import empyrical
import numpy as np
import pytest

from engine_svc.metrics import compute_metrics

TOL = {"rel_tol": 1e-9, "abs_tol": 1e-12}

REQUIRED = {
    "total_return", "annual_return", "volatility", "sharpe_ratio", "sortino_ratio", "max_drawdown",
    "calmar_ratio", "alpha", "beta", "tracking_error", "information_ratio", "win_rate",
    "profit_loss_ratio", "benchmark_total_return", "benchmark_annual_return", "daily_win_rate",
    "total_trades", "total_fees", "turnover", "var_95", "closed_trades",
}  # fmt: skip


def close(a: float | None, b: float) -> bool:
    return a is not None and math.isclose(a, float(b), **TOL)


def dates(n: int) -> list[str]:
    return [str(np.datetime64("2024-01-01") + i) for i in range(n)]


def make_result(
    nav: list[float] | np.ndarray,
    initial: float = 1_000_000.0,
    bench: list[float | None] | np.ndarray | None = None,
    prev_close: float | None = None,
    trades: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    rows = [
        {"date": d, "cash": float(v), "market_value": 0.0, "total_value": float(v), "positions": []}
        for d, v in zip(dates(len(nav)), nav, strict=True)
    ]
    out: dict[str, Any] = {
        "initial_capital": initial,
        "daily": rows,
        "benchmark_close": None if bench is None else [None if c is None else float(c) for c in bench],
        "trades": trades or [],
    }
    if prev_close is not None:
        out["benchmark_prev_close"] = prev_close
    return out


def assert_plain(m: dict[str, Any]) -> None:
    assert set(m) >= REQUIRED
    for k, v in m.items():
        assert type(v) in (float, int, str, type(None)), (k, type(v))
        assert not (isinstance(v, float) and not math.isfinite(v)), k
    json.dumps(m, allow_nan=False)


def series(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    b = rng.normal(0.0004, 0.012, n)
    r = 0.0001 + 1.1 * b + rng.normal(0, 0.007, n)
    return r, b


@pytest.mark.parametrize(("seed", "n", "rf"), [(0, 250, 0.0), (1, 500, 0.02), (2, 40, 0.035)])
def test_against_empyrical_with_benchmark_prev_close(seed: int, n: int, rf: float) -> None:
    r, b = series(seed, n)
    initial = 1_000_000.0
    nav = initial * np.cumprod(1 + r)
    closes = 3000.0 * np.cumprod(1 + b)
    m = compute_metrics(make_result(nav, initial, closes, prev_close=3000.0), risk_free_rate=rf)
    assert_plain(m)
    rfd = (1 + rf) ** (1 / 252) - 1
    assert close(m["total_return"], empyrical.cum_returns_final(r))
    assert close(m["annual_return"], empyrical.annual_return(r))
    assert close(m["volatility"], empyrical.annual_volatility(r))
    assert close(m["sharpe_ratio"], empyrical.sharpe_ratio(r, risk_free=rfd))
    assert close(m["sortino_ratio"], empyrical.sortino_ratio(r, required_return=rfd))
    assert close(m["max_drawdown"], -empyrical.max_drawdown(r))
    assert close(m["calmar_ratio"], empyrical.calmar_ratio(r))
    assert close(m["beta"], empyrical.beta(r, b))
    assert close(m["tracking_error"], empyrical.annual_volatility(r - b))
    assert close(m["information_ratio"], math.sqrt(252) * empyrical.excess_sharpe(r, b))
    assert close(m["benchmark_total_return"], empyrical.cum_returns_final(b))
    assert close(m["benchmark_annual_return"], empyrical.annual_return(b))
    assert close(m["var_95"], -empyrical.value_at_risk(r))
    assert close(m["daily_win_rate"], np.mean(r > 0))
    assert close(m["alpha"], m["annual_return"] - rf - m["beta"] * (m["benchmark_annual_return"] - rf))
    assert m["trading_days"] == n and m["benchmark_days"] == n


def test_without_prev_close_first_benchmark_day_is_dropped() -> None:
    r, b = series(3, 300)
    nav = 1e6 * np.cumprod(1 + r)
    closes = 3000.0 * np.cumprod(1 + b)  # b[0] is then not recoverable from the closes
    m = compute_metrics(make_result(nav, 1e6, closes))
    assert m["benchmark_days"] == 299
    assert close(m["beta"], empyrical.beta(r[1:], b[1:]))
    assert close(m["tracking_error"], empyrical.annual_volatility(r[1:] - b[1:]))
    assert close(m["information_ratio"], math.sqrt(252) * empyrical.excess_sharpe(r[1:], b[1:]))
    # benchmark total runs from close_1 over n − 1 periods
    assert close(m["benchmark_total_return"], closes[-1] / closes[0] - 1)
    assert close(m["benchmark_annual_return"], empyrical.annual_return(b[1:]))
    # the strategy's own metrics do not depend on the benchmark
    assert close(m["annual_return"], empyrical.annual_return(r))


def test_benchmark_gap_drops_two_days() -> None:
    r, b = series(4, 100)
    closes: list[float | None] = list(3000.0 * np.cumprod(1 + b))
    closes[50] = None  # missing close: b_51 and b_52 (0-based 50, 51) are undefined
    m = compute_metrics(make_result(1e6 * np.cumprod(1 + r), 1e6, closes, prev_close=3000.0))
    keep = np.ones(100, bool)
    keep[[50, 51]] = False
    assert m["benchmark_days"] == 98
    assert close(m["beta"], empyrical.beta(r[keep], b[keep]))
    assert close(m["benchmark_total_return"], empyrical.cum_returns_final(b))  # endpoints unaffected


def test_tracking_the_benchmark_exactly() -> None:
    # NAV is the index scaled: beta 1, alpha = annual − rf − 1·(annual − rf) = 0, TE 0, IR undefined
    _, b = series(5, 120)
    closes = 3000.0 * np.cumprod(1 + b)
    m = compute_metrics(
        make_result(closes / 3000.0 * 1e6, 1e6, closes, prev_close=3000.0), risk_free_rate=0.02
    )
    assert close(m["beta"], 1.0)
    assert m["alpha"] is not None and abs(m["alpha"]) < 1e-12
    assert m["tracking_error"] == 0.0
    assert m["information_ratio"] is None
    assert close(m["annual_return"], m["benchmark_annual_return"])


def test_three_day_nav_by_hand() -> None:
    # initial 100 → NAV 110, 99, 104.5;  r = [0.1, −0.1, 1/18]
    m = compute_metrics(make_result([110.0, 99.0, 104.5], initial=100.0))
    assert_plain(m)
    assert close(m["total_return"], 0.045)  # 104.5/100 − 1
    assert close(m["annual_return"], 1.045**84 - 1)  # (1 + 0.045)^(252/3) − 1
    # running max 100, 110, 110, 110 → drawdowns 0, 0, 1 − 99/110 = 0.1, 1 − 104.5/110 = 0.05
    assert close(m["max_drawdown"], 0.1)
    assert close(m["calmar_ratio"], (1.045**84 - 1) / 0.1)
    assert m["max_drawdown_peak_date"] == "2024-01-01"  # NAV 110
    assert m["max_drawdown_trough_date"] == "2024-01-02"  # NAV 99
    assert m["max_drawdown_recovery_date"] is None  # 104.5 < 110
    assert m["max_drawdown_duration"] == 1
    assert m["longest_drawdown_days"] == 2
    assert close(m["daily_win_rate"], 2 / 3)
    # no benchmark → everything benchmark-relative undefined
    for k in ("alpha", "beta", "tracking_error", "information_ratio", "benchmark_total_return",
              "benchmark_annual_return"):  # fmt: skip
        assert m[k] is None, k
    # no trades → no closed round trips
    assert m["win_rate"] is None and m["profit_loss_ratio"] is None
    assert (m["total_trades"], m["closed_trades"], m["total_fees"], m["turnover"]) == (0, 0, 0.0, 0.0)


def test_drawdown_from_initial_capital() -> None:
    # initial 100 → 90, 95, 101: the peak is NAV_0 (no date); 1 − 90/100 = 0.1 on day 1, recovered day 3
    m = compute_metrics(make_result([90.0, 95.0, 101.0], initial=100.0))
    assert close(m["max_drawdown"], 0.1)
    assert m["max_drawdown_peak_date"] is None
    assert m["max_drawdown_trough_date"] == "2024-01-01"
    assert m["max_drawdown_recovery_date"] == "2024-01-03"


def test_trades_metrics() -> None:
    def f(oid: str, d: str, side: str, q: int, p: float, c: float, t: float = 0.0) -> dict[str, Any]:
        return {"order_id": oid, "date": d, "symbol": "600000.SH", "side": side, "quantity": q, "price": p,
                "value": q * p, "commission": c, "tax": t, "slippage_cost": 0.01 * q}  # fmt: skip

    trades = [
        f("b1", "2024-01-01", "buy", 1000, 10.0, 5.0),
        f("s1", "2024-01-02", "sell", 500, 11.0, 5.0, 5.5),  # 500 − 2.5 − 10.5 = 487.0
        f("s2", "2024-01-03", "sell", 300, 9.0, 5.0, 2.7),  # −300 − 1.5 − 7.7 = −309.2
        f("s3", "2024-01-04", "sell", 200, 9.5, 5.0, 1.9),  # −100 − 1.0 − 6.9 = −107.9
    ]
    nav = [100_000.0, 100_400.0, 100_000.0, 99_800.0]
    m = compute_metrics(make_result(nav, initial=100_000.0, trades=trades))
    assert_plain(m)
    assert (m["total_trades"], m["closed_trades"], m["winning_trades"], m["losing_trades"]) == (4, 3, 1, 2)
    assert close(m["win_rate"], 1 / 3)
    assert close(m["profit_loss_ratio"], 487.0 / ((309.2 + 107.9) / 2))
    assert close(m["total_fees"], 20.0 + 5.5 + 2.7 + 1.9)
    assert close(m["total_slippage"], 0.01 * 2000)
    # traded value 10000 + 5500 + 2700 + 1900 = 20100; mean NAV = 400200/4 = 100050
    assert close(m["turnover"], 20100 / 100_050)
    assert close(m["turnover_annual"], 20100 / 100_050 * 252 / 4)


def test_only_winning_trades_profit_loss_ratio_undefined() -> None:
    trades = [
        {"order_id": 1, "date": "2024-01-01", "symbol": "X", "side": "buy", "quantity": 100, "price": 10.0,
         "value": 1000.0, "commission": 0.0, "tax": 0.0, "slippage_cost": 0.0},
        {"order_id": 2, "date": "2024-01-02", "symbol": "X", "side": "sell", "quantity": 100, "price": 11.0,
         "value": 1100.0, "commission": 0.0, "tax": 0.0, "slippage_cost": 0.0},
    ]  # fmt: skip
    m = compute_metrics(make_result([100.0, 101.0], initial=100.0, trades=trades))
    assert m["win_rate"] == 1.0
    assert m["profit_loss_ratio"] is None  # no losing trip: the ratio would be infinite


def test_flat_nav_zero_variance() -> None:
    m = compute_metrics(make_result([1e6] * 20, 1e6, bench=[3000.0] * 20, prev_close=3000.0))
    assert_plain(m)
    assert m["total_return"] == 0.0 and m["volatility"] == 0.0 and m["max_drawdown"] == 0.0
    for k in ("sharpe_ratio", "sortino_ratio", "calmar_ratio", "beta", "alpha", "information_ratio"):
        assert m[k] is None, k
    assert m["daily_win_rate"] == 0.0
    assert m["var_95"] == 0.0  # a real number: no loss at the 5% quantile


def test_short_and_empty_results() -> None:
    m = compute_metrics(make_result([101.0], initial=100.0, bench=[3010.0], prev_close=3000.0))
    assert_plain(m)
    assert close(m["total_return"], 0.01)
    for k in ("volatility", "sharpe_ratio", "sortino_ratio", "beta", "tracking_error", "var_95"):
        assert m[k] is None, k
    assert close(m["benchmark_total_return"], 3010 / 3000 - 1)
    m = compute_metrics(make_result([], initial=100.0))
    assert_plain(m)
    assert m["total_return"] is None and m["max_drawdown"] is None and m["turnover"] is None
    assert m["trading_days"] == 0


def test_nav_wiped_out_gives_none_not_nan() -> None:
    m = compute_metrics(make_result([50.0, 0.0, 0.0], initial=100.0))
    assert_plain(m)
    assert m["total_return"] == -1.0 and m["max_drawdown"] == 1.0
    assert m["sharpe_ratio"] is None and m["volatility"] is None


def test_annualization_and_validation() -> None:
    r, _ = series(9, 100)
    m = compute_metrics(make_result(1e6 * np.cumprod(1 + r), 1e6), annualization=244)
    assert close(m["annual_return"], empyrical.annual_return(r, annualization=244))
    assert close(m["volatility"], empyrical.annual_volatility(r, annualization=244))
    with pytest.raises(ValueError):
        compute_metrics(make_result([1.0], 1.0), annualization=0)
    with pytest.raises(ValueError):
        compute_metrics(make_result([1.0], 0.0))
    bad = make_result([1.0, 2.0], 1.0, bench=[1.0, 2.0])
    bad["benchmark_close"] = [1.0]
    with pytest.raises(ValueError, match="benchmark_close"):
        compute_metrics(bad)
