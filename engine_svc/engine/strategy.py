"""The strategy base class under a short engine path (``engine_svc.engine.strategy``), the same
object strategy code imports as ``zquant.backtest.strategy.BaseStrategy``."""

from engine_svc.engine.strategy_api import BarArrays, BaseStrategy, Context, Portfolio, Position

__all__ = ["BarArrays", "BaseStrategy", "Context", "Portfolio", "Position"]
