"""The one rule for numbers in strategy parameters, wherever they are made, stored, returned or
handed to a strategy: **a whole number is an int** (``9.0`` → ``9``); any other number stays a
float; booleans, strings and null are untouched; lists and objects are converted inside.

Why here and why this rule: parameters cross every service as ``google.protobuf.Struct``, whose
only number is a double, so ``{"short_window": 9}`` arrives as ``9.0`` whatever was sent or
planned. JSON has one number type (``9`` and ``9.0`` are the same value), but a strategy's
``range(self.params["window"])`` or ``closes[-self.short:]`` fails on ``9.0``, and REST clients
that parse ints (Python) see ``9.0``. Arithmetic is the same on ``2`` and ``2.0``, so turning a
whole float into an int breaks nothing a float parameter does. A sweep's int dimensions therefore
reach the strategy and the REST JSON as ints, and a base parameter that a ``params_schema``
declares ``"integer"`` stays one. Integers beyond 2**53 are not exact as doubles and stay floats.

Used by engine_svc (``params_from_proto``: what the strategy sees), the REST renderer
(``services.rest``: Struct/Value numbers in every response) and task_svc (task and sweep params
as stored).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format, struct_pb2

_EXACT = 2**53


def plain_number(value: float) -> int | float:
    """A Struct number as the platform's params hold it: an int when whole, else the float."""
    if value.is_integer() and abs(value) < _EXACT:
        return int(value)
    return value


def plain(value: Any) -> Any:
    """``value`` (JSON data, e.g. from ``MessageToDict`` of a Struct) with the rule applied inside."""
    if isinstance(value, float):
        return plain_number(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def params_from_struct(params: struct_pb2.Struct) -> dict[str, Any]:
    """A params Struct as the dict a strategy gets and the JSON task_svc stores."""
    return plain(json_format.MessageToDict(params))
