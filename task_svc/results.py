"""Engine BacktestResult → the stored Result row (zquant columns + JSON + the proto itself)."""

from __future__ import annotations

from typing import Any

from zquant.backtest.v1 import task_pb2
from zquant.engine.v1 import engine_pb2

from services.rest import dumps, to_json_value
from task_svc.models import Result, utcnow

RESULT_COLUMNS = ("total_return", "annual_return", "max_drawdown", "sharpe_ratio", "win_rate",
                  "profit_loss_ratio", "alpha", "beta")


def _dumps(value: Any) -> str:
    return dumps(value).decode()


def build_result(task_id: int, user_id: int, result: engine_pb2.BacktestResult) -> Result:
    metrics = to_json_value(result.metrics)
    row = Result(
        task_id=task_id, user_id=user_id,
        metrics_json=_dumps(metrics),
        trades_json=_dumps([to_json_value(t) for t in result.trades]),
        portfolio_json=_dumps([to_json_value(d) for d in result.daily]),
        result_pb=result.SerializeToString(deterministic=True),
        engine_version=result.engine_version[:64], data_hash=result.data_hash[:128],
        created_at=utcnow(),
    )
    for name in RESULT_COLUMNS:
        setattr(row, name, metrics.get(name))
    return row


def load_result(row: Result) -> engine_pb2.BacktestResult:
    return engine_pb2.BacktestResult.FromString(row.result_pb)


def final_portfolio(result: engine_pb2.BacktestResult) -> task_pb2.Portfolio:
    """zquant's `portfolio`: the last day's cash, total value and positions with their profit."""
    if not result.daily:
        return task_pb2.Portfolio(cash=result.initial_capital, total_value=result.initial_capital)
    last = result.daily[-1]
    out = task_pb2.Portfolio(cash=last.cash, total_value=last.total_value)
    for p in last.positions:
        cost = p.quantity * p.avg_cost
        profit = p.market_value - cost
        out.positions[p.symbol].CopyFrom(task_pb2.PortfolioPosition(
            quantity=p.quantity, avg_cost=p.avg_cost, current_price=p.close, market_value=p.market_value,
            profit=profit, profit_pct=profit / cost if cost > 0 else 0.0))
    return out
