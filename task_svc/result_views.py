"""Light views of a completed task's result (the console's pages and the HTML report).

A stored result is one serialized BacktestResult; for 300 symbols × 2 500 days it is tens of
megabytes. Every view answers from the parsed message, so the last few parsed results are kept
(keyed by result id, which never changes: a result is written once). The ownership check is a
small query that never reads the blob.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message
from sqlalchemy.orm import Session, sessionmaker
from zquant.engine.v1 import engine_pb2

from backtest_report.html import Bar, ReportInput, candle_symbols, render_report
from backtest_report.views import (
    DEFAULT_LOG_BYTES,
    MAX_LOG_BYTES,
    EquityArrays,
    LogTail,
    OrderSummary,
    equity_arrays,
    log_tail,
    order_summary,
)
from services.errors import InvalidArgument, NotFound
from services.paging import page_window
from services.principal import Principal
from task_svc.engine_client import EngineClient, EngineRejected, EngineUnavailable
from task_svc.models import Task
from task_svc.repository import TaskRepository
from task_svc.tasks import stored_config

M = TypeVar("M", bound=Message)
CACHE_RESULTS = 4


@dataclass(frozen=True)
class RowQuery:
    """Paging, sorting and filters of a result table (orders, trades, round trips)."""

    skip: int = 0
    limit: int = 0
    order_by: str = ""
    order: str = ""
    symbol: str = ""
    side: str = ""
    status: int = 0  # Order.Status number; 0 = any


def page_rows(rows: Sequence[M], q: RowQuery, sort_keys: dict[str, Callable[[M], Any]], default_sort: str,
              keep: Callable[[M], bool] | None = None) -> tuple[list[M], int]:
    """Filter, sort (stable, ascending by default) and cut one page out of ``rows``.

    Same limits as every list of the API: skip ≥ 0, limit 1–1000 (0 → 100). An unknown
    ``order_by`` or side is a field error rather than a silent default: these tables are new
    and have no legacy behaviour to keep."""
    limit, violations = page_window(q.skip, q.limit)
    order_by = q.order_by.strip().lower() or default_sort
    if order_by not in sort_keys:
        violations.append(("order_by", f"must be one of {', '.join(sorted(sort_keys))}"))
    order = q.order.strip().lower() or "asc"
    if order not in ("asc", "desc"):
        violations.append(("order", 'must be "asc" or "desc"'))
    side = q.side.strip().lower()
    if side not in ("", "buy", "sell"):
        violations.append(("side", 'must be "buy" or "sell"'))
    if violations:
        raise InvalidArgument(violations)
    symbol = q.symbol.strip()
    picked = [r for r in rows
              if (not symbol or getattr(r, "symbol", symbol) == symbol)
              and (not side or getattr(r, "side", side) == side)
              and (keep is None or keep(r))]
    picked.sort(key=sort_keys[order_by], reverse=order == "desc")
    return picked[q.skip:q.skip + limit], len(picked)


ORDER_SORTS: dict[str, Callable[[engine_pb2.Order], Any]] = {
    "order_id": lambda o: o.order_id, "created_date": lambda o: (o.created_date, o.order_id),
    "symbol": lambda o: (o.symbol, o.order_id), "status": lambda o: (o.status, o.order_id),
    "quantity": lambda o: (o.quantity, o.order_id), "fill_date": lambda o: (o.fill_date, o.order_id),
}
TRADE_SORTS: dict[str, Callable[[engine_pb2.Trade], Any]] = {
    "date": lambda t: (t.date, t.order_id), "symbol": lambda t: (t.symbol, t.date, t.order_id),
    "quantity": lambda t: (t.quantity, t.order_id), "value": lambda t: (t.value, t.order_id),
    "order_id": lambda t: t.order_id,
}
TRIP_SORTS: dict[str, Callable[[engine_pb2.RoundTrip], Any]] = {
    "close_date": lambda r: (r.close_date, r.open_date, r.symbol), "open_date": lambda r: (r.open_date, r.symbol),
    "symbol": lambda r: (r.symbol, r.close_date), "pnl": lambda r: r.pnl, "return_pct": lambda r: r.return_pct,
}


class ResultViews:
    def __init__(self, session_factory: sessionmaker[Session], engine: EngineClient,
                 cache_size: int = CACHE_RESULTS) -> None:
        self.sessions = session_factory
        self.engine = engine
        self._cache: OrderedDict[int, engine_pb2.BacktestResult] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def result(self, who: Principal, task_id: int) -> engine_pb2.BacktestResult:
        with self.sessions() as session:
            repo = TaskRepository(session, who.user_id)
            key = repo.result_key(task_id)
            if key is None:
                raise NotFound(f"task {task_id} not found")
            result_id, has_result = key
            if not has_result:
                raise NotFound(f"task {task_id} has no result (it is not COMPLETED)")
            with self._lock:
                hit = self._cache.get(result_id)
                if hit is not None:
                    self._cache.move_to_end(result_id)
                    return hit
            blob = repo.result_blob(result_id)
        if blob is None:  # deleted between the two queries
            raise NotFound(f"task {task_id} not found")
        parsed = engine_pb2.BacktestResult.FromString(blob)
        with self._lock:
            self._cache[result_id] = parsed
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return parsed

    def equity(self, who: Principal, task_id: int) -> tuple[engine_pb2.BacktestResult, EquityArrays]:
        result = self.result(who, task_id)
        return result, equity_arrays(result)

    def orders(self, who: Principal, task_id: int, q: RowQuery) -> tuple[list[engine_pb2.Order], int]:
        keep = None if not q.status else (lambda o: o.status == q.status)
        return page_rows(self.result(who, task_id).orders, q, ORDER_SORTS, "order_id", keep)

    def order_summary(self, who: Principal, task_id: int) -> OrderSummary:
        return order_summary(self.result(who, task_id).orders)

    def trades(self, who: Principal, task_id: int, q: RowQuery) -> tuple[list[engine_pb2.Trade], int]:
        return page_rows(self.result(who, task_id).trades, q, TRADE_SORTS, "date")

    def round_trips(self, who: Principal, task_id: int, q: RowQuery) -> tuple[list[engine_pb2.RoundTrip], int]:
        return page_rows(self.result(who, task_id).round_trips, q, TRIP_SORTS, "close_date")

    def ex_rights(self, who: Principal, task_id: int) -> list[engine_pb2.ExRights]:
        return list(self.result(who, task_id).ex_rights)

    def positions(self, who: Principal, task_id: int, date: str) -> engine_pb2.DailyPortfolio:
        daily = self.result(who, task_id).daily
        date = date.strip()
        if not daily:
            raise NotFound(f"task {task_id} has no daily records")
        if not date:
            return daily[-1]
        if len(date) != 10 or date[4] != "-" or date[7] != "-":
            raise InvalidArgument.field("date", f"is not a YYYY-MM-DD date: {date!r}")
        # Dates are ISO strings in order: the last day ≤ date by binary search.
        lo, hi = 0, len(daily)
        while lo < hi:
            mid = (lo + hi) // 2
            if daily[mid].date <= date:
                lo = mid + 1
            else:
                hi = mid
        if lo == 0:
            raise NotFound(f"{date} is before the first day of the run ({daily[0].date})")
        return daily[lo - 1]

    def logs(self, who: Principal, task_id: int, max_bytes: int) -> LogTail:
        if max_bytes < 0 or max_bytes > MAX_LOG_BYTES:
            raise InvalidArgument.field("max_bytes", f"must be between 1 and {MAX_LOG_BYTES}")
        return log_tail(self.result(who, task_id).logs, max_bytes or DEFAULT_LOG_BYTES)

    def bars(self, who: Principal, task_id: int, symbol: str) -> engine_pb2.GetDailyBarsResponse:
        result = self.result(who, task_id)
        symbol = symbol.strip()
        if not symbol:
            raise InvalidArgument.field("symbol", "is required")
        if symbol not in result.symbols:
            raise NotFound(f"{symbol} is not a symbol of task {task_id}")
        return self.engine.daily_bars(symbol, result.start_date, result.end_date)

    def report(self, who: Principal, task: Task, lang: str) -> str:
        if lang not in ("", "en", "zh-CN"):
            raise InvalidArgument.field("lang", 'must be "en" or "zh-CN"')
        result = self.result(who, task.id)
        config = stored_config(task.config_json)
        bars: dict[str, list[Bar]] = {}
        for symbol in candle_symbols(result):
            try:
                reply = self.engine.daily_bars(symbol, result.start_date, result.end_date)
            except (EngineUnavailable, EngineRejected):
                continue  # the report is still whole without that candlestick chart
            bars[symbol] = [Bar(b.date, b.open, b.high, b.low, b.close) for b in reply.bars]
        return render_report(result, ReportInput(
            title=f"#{task.id} {task.strategy_name}", strategy_code=task.strategy_code,
            params=json.loads(task.params_json or "{}"),
            config=json_format.MessageToDict(config, preserving_proto_field_name=True), bars=bars,
            annualization=config.annualization, risk_free_rate=config.risk_free_rate,
            lang=lang or "en"))
