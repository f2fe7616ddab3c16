"""sweeplib — parameter sweeps as plain Python: no gRPC, no SQL, no engine imports.

task_svc's SweepService and ``python -m engine_svc sweep`` both build on it. The public
interface (stable; everything else is internal)::

    from sweeplib import (SweepInputError, parse_spec, SweepSpec, plan_generation, run_search,
                          PlannedTrial, TrialRecord, TrialResult, Ranked, leaderboard, best,
                          search_value, make_folds, Fold, stitch, Segment, deflated_sharpe,
                          METRICS)

1. **Validate** — ``spec = parse_spec(request_json, max_trials_limit=N)``: the sweep request's
   ``space``, ``method`` (grid/random/tpe), ``max_trials``, ``seed``, ``constraints``,
   ``objective`` {metric, direction}, ``result_constraints``, ``validation``, ``max_parallel``,
   ``target`` (shapes in ``sweeplib.spec``). Bad input raises ``SweepInputError(field, message)``
   with the field path (``space.short_window.step``, ``constraints[0]``, ``objective.metric``) —
   map it to INVALID_ARGUMENT + BadRequest. ``spec.trial_count`` is the trial count for
   ``:estimate``; ``spec.generation_size`` the trials per generation.

2. **Plan** — ``plan_generation(spec, g, history) -> list[PlannedTrial(number, params)]``.
   Trials are numbered 0, 1, …; generation g holds numbers ``g·G … g·G+G−1``. Call it for g
   once every trial of generations < g has finished, with ``history`` = those trials as
   ``TrialRecord(number, params, value)``, ``value = search_value(TrialResult(...), spec.objective,
   spec.result_constraints)``. ``[]`` means the sweep is complete (space exhausted, max_trials,
   or ``target`` reached). The planner's whole state is that list of trials: no Optuna storage;
   TPE rebuilds an in-memory study from it, seeded by (seed, g) — so the same request and results
   give the same trials on any replica, in any completion order. Storage: persist each trial's
   number, generation, params (JSON) and metrics; nothing else. ``run_search(spec, evaluate)``
   is the in-process loop.

3. **Rank** — ``leaderboard(results, spec.objective, spec.result_constraints)`` with
   ``TrialResult(number, params, metrics | None)`` (None = failed) → ``Ranked`` rows (``rank`` 1 =
   best; ``status`` ranked / constrained / undefined / failed); ties go to the lower number;
   ``best(...)`` is the first ranked row or None.

4. **Overfitting** — ``deflated_sharpe(best_daily_returns, per_period_sharpes_of_all_trials)``
   (``sweeplib.overfit``: ``per_period_sharpe``, ``nav_returns`` convert the engine's outputs).

5. **Validation** — ``make_folds(spec.validation, trading_days)`` → ``Fold`` (train/test date
   ranges on the trading calendar); run the search per fold in sample, its best out of sample;
   ``stitch([Segment(dates, nav, initial), …], initial)`` → the stitched out-of-sample equity.
"""

from sweeplib.errors import SweepInputError
from sweeplib.expr import Condition, parse_condition, parse_conditions
from sweeplib.metrics import METRICS
from sweeplib.overfit import DeflatedSharpe, deflated_sharpe, nav_returns, per_period_sharpe
from sweeplib.planner import PlannedTrial, TrialRecord, grid_points, plan_generation, run_search
from sweeplib.ranking import Objective, Ranked, TrialResult, best, leaderboard, parse_objective, search_value
from sweeplib.space import Space, parse_space
from sweeplib.spec import SweepSpec, parse_spec
from sweeplib.walkforward import Fold, Segment, Stitched, Validation, make_folds, parse_validation, stitch

__all__ = [
    "METRICS", "Condition", "DeflatedSharpe", "Fold", "Objective", "PlannedTrial", "Ranked", "Segment", "Space",
    "Stitched", "SweepInputError", "SweepSpec", "TrialRecord", "TrialResult", "Validation", "best",
    "deflated_sharpe", "grid_points", "leaderboard", "make_folds", "nav_returns", "parse_condition",
    "parse_conditions", "parse_objective", "parse_space", "parse_spec", "parse_validation", "per_period_sharpe",
    "plan_generation", "run_search", "search_value", "stitch",
]
