"""What a run records: the log, one portfolio record per day, and the result dict.

Result (JSON-ready dict, keys exactly ``RESULT_KEYS``; the gRPC BacktestResult mirrors them):
  engine_version, data_hash (sha256 of the panel actually used), start_date / end_date (first
  and last trading day run), symbols, benchmark (panel's benchmark symbol or None), adjust_type,
  adjustment_applied (False when the data has no adj_factor or adjust_type is "none"),
  price_view (what the strategy saw: "raw", "qfq-point-in-time" or "hfq"), initial_capital,
  daily: one record per trading day, at the close after on_bar —
    {date, cash, market_value, total_value, positions: [{symbol, quantity, sellable, avg_cost,
    close, market_value}]}; ``cash`` is total cash (open orders' reservations included, so
    total_value = cash + market_value); ``sellable`` excludes shares bought that day (T+1);
    ``close`` is the last traded close (carried over suspensions); avg_cost is the average fill
    price (slippage included, fees excluded); all money in unadjusted prices.
  benchmark_close: list aligned with daily (None where missing) or None without benchmark,
  orders: every order in creation order (order_id 1-based) with status filled / rejected /
    expired / cancelled and a reason ("" only when filled in full at the slipped open),
  trades: one record per fill, logs: log lines (capped),
  ex_rights: holdings carried through ex-rights days {date, symbol, ratio, ex_price,
    quantity_before, quantity_after, cash} (see Broker.apply_ex_rights).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine_svc.engine import ENGINE_VERSION
from engine_svc.engine.broker import Broker
from engine_svc.engine.orders import Order

MAX_LOG_LINES = 10_000

RESULT_KEYS: tuple[str, ...] = (
    "engine_version", "data_hash", "start_date", "end_date", "symbols", "benchmark",
    "adjust_type", "adjustment_applied", "price_view", "initial_capital", "daily", "benchmark_close",
    "orders", "trades", "logs", "ex_rights",
)


class RunLog:
    """The run's log lines, each prefixed with its trading day, capped at MAX_LOG_LINES."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.dropped = 0

    def add(self, date: str, text: str) -> None:
        if len(self.lines) >= MAX_LOG_LINES:
            self.dropped += 1
            return
        self.lines.append(f"{date} {text}")

    def result(self) -> list[str]:
        if self.dropped:
            return [*self.lines, f"... {self.dropped} more log lines dropped"]
        return list(self.lines)


def daily_record(broker: Broker, i: int) -> dict[str, Any]:
    """The portfolio at day ``i``'s close."""
    held = broker.qty.nonzero()[0]  # not np.flatnonzero: a Python wrapper, 2 µs a day here
    tape = broker.m
    syms = tape.symbols
    qty = broker.qty[held]
    close = tape.last_close[i, held]
    mv = qty * close
    positions = [
        {"symbol": syms[j], "quantity": q, "sellable": sl, "avg_cost": ac, "close": c, "market_value": v}
        for j, q, sl, ac, c, v in zip(
            held.tolist(), qty.tolist(), (qty - broker.bought_today[held]).tolist(),
            broker.avg_cost[held].tolist(), close.tolist(), mv.tolist(), strict=True,
        )
    ]
    market_value = float(mv.sum()) if held.size else 0.0
    return {
        "date": tape.dates_str[i],
        "cash": broker.cash,
        "market_value": market_value,
        "total_value": broker.cash + market_value,
        "positions": positions,
    }


def price_view(adjust_type: str, adjustment_applied: bool) -> str:
    """How prices in bar_data / history were shown to the strategy."""
    if not adjustment_applied:
        return "raw"
    return "qfq-point-in-time" if adjust_type == "qfq" else adjust_type


def build_result(
    *, data_hash: str, symbols: tuple[str, ...], benchmark: str | None, benchmark_close: np.ndarray | None,
    adjust_type: str, adjustment_applied: bool, initial_capital: float, daily: list[dict[str, Any]],
    broker: Broker, log: RunLog,
) -> dict[str, Any]:
    result = {
        "engine_version": ENGINE_VERSION,
        "data_hash": data_hash,
        "start_date": daily[0]["date"],
        "end_date": daily[-1]["date"],
        "symbols": list(symbols),
        "benchmark": benchmark,
        "adjust_type": adjust_type,
        "adjustment_applied": adjustment_applied,
        "price_view": price_view(adjust_type, adjustment_applied),
        "initial_capital": float(initial_capital),
        "daily": daily,
        "benchmark_close": (
            None if benchmark_close is None
            else [v if v == v else None for v in benchmark_close.tolist()]  # NaN → null
        ),
        "orders": list(map(Order.to_record, broker.orders)),
        "trades": broker.trades,
        "logs": log.result(),
        "ex_rights": broker.ex_rights,
    }
    assert tuple(result) == RESULT_KEYS
    return result
