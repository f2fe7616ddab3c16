"""How much a sweep's best Sharpe ratio is worth: the deflated Sharpe ratio (Bailey & López de
Prado, "The Deflated Sharpe Ratio", Journal of Portfolio Management 40(5), 2014).

With per-period (not annualised) Sharpe ratios::

    SR₀  = √V · ((1−γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e)))       expected max of N trials' SR under H₀
    DSR  = Φ( (SR* − SR₀)·√(T−1) / √(1 − γ₃·SR* + (γ₄−1)/4·SR*²) )

N the number of trials, V the variance (ddof=1) of their Sharpe ratios, γ the Euler–Mascheroni
constant, SR* the best trial's Sharpe ratio, γ₃/γ₄ the skewness and (non-excess) kurtosis of its
daily returns (population moments, as in the paper), T its number of returns. DSR is the
probability that the best's true Sharpe ratio is above what luck alone would give among N tries.
With N = 1, SR₀ = 0 (it is the probabilistic Sharpe ratio against 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

EULER_GAMMA = 0.5772156649015329
_N = NormalDist()


@dataclass(frozen=True)
class DeflatedSharpe:
    dsr: float  # probability in [0, 1]
    sr_best: float  # per period
    sr0: float  # per period: the expected maximum under the null
    n_trials: int
    sr_variance: float
    skewness: float
    kurtosis: float
    n_obs: int


def expected_max_sharpe(n_trials: int, sr_variance: float) -> float:
    if n_trials < 1:
        raise ValueError("n_trials must be ≥ 1")
    if n_trials == 1:
        return 0.0
    g = EULER_GAMMA
    z1, z2 = _N.inv_cdf(1 - 1 / n_trials), _N.inv_cdf(1 - 1 / (n_trials * math.e))
    return math.sqrt(sr_variance) * ((1 - g) * z1 + g * z2)


def moments(returns: Sequence[float]) -> tuple[float, float, float, float]:
    """mean, sample std (ddof=1), skewness and kurtosis (population moments m₃/m₂^1.5, m₄/m₂²)."""
    n = len(returns)
    mean = sum(returns) / n
    dev = [r - mean for r in returns]
    m2 = sum(d * d for d in dev) / n
    m3 = sum(d**3 for d in dev) / n
    m4 = sum(d**4 for d in dev) / n
    std = math.sqrt(m2 * n / (n - 1))
    if m2 == 0:
        return mean, 0.0, 0.0, 0.0
    return mean, std, m3 / m2**1.5, m4 / m2**2


def deflated_sharpe(best_returns: Sequence[float], trial_sharpes: Sequence[float], *,
                    risk_free_per_period: float = 0.0) -> DeflatedSharpe | None:
    """DSR of the best trial from its per-period returns and the per-period Sharpe ratios of all
    N trials (the best included). None when undefined (fewer than 3 returns, a flat series, or
    fewer than 2 trials with a Sharpe ratio while N > 1)."""
    n_obs = len(best_returns)
    sharpes = [s for s in trial_sharpes if s is not None and math.isfinite(s)]
    if n_obs < 3 or not sharpes:
        return None
    excess = [r - risk_free_per_period for r in best_returns]
    mean, std, skew, kurt = moments(excess)
    if std == 0 or not math.isfinite(std):
        return None
    sr = mean / std
    n = len(sharpes)
    if n > 1:
        mu = sum(sharpes) / n
        var = sum((s - mu) ** 2 for s in sharpes) / (n - 1)
    else:
        var = 0.0
    sr0 = expected_max_sharpe(n, var)
    denom = 1 - skew * sr + (kurt - 1) / 4 * sr * sr
    if denom <= 0:
        return None
    z = (sr - sr0) * math.sqrt(n_obs - 1) / math.sqrt(denom)
    return DeflatedSharpe(_N.cdf(z), sr, sr0, n, var, skew, kurt, n_obs)


def per_period_sharpe(annual_sharpe: float, annualization: int = 252) -> float:
    """The engine's sharpe_ratio metric is annualised (√A · mean/std); the DSR wants it per period."""
    return annual_sharpe / math.sqrt(annualization)


def nav_returns(nav: Sequence[float], initial: float) -> list[float]:
    """Daily returns of a NAV series, the first day against the initial capital (as the metrics do)."""
    out: list[float] = []
    prev = float(initial)
    for v in nav:
        out.append(float(v) / prev - 1.0)
        prev = float(v)
    return out
