"""Turning strategy source into a ``Strategy`` class, and strategy failures into ``StrategyError``.

The code is compiled under ``STRATEGY_FILENAME`` (see errors.py) so a traceback can be cut
down to the frames that belong to the user's code.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from typing import Any

from engine_svc.engine import strategy_api
from engine_svc.engine.errors import STRATEGY_FILENAME, StrategyError

__all__ = ["STRATEGY_FILENAME", "StrategyError", "install_zquant_aliases", "instantiate_strategy",
           "load_strategy_class"]


def install_zquant_aliases() -> None:
    """Make ``zquant.backtest.context`` / ``zquant.backtest.strategy`` importable.

    The generated gRPC stubs live in a real package called ``zquant``: an already imported
    ``zquant`` is left untouched, and when it is importable but not yet imported, the placeholder
    keeps its search path so ``zquant.<stub module>`` still imports later.
    """
    _placeholder_package("zquant")
    pkg = _placeholder_package("zquant.backtest")  # the stubs also have zquant.backtest.v1
    for name, attrs in (
        ("context", ("Context", "Portfolio", "Position", "BarArrays")),
        ("strategy", ("BaseStrategy",)),
    ):
        full = f"zquant.backtest.{name}"
        mod = sys.modules.get(full)
        if mod is None:
            mod = types.ModuleType(full)
            sys.modules[full] = mod
        for attr in attrs:
            setattr(mod, attr, getattr(strategy_api, attr))
        setattr(pkg, name, mod)


def _placeholder_package(name: str) -> types.ModuleType:
    """The imported package ``name``, or an empty stand-in that keeps the real package's search
    path (if there is one) so its submodules stay importable without running its __init__."""
    mod = sys.modules.get(name)
    if mod is not None:
        return mod
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    mod = types.ModuleType(name)
    mod.__path__ = list(spec.submodule_search_locations or []) if spec is not None else []
    sys.modules[name] = mod
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, mod)
    return mod


def load_strategy_class(source: str) -> type:
    """Compile and execute ``source`` in a fresh module; return its ``Strategy`` class."""
    install_zquant_aliases()
    try:
        code = compile(source, STRATEGY_FILENAME, "exec")
    except SyntaxError as exc:
        raise StrategyError.from_exception(exc, source) from None
    module = types.ModuleType("strategy")
    module.__file__ = STRATEGY_FILENAME
    try:
        exec(code, module.__dict__)  # noqa: S102 - running the user's strategy is the job; isolation is the worker's
    except Exception as exc:
        raise StrategyError.from_exception(exc, source) from None
    cls = module.__dict__.get("Strategy")
    if not isinstance(cls, type):
        raise StrategyError.definition("strategy code must define class Strategy")
    return cls


def instantiate_strategy(cls: type, params: dict[str, Any], source: str) -> Any:
    """``Strategy(params)``: BaseStrategy.__init__ runs ``initialize()`` exactly once."""
    try:
        return cls(params=dict(params))
    except Exception as exc:
        raise StrategyError.from_exception(exc, source) from None
