"""Metric names a sweep can optimise or constrain: the numeric, per-trial keys of
``engine_svc.metrics.compute_metrics`` (a test keeps this list equal to what it returns), and the
direction that is better for each by default."""

from __future__ import annotations

from typing import Literal

Direction = Literal["maximize", "minimize"]

#: metric → the default direction of an objective on it
METRICS: dict[str, Direction] = {
    "total_return": "maximize",
    "annual_return": "maximize",
    "volatility": "minimize",
    "sharpe_ratio": "maximize",
    "sortino_ratio": "maximize",
    "max_drawdown": "minimize",  # a positive fraction (0.25 = lost 25% from a peak)
    "calmar_ratio": "maximize",
    "alpha": "maximize",
    "beta": "minimize",
    "tracking_error": "minimize",
    "information_ratio": "maximize",
    "win_rate": "maximize",
    "profit_loss_ratio": "maximize",
    "daily_win_rate": "maximize",
    "total_trades": "maximize",
    "total_fees": "minimize",
    "turnover": "minimize",
    "var_95": "minimize",  # positive = a loss
    "closed_trades": "maximize",
    "cvar_95": "minimize",
    "winning_trades": "maximize",
    "losing_trades": "minimize",
    "total_slippage": "minimize",
    "turnover_annual": "minimize",
    "max_drawdown_duration": "minimize",
    "longest_drawdown_days": "minimize",
}

#: compute_metrics keys that are the same for every trial of a sweep or not numbers
NOT_TRIAL_METRICS = frozenset({
    "benchmark_total_return", "benchmark_annual_return", "max_drawdown_peak_date", "max_drawdown_trough_date",
    "max_drawdown_recovery_date", "trading_days", "benchmark_days", "annualization", "risk_free_rate",
})
