"""The objective, result constraints and the leaderboard.

A trial is *ranked* when it succeeded, its objective metric is defined and every result constraint
holds; a trial that breaks a result constraint is kept (its metrics are shown) but not ranked
(``status="constrained"``), one whose objective is undefined (e.g. a Sharpe ratio of a flat NAV)
is ``"undefined"``, a failed one ``"failed"``. Ranked trials are ordered by the objective (better
first), ties broken by the lower trial number — so the best never depends on the order in which
results arrived.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sweeplib.errors import SweepInputError
from sweeplib.expr import Condition, all_hold
from sweeplib.metrics import METRICS, Direction
from sweeplib.space import Params

Status = Literal["ranked", "constrained", "undefined", "failed"]


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: Direction

    def better(self, a: float, b: float) -> bool:
        """True when ``a`` is strictly better than ``b``."""
        return a > b if self.direction == "maximize" else a < b

    def reached(self, value: float | None, target: float | None) -> bool:
        """The early-stop test: ``value`` is at least as good as ``target``."""
        if value is None or target is None:
            return False
        return value >= target if self.direction == "maximize" else value <= target


def parse_objective(obj: Any, field: str = "objective") -> Objective:
    """``{"metric": "sharpe_ratio", "direction": "maximize"}``; ``direction`` defaults to the
    metric's natural one (minimize for drawdown, volatility, fees…). A bare string is the metric."""
    if isinstance(obj, str):
        obj = {"metric": obj}
    if not isinstance(obj, Mapping):
        raise SweepInputError(field, "must be an object with metric and direction")
    unknown = set(obj) - {"metric", "direction"}
    if unknown:
        raise SweepInputError(f"{field}.{sorted(unknown)[0]}", "unknown key (metric, direction)")
    metric = obj.get("metric")
    if not isinstance(metric, str) or not metric:
        raise SweepInputError(f"{field}.metric", "is required")
    if metric not in METRICS:
        raise SweepInputError(f"{field}.metric", f"unknown metric '{metric}' (known: {', '.join(sorted(METRICS))})")
    direction = obj.get("direction") or METRICS[metric]
    if isinstance(direction, str):
        direction = direction.lower()
    if direction == "maximize":
        return Objective(metric, "maximize")
    if direction == "minimize":
        return Objective(metric, "minimize")
    raise SweepInputError(f"{field}.direction", "must be maximize or minimize")


@dataclass(frozen=True)
class TrialResult:
    """What ranking needs of a finished trial. ``metrics`` is None for a failed trial."""

    number: int
    params: Params
    metrics: Mapping[str, Any] | None


@dataclass(frozen=True)
class Ranked:
    number: int
    params: Params
    metrics: Mapping[str, Any] | None
    value: float | None  # the objective metric (None when failed or undefined)
    status: Status
    rank: int | None  # 1 = best; None unless status == "ranked"


def objective_value(metrics: Mapping[str, Any] | None, objective: Objective) -> float | None:
    if metrics is None:
        return None
    v = metrics.get(objective.metric)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def classify(result: TrialResult, objective: Objective,
             constraints: Sequence[Condition]) -> tuple[Status, float | None]:
    if result.metrics is None:
        return "failed", None
    value = objective_value(result.metrics, objective)
    if not all_hold(constraints, result.metrics):
        return "constrained", value
    if value is None:
        return "undefined", None
    return "ranked", value


def search_value(result: TrialResult, objective: Objective, constraints: Sequence[Condition]) -> float | None:
    """The value a search (TPE) is told: the objective when the trial ranks, else None (the
    trial is told as failed, so it never looks promising)."""
    status, value = classify(result, objective, constraints)
    return value if status == "ranked" else None


def leaderboard(results: Iterable[TrialResult], objective: Objective,
                constraints: Sequence[Condition] = ()) -> list[Ranked]:
    """Every trial once: ranked ones best first (ties: lower number first), then constrained,
    undefined and failed ones, each group by trial number."""
    ranked: list[Ranked] = []
    rest: list[Ranked] = []
    for r in results:
        status, value = classify(r, objective, constraints)
        row = Ranked(r.number, r.params, r.metrics, value, status, None)
        (ranked if status == "ranked" else rest).append(row)
    sign = -1.0 if objective.direction == "maximize" else 1.0
    ranked.sort(key=lambda t: (sign * (t.value or 0.0), t.number))
    order = {"constrained": 0, "undefined": 1, "failed": 2}
    rest.sort(key=lambda t: (order[t.status], t.number))
    return [Ranked(t.number, t.params, t.metrics, t.value, t.status, k + 1) for k, t in enumerate(ranked)] + rest


def best(results: Iterable[TrialResult], objective: Objective, constraints: Sequence[Condition] = ()) -> Ranked | None:
    """The best ranked trial, or None when no trial ranks."""
    board = leaderboard(results, objective, constraints)
    return board[0] if board and board[0].status == "ranked" else None
