"""Market data for one backtest as dates × symbols arrays: the engine's only input format.

A panel is built by the data layer (from SQL, CSV or the synthetic generator) and handed to
the engine — in-process for the CLI and benchmarks, as raw array bytes to a sandboxed worker
in the service. Missing bars (suspension, not yet listed, delisted) are NaN in every price
field; ``has_bar`` is the single source of truth for "traded that day".
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

# Daily bar fields, all float64 (dates × symbols). Prices are UNADJUSTED (as traded);
# adj_factor is Tushare's cumulative factor (NaN when the source has none).
# up_limit / down_limit are NaN when the source does not provide them (the engine then
# derives them from pre_close and the board rules).
BAR_FIELDS: tuple[str, ...] = (
    "open", "high", "low", "close", "pre_close", "volume", "amount",
    "adj_factor", "up_limit", "down_limit",
)

# Tushare daily_basic indicators, float64 (dates × symbols), NaN where unknown.
DAILY_BASIC_FIELDS: tuple[str, ...] = (
    "pe", "pe_ttm", "pb", "ps", "ps_ttm", "turnover_rate", "turnover_rate_f", "volume_ratio",
    "dv_ratio", "dv_ttm", "total_share", "float_share", "free_share", "total_mv", "circ_mv",
)


@dataclass
class Benchmark:
    """An index close series aligned to the panel's dates (NaN where the index has no bar)."""

    symbol: str
    close: np.ndarray  # float64, shape (n_dates,)


@dataclass
class Panel:
    dates: np.ndarray  # datetime64[D], strictly increasing trading days, shape (n_dates,)
    symbols: tuple[str, ...]  # Tushare codes, e.g. "600000.SH"
    bars: dict[str, np.ndarray]  # every name in BAR_FIELDS -> float64 (n_dates, n_symbols)
    names: tuple[str, ...] = ()  # instrument names, same order as symbols ("" if unknown)
    is_st: np.ndarray | None = None  # bool (n_dates, n_symbols): under ST treatment that day
    daily_basic: dict[str, np.ndarray] | None = None  # DAILY_BASIC_FIELDS -> (n_dates, n_symbols)
    benchmark: Benchmark | None = None
    _hash: str | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.dates = np.asarray(self.dates, dtype="datetime64[D]")
        self.symbols = tuple(self.symbols)
        shape = (len(self.dates), len(self.symbols))
        missing = [f for f in BAR_FIELDS if f not in self.bars]
        if missing:
            raise ValueError(f"panel is missing bar fields {missing}")
        for name, arr in self.bars.items():
            if arr.shape != shape:
                raise ValueError(f"bar field {name!r} has shape {arr.shape}, expected {shape}")
        if not self.names:
            self.names = ("",) * len(self.symbols)
        if self.is_st is None:
            self.is_st = np.zeros(shape, dtype=bool)
        if len(self.dates) > 1 and not np.all(self.dates[1:] > self.dates[:-1]):
            raise ValueError("panel dates must be strictly increasing")

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays (bars, daily_basic, ST flags)."""
        arrays = [*self.bars.values(), *(self.daily_basic or {}).values()]
        if self.is_st is not None:
            arrays.append(self.is_st)
        return sum(a.nbytes for a in arrays)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.dates), len(self.symbols)

    @property
    def has_bar(self) -> np.ndarray:
        """bool (n_dates, n_symbols): the symbol traded that day."""
        return ~np.isnan(self.bars["close"])

    @property
    def has_adj_factor(self) -> bool:
        return bool(np.isfinite(self.bars["adj_factor"]).any())

    def date_strings(self) -> list[str]:
        return [str(d) for d in self.dates]

    def data_hash(self) -> str:
        """sha256 of everything that can change a result: dates, symbols and every array."""
        if self._hash is None:
            h = hashlib.sha256()
            h.update(json.dumps([self.date_strings(), list(self.symbols)]).encode())
            for name in BAR_FIELDS:
                h.update(name.encode())
                h.update(np.ascontiguousarray(self.bars[name], dtype=np.float64))  # buffer, no copy
            h.update(np.ascontiguousarray(self.is_st, dtype=bool))
            if self.daily_basic:
                for name in sorted(self.daily_basic):
                    h.update(name.encode())
                    h.update(np.ascontiguousarray(self.daily_basic[name], dtype=np.float64))
            if self.benchmark is not None:
                h.update(self.benchmark.symbol.encode())
                h.update(np.ascontiguousarray(self.benchmark.close, dtype=np.float64))
            self._hash = h.hexdigest()
        return self._hash

    def slice(
        self, symbols: list[str] | None = None, start: str | None = None, end: str | None = None
    ) -> Panel:
        """A sub-panel by symbols (in the given order) and inclusive ISO date bounds."""
        cols = (
            np.arange(len(self.symbols))
            if symbols is None
            else np.array([self.symbols.index(s) for s in symbols], dtype=np.intp)
        )
        lo = 0 if start is None else int(np.searchsorted(self.dates, np.datetime64(start, "D"), "left"))
        hi = (
            len(self.dates) if end is None
            else int(np.searchsorted(self.dates, np.datetime64(end, "D"), "right"))
        )
        rows = slice(lo, hi)
        return Panel(
            dates=self.dates[rows],
            symbols=tuple(self.symbols[i] for i in cols),
            bars={k: v[rows][:, cols] for k, v in self.bars.items()},
            names=tuple(self.names[i] for i in cols),
            is_st=self.is_st[rows][:, cols],
            daily_basic=(
                None if self.daily_basic is None
                else {k: v[rows][:, cols] for k, v in self.daily_basic.items()}
            ),
            benchmark=(
                None if self.benchmark is None
                else Benchmark(self.benchmark.symbol, self.benchmark.close[rows])
            ),
        )
