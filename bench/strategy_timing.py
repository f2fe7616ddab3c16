"""Split a backtest's run time into the strategy's own work and the engine's.

``timed(Strategy)`` returns a subclass whose ``on_bar`` hands the strategy a proxy of the
context. Time spent inside ``on_bar`` counts as the strategy's, except what it spends in
the engine through the context: method calls (``order*``, ``history``) and attribute reads
(``portfolio``, ``total_value``, ``positions``), which count as the engine's. Everything
outside ``on_bar`` (matching, valuation, building bar_data, the result) is the engine's too.
Reading the engine-made ``bar_data`` dicts counts as the strategy's (a dict lookup).

Works for this engine and the original zquant engine alike: both call
``strategy.on_bar(context, bar_data)``; nothing in either engine sees the proxy.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

import numpy as np


class Clock:
    def __init__(self) -> None:
        self.on_bar_s = 0.0  # wall time inside on_bar, engine calls included
        self.engine_calls_s = 0.0  # the part of it spent in the engine through the context

    @property
    def strategy_s(self) -> float:
        return self.on_bar_s - self.engine_calls_s


CLOCK = Clock()
_PLAIN = (int, float, str, bool, type(None), tuple, list, dict, np.ndarray, np.generic)


class _Proxy:
    __slots__ = ("_target",)

    def __init__(self, target: Any) -> None:
        object.__setattr__(self, "_target", target)

    def __getattr__(self, name: str) -> Any:
        t0 = perf_counter()
        value = getattr(self._target, name)
        if callable(value):
            value = _timed_call(value)
        elif not isinstance(value, _PLAIN):
            value = _Proxy(value)  # e.g. context.portfolio: its properties are engine work too
        CLOCK.engine_calls_s += perf_counter() - t0
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._target, name, value)


def _timed_call(fn: Any) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        t0 = perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            CLOCK.engine_calls_s += perf_counter() - t0

    return call


def timed(cls: type) -> type:
    """A subclass of strategy class ``cls`` whose on_bar time is split by ``CLOCK``."""

    def on_bar(self: Any, context: Any, bar_data: Any) -> Any:
        t0 = perf_counter()
        try:
            return cls.on_bar(self, _Proxy(context), bar_data)
        finally:
            CLOCK.on_bar_s += perf_counter() - t0

    return type(cls.__name__, (cls,), {"on_bar": on_bar})
