"""The core's pure decisions and the proto conversion, without a server or workers."""

from __future__ import annotations

import math

import pytest
from google.protobuf import struct_pb2
from zquant.engine.v1 import engine_pb2

from engine_svc.engine import ENGINE_VERSION
from engine_svc.engine.config import BacktestConfig
from engine_svc.sandbox.errors import SandboxError
from engine_svc.service import convert
from engine_svc.service.core import (
    MALFORMED_RESULT_MESSAGE,
    Progress,
    RunFailure,
    RunSuccess,
    _Throttle,
    build_config,
    failure_from_sandbox,
    finish_result,
)
from services.errors import InvalidArgument

HASH = "ab" * 32  # what the service hashed its panel to
CONFIG = {"start_date": "2020-01-02", "end_date": "2020-01-03", "symbols": ["600000.SH"]}


def _result(**extra: object) -> dict:
    return {
        "engine_version": "0.1.0", "data_hash": "ab" * 32, "start_date": "2020-01-02", "end_date": "2020-01-03",
        "symbols": ["600000.SH"], "benchmark": None, "adjust_type": "qfq", "adjustment_applied": False,
        "initial_capital": 100.0,
        "daily": [
            {"date": "2020-01-02", "cash": 100.0, "market_value": 0.0, "total_value": 100.0, "positions": []},
            {"date": "2020-01-03", "cash": 100.0, "market_value": 0.0, "total_value": 100.0, "positions": []},
        ],
        "benchmark_close": None, "orders": [], "trades": [], "logs": ["hello"], **extra,
    }


def test_config_from_proto_leaves_unset_optionals_to_the_engine_defaults() -> None:
    msg = engine_pb2.BacktestConfig(start_date="2020-01-02", end_date="2020-02-03", symbols=["600000.SH"],
                                    min_commission=0.0)
    fields = convert.config_from_proto(msg)
    assert fields["min_commission"] == 0.0  # explicitly set zero is kept, not defaulted
    assert "commission_rate" not in fields and "adjust_type" not in fields and fields["benchmark"] is None
    cfg = build_config(fields, {})
    assert cfg.commission_rate == BacktestConfig.commission_rate and cfg.adjust_type == "qfq"
    assert cfg.frequency == "daily" and cfg.initial_capital == 1_000_000.0


def test_build_config_maps_errors_to_config_fields() -> None:
    with pytest.raises(InvalidArgument) as info:
        build_config({**CONFIG, "annualization": 0}, {})
    assert info.value.violations == [("config.annualization", "must be between 1 and 366, got 0")]
    # Spelling is normalized, not refused: duplicates dropped, symbols upper-cased.
    assert build_config({**CONFIG, "symbols": ["600000.SH", " 600000.sh"]}, {}).symbols == ("600000.SH",)
    with pytest.raises(InvalidArgument) as info:
        deep: list = [1]
        for _ in range(40):
            deep = [deep]
        build_config(CONFIG, {"deep": deep})
    assert [f for f, _ in info.value.violations] == ["params"]


def test_params_keep_integers_usable() -> None:
    s = struct_pb2.Struct()
    s.update({"window": 20, "ratio": 0.5, "nested": {"n": 3, "xs": [1, 2.5]}, "name": "x"})
    params = convert.params_from_proto(s)
    assert params == {"window": 20, "ratio": 0.5, "nested": {"n": 3, "xs": [1, 2.5]}, "name": "x"}
    assert isinstance(params["window"], int)


def test_metrics_none_and_nan_become_unset() -> None:
    msg = convert.metrics_to_proto({"total_return": 0.1, "beta": None, "sharpe_ratio": math.nan,
                                    "total_trades": 4, "closed_trades": 0, "cvar_95": 0.3})
    assert msg.HasField("total_return") and msg.total_return == 0.1
    assert not msg.HasField("beta") and not msg.HasField("sharpe_ratio")
    assert msg.total_trades == 4 and msg.HasField("closed_trades") and msg.closed_trades == 0
    back = convert.metrics_from_proto(msg)
    assert back["beta"] is None and back["total_return"] == 0.1


def test_result_to_proto_optionals() -> None:
    result = _result(
        benchmark="000300.SH", benchmark_close=[3000.0, None],
        orders=[
            {"order_id": 1, "created_date": "2020-01-02", "symbol": "600000.SH", "side": "buy", "quantity": 100,
             "limit_price": None, "status": "expired", "reason": "end of backtest", "filled_quantity": 0,
             "fill_date": None, "fill_price": None, "commission": 0.0, "tax": 0.0, "slippage_cost": 0.0},
            {"order_id": 2, "created_date": "2020-01-02", "symbol": "600000.SH", "side": "buy", "quantity": 100,
             "limit_price": 9.5, "status": "filled", "reason": "", "filled_quantity": 100,
             "fill_date": "2020-01-03", "fill_price": 9.4, "commission": 5.0, "tax": 0.0, "slippage_cost": 0.9},
        ],
        metrics={"total_return": 0.0}, round_trips=[
            {"symbol": "600000.SH", "open_date": "2020-01-02", "close_date": "2020-01-03", "quantity": 100,
             "pnl": -3.0, "return": None},
        ],
        logs="hello",
    )
    msg = convert.result_to_proto(result)
    assert msg.daily[0].benchmark_close == 3000.0 and not msg.daily[1].HasField("benchmark_close")
    assert msg.benchmark == "000300.SH"
    expired, filled = msg.orders
    assert expired.status == engine_pb2.Order.EXPIRED and not expired.HasField("limit_price")
    assert not expired.HasField("fill_price") and expired.fill_date == ""
    assert filled.status == engine_pb2.Order.FILLED and filled.limit_price == 9.5 and filled.fill_price == 9.4
    assert msg.round_trips[0].return_pct == 0.0 and msg.logs == "hello"
    no_bench = convert.result_to_proto(_result(metrics={}))
    assert no_bench.benchmark == "" and not any(d.HasField("benchmark_close") for d in no_bench.daily)


def test_sandbox_kinds_map_to_engine_error_kinds() -> None:
    expected = {
        "strategy_error": "STRATEGY_ERROR", "syntax_error": "INVALID_STRATEGY", "memory": "MEMORY_LIMIT",
        "cpu_time": "CPU_LIMIT", "wall_time": "TIME_LIMIT", "killed": "KILLED", "crashed": "CRASHED",
        "no_result": "NO_RESULT", "too_large": "TOO_LARGE", "protocol": "NO_RESULT", "cancelled": "CANCELLED",
        "internal": "INTERNAL",
    }
    for kind, name in expected.items():
        failure = failure_from_sandbox(SandboxError(kind, "m", logs="out"))
        assert failure.kind == name and failure.logs == "out"
        event = convert.error_event(failure)
        assert event.error.kind == engine_pb2.EngineError.Kind.Value(name)


def test_failure_line_comes_from_the_worker_as_a_field() -> None:
    # No parsing of messages: the worker reports the strategy line next to the message.
    message = 'KeyError: \'x\'\n  File "<strategy>", line 7, in on_bar\n    self.f()'
    assert failure_from_sandbox(SandboxError("strategy_error", message, line=12)).line == 12
    assert failure_from_sandbox(SandboxError("syntax_error", "SyntaxError: invalid syntax (line 3)", line=3)).line == 3
    assert failure_from_sandbox(SandboxError("strategy_error", "line 5 in the text only")).line == 0
    assert failure_from_sandbox(SandboxError("cpu_time", "CPU time limit exceeded (10 s)", line=5)).line == 0


def test_finish_result_computes_metrics_and_rejects_tampered_results() -> None:
    cfg = build_config(CONFIG, {})
    ok = finish_result(_result(), "printed", cfg, HASH)
    assert isinstance(ok, RunSuccess)
    assert ok.result["metrics"]["total_return"] == 0.0 and ok.result["round_trips"] == []
    assert ok.result["logs"] == "hello\nprinted"
    # provenance is the service's, whatever the worker (which runs the strategy) claimed
    forged = _result()
    forged.update(engine_version="9.9.9", data_hash="0" * 64)
    stamped = finish_result(forged, "", cfg, HASH)
    assert isinstance(stamped, RunSuccess)
    assert stamped.result["data_hash"] == HASH and stamped.result["engine_version"] == ENGINE_VERSION
    for bad in ({"daily": []}, {"daily": "x"}, _result(daily=[{"date": "2020-01-02"}]), ["not", "a", "dict"]):
        failure = finish_result(bad, "", cfg, HASH)
        assert isinstance(failure, RunFailure) and failure.kind == "NO_RESULT"
        assert failure.message == MALFORMED_RESULT_MESSAGE


def test_throttle_limits_rate_and_always_sends_final() -> None:
    events: list[Progress] = []
    throttle = _Throttle(events.append, interval=10.0)
    for i in range(1, 100):
        throttle(i / 100, f"d{i}", float(i))
    assert [e.fraction for e in events] == [0.01]
    throttle(1.0, "end", 5.0)
    throttle(1.0, "end", 5.0)
    assert [e.fraction for e in events] == [0.01, 1.0]
    throttle.final({"daily": [{"date": "end", "total_value": 5.0}]})
    assert len(events) == 2  # the final tick was already sent
    other: list[Progress] = []
    t2 = _Throttle(other.append, interval=10.0)
    t2.final({"daily": [{"date": "2020-01-03", "total_value": 7.0}]})
    assert other == [Progress(1.0, "2020-01-03", 7.0)]


def test_result_that_does_not_fit_the_contract_is_an_in_band_failure() -> None:
    from engine_svc.service.servicer import EngineServicer

    cfg = build_config(CONFIG, {})
    forged = _result()
    forged["daily"][0]["positions"] = [{"symbol": "600000.SH", "quantity": "lots", "sellable": 0, "avg_cost": 1.0,
                                        "close": 1.0, "market_value": 0.0}]
    outcome = finish_result(forged, "", cfg, HASH)
    assert isinstance(outcome, RunSuccess)  # metrics only read total_value: this gets through them
    event = EngineServicer._terminal(outcome)
    assert event.WhichOneof("event") == "error"
    assert event.error.kind == engine_pb2.EngineError.NO_RESULT and event.error.message == MALFORMED_RESULT_MESSAGE
    good = EngineServicer._terminal(finish_result(_result(), "", cfg, HASH))
    assert good.WhichOneof("event") == "result"
