"""``run_backtest``: the engine's in-process entry point (the CLI, benches and tests call it).

engine_svc never calls it with untrusted code: its sandbox runs the same ``TrustedSession`` with
the strategy in a separate hardened process (``engine_svc.sandbox.api.run_in_sandbox``). Here the
strategy runs in the calling process — against the ledger directly (the default), or, with
``hosted=True``, through a ``StrategyHost`` reached over the same bytes the sandbox uses, which
tests use to show both paths give the same result. See ``session.py`` for the day loop and
``record.py`` for the result.
"""

from __future__ import annotations

from typing import Any

from engine_svc.engine.config import BacktestConfig
from engine_svc.engine.panel import Panel
from engine_svc.engine.record import RESULT_KEYS
from engine_svc.engine.session import DirectSide, HostedSide, LoopbackChannel, ProgressFn, TrustedSession
from engine_svc.engine.trials import TrialOutcome, TrialsHost, TrialsSession

__all__ = ["RESULT_KEYS", "run_backtest", "run_trials"]


def run_backtest(
    panel: Panel,
    strategy_code: str,
    config: BacktestConfig,
    progress: ProgressFn | None = None,
    *,
    hosted: bool = False,
) -> dict[str, Any]:
    """Run ``strategy_code`` over ``panel`` under ``config``; returns the JSON-ready result.

    Raises ``StrategyError`` when the strategy does not load or raises, ``ValueError`` when the
    market data does not cover the config (unknown symbols, no trading days).
    """
    session = TrustedSession(panel, strategy_code, config)
    side = HostedSide(LoopbackChannel()) if hosted else DirectSide()
    return session.run(side, progress)


def run_trials(
    panel: Panel, strategy_code: str, config: BacktestConfig, params: list[dict[str, Any]],
    progress: ProgressFn | None = None,
) -> list[TrialOutcome]:
    """Run ``strategy_code`` once per parameter set, in lockstep over the same data (see
    ``trials.py``); each trial's lean outcome, in the order of ``params``. In-process; engine_svc
    runs the same with the strategies in a sandboxed worker."""
    return TrialsSession(panel, strategy_code, config, params).run(LoopbackChannel(TrialsHost), progress)
