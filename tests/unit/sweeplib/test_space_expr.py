"""Sweep spaces and constraint expressions: exact grids, and errors that name the field."""

from __future__ import annotations

import pytest

from sweeplib import SweepInputError, parse_condition, parse_space, parse_spec
from sweeplib.space import Choice, Continuous, Stepped


def _err(fn, *args, **kwargs) -> SweepInputError:
    with pytest.raises(SweepInputError) as info:
        fn(*args, **kwargs)
    return info.value


def test_stepped_ranges_are_exact_and_keep_ints():
    space = parse_space({"w": {"min": 3, "max": 12, "step": 3}, "f": {"min": 0.1, "max": 0.5, "step": 0.1},
                         "g": {"min": 1, "max": 2, "step": 0.25}})
    assert space.names == ("f", "g", "w")  # sorted: request key order carries no meaning
    assert space.dim("w").points() == (3, 6, 9, 12)
    assert all(type(v) is int for v in space.dim("w").points())
    assert space.dim("f").points() == (0.1, 0.2, 0.3, 0.4, 0.5)  # 0.3, not 0.30000000000000004
    assert space.dim("g").points() == (1.0, 1.25, 1.5, 1.75, 2.0)
    assert isinstance(space.dim("g"), Stepped) and not space.dim("g").integer
    assert space.grid_size() == 4 * 5 * 5
    # max not on the step: the last point is the last one ≤ max
    assert parse_space({"x": {"min": 20, "max": 63, "step": 5}}).dim("x").points()[-1] == 60


def test_values_and_continuous():
    space = parse_space({"mode": {"values": ["a", "b", "a"]}, "lr": {"min": 0.001, "max": 0.1, "log": True},
                         "n": {"min": 1, "max": 9, "log": False}})
    assert space.dim("mode") == Choice("mode", ("a", "b"))
    lr, n = space.dim("lr"), space.dim("n")
    assert isinstance(lr, Continuous) and lr.log and not lr.integer
    assert isinstance(n, Continuous) and n.integer and not n.log
    assert not space.finite


@pytest.mark.parametrize(("space", "field"), [
    ({}, "space"),
    ([], "space"),
    ({"x": {"min": 5, "max": 1, "step": 1}}, "space.x.min"),
    ({"x": {"min": 1, "max": 5, "step": 0}}, "space.x.step"),
    ({"x": {"min": 1, "max": 5, "stepp": 1}}, "space.x.stepp"),
    ({"x": {"min": 1, "step": 1}}, "space.x.max"),
    ({"x": {"values": []}}, "space.x.values"),
    ({"x": {"values": [1, [2]]}}, "space.x.values[1]"),
    ({"x": {"values": [1], "min": 0}}, "space.x"),
    ({"x": {"min": 0, "max": 1, "log": True}}, "space.x.min"),
    ({"x": {"min": "a", "max": 1, "step": 1}}, "space.x.min"),
    ({"x": {"min": 0, "max": 1, "step": 1, "log": True}}, "space.x.log"),
    ({"x": {"min": 1, "max": 10**9, "step": 1}}, "space.x.step"),
    ({"__class__": {"values": [1]}}, "space.__class__"),
])
def test_space_errors_name_the_field(space, field):
    assert _err(parse_space, space).field == field


def test_parameter_constraints():
    names = {"short_window", "long_window", "a", "b", "mode"}
    c = parse_condition("short_window < long_window", names, field="constraints[0]")
    assert c.holds({"short_window": 5, "long_window": 20}) and not c.holds({"short_window": 20, "long_window": 20})
    c = parse_condition("a + 2 * b <= 30 and not (a == b) or mode == 'x'", names, field="c")
    assert c.holds({"a": 10, "b": 10, "mode": "y"}) is False  # a == b, mode is not x
    assert c.holds({"a": 10, "b": 9, "mode": "y"}) is True  # 28 <= 30, a != b
    assert c.holds({"a": 10, "b": 11, "mode": "x"}) is True  # 32 > 30, but mode is x
    assert c.names == {"a", "b", "mode"}
    chain = parse_condition("3 <= a < b", names, field="c")
    assert chain.holds({"a": 3, "b": 4}) and not chain.holds({"a": 2, "b": 4}) and not chain.holds({"a": 5, "b": 4})
    div = parse_condition("a / b > 1", names, field="c")
    assert not div.holds({"a": 1, "b": 0})  # division by zero: the constraint does not hold
    assert parse_condition("-a % 3 == 1", names, field="c").holds({"a": 2})


def test_result_constraints_with_undefined_metrics():
    c = parse_condition("max_drawdown < 0.25", {"max_drawdown", "total_trades"}, field="result_constraints[0]")
    assert c.holds({"max_drawdown": 0.1}) and not c.holds({"max_drawdown": 0.3})
    assert not c.holds({"max_drawdown": None})  # undefined metric: not satisfied
    assert not c.holds({"max_drawdown": float("nan")})
    assert not c.holds({})


@pytest.mark.parametrize(("text", "needle"), [
    ("__import__('os').system('true')", "function call"),
    ("import os", "not a valid expression"),
    ("a.__class__ < 1", "attribute"),
    ("a[0] < 1", "subscript"),
    ("a ** 99999999 > 1", "'**'"),
    ("(lambda: 1)() < a", "function call"),
    ("[x for x in a] == 1", "'ListComp'"),
    ("a", "comparison"),
    ("a + 1", "comparison"),
    ("a < unknown_thing", "unknown parameter 'unknown_thing'"),
    ("a in (1, 2)", "'in'"),
    ("(a < 1) + 1 > 0", "condition cannot be used as a number"),
    ("a < 1 if b else 2", "'if … else'"),
    ("", "empty"),
    ("a <", "not a valid expression"),
    ("-" * 250 + "a < 1", "too complex"),
    ("a < 1" + " and a < 1" * 60, "longer than"),
    ("a < None", "constant None"),
])
def test_expressions_that_are_not_constraints(text, needle):
    err = _err(parse_condition, text, {"a", "b"}, field="constraints[2]", what="parameter")
    assert err.field == "constraints[2]"
    assert needle in err.message


def test_spec_errors_name_the_field():
    base = {"space": {"short_window": {"min": 3, "max": 12, "step": 1},
                      "long_window": {"min": 20, "max": 65, "step": 5}},
            "objective": {"metric": "sharpe_ratio"}}
    assert parse_spec(base).trial_count == 100
    cases = [
        ({"space": {}}, "space"),
        ({"max_trials": 50}, "space"),  # a 100-point grid > max_trials
        ({"objective": {"metric": "sharpe"}}, "objective.metric"),
        ({"objective": {"metric": "sharpe_ratio", "direction": "up"}}, "objective.direction"),
        ({"constraints": ["short_window < lng_window"]}, "constraints[0]"),
        ({"constraints": ["short_window < long_window", "open('x') < 1"]}, "constraints[1]"),
        ({"result_constraints": ["max_dd < 0.2"]}, "result_constraints[0]"),
        ({"method": "annealing"}, "method"),
        ({"method": "tpe"}, "max_trials"),
        ({"method": "random", "max_trials": 10**9}, "max_trials"),
        ({"seed": -1}, "seed"),
        ({"target": "high"}, "target"),
        ({"validation": {"kind": "walk_forward", "train_days": 100}}, "validation.test_days"),
        ({"validation": {"kind": "holdout", "in_sample_end": "2015-13-01"}}, "validation.in_sample_end"),
        ({"validation": {"kind": "walk_forward", "train_days": 100, "test_days": 20, "step_days": 10}},
         "validation.step_days"),
        ({"speed": 1}, "speed"),
        ({"constraints": ["short_window > 100"]}, "constraints"),  # nothing left of the grid
    ]
    for patch, field in cases:
        assert _err(parse_spec, {**base, **patch}).field == field, patch
    grid = {**base, "space": {"x": {"min": 0.0, "max": 1.0, "log": False}}}
    assert _err(parse_spec, grid).field == "space.x"  # continuous: not for GRID
