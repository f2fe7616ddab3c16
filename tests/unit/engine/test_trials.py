"""Trials: many parameter sets of one strategy in one run, each exactly what a single run gives."""

from __future__ import annotations

import numpy as np
import pytest

from engine_svc.data.synthetic import generate_panel
from engine_svc.engine.config import BacktestConfig
from engine_svc.engine.runner import run_backtest, run_trials
from engine_svc.metrics import compute_metrics

DUAL_MA = """
import numpy as np
from zquant.backtest.strategy import BaseStrategy

class Strategy(BaseStrategy):
    def initialize(self):
        self.short = int(self.params.get("short", 5))
        self.long = int(self.params.get("long", 20))
        if self.short >= self.long:
            raise ValueError("short must be below long")

    def on_bar(self, context, bar_data):
        for s in sorted(bar_data):
            h = context.history(s, "close", self.long)
            if len(h) < self.long or np.isnan(h).any():
                continue
            if h[-self.short:].mean() > h.mean():
                context.order_target_percent(s, 0.9 / len(context.symbols))
            else:
                context.order_target(s, 0)
        if self.params.get("crash_on") == context.current_date_str:
            raise KeyError("boom")
"""


@pytest.fixture(scope="module")
def market():
    panel = generate_panel(6, 260, seed=5)
    cfg = BacktestConfig(start_date=str(panel.dates[30]), end_date=str(panel.dates[-1]), symbols=panel.symbols,
                         slippage_rate=0.001)
    return panel, cfg


def test_each_trial_equals_its_single_run(market):
    panel, cfg = market
    params = [{"short": s, "long": lg} for s, lg in [(3, 10), (5, 20), (8, 30), (5, 12)]]
    outcomes = run_trials(panel, DUAL_MA, cfg, params)
    assert [o.params for o in outcomes] == params
    for p, out in zip(params, outcomes, strict=True):
        single = run_backtest(panel, DUAL_MA, cfg.with_params(p))
        assert out.failure is None and out.mismatch_days == 0
        assert out.dates == [d["date"] for d in single["daily"]]
        assert out.nav == [d["total_value"] for d in single["daily"]]
        assert out.trades == single["trades"] and out.ex_rights == single["ex_rights"]
        assert out.orders == len(single["orders"]) and out.logs == single["logs"]
        lean = compute_metrics(out.as_result(cfg.initial_capital, single["benchmark_close"]))
        assert lean == compute_metrics(single)


def test_a_failing_trial_fails_alone_with_its_line(market):
    panel, cfg = market
    crash_day = str(panel.dates[100])
    params = [{"short": 5, "long": 20}, {"short": 5, "long": 20, "crash_on": crash_day}, {"short": 9, "long": 4},
              {"short": 3, "long": 10}]
    ok, crashed, bad_init, other = run_trials(panel, DUAL_MA, cfg, params)
    assert ok.failure is None and other.failure is None
    assert crashed.failure is not None and crashed.failure["kind"] == "strategy_error"
    assert crashed.failure["message"].startswith("KeyError: 'boom'")
    assert DUAL_MA.splitlines()[crashed.failure["line"] - 1].strip() == 'raise KeyError("boom")'
    assert crashed.dates[-1] < crash_day  # its ledger stopped with it
    assert bad_init.failure is not None and "short must be below long" in bad_init.failure["message"]
    assert bad_init.nav == []
    assert ok.nav == run_trials(panel, DUAL_MA, cfg, [params[0]])[0].nav  # the others are untouched


def test_trials_run_in_lockstep_so_none_sees_another_ones_future(market):
    """Trials share one process: a trial that publishes what it has seen for the others to read
    publishes only data up to the day every trial is on."""
    panel, cfg = market
    code = """
import builtins
from zquant.backtest.strategy import BaseStrategy

class Strategy(BaseStrategy):
    def on_bar(self, context, bar_data):
        seen = getattr(builtins, "_zq_seen", [])
        builtins._zq_seen = seen
        latest = max(seen) if seen else ""
        if latest > context.current_date_str:
            context.log("saw the future", latest)
        seen.append(context.current_date_str)
"""
    outcomes = run_trials(panel, code, cfg, [{"k": k} for k in range(5)])
    assert all(not o.logs for o in outcomes)


def test_batch_limits(market):
    panel, cfg = market
    with pytest.raises(ValueError, match="1 to"):
        run_trials(panel, DUAL_MA, cfg, [])
    assert np.isfinite(run_trials(panel, DUAL_MA, cfg, [{}])[0].nav).all()
