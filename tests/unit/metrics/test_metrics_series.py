"""engine_svc.metrics.series against empyrical-reloaded and against hand arithmetic."""

from __future__ import annotations

import math

import empyrical
import numpy as np
import pytest

from engine_svc.metrics import series as s

TOL = {"rel_tol": 1e-9, "abs_tol": 1e-12}


def close(a: float | None, b: float) -> bool:
    return a is not None and math.isclose(a, float(b), **TOL)


def random_pair(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Strategy and benchmark daily returns, correlated, fat enough tails to have down days."""
    rng = np.random.default_rng(seed)
    b = rng.normal(0.0003, 0.013, n)
    r = 0.0002 + 0.8 * b + rng.standard_t(4, n) * 0.006
    return r, b


CASES = [
    (seed, n, A, rf)
    for seed, n in [(0, 60), (1, 250), (2, 777), (3, 3)]
    for A, rf in [(252, 0.0), (244, 0.03)]
]


@pytest.mark.parametrize(("seed", "n", "A", "rf"), CASES)
class TestAgainstEmpyrical:
    def test_returns_and_volatility(self, seed: int, n: int, A: int, rf: float) -> None:
        r, _ = random_pair(seed, n)
        assert close(s.total_return(r), empyrical.cum_returns_final(r))
        assert close(s.annual_return(r, A), empyrical.annual_return(r, annualization=A))
        assert close(s.annual_return(r, A), empyrical.cagr(r, annualization=A))
        assert close(s.volatility(r, A), empyrical.annual_volatility(r, annualization=A))

    def test_sharpe_sortino(self, seed: int, n: int, A: int, rf: float) -> None:
        r, _ = random_pair(seed, n)
        rfd = s.daily_risk_free(rf, A)
        assert close(s.sharpe_ratio(r, A, rfd), empyrical.sharpe_ratio(r, risk_free=rfd, annualization=A))
        assert close(
            s.sortino_ratio(r, A, rfd), empyrical.sortino_ratio(r, required_return=rfd, annualization=A)
        )
        assert close(
            s.downside_risk(r, A, rfd), empyrical.downside_risk(r, required_return=rfd, annualization=A)
        )

    def test_drawdown_calmar(self, seed: int, n: int, A: int, rf: float) -> None:
        r, _ = random_pair(seed, n)
        mdd = s.max_drawdown(r)
        assert close(mdd, -empyrical.max_drawdown(r))  # empyrical reports it negative
        assert mdd is not None and mdd > 0
        nav = np.concatenate(([1e6], 1e6 * np.cumprod(1 + r)))
        assert close(s.max_drawdown_from_nav(nav), mdd)
        assert close(s.calmar_ratio(s.annual_return(r, A), mdd), empyrical.calmar_ratio(r, annualization=A))

    def test_benchmark_relative(self, seed: int, n: int, A: int, rf: float) -> None:
        r, b = random_pair(seed, n)
        assert close(s.beta(r, b), empyrical.beta(r, b))
        assert close(s.tracking_error(r, b, A), empyrical.annual_volatility(r - b, annualization=A))
        assert close(s.information_ratio(r, b, A), math.sqrt(A) * empyrical.excess_sharpe(r, b))

    def test_tail_risk(self, seed: int, n: int, A: int, rf: float) -> None:
        r, _ = random_pair(seed, n)
        assert close(s.value_at_risk(r), -empyrical.value_at_risk(r, cutoff=0.05))
        assert close(s.value_at_risk(r, 0.01), -empyrical.value_at_risk(r, cutoff=0.01))
        assert close(s.conditional_value_at_risk(r), -empyrical.conditional_value_at_risk(r, cutoff=0.05))


def test_beta_drops_undefined_benchmark_days_like_empyrical_on_the_rest() -> None:
    r, b = random_pair(7, 120)
    b = b.copy()
    b[[0, 40, 41, 99]] = np.nan
    keep = ~np.isnan(b)
    assert close(s.beta(r, b), empyrical.beta(r[keep], b[keep]))
    assert close(s.tracking_error(r, b), empyrical.annual_volatility(r[keep] - b[keep]))
    assert close(s.information_ratio(r, b), math.sqrt(252) * empyrical.excess_sharpe(r[keep], b[keep]))


def test_alpha_is_jensen_on_annual_figures_not_empyricals_alpha() -> None:
    r, b = random_pair(11, 500)
    rf, A = 0.025, 252
    beta = s.beta(r, b)
    ann, bann = s.annual_return(r, A), s.annual_return(b, A)
    assert beta is not None and ann is not None and bann is not None
    ours = s.alpha(ann, bann, beta, rf)
    assert close(ours, ann - rf - beta * (bann - rf))
    # empyrical compounds the mean daily CAPM residual instead; the two genuinely differ
    theirs = empyrical.alpha(r, b, risk_free=s.daily_risk_free(rf, A), annualization=A)
    assert ours is not None and abs(ours - theirs) > 1e-4


def test_exact_multiple_of_benchmark() -> None:
    # r = 2b exactly: cov(2b, b)/var(b) = 2; active return r − b = b
    _, b = random_pair(5, 50)
    assert close(s.beta(2 * b, b), 2.0)
    assert close(s.tracking_error(2 * b, b), s.volatility(b))


def test_hand_computed_three_days() -> None:
    # NAV_0 = 100 → 110 → 99 → 104.5
    # r = [110/100 − 1, 99/110 − 1, 104.5/99 − 1] = [0.1, −0.1, 1/18]
    r = s.simple_returns([110.0, 99.0, 104.5], 100.0)
    assert np.allclose(r, [0.1, -0.1, 1 / 18], rtol=0, atol=1e-15)
    # total = 104.5/100 − 1 = 0.045; annual = 1.045^(252/3) − 1 = 1.045^84 − 1
    assert close(s.total_return(r), 0.045)
    assert close(s.annual_return(r), 1.045**84 - 1)
    # drawdown: running max [100, 110, 110, 110]; 1 − 99/110 = 0.1 is the deepest
    assert close(s.max_drawdown(r), 0.1)
    # mean = (0.1 − 0.1 + 1/18)/3 = 1/54; deviations 0.1 − 1/54 = 22/270, −0.1 − 1/54 = −32/270,
    # 1/18 − 1/54 = 10/270; sample var = (22² + 32² + 10²)/270² / 2 = 1608/145800 = 0.0110288...
    var = (22**2 + 32**2 + 10**2) / 270**2 / 2
    assert close(s.volatility(r), math.sqrt(var) * math.sqrt(252))
    assert close(s.sharpe_ratio(r), math.sqrt(252) * (1 / 54) / math.sqrt(var))
    # downside: only −0.1 is below 0 → sqrt(0.01/3)·√252; sortino = 252·(1/54)/that
    dr = math.sqrt(0.01 / 3) * math.sqrt(252)
    assert close(s.downside_risk(r), dr)
    assert close(s.sortino_ratio(r), 252 / 54 / dr)
    # VaR: sorted [−0.1, 1/18, 0.1]; 5th percentile at position 0.05·2 = 0.1:
    # −0.1 + 0.1·(1/18 + 0.1) = −0.0844…; reported as the positive loss 0.0844…
    assert close(s.value_at_risk(r), 0.1 - 0.1 * (1 / 18 + 0.1))
    assert close(s.daily_win_rate(r), 2 / 3)


def where(d: dict[str, int | float | None]) -> tuple[int | float | None, ...]:
    return d["peak"], d["trough"], d["recovery"], d["duration"], d["longest_underwater"]


def test_drawdown_details() -> None:
    # NAV (index 0 = NAV_0): 100, 110, 99, 104.5, 112, 100.8
    # deepest: 1 − 99/110 = 0.1 at index 2, peak index 1, recovered at index 4 (112 ≥ 110);
    # later 1 − 100.8/112 = 0.1 as well but not deeper, so the first one is reported.
    d = s.drawdown_details([100, 110, 99, 104.5, 112, 100.8])
    assert close(d["max_drawdown"], 0.1)  # type: ignore[arg-type]
    assert where(d) == (1, 2, 4, 1, 2)  # longest underwater: indices 2, 3 below 110
    # peak at NAV_0 and never recovered; underwater for 3 points
    d = s.drawdown_details([100, 90, 95, 80])
    assert close(d["max_drawdown"], 0.2)  # type: ignore[arg-type]
    assert where(d) == (0, 3, None, 3, 3)
    d = s.drawdown_details([100, 101, 102])
    assert d["max_drawdown"] == 0.0
    assert where(d) == (None, None, None, None, 0)


def test_zero_variance_is_none_not_inf() -> None:
    flat = np.zeros(30)
    assert s.volatility(flat) == 0.0
    assert s.sharpe_ratio(flat) is None
    assert s.sortino_ratio(flat) is None  # no down day: empyrical says inf
    assert s.max_drawdown(flat) == 0.0
    assert s.calmar_ratio(s.annual_return(flat), s.max_drawdown(flat)) is None
    # a NAV growing by a constant factor: returns equal up to float rounding (~1e-16)
    nav = 100.0 * 1.0007 ** np.arange(1, 200)
    r = s.simple_returns(nav, 100.0)
    assert np.ptp(r) > 0  # not bit-identical…
    assert s.sharpe_ratio(r) is None  # …but still zero dispersion, not a ~1e15 Sharpe
    assert s.volatility(r) == 0.0
    # constant benchmark → beta undefined; constant active return → IR undefined, TE 0
    b = np.full(30, 0.001)
    assert s.beta(np.linspace(-0.01, 0.01, 30), b) is None
    assert s.information_ratio(b + 0.0005, b) is None
    assert s.tracking_error(b + 0.0005, b) == 0.0


def test_too_short_is_none() -> None:
    one = np.array([0.01])
    for fn in (s.volatility, s.sharpe_ratio, s.sortino_ratio, s.value_at_risk, s.conditional_value_at_risk):
        assert fn(one) is None
    assert close(s.total_return(one), 0.01)
    assert close(s.annual_return(one), 1.01**252 - 1)
    empty = np.array([])
    for fn in (s.total_return, s.annual_return, s.max_drawdown, s.daily_win_rate, s.volatility):
        assert fn(empty) is None
    assert s.beta(np.array([0.01, 0.02]), np.array([np.nan, 0.01])) is None  # one paired day


def test_non_finite_input_is_none() -> None:
    r = np.array([0.01, np.inf, 0.02])
    fns = (s.total_return, s.volatility, s.sharpe_ratio, s.sortino_ratio, s.max_drawdown, s.value_at_risk)
    for fn in fns:
        assert fn(r) is None


def test_benchmark_returns_first_day_and_gaps() -> None:
    c = np.array([101.0, 102.01, np.nan, 104.0, 104.0])
    b = s.benchmark_returns(c)
    # no previous close: b_1 undefined; gap at day 3 makes b_3 and b_4 undefined
    assert np.isnan(b[[0, 2, 3]]).all()
    assert np.allclose(b[[1, 4]], [102.01 / 101 - 1, 0.0], rtol=0, atol=1e-15)
    b = s.benchmark_returns(c, prev_close=100.0)
    assert math.isclose(b[0], 0.01, abs_tol=1e-15)


def test_daily_risk_free() -> None:
    assert s.daily_risk_free(0.0, 252) == 0.0
    # compounding back over A days gives the annual rate
    assert math.isclose((1 + s.daily_risk_free(0.03, 252)) ** 252, 1.03, rel_tol=1e-12)
    with pytest.raises(ValueError):
        s.daily_risk_free(0.03, 0)
