"""protobuf ↔ plain data for EngineService. No decisions here: defaults of the contract are applied
by leaving keys out (BacktestConfig's defaults then hold), undefined values become unset fields."""

from __future__ import annotations

import math
from typing import Any

from google.protobuf import struct_pb2
from zquant.engine.v1 import engine_pb2

from engine_svc.engine.config import BacktestConfig
from engine_svc.service.core import (
    BacktestSpec,
    Fingerprint,
    Progress,
    RunFailure,
    TrialData,
    TrialsRequest,
    TrialsSuccess,
)
from services.param_numbers import params_from_struct

# proto3 `optional` scalars of BacktestConfig: copied only when set, so unset → engine default.
_OPTIONAL_CONFIG_FIELDS = (
    "initial_capital", "commission_rate", "min_commission", "tax_rate", "slippage_rate",
    "annualization", "risk_free_rate",
)
_ORDER_STATUS = {
    "filled": engine_pb2.Order.FILLED,
    "rejected": engine_pb2.Order.REJECTED,
    "expired": engine_pb2.Order.EXPIRED,
    "cancelled": engine_pb2.Order.CANCELLED,
}
_METRIC_FIELDS = tuple(f.name for f in engine_pb2.Metrics.DESCRIPTOR.fields)
_INT_METRICS = frozenset(
    f.name for f in engine_pb2.Metrics.DESCRIPTOR.fields if f.cpp_type == f.CPPTYPE_INT32
)


# ---- requests -----------------------------------------------------------------------------------


def config_from_proto(msg: engine_pb2.BacktestConfig) -> dict[str, Any]:
    """BacktestConfig keyword arguments; empty strings of the contract mean "the default"."""
    out: dict[str, Any] = {
        "start_date": msg.start_date,
        "end_date": msg.end_date,
        "symbols": list(msg.symbols),
        "use_daily_basic": msg.use_daily_basic,
        "benchmark": msg.benchmark.strip() or None,
    }
    if msg.frequency:
        out["frequency"] = msg.frequency
    if msg.adjust_type:
        out["adjust_type"] = msg.adjust_type
    for name in _OPTIONAL_CONFIG_FIELDS:
        if msg.HasField(name):
            out[name] = getattr(msg, name)
    return out


def config_to_proto(cfg: BacktestConfig) -> engine_pb2.BacktestConfig:
    """A normalized config with every field set (what ValidateBacktest answers, task_svc stores)."""
    return engine_pb2.BacktestConfig(
        start_date=cfg.start_date, end_date=cfg.end_date, initial_capital=cfg.initial_capital,
        symbols=list(cfg.symbols), frequency=cfg.frequency, adjust_type=cfg.adjust_type,
        commission_rate=cfg.commission_rate, min_commission=cfg.min_commission, tax_rate=cfg.tax_rate,
        slippage_rate=cfg.slippage_rate, benchmark=cfg.benchmark or "", use_daily_basic=cfg.use_daily_basic,
        annualization=cfg.annualization, risk_free_rate=cfg.risk_free_rate)


def validate_backtest_response(
    violations: list[tuple[str, str]], cfg: BacktestConfig | None
) -> engine_pb2.ValidateBacktestResponse:
    msg = engine_pb2.ValidateBacktestResponse(
        valid=not violations,
        violations=[engine_pb2.FieldViolation(field=f, description=d) for f, d in violations])
    if cfg is not None and not violations:
        msg.config.CopyFrom(config_to_proto(cfg))
    return msg


def params_from_proto(params: struct_pb2.Struct) -> dict[str, Any]:
    """Struct → the dict the strategy gets: whole numbers are ints (services.param_numbers)."""
    return params_from_struct(params)


def spec_from_proto(msg: engine_pb2.RunBacktestRequest) -> BacktestSpec:
    return BacktestSpec(
        strategy_code=msg.strategy_code,
        config=config_from_proto(msg.config),
        params=params_from_proto(msg.params),
        reference=msg.reference,
    )


def trials_request_from_proto(msg: engine_pb2.RunTrialsRequest) -> TrialsRequest:
    return TrialsRequest(
        strategy_code=msg.strategy_code,
        config=config_from_proto(msg.config),
        params=[params_from_proto(p) for p in msg.params],
        reference=msg.reference,
    )


def _engine_error(f: RunFailure) -> engine_pb2.EngineError:
    return engine_pb2.EngineError(kind=engine_pb2.EngineError.Kind.Value(f.kind), message=f.message, line=f.line,
                                  logs=f.logs)


def trials_progress_event(p: Progress) -> engine_pb2.RunTrialsEvent:
    return engine_pb2.RunTrialsEvent(progress=engine_pb2.Progress(fraction=p.fraction, current_date=p.date))


def trial_event(t: TrialData) -> engine_pb2.RunTrialsEvent:
    if t.failure is not None:
        return engine_pb2.RunTrialsEvent(trial=engine_pb2.TrialResult(index=t.index, failure=_engine_error(t.failure)))
    return engine_pb2.RunTrialsEvent(trial=engine_pb2.TrialResult(
        index=t.index, dates=t.dates, nav=t.nav, metrics=metrics_to_proto(t.metrics), orders=t.orders,
        trades=t.trades, mismatch_days=t.mismatch_days))


def trials_done_event(s: TrialsSuccess) -> engine_pb2.RunTrialsEvent:
    return engine_pb2.RunTrialsEvent(done=engine_pb2.TrialsDone(
        engine_version=s.engine_version, data_hash=s.data_hash, seconds=s.seconds, worker_max_rss_mb=s.max_rss_mb))


def trials_error_event(f: RunFailure) -> engine_pb2.RunTrialsEvent:
    return engine_pb2.RunTrialsEvent(error=_engine_error(f))


def fingerprint_to_proto(f: Fingerprint) -> engine_pb2.DataFingerprint:
    return engine_pb2.DataFingerprint(engine_version=f.engine_version, data_hash=f.data_hash, dates=f.dates)


# ---- events -------------------------------------------------------------------------------------


def progress_event(p: Progress) -> engine_pb2.RunBacktestEvent:
    return engine_pb2.RunBacktestEvent(
        progress=engine_pb2.Progress(fraction=p.fraction, current_date=p.date, equity=p.equity)
    )


def error_event(f: RunFailure) -> engine_pb2.RunBacktestEvent:
    return engine_pb2.RunBacktestEvent(
        error=engine_pb2.EngineError(
            kind=engine_pb2.EngineError.Kind.Value(f.kind), message=f.message, line=f.line, logs=f.logs
        )
    )


def result_event(result: dict[str, Any]) -> engine_pb2.RunBacktestEvent:
    return engine_pb2.RunBacktestEvent(result=result_to_proto(result))


# ---- the result ---------------------------------------------------------------------------------


def _opt(value: Any) -> float | None:
    """A finite float, or None (→ the optional field stays unset)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def metrics_to_proto(metrics: dict[str, Any]) -> engine_pb2.Metrics:
    kwargs: dict[str, Any] = {}
    for name in _METRIC_FIELDS:
        value = _opt(metrics.get(name))
        if value is not None:
            kwargs[name] = int(value) if name in _INT_METRICS else value
    return engine_pb2.Metrics(**kwargs)


def _position(p: dict[str, Any]) -> engine_pb2.Position:
    return engine_pb2.Position(
        symbol=p["symbol"], quantity=int(p["quantity"]), sellable=int(p["sellable"]),
        avg_cost=float(p["avg_cost"]), close=float(p["close"]), market_value=float(p["market_value"]),
    )


def _daily(d: dict[str, Any], benchmark_close: Any) -> engine_pb2.DailyPortfolio:
    msg = engine_pb2.DailyPortfolio(
        date=d["date"], cash=float(d["cash"]), market_value=float(d["market_value"]),
        total_value=float(d["total_value"]), positions=[_position(p) for p in d.get("positions") or ()],
    )
    bc = _opt(benchmark_close)
    if bc is not None:
        msg.benchmark_close = bc
    return msg


def _order(o: dict[str, Any]) -> engine_pb2.Order:
    msg = engine_pb2.Order(
        order_id=int(o["order_id"]), created_date=str(o.get("created_date") or ""), symbol=o["symbol"],
        side=o["side"], quantity=int(o["quantity"]),
        status=_ORDER_STATUS.get(str(o.get("status")), engine_pb2.Order.STATUS_UNSPECIFIED),
        reason=str(o.get("reason") or ""), filled_quantity=int(o.get("filled_quantity") or 0),
        fill_date=str(o.get("fill_date") or ""), commission=float(o.get("commission") or 0.0),
        tax=float(o.get("tax") or 0.0), slippage_cost=float(o.get("slippage_cost") or 0.0),
    )
    limit_price, fill_price = _opt(o.get("limit_price")), _opt(o.get("fill_price"))
    if limit_price is not None:
        msg.limit_price = limit_price
    if fill_price is not None:
        msg.fill_price = fill_price
    return msg


def _trade(t: dict[str, Any]) -> engine_pb2.Trade:
    return engine_pb2.Trade(
        order_id=int(t["order_id"]), date=t["date"], symbol=t["symbol"], side=t["side"],
        quantity=int(t["quantity"]), price=float(t["price"]), value=float(t["value"]),
        commission=float(t.get("commission") or 0.0), tax=float(t.get("tax") or 0.0),
        slippage_cost=float(t.get("slippage_cost") or 0.0),
    )


def _round_trip(r: dict[str, Any]) -> engine_pb2.RoundTrip:
    return engine_pb2.RoundTrip(
        symbol=r["symbol"], open_date=r["open_date"], close_date=r["close_date"], quantity=int(r["quantity"]),
        pnl=float(r["pnl"]), return_pct=_opt(r.get("return")) or 0.0,  # no cost basis → 0 (field not optional)
    )


def _ex_rights(e: dict[str, Any]) -> engine_pb2.ExRights:
    return engine_pb2.ExRights(
        date=e["date"], symbol=e["symbol"], ratio=float(e["ratio"]), ex_price=float(e["ex_price"]),
        quantity_before=int(e["quantity_before"]), quantity_after=int(e["quantity_after"]), cash=float(e["cash"]),
    )


def result_to_proto(result: dict[str, Any]) -> engine_pb2.BacktestResult:
    """The service's result dict (engine result + metrics + round_trips, logs as text) → proto."""
    daily = result["daily"]
    closes = result.get("benchmark_close") or [None] * len(daily)
    return engine_pb2.BacktestResult(
        engine_version=str(result.get("engine_version") or ""),
        data_hash=str(result.get("data_hash") or ""),
        start_date=str(result.get("start_date") or ""),
        end_date=str(result.get("end_date") or ""),
        symbols=list(result.get("symbols") or ()),
        benchmark=str(result.get("benchmark") or ""),
        adjust_type=str(result.get("adjust_type") or ""),
        adjustment_applied=bool(result.get("adjustment_applied")),
        initial_capital=float(result["initial_capital"]),
        daily=[_daily(d, bc) for d, bc in zip(daily, closes, strict=False)],
        orders=[_order(o) for o in result.get("orders") or ()],
        trades=[_trade(t) for t in result.get("trades") or ()],
        metrics=metrics_to_proto(result.get("metrics") or {}),
        round_trips=[_round_trip(r) for r in result.get("round_trips") or ()],
        logs=str(result.get("logs") or ""),
        ex_rights=[_ex_rights(e) for e in result.get("ex_rights") or ()],
        price_view=str(result.get("price_view") or ""),
    )


def metrics_from_proto(msg: engine_pb2.Metrics) -> dict[str, float | int | None]:
    """Client side (tests, task_svc): Metrics → dict with None for unset fields."""
    return {name: (getattr(msg, name) if msg.HasField(name) else None) for name in _METRIC_FIELDS}


# ---- ListSymbols / ValidateStrategy -------------------------------------------------------------


def symbol_info(row: dict[str, Any]) -> engine_pb2.SymbolInfo:
    return engine_pb2.SymbolInfo(
        symbol=row["symbol"], name=str(row.get("name") or ""), first_date=str(row.get("first_date") or ""),
        last_date=str(row.get("last_date") or ""), bars=int(row.get("bars") or 0),
        is_index=bool(row.get("is_index")), board=str(row.get("board") or ""),
    )


def validate_response(problems: list[dict[str, Any]]) -> engine_pb2.ValidateStrategyResponse:
    return engine_pb2.ValidateStrategyResponse(
        valid=not problems,
        problems=[engine_pb2.CodeProblem(line=p["line"], column=p["column"], message=p["message"]) for p in problems],
    )
