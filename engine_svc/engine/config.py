"""What a backtest is asked to do: the engine-side view of the task's config.

Field names and defaults follow the zquant RunBacktest config (docs/engine.md, "Configuration");
validation of ranges happens here so the CLI, the engine service and the task service share one
rule set.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from typing import Any

ADJUST_TYPES = ("qfq", "hfq", "none")


class ConfigError(ValueError):
    """Invalid backtest configuration; ``field`` names the offending field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class BacktestConfig:
    start_date: str  # ISO YYYY-MM-DD, inclusive
    end_date: str  # ISO YYYY-MM-DD, inclusive
    symbols: tuple[str, ...]
    initial_capital: float = 1_000_000.0
    frequency: str = "daily"
    adjust_type: str = "qfq"
    commission_rate: float = 0.0003
    min_commission: float = 5.0
    tax_rate: float = 0.001
    slippage_rate: float = 0.001
    benchmark: str | None = None
    use_daily_basic: bool = False
    annualization: int = 252  # trading days per year for metrics
    risk_free_rate: float = 0.0  # annual
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "symbols", tuple(self.symbols))
        self.validate()

    def validate(self) -> None:
        for name in ("start_date", "end_date"):
            try:
                date.fromisoformat(getattr(self, name))
            except (TypeError, ValueError):
                raise ConfigError(name, "must be a date in YYYY-MM-DD form") from None
        if self.start_date > self.end_date:
            raise ConfigError("end_date", "must not be before start_date")
        if not self.symbols:
            raise ConfigError("symbols", "at least one symbol is required")
        if self.frequency != "daily":
            raise ConfigError("frequency", "only 'daily' is supported")
        if self.adjust_type not in ADJUST_TYPES:
            raise ConfigError("adjust_type", f"must be one of {', '.join(ADJUST_TYPES)}")
        _check_range("initial_capital", self.initial_capital, lo=0.0, lo_open=True, hi=1e13)
        _check_range("commission_rate", self.commission_rate, lo=0.0, hi=0.1, hi_open=True)
        _check_range("min_commission", self.min_commission, lo=0.0, hi=1e6)
        _check_range("tax_rate", self.tax_rate, lo=0.0, hi=0.1, hi_open=True)
        _check_range("slippage_rate", self.slippage_rate, lo=0.0, hi=0.1, hi_open=True)
        _check_range("risk_free_rate", self.risk_free_rate, lo=0.0, hi=1.0)
        if not 1 <= self.annualization <= 366:
            raise ConfigError("annualization", "must be between 1 and 366")

    def with_params(self, params: dict[str, Any]) -> BacktestConfig:
        """The same config with other strategy params (a sweep's trial)."""
        return replace(self, params=dict(params))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["symbols"] = list(self.symbols)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BacktestConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(unknown[0], "unknown config field")
        return cls(**d)


def _check_range(
    name: str, value: float, *, lo: float, hi: float, lo_open: bool = False, hi_open: bool = False
) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ConfigError(name, "must be a finite number")
    if value < lo or (lo_open and value == lo) or value > hi or (hi_open and value == hi):
        left, right = ("(" if lo_open else "["), (")" if hi_open else "]")
        raise ConfigError(name, f"must be in {left}{lo:g}, {hi:g}{right}, got {value:g}")
