"""The search space: per parameter a list of values, an exact stepped range, or a continuous range.

Request shape (one JSON object per parameter name)::

    {"values": [3, 5, 8]}                 # a finite list (numbers, strings or booleans)
    {"min": 3, "max": 12, "step": 1}      # min, min+step, … ≤ max; ints stay ints
    {"min": 0.1, "max": 0.5, "step": 0.1} # decimal arithmetic: 0.1, 0.2, 0.3, 0.4, 0.5 exactly
    {"min": 0.001, "max": 0.1, "log": true}   # continuous, sampled on a log scale (RANDOM/TPE)
    {"min": 0.0, "max": 1.0, "log": false}    # continuous, uniform (RANDOM/TPE)

Stepped points are computed as ``Decimal(str(min)) + k·Decimal(str(step))`` and converted to the
nearest float once, so ``0.1:0.5:0.1`` gives 0.3, not 0.30000000000000004; a range is int-valued
when min, max and step are all ints. Parameters are kept sorted by name: a JSON object's (and a
protobuf Struct's) key order carries no meaning, and GRID order and TPE must not depend on it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sweeplib.errors import SweepInputError

Scalar = int | float | str | bool
Params = dict[str, Scalar]

MAX_VALUES = 10_000  # points of one parameter
MAX_PARAMS = 32
MAX_NAME = 64
MAX_GRID_POINTS = 1_000_000  # the full product enumerated before constraints are applied


@dataclass(frozen=True)
class Choice:
    """A finite list of values, in the order given (duplicates removed)."""

    name: str
    values: tuple[Scalar, ...]

    @property
    def finite(self) -> bool:
        return True

    def points(self) -> tuple[Scalar, ...]:
        return self.values


@dataclass(frozen=True)
class Stepped:
    """``min, min+step, …`` up to ``max`` inclusive, exactly (see the module docstring)."""

    name: str
    low: Decimal
    step: Decimal
    count: int
    integer: bool

    @property
    def finite(self) -> bool:
        return True

    def value(self, k: int) -> int | float:
        if not 0 <= k < self.count:
            raise IndexError(k)
        v = self.low + self.step * k
        return int(v) if self.integer else float(v)

    def points(self) -> tuple[Scalar, ...]:
        return tuple(self.value(k) for k in range(self.count))


@dataclass(frozen=True)
class Continuous:
    """A continuous range ``[low, high]``, uniform or log-uniform (RANDOM and TPE only); int-valued
    when both ends are ints."""

    name: str
    low: float
    high: float
    log: bool
    integer: bool

    @property
    def finite(self) -> bool:
        return False


Dimension = Choice | Stepped | Continuous


@dataclass(frozen=True)
class Space:
    """Parsed space: dimensions sorted by parameter name."""

    dims: tuple[Dimension, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dims)

    @property
    def finite(self) -> bool:
        return all(d.finite for d in self.dims)

    def grid_size(self) -> int:
        """Points in the full product (before constraints); raises when the space is not finite."""
        n = 1
        for d in self.dims:
            if isinstance(d, Continuous):
                raise ValueError(f"{d.name} is continuous")
            n *= len(d.points())
        return n

    def dim(self, name: str) -> Dimension:
        for d in self.dims:
            if d.name == name:
                return d
        raise KeyError(name)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _decimal(v: Any, field: str) -> Decimal:
    if not _is_number(v):
        raise SweepInputError(field, "must be a finite number")
    try:
        return Decimal(str(v)) if isinstance(v, float) else Decimal(int(v))
    except InvalidOperation:  # pragma: no cover - str(float) is always a valid decimal
        raise SweepInputError(field, "must be a finite number") from None


def _valid_name(name: Any) -> bool:
    return (isinstance(name, str) and 0 < len(name) <= MAX_NAME and name.isidentifier()
            and not name.startswith("_") and name.isascii())


def parse_dimension(name: str, spec: Any, field: str) -> Dimension:
    if not isinstance(spec, Mapping):
        raise SweepInputError(field, "must be an object with values, or min and max (and step or log)")
    keys = set(spec)
    unknown = keys - {"values", "min", "max", "step", "log"}
    if unknown:
        raise SweepInputError(f"{field}.{sorted(unknown)[0]}", "unknown key (values, min, max, step, log)")
    if "values" in keys:
        if keys != {"values"}:
            raise SweepInputError(field, "values cannot be combined with min, max, step or log")
        return _parse_values(name, spec["values"], f"{field}.values")
    for key in ("min", "max"):
        if key not in keys:
            raise SweepInputError(f"{field}.{key}", "is required (or give values)")
    if "step" in keys and "log" in keys:
        raise SweepInputError(f"{field}.log", "cannot be combined with step")
    lo, hi = _decimal(spec["min"], f"{field}.min"), _decimal(spec["max"], f"{field}.max")
    if lo > hi:
        raise SweepInputError(f"{field}.min", f"is greater than max ({spec['min']} > {spec['max']})")
    integer_ends = all(isinstance(spec[k], int) for k in ("min", "max"))
    if "step" in keys:
        step = _decimal(spec["step"], f"{field}.step")
        if step <= 0:
            raise SweepInputError(f"{field}.step", "must be greater than 0")
        count = int((hi - lo) / step) + 1
        if count > MAX_VALUES:
            raise SweepInputError(f"{field}.step", f"gives {count} values, more than {MAX_VALUES}")
        return Stepped(name, lo, step, count, integer_ends and isinstance(spec["step"], int))
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise SweepInputError(f"{field}.log", "must be true or false")
    if log and lo <= 0:
        raise SweepInputError(f"{field}.min", "must be greater than 0 on a log scale")
    if lo == hi:
        raise SweepInputError(f"{field}.max", "must be greater than min for a continuous range")
    return Continuous(name, float(lo), float(hi), log, integer_ends)


def _parse_values(name: str, values: Any, field: str) -> Choice:
    if not isinstance(values, Sequence) or isinstance(values, (str, bytes)):
        raise SweepInputError(field, "must be a list")
    if not values:
        raise SweepInputError(field, "must not be empty")
    if len(values) > MAX_VALUES:
        raise SweepInputError(field, f"has more than {MAX_VALUES} values")
    out: list[Scalar] = []
    seen: set[tuple[str, Scalar]] = set()
    for k, v in enumerate(values):
        if not (isinstance(v, (bool, str)) or _is_number(v)):
            raise SweepInputError(f"{field}[{k}]", "must be a finite number, a string or a boolean")
        if isinstance(v, str) and len(v) > 256:
            raise SweepInputError(f"{field}[{k}]", "is longer than 256 characters")
        key = (type(v).__name__ if isinstance(v, (bool, str)) else "num", v)
        if key not in seen:
            seen.add(key)
            out.append(v)
    return Choice(name, tuple(out))


def parse_space(space: Any, field: str = "space") -> Space:
    """Parse the request's ``space`` object; SweepInputError names the offending field."""
    if not isinstance(space, Mapping):
        raise SweepInputError(field, "must be an object of parameter name → range")
    if not space:
        raise SweepInputError(field, "is empty: give at least one parameter")
    if len(space) > MAX_PARAMS:
        raise SweepInputError(field, f"has more than {MAX_PARAMS} parameters")
    dims: list[Dimension] = []
    for name in sorted(space, key=str):
        if not _valid_name(name):
            raise SweepInputError(f"{field}.{name}", "is not a valid parameter name (a Python identifier)")
        dims.append(parse_dimension(name, space[name], f"{field}.{name}"))
    return Space(tuple(dims))
