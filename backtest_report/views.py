"""Light views of a BacktestResult: equity arrays, order outcomes by reason, log tails."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from zquant.engine.v1 import engine_pb2

FILLED = engine_pb2.Order.FILLED
REJECTED = engine_pb2.Order.REJECTED
EXPIRED = engine_pb2.Order.EXPIRED
CANCELLED = engine_pb2.Order.CANCELLED


@dataclass
class EquityArrays:
    """One entry per trading day of the run, in every list."""

    dates: list[str] = field(default_factory=list)
    total_value: list[float] = field(default_factory=list)
    cash: list[float] = field(default_factory=list)
    market_value: list[float] = field(default_factory=list)
    benchmark_close: list[float] = field(default_factory=list)  # empty without a benchmark
    drawdown: list[float] = field(default_factory=list)
    exposure: list[float] = field(default_factory=list)


def equity_arrays(result: engine_pb2.BacktestResult) -> EquityArrays:
    out = EquityArrays()
    peak = -math.inf
    for day in result.daily:
        total = day.total_value
        out.dates.append(day.date)
        out.total_value.append(total)
        out.cash.append(day.cash)
        out.market_value.append(day.market_value)
        peak = max(peak, total)
        out.drawdown.append(total / peak - 1.0 if peak > 0 else 0.0)
        out.exposure.append(day.market_value / total if total > 0 else 0.0)
    if result.benchmark:
        out.benchmark_close = _filled([d.benchmark_close if d.HasField("benchmark_close") else None
                                       for d in result.daily])
    return out


def _filled(values: list[float | None]) -> list[float]:
    """Carry the last known value forward; days before the first known one take that one.
    All unknown → empty (no benchmark line rather than a flat fake one)."""
    first = next((v for v in values if v is not None), None)
    if first is None:
        return []
    out: list[float] = []
    last = first
    for v in values:
        if v is not None:
            last = v
        out.append(last)
    return out


# Reason category of a refused (rejected or expired) order. The engine's reasons are sentences
# ("limit up", "no sellable shares (T+1)", "insufficient cash", "quantity below one lot" …);
# the first pattern found wins, so the more specific ones come first.
REFUSAL_CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("t_plus_1", ("t+1",)),
    ("limit_up", ("limit up",)),
    ("limit_down", ("limit down",)),
    ("suspended", ("suspend",)),
    ("insufficient_cash", ("insufficient cash", "cash")),
    ("lot_size", ("lot",)),
    ("no_position", ("no position",)),
    ("limit_not_reached", ("limit price not reached",)),
    ("ended", ("backtest ended",)),
)


def refusal_category(reason: str) -> str:
    text = reason.lower()
    for category, needles in REFUSAL_CATEGORIES:
        if any(n in text for n in needles):
            return category
    return "other"


@dataclass(frozen=True)
class OrderSummary:
    total: int
    filled: int
    rejected: int
    expired: int
    cancelled: int  # by the strategy itself: not a refusal
    refusals: list[tuple[str, int]]  # (category, count) of rejected and expired orders, most frequent first
    symbols: list[str]


def order_summary(orders: Iterable[engine_pb2.Order]) -> OrderSummary:
    rows = list(orders)
    status = Counter(o.status for o in rows)
    refused = Counter(refusal_category(o.reason) for o in rows if o.status in (REJECTED, EXPIRED))
    return OrderSummary(
        total=len(rows), filled=status[FILLED], rejected=status[REJECTED], expired=status[EXPIRED],
        cancelled=status[CANCELLED],
        refusals=sorted(refused.items(), key=lambda kv: (-kv[1], kv[0])),
        symbols=sorted({o.symbol for o in rows}),
    )


DEFAULT_LOG_BYTES = 256 * 1024
MAX_LOG_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class LogTail:
    text: str
    truncated: bool
    total_bytes: int


def log_tail(logs: str, max_bytes: int = DEFAULT_LOG_BYTES) -> LogTail:
    """The last ``max_bytes`` of the logs, cut at a line start: a strategy that prints a
    million lines must not send a million lines to a browser."""
    data = logs.encode("utf-8")
    if len(data) <= max_bytes:
        return LogTail(logs, False, len(data))
    tail = data[-max_bytes:]
    newline = tail.find(b"\n")
    if 0 <= newline < len(tail) - 1:
        tail = tail[newline + 1:]
    return LogTail(tail.decode("utf-8", errors="ignore"), True, len(data))
