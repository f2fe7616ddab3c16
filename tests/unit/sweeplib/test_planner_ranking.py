"""Planners (grid, random, TPE) and the leaderboard: constraints respected, seeds reproducible,
the same trials and best whatever the order results arrive in."""

from __future__ import annotations

import random

import pytest

from sweeplib import (
    METRICS,
    TrialRecord,
    TrialResult,
    best,
    leaderboard,
    parse_conditions,
    parse_objective,
    parse_spec,
    plan_generation,
    run_search,
    search_value,
)

DUAL = {"short_window": {"min": 3, "max": 12, "step": 1}, "long_window": {"min": 20, "max": 65, "step": 5}}


def _spec(**kw):
    return parse_spec({"space": DUAL, "objective": {"metric": "sharpe_ratio"}, **kw})


def _score(params) -> float:
    """A made-up objective with one peak, at short 7 / long 40."""
    return -((params["short_window"] - 7) ** 2) - ((params["long_window"] - 40) / 5) ** 2


def test_grid_is_every_point_in_canonical_order():
    spec = _spec(constraints=["short_window * 5 < long_window"])
    expected = [{"long_window": lw, "short_window": sw} for lw in range(20, 66, 5) for sw in range(3, 13)
                if sw * 5 < lw]
    trials = plan_generation(spec, 0, [])
    assert [t.params for t in trials] == expected
    assert [t.number for t in trials] == list(range(len(expected)))
    assert spec.trial_count == len(expected) == 55  # long 20: 1 short; 25: 2; … 65: 10 → 1+2+…+10
    assert plan_generation(spec, 1, [TrialRecord(t.number, t.params, None) for t in trials]) == []


def test_grid_generations_slice_and_target_stops_at_a_generation_boundary():
    space = {"x": {"min": 1, "max": 250, "step": 1}}
    spec = parse_spec({"space": space, "objective": {"metric": "total_return"}, "target": 150})
    assert spec.generation_size == 100
    g0 = plan_generation(spec, 0, [])
    assert [t.params["x"] for t in g0] == list(range(1, 101))
    hist = [TrialRecord(t.number, t.params, float(t.params["x"])) for t in g0]
    g1 = plan_generation(spec, 1, hist)
    assert [t.number for t in g1] == list(range(100, 200))
    hist += [TrialRecord(t.number, t.params, float(t.params["x"])) for t in g1]
    assert plan_generation(spec, 2, hist) == []  # x = 150 reached the target in generation 1
    with pytest.raises(ValueError):
        plan_generation(spec, 1, hist)  # history must hold earlier generations only


def test_random_is_seeded_unique_and_respects_constraints():
    spec = _spec(method="random", max_trials=30, seed=7, constraints=["short_window * 4 < long_window"])
    a = [t.params for t in plan_generation(spec, 0, [])]
    assert a == [t.params for t in plan_generation(spec, 0, [])]
    assert len(a) == 30 and len({tuple(sorted(p.items())) for p in a}) == 30
    assert all(p["short_window"] * 4 < p["long_window"] for p in a)
    assert all(p["long_window"] % 5 == 0 and 3 <= p["short_window"] <= 12 for p in a)
    other = [t.params for t in _spec_seed(8)]
    assert other != a


def _spec_seed(seed):
    spec = _spec(method="random", max_trials=30, seed=seed, constraints=["short_window * 4 < long_window"])
    return plan_generation(spec, 0, [])


def test_random_stops_when_the_space_runs_dry():
    spec = parse_spec({"space": {"x": {"values": [1, 2, 3]}}, "method": "random", "max_trials": 10,
                       "objective": {"metric": "sharpe_ratio"}})
    assert sorted(t.params["x"] for t in plan_generation(spec, 0, [])) == [1, 2, 3]


def _tpe_run(seed: int, shuffle: int | None = None):
    spec = parse_spec({"space": {**DUAL, "stop": {"min": 0.01, "max": 0.2, "log": True}}, "method": "tpe",
                       "max_trials": 40, "seed": seed, "max_parallel": 8,
                       "constraints": ["short_window * 4 < long_window"], "objective": {"metric": "sharpe_ratio"}})
    history: list[TrialRecord] = []
    g = 0
    while planned := plan_generation(spec, g, history):
        finished = [TrialRecord(t.number, t.params, _score(t.params)) for t in planned]
        if shuffle is not None:  # results arriving in another order
            random.Random(shuffle + g).shuffle(finished)
        history = finished + history if shuffle else history + finished
        g += 1
    return spec, sorted(history, key=lambda r: r.number)


def test_tpe_is_deterministic_whatever_the_completion_order():
    spec, a = _tpe_run(3)
    _, b = _tpe_run(3, shuffle=11)
    assert [(r.number, r.params) for r in a] == [(r.number, r.params) for r in b]
    assert len(a) == 40 and spec.generation_size == 8
    assert all(r.params["short_window"] * 4 < r.params["long_window"] for r in a)
    assert len({(r.params["short_window"], r.params["long_window"], r.params["stop"]) for r in a}) == 40
    assert all(0.01 <= r.params["stop"] <= 0.2 for r in a)
    _, c = _tpe_run(4)
    assert [r.params for r in c] != [r.params for r in a]
    # the sampler learns: the later half is closer to the peak than the first (random) generation
    first = sum(r.value for r in a[:8]) / 8
    last = sum(r.value for r in a[-8:]) / 8
    assert last > first


def test_run_search_matches_generation_by_generation():
    spec = _spec(method="tpe", max_trials=16, seed=1)
    records = run_search(spec, lambda planned: [TrialRecord(t.number, t.params, _score(t.params)) for t in planned])
    _, manual = _tpe_run(1)  # a different space: only the shape is compared
    assert [r.number for r in records] == list(range(16)) and len(manual) == 40


def test_leaderboard_ranks_constrains_and_breaks_ties_by_number():
    objective = parse_objective({"metric": "sharpe_ratio"})
    rc = parse_conditions(["max_drawdown < 0.25", "total_trades >= 20"], METRICS, field="result_constraints",
                          what="metric")
    m = lambda s, dd=0.1, n=30: {"sharpe_ratio": s, "max_drawdown": dd, "total_trades": n}  # noqa: E731
    results = [
        TrialResult(0, {"x": 0}, m(1.0)),
        TrialResult(1, {"x": 1}, m(2.0, dd=0.3)),  # best Sharpe, breaks max_drawdown
        TrialResult(2, {"x": 2}, None),  # failed
        TrialResult(3, {"x": 3}, m(1.5)),
        TrialResult(4, {"x": 4}, m(None)),  # Sharpe undefined
        TrialResult(5, {"x": 5}, m(1.5)),  # ties trial 3
        TrialResult(6, {"x": 6}, m(1.7, n=5)),  # too few trades
    ]
    board = leaderboard(reversed(results), objective, rc)
    assert [(r.number, r.status, r.rank) for r in board] == [
        (3, "ranked", 1), (5, "ranked", 2), (0, "ranked", 3),
        (1, "constrained", None), (6, "constrained", None), (4, "undefined", None), (2, "failed", None)]
    assert best(results, objective, rc).number == 3
    assert [search_value(r, objective, rc) for r in results] == [1.0, None, None, 1.5, None, 1.5, None]
    low = parse_objective({"metric": "max_drawdown"})
    assert low.direction == "minimize"
    assert best(results, low).number == 0  # 0.1 ties with 3, 5, 6: the lowest number wins
    assert best([TrialResult(0, {}, None)], objective) is None
    assert low.reached(0.05, 0.1) and not low.reached(0.2, 0.1)


def test_metric_names_are_the_engines():
    import numpy as np

    from engine_svc.metrics import compute_metrics
    from sweeplib.metrics import NOT_TRIAL_METRICS

    nav = 1e6 * np.cumprod(1 + np.random.default_rng(0).normal(0, 0.01, 50))
    result = {"initial_capital": 1e6, "daily": [{"date": f"2015-01-{k:02d}", "total_value": float(v)}
                                                for k, v in enumerate(nav, 1)], "benchmark_close": None, "trades": []}
    keys = set(compute_metrics(result))
    assert set(METRICS) == keys - NOT_TRIAL_METRICS
