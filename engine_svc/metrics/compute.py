"""``compute_metrics``: every result metric from an engine result dict (see the package docstring)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import series as s
from .roundtrips import round_trips

__all__ = ["compute_metrics"]


def _close_array(closes: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if c is None else float(c) for c in closes], dtype=np.float64)


def _benchmark_totals(
    closes: np.ndarray, prev_close: float | None, annualization: int
) -> tuple[float | None, float | None]:
    """benchmark_total_return and benchmark_annual_return.

    The base is ``prev_close`` (position 0, the day before day 1) when given, otherwise the first
    valid close (position k ≥ 1); the end is the last valid close (position m). Total = end/base − 1
    over m − base_position periods, annualised like the strategy: (1 + total)^(A/periods) − 1.
    """
    valid = np.flatnonzero(np.isfinite(closes) & (closes > 0)) + 1  # positions 1..n
    if valid.size == 0:
        return None, None
    if prev_close is not None and math.isfinite(prev_close) and prev_close > 0:
        base_pos, base = 0, prev_close
    else:
        base_pos, base = int(valid[0]), float(closes[valid[0] - 1])
    end_pos = int(valid[-1])
    periods = end_pos - base_pos
    if periods < 1:
        return None, None
    total = s.to_float(float(closes[end_pos - 1]) / base - 1.0)
    return total, s.annual_return_from_total(total, periods, annualization)


def _date_at(dates: list[str], nav_index: int | float | None) -> str | None:
    """Date of NAV index i (i = 0 is NAV_0, the initial capital, which has no date)."""
    if nav_index is None or nav_index == 0:
        return None
    return dates[int(nav_index) - 1]


def compute_metrics(
    result: Mapping[str, Any], *, annualization: int = 252, risk_free_rate: float = 0.0
) -> dict[str, Any]:
    """All metrics of one backtest result; every value is a float, int, str or None."""
    if isinstance(annualization, bool) or int(annualization) != annualization or annualization < 1:
        raise ValueError(f"annualization must be a positive integer, got {annualization!r}")
    annualization = int(annualization)
    rf = float(risk_free_rate)
    if not math.isfinite(rf) or rf <= -1.0:
        raise ValueError(f"risk_free_rate must be a finite annual rate > -1, got {risk_free_rate!r}")
    initial = float(result["initial_capital"])
    if not (math.isfinite(initial) and initial > 0):
        raise ValueError(f"initial_capital must be positive, got {result['initial_capital']!r}")

    daily = list(result.get("daily") or [])
    dates = [str(d["date"]) for d in daily]
    nav = np.array([float(d["total_value"]) for d in daily], dtype=np.float64)
    n = nav.size
    r = s.simple_returns(nav, initial)
    rf_d = s.daily_risk_free(rf, annualization)

    total = s.to_float(nav[-1] / initial - 1.0) if n else None
    annual = s.annual_return_from_total(total, n, annualization)
    dd = s.drawdown_details(np.concatenate(([initial], nav)) if n else np.empty(0))
    mdd = dd["max_drawdown"]

    # ---- benchmark
    closes_in = result.get("benchmark_close")
    prev_in = result.get("benchmark_prev_close")
    prev_close = None if prev_in is None else float(prev_in)
    if closes_in is not None:
        closes = _close_array(closes_in)
        if closes.size != n:
            raise ValueError(f"benchmark_close has {closes.size} values for {n} daily rows")
        b = s.benchmark_returns(closes, prev_close)
        bench_total, bench_annual = _benchmark_totals(closes, prev_close, annualization)
        beta = s.beta(r, b)
        alpha = s.alpha(annual, bench_annual, beta, rf)
        te = s.tracking_error(r, b, annualization)
        ir = s.information_ratio(r, b, annualization)
        bench_days = int(np.count_nonzero(~np.isnan(b)))
    else:
        bench_total = bench_annual = beta = alpha = te = ir = None
        bench_days = 0

    # ---- trades
    trades = list(result.get("trades") or [])
    trips = round_trips(trades, result.get("ex_rights") or ())
    pnls = np.array([t["pnl"] for t in trips], dtype=np.float64)
    wins, losses = pnls[pnls > 0], pnls[pnls < 0]
    win_rate = wins.size / pnls.size if pnls.size else None
    pl_ratio = s.to_float(wins.mean() / abs(losses.mean())) if wins.size and losses.size else None
    fees = sum(float(t.get("commission") or 0.0) + float(t.get("tax") or 0.0) for t in trades)
    slippage = sum(float(t.get("slippage_cost") or 0.0) for t in trades)
    traded_value = sum(
        abs(float(t["value"]))
        if t.get("value") is not None
        else abs(float(t["price"]) * float(t["quantity"]))
        for t in trades
    )
    mean_total_value = float(nav.mean()) if n else None
    turnover = (
        s.to_float(traded_value / mean_total_value) if mean_total_value and mean_total_value > 0 else None
    )

    return {
        "total_return": total,
        "annual_return": annual,
        "volatility": s.volatility(r, annualization),
        "sharpe_ratio": s.sharpe_ratio(r, annualization, rf_d),
        "sortino_ratio": s.sortino_ratio(r, annualization, rf_d),
        "max_drawdown": mdd,
        "calmar_ratio": s.calmar_ratio(annual, mdd),
        "alpha": alpha,
        "beta": beta,
        "tracking_error": te,
        "information_ratio": ir,
        "win_rate": win_rate,
        "profit_loss_ratio": pl_ratio,
        "benchmark_total_return": bench_total,
        "benchmark_annual_return": bench_annual,
        "daily_win_rate": s.daily_win_rate(r),
        "total_trades": len(trades),
        "total_fees": float(fees),
        "turnover": turnover,
        "var_95": s.value_at_risk(r, 0.05),
        "closed_trades": int(pnls.size),
        # ---- extras
        "cvar_95": s.conditional_value_at_risk(r, 0.05),
        "winning_trades": int(wins.size),
        "losing_trades": int(losses.size),
        "total_slippage": float(slippage),
        "turnover_annual": s.to_float(turnover * annualization / n) if turnover is not None and n else None,
        "max_drawdown_peak_date": _date_at(dates, dd["peak"]),
        "max_drawdown_trough_date": _date_at(dates, dd["trough"]),
        "max_drawdown_recovery_date": _date_at(dates, dd["recovery"]),
        "max_drawdown_duration": dd["duration"],
        "longest_drawdown_days": dd["longest_underwater"],
        "trading_days": n,
        "benchmark_days": bench_days,
        "annualization": annualization,
        "risk_free_rate": rf,
    }
