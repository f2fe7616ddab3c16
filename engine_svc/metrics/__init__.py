"""Backtest metrics from the daily NAV series and the fills (docs/engine.md, "Metrics").

Public API::

    compute_metrics(result, *, annualization=252, risk_free_rate=0.0) -> dict
    round_trips(trades) -> list[dict]          # FIFO closed round trips, for the report

Lower-level pure functions: :mod:`engine_svc.metrics.series` (returns/risk over numpy arrays)
and :mod:`engine_svc.metrics.roundtrips` (the FIFO ledger).

Input
-----
``result["initial_capital"]`` (NAV_0); ``result["daily"]``: one row per trading day with
``date`` and ``total_value`` (NAV_1..NAV_n); ``result["benchmark_close"]``: benchmark closes
aligned with ``daily`` (None/NaN where missing) or None; optional
``result["benchmark_prev_close"]``: the benchmark close on the trading day before the first
day; ``result["trades"]``: fills ``{order_id, date, symbol, side, quantity, price, value,
commission, tax, slippage_cost}``.

Notation: A = ``annualization``; rf = ``risk_free_rate`` (annual); r_fd = (1+rf)^(1/A) − 1;
r_t = NAV_t/NAV_{t−1} − 1 for t = 1..n with NAV_0 = initial capital (so n = number of
trading days and the first return is against the initial capital); b_t = benchmark daily
return. Sample statistics use ddof=1.

Benchmark first day (b_1): b_1 = close_1/benchmark_prev_close − 1 when the caller passes
``benchmark_prev_close``; otherwise b_1 is undefined and that day is dropped from *both* r and b
for beta, tracking error and information ratio (and the benchmark total/annual return then runs
from close_1 over n−1 periods). A missing close drops that day and the next one the same way.

=========================  ===================================================  ==============================
metric                     definition (None when undefined)                     vs empyrical-reloaded 0.7.1
=========================  ===================================================  ==============================
total_return               NAV_n/NAV_0 − 1                                      = cum_returns_final(r)
annual_return              (1+total_return)^(A/n) − 1                           = annual_return(r, A)
volatility                 std(r, ddof=1)·√A; 0.0 if r is constant; n<2 None    = annual_volatility(r, A)
sharpe_ratio               √A·mean(r−r_fd)/std(r−r_fd, ddof=1); constant None   = sharpe_ratio(r, r_fd, A);
                                                                                empyrical gives ±inf/NaN when
                                                                                undefined, we give None
sortino_ratio              A·mean(r−r_fd)/downside_risk, downside_risk =        = sortino_ratio(r, r_fd, A)
                           √(mean over all n of min(r−r_fd,0)²)·√A             (required_return = r_fd, the
                                                                                same hurdle as Sharpe);
                                                                                no down day: None (emp. inf)
max_drawdown               max_t(1 − NAV_t/max_{s≤t}NAV_s), NAV_0 included      = −max_drawdown(r): positive
                                                                                fraction, empyrical negative
calmar_ratio               annual_return/max_drawdown; no drawdown None         = calmar_ratio(r, A)
beta                       cov(r,b)/var(b) on paired days; constant b None      = beta(r, b)
alpha                      annual_return − rf − β·(benchmark_annual_return−rf)  DIFFERS: empyrical's alpha is
                                                                                (1+mean(r−r_fd−β(b−r_fd)))^A
                                                                                − 1 (compounded mean daily
                                                                                residual). The design wants
                                                                                Jensen's alpha on the annual
                                                                                figures shown on the result
                                                                                page, checkable by hand.
tracking_error             std(r−b, ddof=1)·√A on paired days                   = annual_volatility(r−b, A)
information_ratio          √A·mean(r−b)/std(r−b, ddof=1) on paired days         = √A·excess_sharpe(r, b)
benchmark_total_return     close_end/base − 1 (base: prev close, else first     = cum_returns_final(b) over
                           valid close; end: last valid close)                  the defined b
benchmark_annual_return    (1+benchmark_total_return)^(A/periods) − 1           = annual_return(b, A)
daily_win_rate             #(r_t > 0)/n (a flat day is not a win)               no empyrical equivalent
var_95                     −quantile(r, 0.05), linear interpolation; n<2 None   = −value_at_risk(r, 0.05):
                           POSITIVE = a loss (0.02 = lose ≥2% on 5% of days)    sign flipped to a loss
cvar_95 (extra)            −mean of the worst ⌊(n−1)·0.05⌋+1 returns            = −conditional_value_at_risk
win_rate                   #(round trips with pnl>0)/#closed round trips        pyfolio-style round trips,
profit_loss_ratio          mean(winning pnl)/|mean(losing pnl)|; None unless    see roundtrips.py; zero-pnl
                           there is ≥1 win and ≥1 loss                          trips count as closed only
closed_trades              number of closed round trips (one per sell fill)
winning_trades, losing_trades (extras)  round trips with pnl > 0 / pnl < 0
total_trades               number of fills (buys + sells)
total_fees                 Σ(commission + tax) over fills
total_slippage (extra)     Σ slippage_cost (already inside fill prices)
turnover                   Σ|value| over all fills (buys AND sells) / mean(NAV_1..NAV_n): two-sided
                           turnover of the whole period (buy 100% and sell it all = 2.0)
turnover_annual (extra)    turnover·A/n
max_drawdown_peak_date     date of the peak before the deepest trough (None if the peak is NAV_0,
                           the initial capital, which has no date; None if no drawdown)
max_drawdown_trough_date   date of the deepest point (None if no drawdown)
max_drawdown_recovery_date first date after the trough with NAV ≥ peak NAV (None if not recovered)
max_drawdown_duration      trading days from peak to trough (None if no drawdown)
longest_drawdown_days      longest run of trading days below the running maximum (0 if none)
trading_days, benchmark_days, annualization, risk_free_rate (extras)  n, #defined b_t, inputs
=========================  ===================================================  ==============================

Round trips (win_rate, profit_loss_ratio): FIFO lot matching that consumes quantity; one round
trip per sell fill; pnl = Σ q·(sell − buy price) − buy commission pro rata to the q shares
consumed − the sell's commission and tax. Details in :mod:`engine_svc.metrics.roundtrips`.

Undefined values (no benchmark, no closed trades, zero variance, n < 2, non-finite NAV) are None,
never 0, NaN or inf; everything returned is a plain float/int/str/None (``json.dumps`` with
``allow_nan=False`` works).
"""

from __future__ import annotations

from .compute import compute_metrics
from .roundtrips import open_lots, round_trips

__all__ = ["compute_metrics", "open_lots", "round_trips"]
