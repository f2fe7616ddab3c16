"""GRID, RANDOM and TPE planners, in generations, deterministic by construction.

The planner is a pure function of the request and the finished trials::

    plan_generation(spec, g, history) -> list[PlannedTrial]

Generation ``g`` holds the trials numbered ``g·G … g·G+G−1`` (``G = spec.generation_size``, the
last one may be shorter); ``history`` is every trial of generations ``0 … g−1`` with its search
value (``TrialRecord.value``: the objective when the trial ranks, None when it failed, broke a
result constraint or had no value — ``ranking.search_value``). Generation ``g`` may start only when
all of ``0 … g−1`` have finished. The planner sorts ``history`` by trial number, so the same
request, seed and results give the same next generation whatever order the results arrived in,
whichever replica asks, and however many run the trials. An empty list means the sweep has no
more trials (``is_exhausted`` / ``stop_reason`` say why).

* GRID: every point of the product (parameters sorted by name, the last one varying fastest, each
  parameter's values in the order given) that satisfies the parameter constraints; generations
  are consecutive slices.
* RANDOM: a ``random.Random(seed)`` stream drawn parameter by parameter (sorted names); a draw
  that breaks a constraint or repeats an earlier point is rejected and the next one drawn. It
  does not depend on results, so generation ``g`` is re-derived from the start of the stream.
* TPE: Optuna's TPESampler, ask-and-tell. No Optuna storage is kept: for each generation an
  in-memory study is rebuilt from ``history`` (``study.add_trials``, in trial-number order; failed
  and unranked trials told as FAIL), the sampler seeded with ``(seed, g)``; the generation is
  ``G`` asks, a rejected ask (constraint or repeat) followed by another. The sweep's trial rows in
  task_svc's database are therefore the whole state: any replica continues a sweep by calling
  this function.

Rejection is bounded: ``MAX_REJECTS`` rejections in a row end the search (the finite space, under
its constraints, has no unseen point left, or they are too rare to find).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sweeplib.errors import SweepInputError
from sweeplib.expr import Condition, all_hold
from sweeplib.metrics import Direction
from sweeplib.space import Choice, Continuous, Dimension, Params, Scalar, Space, Stepped

MAX_REJECTS = 500
DEFAULT_TPE_GENERATION = 8
GRID_RANDOM_GENERATION = 100
MAX_GENERATION = 256


@dataclass(frozen=True)
class PlannedTrial:
    number: int
    params: Params


@dataclass(frozen=True)
class TrialRecord:
    """A finished trial as the planner sees it (see the module docstring)."""

    number: int
    params: Params
    value: float | None


def point_key(params: Params) -> tuple[tuple[str, str, str], ...]:
    """Identity of a point: names, types and values (1 and 1.0 and True are different points)."""
    return tuple(sorted((k, type(v).__name__, repr(v)) for k, v in params.items()))


# ----------------------------------------------------------------------------------------- GRID
def grid_points(space: Space, constraints: Sequence[Condition], limit: int) -> list[Params]:
    """The grid in canonical order, constraints applied. Raises SweepInputError on ``space`` when
    a parameter is continuous or the product exceeds ``limit`` points after the constraints."""
    for d in space.dims:
        if isinstance(d, Continuous):
            raise SweepInputError(f"space.{d.name}", "GRID needs values or a step (min/max/log is for RANDOM or TPE)")
    from sweeplib.space import MAX_GRID_POINTS

    total = space.grid_size()
    if total > MAX_GRID_POINTS:
        raise SweepInputError("space", f"the grid has {total} points, more than {MAX_GRID_POINTS} can be enumerated")
    names = space.names
    axes = [d.points() for d in space.dims if not isinstance(d, Continuous)]
    out: list[Params] = []
    for combo in itertools.product(*axes):
        params = dict(zip(names, combo, strict=True))
        if all_hold(constraints, params):
            out.append(params)
            if len(out) > limit:
                raise SweepInputError(
                    "space", f"the grid has more than max_trials={limit} points satisfying the constraints "
                             f"({total} before constraints): narrow it or raise max_trials")
    if not out:
        raise SweepInputError("constraints", "no point of the grid satisfies the constraints")
    return out


# --------------------------------------------------------------------------------------- RANDOM
def _draw(rng: random.Random, d: Dimension) -> Scalar:
    if isinstance(d, Choice):
        return d.values[rng.randrange(len(d.values))]
    if isinstance(d, Stepped):
        return d.value(rng.randrange(d.count))
    x = math.exp(rng.uniform(math.log(d.low), math.log(d.high))) if d.log else rng.uniform(d.low, d.high)
    x = min(max(x, d.low), d.high)
    return round(x) if d.integer else x


def random_points(space: Space, constraints: Sequence[Condition], seed: int, count: int) -> list[Params]:
    """The first ``count`` accepted points of the seeded stream (fewer when it runs dry)."""
    rng = random.Random(seed)
    seen: set[Any] = set()
    out: list[Params] = []
    rejects = 0
    while len(out) < count and rejects < MAX_REJECTS:
        params = {d.name: _draw(rng, d) for d in space.dims}
        key = point_key(params)
        if key in seen or not all_hold(constraints, params):
            rejects += 1
            continue
        rejects = 0
        seen.add(key)
        out.append(params)
    return out


# ------------------------------------------------------------------------------------------ TPE
def _distributions(space: Space) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    dists: dict[str, Any] = {}
    for d in space.dims:
        if isinstance(d, Choice):
            dists[d.name] = CategoricalDistribution(list(d.values))
        elif isinstance(d, Stepped):  # the index, so the points stay exact (no float step in Optuna)
            dists[d.name] = IntDistribution(0, d.count - 1)
        elif d.integer:
            dists[d.name] = IntDistribution(int(d.low), int(d.high), log=d.log)
        else:
            dists[d.name] = FloatDistribution(d.low, d.high, log=d.log)
    return dists


def _to_internal(space: Space, params: Params) -> dict[str, Any] | None:
    """A point as Optuna's params (stepped values as indices); None if it is not in the space."""
    out: dict[str, Any] = {}
    for d in space.dims:
        if d.name not in params:
            return None
        v = params[d.name]
        if isinstance(d, Stepped):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                return None
            k = (Decimal(str(v)) - d.low) / d.step
            if k != k.to_integral_value() or not 0 <= k < d.count:
                return None
            out[d.name] = int(k)
        elif isinstance(d, Choice):
            if v not in d.values:
                return None
            out[d.name] = v
        else:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not d.low <= v <= d.high:
                return None
            out[d.name] = v
    return out


def _from_internal(space: Space, values: dict[str, Any]) -> Params:
    out: Params = {}
    for d in space.dims:
        v = values[d.name]
        out[d.name] = d.value(int(v)) if isinstance(d, Stepped) else v
    return out


def _generation_seed(seed: int, generation: int) -> int:
    return (seed * 1_000_003 + generation * 7_919) % (2**32)


def tpe_generation(space: Space, constraints: Sequence[Condition], direction: Direction, seed: int, generation: int,
                   history: Sequence[TrialRecord], size: int) -> list[Params]:
    import optuna
    from optuna.samplers import TPESampler
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = _distributions(space)
    study = optuna.create_study(direction=direction, sampler=TPESampler(seed=_generation_seed(seed, generation)))
    seen: set[Any] = set()
    frozen = []
    for rec in sorted(history, key=lambda r: r.number):
        seen.add(point_key(rec.params))
        internal = _to_internal(space, rec.params)
        if internal is None:
            continue  # not a point of this space (cannot happen for the sweep's own trials)
        if rec.value is None or not math.isfinite(rec.value):
            frozen.append(create_trial(params=internal, distributions=dists, state=TrialState.FAIL))
        else:
            frozen.append(create_trial(params=internal, distributions=dists, value=float(rec.value)))
    study.add_trials(frozen)
    out: list[Params] = []
    rejects = 0
    while len(out) < size and rejects < MAX_REJECTS:
        trial = study.ask(dists)
        params = _from_internal(space, trial.params)
        key = point_key(params)
        ok = key not in seen and all_hold(constraints, params)
        # Told as failed either way: TPE models complete trials only, so a pending point neither
        # helps nor hurts; a rejected one must not block the sampler from re-drawing nearby.
        study.tell(trial, state=TrialState.FAIL)
        if not ok:
            rejects += 1
            continue
        rejects = 0
        seen.add(key)
        out.append(params)
    return out


# --------------------------------------------------------------------------------------- driver
def generation_bounds(spec: Any, generation: int) -> tuple[int, int]:
    """Trial numbers ``[start, stop)`` of a generation (before exhaustion)."""
    g = spec.generation_size
    start = generation * g
    return start, min(start + g, spec.max_trials)


def plan_generation(spec: Any, generation: int, history: Sequence[TrialRecord]) -> list[PlannedTrial]:
    """The trials of ``generation`` (see the module docstring); ``spec`` is a ``SweepSpec``."""
    if generation < 0:
        raise ValueError("generation must be >= 0")
    start, stop = generation_bounds(spec, generation)
    if start >= stop:
        return []
    ordered = sorted(history, key=lambda r: r.number)
    if any(r.number >= start for r in ordered):
        raise ValueError(f"history holds trials of generation {generation} or later")
    if len(ordered) < start:
        return []  # an earlier generation came out short: the search is exhausted
    if generation > 0 and spec.target_reached(ordered):
        return []
    method = spec.method
    if method == "grid":
        points = grid_points(spec.space, spec.constraints, spec.max_trials)[start:stop]
    elif method == "random":
        points = random_points(spec.space, spec.constraints, spec.seed, stop)[start:stop]
    elif method == "tpe":
        points = tpe_generation(spec.space, spec.constraints, spec.objective.direction, spec.seed, generation,
                                ordered, stop - start)
    else:  # pragma: no cover - parse_spec admits only these
        raise ValueError(f"unknown method {method}")
    return [PlannedTrial(start + k, p) for k, p in enumerate(points)]


def run_search(spec: Any, evaluate: Callable[[list[PlannedTrial]], Sequence[TrialRecord]]) -> list[TrialRecord]:
    """Plan and run generation after generation in-process (the CLI's loop): ``evaluate`` runs one
    generation's trials and returns their records. Returns every record, by trial number."""
    history: list[TrialRecord] = []
    for generation in itertools.count():
        planned = plan_generation(spec, generation, history)
        if not planned:
            break
        history.extend(evaluate(planned))
    return sorted(history, key=lambda r: r.number)
