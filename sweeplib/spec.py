"""A sweep request, parsed and validated in one place: ``parse_spec(request) -> SweepSpec``.

``request`` is the JSON of ``POST /api/v1/backtest/sweeps`` less what the engine owns (strategy,
config, base params)::

    {"space": {...},                          # see sweeplib.space
     "method": "grid" | "random" | "tpe",     # case-insensitive; default grid
     "max_trials": 100,                       # required for random/tpe; grid: the grid's size cap
     "seed": 0,
     "constraints": ["short_window < long_window"],          # parameter constraints
     "objective": {"metric": "sharpe_ratio", "direction": "maximize"},
     "result_constraints": ["max_drawdown < 0.25", "total_trades >= 20"],
     "validation": {"kind": "none" | "holdout" | "walk_forward", ...},   # see sweeplib.walkforward
     "max_parallel": 0,                       # 0 = no cap beyond the deployment's
     "target": 2.0}                           # stop once the best objective reaches it

Every problem is a SweepInputError naming the field. Missing or null optional fields take their
defaults, so a protobuf message converted with ``MessageToDict`` (defaults omitted) parses too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sweeplib.errors import SweepInputError
from sweeplib.expr import Condition, parse_conditions
from sweeplib.metrics import METRICS
from sweeplib.planner import (
    DEFAULT_TPE_GENERATION,
    GRID_RANDOM_GENERATION,
    MAX_GENERATION,
    TrialRecord,
    grid_points,
)
from sweeplib.ranking import Objective, parse_objective
from sweeplib.space import Space, parse_space
from sweeplib.walkforward import Validation, parse_validation

Method = Literal["grid", "random", "tpe"]
DEFAULT_MAX_TRIALS_LIMIT = 10_000
MAX_SEED = 2**63 - 1

_KEYS = {"space", "method", "max_trials", "seed", "constraints", "objective", "result_constraints",
         "validation", "max_parallel", "target"}


@dataclass(frozen=True)
class SweepSpec:
    space: Space
    method: Method
    max_trials: int
    seed: int
    constraints: tuple[Condition, ...]
    objective: Objective
    result_constraints: tuple[Condition, ...]
    validation: Validation
    max_parallel: int  # 0 = no cap
    target: float | None
    grid_size: int | None = field(default=None)  # GRID: points satisfying the constraints

    @property
    def generation_size(self) -> int:
        """Trials per generation (see sweeplib.planner): TPE's batch is what runs at once
        (``max_parallel``, default 8); GRID/RANDOM do not learn, their generations only pace the
        early stop. It depends on the request alone, never on the deployment."""
        g = (self.max_parallel or DEFAULT_TPE_GENERATION) if self.method == "tpe" else GRID_RANDOM_GENERATION
        return max(1, min(g, MAX_GENERATION, self.max_trials))

    @property
    def trial_count(self) -> int:
        """Trials the sweep will run at most (GRID: exactly, unless stopped early)."""
        return self.grid_size if self.grid_size is not None else self.max_trials

    def target_reached(self, history: Sequence[TrialRecord]) -> bool:
        """Early stop: a finished trial's search value reaches ``target``."""
        return self.target is not None and any(self.objective.reached(r.value, self.target) for r in history)


def _int(value: Any, field: str, lo: int, hi: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():  # proto3 JSON int64 is a string
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SweepInputError(field, "must be an integer")
    if not lo <= value <= hi:
        raise SweepInputError(field, f"must be between {lo} and {hi}")
    return value


def parse_spec(request: Mapping[str, Any], *, max_trials_limit: int = DEFAULT_MAX_TRIALS_LIMIT) -> SweepSpec:
    """Validate a sweep request (see the module docstring). ``max_trials_limit`` is the
    deployment's cap on trials per sweep."""
    if not isinstance(request, Mapping):
        raise SweepInputError("sweep", "must be an object")
    unknown = set(request) - _KEYS
    if unknown:
        raise SweepInputError(sorted(unknown)[0], "unknown field")
    space = parse_space(request.get("space"))
    method_raw = request.get("method") or "grid"
    if not isinstance(method_raw, str) or method_raw.lower() not in ("grid", "random", "tpe"):
        raise SweepInputError("method", "must be grid, random or tpe")
    method: Method = method_raw.lower()  # type: ignore[assignment]
    if method in ("random", "tpe") and request.get("max_trials") in (None, 0):
        raise SweepInputError("max_trials", f"is required for {method}")
    raw_max = request.get("max_trials")
    max_trials = max_trials_limit if raw_max in (None, 0) else _int(raw_max, "max_trials", 1, max_trials_limit)
    seed = 0 if request.get("seed") is None else _int(request.get("seed"), "seed", 0, MAX_SEED)
    constraints = parse_conditions(request.get("constraints"), space.names, field="constraints", what="parameter")
    for c in constraints:
        if not c.names:
            raise SweepInputError(f"constraints[{constraints.index(c)}]", "names no parameter")
    if request.get("objective") is None:
        raise SweepInputError("objective.metric", "is required")
    objective = parse_objective(request.get("objective"))
    result_constraints = parse_conditions(request.get("result_constraints"), METRICS, field="result_constraints",
                                          what="metric")
    validation = parse_validation(request.get("validation"))
    max_parallel = 0 if request.get("max_parallel") is None else _int(request.get("max_parallel"), "max_parallel",
                                                                        0, 10_000)
    target = request.get("target")
    if target is not None and (isinstance(target, bool) or not isinstance(target, (int, float))
                               or not math.isfinite(target)):
        raise SweepInputError("target", "must be a finite number")
    grid_size = None
    if method == "grid":
        grid_size = len(grid_points(space, constraints, max_trials))
        if raw_max in (None, 0):
            max_trials = grid_size
    return SweepSpec(space, method, max_trials, seed, constraints, objective, result_constraints, validation,
                     max_parallel, None if target is None else float(target), grid_size)
