"""What a backtest is asked to do, and the only rules and defaults a config is judged by.

Field names and defaults follow the zquant RunBacktest config (docs/engine.md, "Configuration").
The CLI, the engine service and (through the engine's ValidateBacktest RPC) the task service all
use ``normalize_config``: it fills in the defaults, normalizes spelling (symbols upper-case,
duplicates dropped) and reports every problem at once as (field, description) pairs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from datetime import date
from typing import Any

ADJUST_TYPES = ("qfq", "hfq", "none")
MAX_SYMBOLS = 1000
MAX_SYMBOL_CHARS = 32
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


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
        problems = config_violations(self)
        if problems:
            raise ConfigError(*problems[0])

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


def defaults() -> dict[str, Any]:
    """Every config field that has a default, with it: the one place defaults are written."""
    out: dict[str, Any] = {}
    for f in fields(BacktestConfig):
        if f.name == "params":
            continue
        if f.default is not MISSING:
            out[f.name] = f.default
    return out


def config_violations(cfg: BacktestConfig) -> list[tuple[str, str]]:
    """Every rule a config must meet, all problems at once (field names without a prefix)."""
    v: list[tuple[str, str]] = []
    dates: dict[str, date] = {}
    for name in ("start_date", "end_date"):
        value = getattr(cfg, name)
        if not value:
            v.append((name, "is required (YYYY-MM-DD)"))
        elif not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
            v.append((name, f"must be YYYY-MM-DD, got {value!r}"))
        else:
            try:
                dates[name] = date.fromisoformat(value)
            except ValueError:
                v.append((name, f"is not a valid date: {value!r}"))
    if len(dates) == 2 and dates["start_date"] > dates["end_date"]:
        v.append(("end_date", f"must be on or after start_date ({cfg.start_date})"))
    if not cfg.symbols:
        v.append(("symbols", "at least one symbol is required"))
    elif len(cfg.symbols) > MAX_SYMBOLS:
        v.append(("symbols", f"at most {MAX_SYMBOLS} symbols"))
    else:
        bad = [s for s in cfg.symbols if not _symbol_ok(s)]
        if bad:
            v.append(("symbols", f"{bad[0]!r} is not a symbol like 600000.SH"))
    if cfg.benchmark and not _symbol_ok(cfg.benchmark):
        v.append(("benchmark", f"{cfg.benchmark!r} is not an index symbol like 000300.SH"))
    if cfg.frequency != "daily":
        v.append(("frequency", f"only 'daily' is supported, got {cfg.frequency!r}"))
    if cfg.adjust_type not in ADJUST_TYPES:
        v.append(("adjust_type", f"must be one of {', '.join(ADJUST_TYPES)}; got {cfg.adjust_type!r}"))
    for problem in (
        _range("initial_capital", cfg.initial_capital, lo=0.0, lo_open=True, hi=1e13),
        _range("commission_rate", cfg.commission_rate, lo=0.0, hi=0.1, hi_open=True),
        _range("min_commission", cfg.min_commission, lo=0.0, hi=1e6),
        _range("tax_rate", cfg.tax_rate, lo=0.0, hi=0.1, hi_open=True),
        _range("slippage_rate", cfg.slippage_rate, lo=0.0, hi=0.1, hi_open=True),
        _range("risk_free_rate", cfg.risk_free_rate, lo=0.0, hi=1.0),
    ):
        if problem:
            v.append(problem)
    if not isinstance(cfg.annualization, int) or isinstance(cfg.annualization, bool) \
            or not 1 <= cfg.annualization <= 366:
        v.append(("annualization", f"must be between 1 and 366, got {cfg.annualization!r}"))
    if not isinstance(cfg.use_daily_basic, bool):
        v.append(("use_daily_basic", "must be true or false"))
    return v


def normalize_config(raw: Mapping[str, Any]) -> tuple[BacktestConfig | None, list[tuple[str, str]]]:
    """(the config with every default filled in, []) or (None, every violation).

    ``normalized_symbols`` gives the symbols and benchmark as this spells them even when other
    fields are wrong, so a caller can report unknown symbols in the same answer.

    ``raw`` holds BacktestConfig keyword arguments; an absent key, None or an empty string takes
    the default. Spelling is normalized before the rules: symbols and benchmark stripped and
    upper-cased, duplicate symbols dropped, frequency and adjust_type lower-cased."""
    unknown = sorted(set(raw) - set(BacktestConfig.__dataclass_fields__) - {"params"})
    if unknown:
        return None, [(name, "unknown config field") for name in unknown]
    values = dict(defaults())
    values.update({k: v for k, v in raw.items() if v is not None and v != "" and k != "params"})
    values["symbols"], values["benchmark"] = normalized_symbols(values)
    for name in ("frequency", "adjust_type"):
        values[name] = str(values[name]).strip().lower()
    for name in ("start_date", "end_date"):
        values[name] = str(values.get(name) or "").strip()
    if isinstance(values.get("annualization"), float) and float(values["annualization"]).is_integer():
        values["annualization"] = int(values["annualization"])
    candidate = _unchecked(values)
    problems = config_violations(candidate)
    if problems:
        return None, problems
    return candidate, []


def normalized_symbols(raw: Mapping[str, Any]) -> tuple[tuple[str, ...], str | None]:
    """(symbols, benchmark) of a raw config, spelled as normalize_config spells them."""
    symbols = raw.get("symbols") or ()
    if isinstance(symbols, str):
        symbols = (symbols,)
    benchmark = str(raw.get("benchmark") or "").strip().upper()
    return tuple(dict.fromkeys(str(s).strip().upper() for s in symbols)), (benchmark or None)


def _unchecked(values: dict[str, Any]) -> BacktestConfig:
    """A BacktestConfig built without running the rules (they run right after, all at once)."""
    cfg = object.__new__(BacktestConfig)
    for f in fields(BacktestConfig):
        if f.name in values:
            value = values[f.name]
        elif f.default is not MISSING:
            value = f.default
        else:
            value = f.default_factory() if f.default_factory is not MISSING else None  # type: ignore[misc]
        object.__setattr__(cfg, f.name, value)
    return cfg


def _symbol_ok(symbol: Any) -> bool:
    return isinstance(symbol, str) and 0 < len(symbol) <= MAX_SYMBOL_CHARS and symbol.isprintable() \
        and " " not in symbol


def _range(
    name: str, value: Any, *, lo: float, hi: float, lo_open: bool = False, hi_open: bool = False
) -> tuple[str, str] | None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return name, "must be a finite number"
    if value < lo or (lo_open and value == lo) or value > hi or (hi_open and value == hi):
        left, right = ("(" if lo_open else "["), (")" if hi_open else "]")
        return name, f"must be in {left}{lo:g}, {hi:g}{right}, got {value:g}"
    return None
