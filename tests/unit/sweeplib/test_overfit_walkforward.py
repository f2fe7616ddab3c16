"""The deflated Sharpe ratio against a hand computation; walk-forward folds on the trading
calendar; the stitched out-of-sample equity equals the chained returns."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sweeplib import SweepInputError, deflated_sharpe, make_folds, parse_validation, stitch
from sweeplib.overfit import expected_max_sharpe, nav_returns, per_period_sharpe
from sweeplib.walkforward import Segment


def test_deflated_sharpe_equals_the_hand_computation():
    returns = [0.01, -0.02, 0.03, 0.0, 0.01]
    # mean = 0.03 / 5 = 0.006; deviations 0.004, -0.026, 0.024, -0.006, 0.004
    # Σd² = 1.6e-5 + 6.76e-4 + 5.76e-4 + 3.6e-5 + 1.6e-5 = 1.32e-3 → m2 = 2.64e-4, sample var = 3.3e-4
    # SR* = 0.006 / √3.3e-4 = 0.006 / 0.0181659021… = 0.3302891295…
    # Σd³ = 6.4e-8 − 1.7576e-5 + 1.3824e-5 − 2.16e-7 + 6.4e-8 = −3.84e-6 → m3 = −7.68e-7
    # skew = m3 / m2^1.5 = −7.68e-7 / 4.28949…e-6 = −0.1790421687
    # Σd⁴ = 2.56e-10 + 4.56976e-7 + 3.31776e-7 + 1.296e-9 + 2.56e-10 = 7.9056e-7 → m4 = 1.58112e-7
    # kurt = m4 / m2² = 1.58112e-7 / 6.9696e-8 = 2.2685950413
    # trials' per-period Sharpe 0.1, 0.2, 0.3, 0.4: var (ddof 1) = 0.05 / 3 = 0.0166667, √ = 0.1290994449
    # SR0 = 0.1290994449 × ((1 − 0.5772156649) × Φ⁻¹(0.75) + 0.5772156649 × Φ⁻¹(1 − 1/(4e)))
    #     = 0.1290994449 × (0.4227843351 × 0.6744897502 + 0.5772156649 × 1.3287219496) = 0.1358284725
    # denominator = 1 − (−0.1790421687)(0.3302891295) + (2.2685950413 − 1)/4 × 0.3302891295² = 1.0937337286
    # z = (0.3302891295 − 0.1358284725) × √(5 − 1) / √1.0937337286 = 0.3718826712; Φ(z) = 0.6450098962
    d = deflated_sharpe(returns, [0.1, 0.2, 0.3, 0.4])
    assert d is not None
    assert d.sr_best == pytest.approx(0.3302891295, abs=1e-9)
    assert d.skewness == pytest.approx(-0.1790421687, abs=1e-9)
    assert d.kurtosis == pytest.approx(2.2685950413, abs=1e-9)
    assert d.sr_variance == pytest.approx(0.05 / 3, rel=1e-12)
    assert d.sr0 == pytest.approx(0.1358284725, abs=1e-9)
    assert d.dsr == pytest.approx(0.6450098962, abs=1e-9)
    assert d.n_trials == 4 and d.n_obs == 5


def test_deflated_sharpe_falls_with_more_trials():
    rng = np.random.default_rng(1)
    returns = list(rng.normal(0.001, 0.01, 500))
    sharpes = list(rng.normal(0.0, 0.03, 1000))
    few, many = deflated_sharpe(returns, sharpes[:5]), deflated_sharpe(returns, sharpes)
    assert few is not None and many is not None and many.dsr < few.dsr
    assert expected_max_sharpe(1, 0.5) == 0.0
    single = deflated_sharpe(returns, [0.1])
    assert single is not None and single.sr0 == 0.0  # N = 1: the probabilistic Sharpe ratio against 0
    assert deflated_sharpe([0.01, 0.01, 0.01], [0.1, 0.2]) is None  # flat: undefined
    assert per_period_sharpe(math.sqrt(252) * 0.1) == pytest.approx(0.1)
    assert nav_returns([110.0, 99.0], 100.0) == [110.0 / 100.0 - 1, 99.0 / 110.0 - 1]


CAL = [f"2015-{m:02d}-{d:02d}" for m in range(1, 13) for d in (5, 12, 19, 26)]  # 48 "trading days"


def test_rolling_and_anchored_folds_fall_on_the_calendar():
    rolling = make_folds(parse_validation({"kind": "walk_forward", "train_days": 12, "test_days": 8}), CAL)
    assert len(rolling) == 4  # test windows at days 12-19, 20-27, 28-35, 36-43; 44-51 would pass the end
    f1 = rolling[1]
    assert (f1.train_start, f1.train_end, f1.test_start, f1.test_end) == (CAL[8], CAL[19], CAL[20], CAL[27])
    assert f1.train_days == 12 and f1.test_days == 8
    anchored = make_folds(parse_validation({"kind": "walk-forward", "train_days": 12, "test_days": 8,
                                            "step_days": 10, "anchored": True}), CAL)
    assert [(f.train_start, f.train_end, f.test_start, f.test_end) for f in anchored] == [
        (CAL[0], CAL[11], CAL[12], CAL[19]), (CAL[0], CAL[21], CAL[22], CAL[29]),
        (CAL[0], CAL[31], CAL[32], CAL[39])]  # a 4th test window (days 42-49) would pass day 47
    holdout = make_folds(parse_validation({"kind": "HOLDOUT", "in_sample_end": "2015-09-01"}), CAL)
    assert len(holdout) == 1
    h = holdout[0]
    assert (h.train_start, h.train_end, h.test_start, h.test_end) == ("2015-01-05", "2015-08-26", "2015-09-05",
                                                                      "2015-12-26")
    assert make_folds(parse_validation(None), CAL) == []


def test_folds_that_do_not_fit():
    with pytest.raises(SweepInputError) as info:
        make_folds(parse_validation({"kind": "walk_forward", "train_days": 40, "test_days": 10}), CAL)
    assert info.value.field == "validation.train_days"
    with pytest.raises(SweepInputError) as info:
        make_folds(parse_validation({"kind": "holdout", "in_sample_end": "2016-01-01"}), CAL)
    assert info.value.field == "validation.in_sample_end"


def test_stitched_equity_is_the_chained_out_of_sample_returns():
    # Exact binary fractions so every product is exact: segment 1 grows ×1.5 then ×0.5,
    # segment 2 (its own run from 1000) ×1.25 then ×2.
    seg1 = Segment(["2015-01-05", "2015-01-06"], [1500.0, 750.0], 1000.0)
    seg2 = Segment(["2015-02-02", "2015-02-03"], [1250.0, 2500.0], 1000.0)
    s = stitch([seg1, seg2], 100.0)
    assert s.dates == ["2015-01-05", "2015-01-06", "2015-02-02", "2015-02-03"]
    assert s.returns == [0.5, -0.5, 0.25, 1.0]
    assert s.equity == [150.0, 75.0, 93.75, 187.5]  # 100·1.5, ·0.5, ·1.25, ·2
    # arbitrary values: the curve is the cumulative product of 1 + the chained returns
    rng = np.random.default_rng(2)
    segs, chained = [], []
    for k in range(3):
        nav = list(1e6 * np.cumprod(1 + rng.normal(0, 0.01, 20)))
        segs.append(Segment([f"2015-{k + 1:02d}-{d:02d}" for d in range(1, 21)], nav, 1e6))
        chained += nav_returns(nav, 1e6)
    s = stitch(segs, 1.0)
    assert s.returns == pytest.approx(chained, abs=1e-15)
    assert s.equity == pytest.approx(list(np.cumprod(1 + np.array(chained))), rel=1e-12)
    with pytest.raises(ValueError):
        stitch([seg2, seg1], 1.0)  # out of order
