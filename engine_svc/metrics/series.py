"""Return and risk statistics over numpy arrays: pure, vectorised, no pandas.

Every statistic returns a plain Python ``float`` or ``None``. ``None`` means *undefined*
(too few observations, zero dispersion in a denominator, non-finite input); a statistic never
returns NaN or ±inf. See :mod:`engine_svc.metrics` for the table of definitions and where they
differ from empyrical.

Conventions shared by all functions:

* ``returns`` are simple daily returns r_t = NAV_t / NAV_{t-1} − 1, one per trading day,
  the first one measured against the initial capital NAV_0 (see :func:`simple_returns`).
* ``annualization`` is A, the number of periods per year (252 for A-share trading days).
* Sample statistics use ``ddof=1``.
* A series that contains a non-finite value (e.g. a NAV that reached 0) makes every
  return-based statistic over it ``None``: a number computed from it would be meaningless.
* Benchmark-relative statistics take the benchmark returns ``bench`` aligned day by day with
  ``returns``; days on which the benchmark return is undefined (NaN: missing close, or the first
  day without a previous close) are dropped from *both* series before anything is computed.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

__all__ = [
    "FLAT_TOLERANCE",
    "alpha",
    "annual_return",
    "annual_return_from_total",
    "benchmark_returns",
    "beta",
    "calmar_ratio",
    "conditional_value_at_risk",
    "daily_risk_free",
    "daily_win_rate",
    "downside_risk",
    "drawdown_details",
    "drawdown_series",
    "information_ratio",
    "max_drawdown",
    "max_drawdown_from_nav",
    "paired",
    "sharpe_ratio",
    "simple_returns",
    "sortino_ratio",
    "to_float",
    "total_return",
    "tracking_error",
    "value_at_risk",
    "volatility",
]


# --------------------------------------------------------------------------- helpers


def to_float(x: float | np.floating | None) -> float | None:
    """``float(x)`` if it is a finite number, else ``None`` (the single NaN/inf firewall)."""
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def _as_array(x: ArrayLike) -> FloatArray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"expected a 1-D series, got shape {a.shape}")
    return a


def _usable(r: FloatArray, min_n: int) -> bool:
    return r.size >= min_n and bool(np.isfinite(r).all())


# Spread (max − min) of daily returns at or below which a series counts as having zero
# dispersion. Returns derived from a NAV that grows by a constant factor are not bit-identical
# (NAV_t/NAV_{t−1} − 1 carries ~1e-16 of rounding), and their "std" of ~1e-17 would turn an
# undefined ratio into a meaningless ~1e15. No real daily return series is this flat.
FLAT_TOLERANCE = 1e-12


def _is_constant(x: FloatArray) -> bool:
    """Zero dispersion: every value within ``FLAT_TOLERANCE`` of every other.

    Checked on the spread rather than via ``std == 0`` (empyrical checks max == min for the same
    reason, without the tolerance)."""
    return x.size > 0 and bool(x.max() - x.min() <= FLAT_TOLERANCE)


def daily_risk_free(risk_free_rate: float, annualization: int) -> float:
    """r_fd = (1 + rf)^(1/A) − 1: the per-day rate that compounds to the annual rate rf."""
    if annualization <= 0:
        raise ValueError("annualization must be positive")
    return (1.0 + float(risk_free_rate)) ** (1.0 / annualization) - 1.0


def simple_returns(nav: ArrayLike, initial_capital: float) -> FloatArray:
    """r_t = NAV_t / NAV_{t−1} − 1 for t = 1..n with NAV_0 = ``initial_capital``.

    ``nav`` holds NAV_1..NAV_n (one total value per trading day), so the result has the same
    length as ``nav`` and the first day's return is measured against the initial capital.
    """
    v = _as_array(nav)
    if not initial_capital > 0:
        raise ValueError("initial_capital must be positive")
    full = np.concatenate(([float(initial_capital)], v))
    with np.errstate(divide="ignore", invalid="ignore"):
        return full[1:] / full[:-1] - 1.0


def benchmark_returns(close: ArrayLike, prev_close: float | None = None) -> FloatArray:
    """Benchmark daily returns b_t aligned with ``close`` (NaN where undefined).

    b_t = close_t / close_{t−1} − 1. For the first day, close_0 is ``prev_close`` (the benchmark
    close on the trading day before the first backtest day); when it is not given, b_1 is
    undefined (NaN) and is dropped by every statistic that uses it. A missing close (NaN)
    makes the returns of that day and of the next day undefined — no multi-day return is ever
    paired with a one-day strategy return.
    """
    c = _as_array(close)
    c = np.where(c > 0, c, np.nan)  # a non-positive index level is missing data, not a price
    p = np.nan if prev_close is None or not float(prev_close) > 0 else float(prev_close)
    full = np.concatenate(([p], c))
    with np.errstate(divide="ignore", invalid="ignore"):
        b = full[1:] / full[:-1] - 1.0
    b[~np.isfinite(b)] = np.nan
    return b


def paired(returns: ArrayLike, bench: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """The days on which the benchmark return is defined, from both series."""
    r, b = _as_array(returns), _as_array(bench)
    if r.shape != b.shape:
        raise ValueError(f"returns and benchmark differ in length: {r.size} vs {b.size}")
    mask = ~np.isnan(b)
    return r[mask], b[mask]


# --------------------------------------------------------------------------- returns


def total_return(returns: ArrayLike) -> float | None:
    """∏(1 + r_t) − 1 (= NAV_n / NAV_0 − 1). None for an empty series."""
    r = _as_array(returns)
    if not _usable(r, 1):
        return None
    return to_float(np.prod(1.0 + r) - 1.0)


def annual_return_from_total(total: float | None, n: int, annualization: int = 252) -> float | None:
    """(1 + total)^(A/n) − 1: compound annual growth over n periods (empyrical: n/A years)."""
    if total is None or n < 1 or not math.isfinite(total) or total < -1.0:
        return None
    return to_float((1.0 + total) ** (annualization / n) - 1.0)


def annual_return(returns: ArrayLike, annualization: int = 252) -> float | None:
    """Compound annual growth rate of a return series: (1 + total)^(A/n) − 1."""
    r = _as_array(returns)
    return annual_return_from_total(total_return(r), r.size, annualization)


def volatility(returns: ArrayLike, annualization: int = 252) -> float | None:
    """std(r, ddof=1)·√A. Exactly 0.0 for a constant series; None for n < 2."""
    r = _as_array(returns)
    if not _usable(r, 2):
        return None
    if _is_constant(r):
        return 0.0
    return to_float(np.std(r, ddof=1) * math.sqrt(annualization))


def sharpe_ratio(returns: ArrayLike, annualization: int = 252, rf_daily: float = 0.0) -> float | None:
    """√A · mean(r − r_fd) / std(r − r_fd, ddof=1); None for n < 2 or zero dispersion."""
    r = _as_array(returns)
    if not _usable(r, 2):
        return None
    excess = r - rf_daily
    if _is_constant(excess):
        return None
    return to_float(math.sqrt(annualization) * excess.mean() / np.std(excess, ddof=1))


def downside_risk(returns: ArrayLike, annualization: int = 252, required_return: float = 0.0) -> float | None:
    """√(mean over ALL n days of min(r − required, 0)²) · √A (empyrical's downside_risk)."""
    r = _as_array(returns)
    if not _usable(r, 1):
        return None
    down = np.minimum(r - required_return, 0.0)
    return to_float(math.sqrt(float(np.mean(down * down))) * math.sqrt(annualization))


def sortino_ratio(returns: ArrayLike, annualization: int = 252, required_return: float = 0.0) -> float | None:
    """A · mean(r − required) / downside_risk (empyrical's definition).

    None for n < 2 and when there is no downside at all (empyrical returns +inf there).
    """
    r = _as_array(returns)
    if not _usable(r, 2):
        return None
    dr = downside_risk(r, annualization, required_return)
    if not dr:  # None or exactly 0.0: no day below the required return
        return None
    return to_float(np.mean(r - required_return) * annualization / dr)


# --------------------------------------------------------------------------- drawdown


def drawdown_series(nav: ArrayLike) -> FloatArray:
    """1 − NAV_t / max_{s≤t} NAV_s for every point of ``nav`` (a positive fraction)."""
    v = _as_array(nav)
    peak = np.maximum.accumulate(v)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 - v / peak


def max_drawdown_from_nav(nav: ArrayLike) -> float | None:
    """max_t(1 − NAV_t / max_{s≤t} NAV_s). Pass NAV_0 as the first element to include it."""
    v = _as_array(nav)
    # undefined without a positive starting point to measure from, or with non-finite values
    if v.size < 1 or not np.isfinite(v).all() or not v[0] > 0:
        return None
    return to_float(drawdown_series(v).max())


def max_drawdown(returns: ArrayLike) -> float | None:
    """Max drawdown of a return series, anchored at 1 before the first return (NAV_0 included).

    Positive fraction (empyrical reports the same number negated). None for an empty series.
    """
    r = _as_array(returns)
    if not _usable(r, 1):
        return None
    return max_drawdown_from_nav(np.concatenate(([1.0], np.cumprod(1.0 + r))))


def drawdown_details(nav: ArrayLike) -> dict[str, int | float | None]:
    """Where the maximum drawdown happened, in indices into ``nav`` (NAV_0 at index 0).

    Returns ``max_drawdown``; ``peak`` (last index at the running maximum before the trough),
    ``trough``, ``recovery`` (first index after the trough with NAV ≥ the peak NAV, None if it
    never recovered) — all None when there is no drawdown; ``duration`` = trough − peak
    (periods from peak to trough); ``longest_underwater`` = the longest run of consecutive
    periods spent below the running maximum (0 if never).
    """
    v = _as_array(nav)
    out: dict[str, int | float | None] = {
        "max_drawdown": max_drawdown_from_nav(v),
        "peak": None,
        "trough": None,
        "recovery": None,
        "duration": None,
        "longest_underwater": None,
    }
    mdd = out["max_drawdown"]
    if mdd is None:
        return out
    running_max = np.maximum.accumulate(v)
    under = v < running_max
    # longest run of True in `under`, vectorised: run boundaries from the padded diff
    edges = np.diff(np.concatenate(([0], under.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    out["longest_underwater"] = int((ends - starts).max()) if starts.size else 0
    if mdd == 0.0:
        return out
    dd = drawdown_series(v)
    trough = int(np.argmax(dd))  # first occurrence of the deepest point
    peak_value = running_max[trough]
    peak = int(np.flatnonzero(v[: trough + 1] == peak_value)[-1])
    after = np.flatnonzero(v[trough + 1 :] >= peak_value)
    out.update(
        peak=peak,
        trough=trough,
        recovery=int(trough + 1 + after[0]) if after.size else None,
        duration=trough - peak,
    )
    return out


def calmar_ratio(annual: float | None, mdd: float | None) -> float | None:
    """annual_return / max_drawdown; None when either is undefined or there was no drawdown."""
    if annual is None or not mdd:
        return None
    return to_float(annual / mdd)


# --------------------------------------------------------------------------- benchmark-relative


def beta(returns: ArrayLike, bench: ArrayLike) -> float | None:
    """cov(r, b) / var(b) over the days with a defined benchmark return.

    None for fewer than 2 paired days or a constant benchmark. Subtracting a constant risk-free
    rate from both series would not change it, so there is no rf argument (empyrical's ``beta``
    accepts one and ignores it too).
    """
    r, b = paired(returns, bench)
    if not _usable(r, 2) or _is_constant(b):
        return None
    bc = b - b.mean()
    return to_float(np.dot(bc, r - r.mean()) / np.dot(bc, bc))


def alpha(
    annual: float | None,
    benchmark_annual: float | None,
    beta_: float | None,
    risk_free_rate: float = 0.0,
) -> float | None:
    """Jensen's alpha on annual figures: annual_return − rf − β·(benchmark_annual_return − rf).

    Deliberately not empyrical's ``alpha`` (which compounds the mean daily CAPM residual,
    (1 + mean(r − r_f − β(b − r_f)))^A − 1): this one is additive in the reported annual
    returns, so a reader can check it from the numbers on the result page.
    """
    if annual is None or benchmark_annual is None or beta_ is None:
        return None
    return to_float(annual - risk_free_rate - beta_ * (benchmark_annual - risk_free_rate))


def tracking_error(returns: ArrayLike, bench: ArrayLike, annualization: int = 252) -> float | None:
    """std(r − b, ddof=1)·√A over the paired days; 0.0 for a constant active return."""
    r, b = paired(returns, bench)
    return volatility(r - b, annualization)


def information_ratio(returns: ArrayLike, bench: ArrayLike, annualization: int = 252) -> float | None:
    """√A · mean(r − b) / std(r − b, ddof=1) over the paired days (= √A·empyrical.excess_sharpe)."""
    r, b = paired(returns, bench)
    return sharpe_ratio(r - b, annualization, 0.0)


# --------------------------------------------------------------------------- distribution


def value_at_risk(returns: ArrayLike, cutoff: float = 0.05) -> float | None:
    """Historical VaR as a positive loss fraction: −quantile(r, cutoff), linear interpolation.

    = −empyrical.value_at_risk(r, cutoff). A negative value means even the cutoff-quantile day
    was a gain. None for n < 2 (a one-point "distribution" has no tail).
    """
    r = _as_array(returns)
    if not _usable(r, 2):
        return None
    return to_float(-np.percentile(r, 100.0 * cutoff))


def conditional_value_at_risk(returns: ArrayLike, cutoff: float = 0.05) -> float | None:
    """Historical CVaR (expected shortfall) as a positive loss fraction: −mean of the worst
    ⌊(n−1)·cutoff⌋+1 daily returns (= −empyrical.conditional_value_at_risk). None for n < 2."""
    r = _as_array(returns)
    if not _usable(r, 2):
        return None
    k = int((r.size - 1) * cutoff)
    return to_float(-np.mean(np.partition(r, k)[: k + 1]))


def daily_win_rate(returns: ArrayLike) -> float | None:
    """Fraction of days with r_t > 0 (a flat day is not a win). None for an empty series."""
    r = _as_array(returns)
    if not _usable(r, 1):
        return None
    return to_float(np.count_nonzero(r > 0) / r.size)
