"""EngineService end to end over gRPC on loopback: real servicer, real SQLite market data, real
sandbox workers."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import grpc
import pytest
from engine_service_helpers import (
    AUTH,
    BUY_AND_HOLD,
    RAISES_AT_LINE_9,
    SLEEPY,
    USER_AUTH,
    Harness,
    Market,
    live_descendants,
    wait_until,
)
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2
from sqlalchemy import text
from zquant.engine.v1 import engine_pb2

from engine_svc.metrics import compute_metrics, round_trips
from engine_svc.service.convert import metrics_from_proto
from services.errors import field_violations

Kind = engine_pb2.EngineError.Kind


def _params(**values: Any) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


def _result_as_dict(r: engine_pb2.BacktestResult) -> dict[str, Any]:
    """What compute_metrics needs, rebuilt from the wire (so the test checks the whole chain)."""
    return {
        "initial_capital": r.initial_capital,
        "daily": [{"date": d.date, "total_value": d.total_value} for d in r.daily],
        "benchmark_close": (
            [d.benchmark_close if d.HasField("benchmark_close") else None for d in r.daily] if r.benchmark else None
        ),
        "trades": [
            {"order_id": t.order_id, "date": t.date, "symbol": t.symbol, "side": t.side, "quantity": t.quantity,
             "price": t.price, "value": t.value, "commission": t.commission, "tax": t.tax,
             "slippage_cost": t.slippage_cost}
            for t in r.trades
        ],
        "ex_rights": [
            {"date": e.date, "symbol": e.symbol, "ratio": e.ratio, "ex_price": e.ex_price,
             "quantity_before": e.quantity_before, "quantity_after": e.quantity_after, "cash": e.cash}
            for e in r.ex_rights
        ],
    }


def test_backtest_streams_progress_then_result_with_service_metrics(shared_server: Harness,
                                                                    sqlite_market: Market) -> None:
    h = shared_server
    config = h.config(sqlite_market, benchmark=sqlite_market.index, annualization=250, risk_free_rate=0.02)
    events = h.run(engine_pb2.RunBacktestRequest(strategy_code=BUY_AND_HOLD, config=config,
                                                 params=_params(fraction=0.25), reference="t-normal"))
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[-1] == "result" and kinds.count("result") == 1 and "error" not in kinds, events[-1]
    assert events[-1].result.ex_rights  # the synthetic market has ex-dates: holdings carried through
    progress = [e.progress for e in events[:-1]]
    assert progress and all(k == "progress" for k in kinds[:-1])
    fractions = [p.fraction for p in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    result = events[-1].result
    assert progress[-1].current_date == result.end_date
    assert progress[-1].equity == pytest.approx(result.daily[-1].total_value)

    assert result.start_date == sqlite_market.first_date and result.end_date == sqlite_market.last_date
    assert list(result.symbols) == sqlite_market.stocks[:3]
    assert result.benchmark == sqlite_market.index
    assert result.initial_capital == 1_000_000.0  # unset optional → the engine default
    assert result.adjust_type == "qfq" and len(result.data_hash) == 64 and result.engine_version
    assert len(result.daily) == len(result.daily) and all(d.HasField("benchmark_close") for d in result.daily)
    assert result.trades and result.orders and result.round_trips
    assert all(o.status != engine_pb2.Order.STATUS_UNSPECIFIED for o in result.orders)

    rebuilt = _result_as_dict(result)
    expected = compute_metrics(rebuilt, annualization=250, risk_free_rate=0.02)
    got = metrics_from_proto(result.metrics)
    for name, value in got.items():
        if expected.get(name) is None:
            assert value is None, name  # undefined stays unset, never 0
        else:
            assert value == pytest.approx(expected[name], rel=1e-12, abs=1e-12), name
    assert got["total_trades"] == len(result.trades) and got["beta"] is not None
    trips = round_trips(rebuilt["trades"], rebuilt["ex_rights"])
    assert [(t.symbol, t.close_date, t.quantity) for t in result.round_trips] == [
        (t["symbol"], t["close_date"], t["quantity"]) for t in trips
    ]
    assert [t.pnl for t in result.round_trips] == pytest.approx([t["pnl"] for t in trips])


def test_invalid_config_is_invalid_argument_with_field_violations(shared_server: Harness,
                                                                  sqlite_market: Market) -> None:
    h = shared_server
    cases = {
        "config.end_date": h.config(sqlite_market, start_date="2015-06-01", end_date="2015-01-01"),
        "config.commission_rate": h.config(sqlite_market, commission_rate=0.5),
        "config.symbols": h.config(sqlite_market, symbols=[]),
        "config.adjust_type": h.config(sqlite_market, adjust_type="sideways"),
        "config.start_date config.end_date": engine_pb2.BacktestConfig(symbols=sqlite_market.stocks[:1]),
    }
    for fields, config in cases.items():
        with pytest.raises(grpc.RpcError) as info:
            h.run(engine_pb2.RunBacktestRequest(strategy_code=BUY_AND_HOLD, config=config))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, fields
        assert [f for f, _ in field_violations(info.value)] == fields.split()
    with pytest.raises(grpc.RpcError) as info:
        h.run(engine_pb2.RunBacktestRequest(strategy_code="", config=h.config(sqlite_market)))
    assert field_violations(info.value) == [("strategy_code", "is required")]


def test_unknown_symbol_and_benchmark_are_named(shared_server: Harness, sqlite_market: Market) -> None:
    h = shared_server
    config = h.config(sqlite_market, symbols=[sqlite_market.stocks[0], "999999.SH"], benchmark="999998.SH")
    with pytest.raises(grpc.RpcError) as info:
        h.run(engine_pb2.RunBacktestRequest(strategy_code=BUY_AND_HOLD, config=config))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "999999.SH" in info.value.details()
    assert sorted(field_violations(info.value)) == [
        ("config.benchmark", "unknown symbol 999998.SH"), ("config.symbols", "unknown symbol 999999.SH"),
    ]


def test_strategy_exception_is_an_in_band_error_with_its_line(shared_server: Harness, sqlite_market: Market) -> None:
    h = shared_server
    events = h.run(engine_pb2.RunBacktestRequest(strategy_code=RAISES_AT_LINE_9, config=h.config(sqlite_market)))
    error = events[-1].error
    assert events[-1].WhichOneof("event") == "error"
    assert error.kind == Kind.STRATEGY_ERROR
    assert error.line == 9
    assert "KeyError" in error.message and "NOPE.SH" in error.message


def test_syntax_error_in_run_is_invalid_strategy(shared_server: Harness, sqlite_market: Market) -> None:
    events = shared_server.run(engine_pb2.RunBacktestRequest(strategy_code="class Strategy(:\n    pass\n",
                                                             config=shared_server.config(sqlite_market)))
    assert events[-1].error.kind == Kind.INVALID_STRATEGY
    assert events[-1].error.line == 1


def test_validate_strategy(shared_server: Harness) -> None:
    stub = shared_server.stub
    good = stub.ValidateStrategy(engine_pb2.ValidateStrategyRequest(strategy_code=BUY_AND_HOLD), metadata=AUTH)
    assert good.valid and not good.problems, good.problems
    bad_code = "from zquant.backtest.strategy import BaseStrategy\n\n\nclass Strategy(BaseStrategy):\n" \
               "    def on_bar(self, context, bar_data)\n        pass\n"
    bad = stub.ValidateStrategy(engine_pb2.ValidateStrategyRequest(strategy_code=bad_code), metadata=AUTH)
    assert not bad.valid
    assert bad.problems[0].line == 5 and "SyntaxError" in bad.problems[0].message
    no_class = stub.ValidateStrategy(engine_pb2.ValidateStrategyRequest(strategy_code="x = 1\n"), metadata=AUTH)
    assert not no_class.valid and "class Strategy" in no_class.problems[0].message


def test_list_symbols_filters(shared_server: Harness, sqlite_market: Market) -> None:
    stub = shared_server.stub
    stocks = stub.ListSymbols(engine_pb2.ListSymbolsRequest(), metadata=AUTH)
    names = [s.symbol for s in stocks.symbols]
    assert names == sorted(names) and sqlite_market.index not in names and len(names) >= len(sqlite_market.stocks)
    first = stocks.symbols[0]
    assert first.first_date and first.last_date and first.bars > 0 and first.board in ("main", "chinext", "star")
    with_index = stub.ListSymbols(engine_pb2.ListSymbolsRequest(include_indexes=True), metadata=AUTH)
    index = [s for s in with_index.symbols if s.symbol == sqlite_market.index]
    assert index and index[0].is_index and index[0].board == "index"
    wanted = [sqlite_market.stocks[1], "999999.SH"]
    coverage = stub.ListSymbols(engine_pb2.ListSymbolsRequest(symbols=wanted), metadata=AUTH)
    assert [s.symbol for s in coverage.symbols] == [sqlite_market.stocks[1]]
    assert list(coverage.missing) == ["999999.SH"]
    found = stub.ListSymbols(engine_pb2.ListSymbolsRequest(search=sqlite_market.stocks[2][:6].lower()), metadata=AUTH)
    assert [s.symbol for s in found.symbols] == [sqlite_market.stocks[2]]


def test_daily_bars_of_one_symbol(shared_server: Harness, sqlite_market: Market) -> None:
    """GetDailyBars (task_svc's candlestick source): unadjusted bars straight from the store."""
    stub = shared_server.stub
    symbol = sqlite_market.stocks[0]
    start, end = sqlite_market.first_date, sqlite_market.last_date
    reply = stub.GetDailyBars(engine_pb2.GetDailyBarsRequest(symbol=symbol, start_date=start, end_date=end),
                              metadata=AUTH)
    with sqlite_market.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT trade_date, open, high, low, close FROM daily_bars WHERE symbol = :s "
            "AND trade_date BETWEEN :a AND :b ORDER BY trade_date"), {"s": symbol, "a": start, "b": end}).all()
    assert reply.symbol == symbol and len(reply.bars) == len(rows) > 0
    first = reply.bars[0]
    assert (first.date, first.open, first.high, first.low, first.close) == (
        str(rows[0][0])[:10], rows[0][1], rows[0][2], rows[0][3], rows[0][4])
    assert [b.date for b in reply.bars] == sorted(b.date for b in reply.bars)
    for request, code in (
        (engine_pb2.GetDailyBarsRequest(symbol="999999.SH", start_date=start, end_date=end), grpc.StatusCode.NOT_FOUND),
        (engine_pb2.GetDailyBarsRequest(symbol=symbol, start_date="2013/01/01", end_date=end),
         grpc.StatusCode.INVALID_ARGUMENT),
        (engine_pb2.GetDailyBarsRequest(symbol=symbol, start_date=end, end_date=start),
         grpc.StatusCode.INVALID_ARGUMENT),
        (engine_pb2.GetDailyBarsRequest(start_date=start, end_date=end), grpc.StatusCode.INVALID_ARGUMENT),
    ):
        with pytest.raises(grpc.RpcError) as info:
            stub.GetDailyBars(request, metadata=AUTH)
        assert info.value.code() == code


def test_health_serving_and_credentials_required(shared_server: Harness) -> None:
    assert shared_server.health_status() == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as info:
        shared_server.stub.ListSymbols(engine_pb2.ListSymbolsRequest())
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as info:
        shared_server.stub.ListSymbols(engine_pb2.ListSymbolsRequest(), metadata=(("authorization", "Bearer no"),))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def _first_progress(call: Any) -> engine_pb2.RunBacktestEvent:
    for event in call:
        if event.WhichOneof("event") == "progress":
            return event
        raise AssertionError(f"expected progress first, got {event}")
    raise AssertionError("stream ended")


def test_client_cancel_kills_the_worker_within_a_second(shared_server: Harness, sqlite_market: Market) -> None:
    h = shared_server
    assert not live_descendants()
    call = h.stub.RunBacktest(engine_pb2.RunBacktestRequest(strategy_code=SLEEPY, config=h.config(sqlite_market)),
                              metadata=AUTH, timeout=60)
    _first_progress(call)
    assert live_descendants(), "the worker should be running"
    started = time.monotonic()
    call.cancel()
    took = wait_until(lambda: not live_descendants(), timeout=5)
    assert took is not None and took < 1.0, f"worker still alive {time.monotonic() - started:.2f}s after cancel"
    assert wait_until(lambda: h.core.active_runs() == 0 and h.core.pool.stats().running == 0, timeout=2) is not None


def test_deadline_kills_the_worker(shared_server: Harness, sqlite_market: Market) -> None:
    h = shared_server
    call = h.stub.RunBacktest(engine_pb2.RunBacktestRequest(strategy_code=SLEEPY, config=h.config(sqlite_market)),
                              metadata=AUTH, timeout=1.5)
    with pytest.raises(grpc.RpcError) as info:
        list(call)
    deadline_at = time.monotonic()
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    took = wait_until(lambda: not live_descendants(), timeout=5)
    assert took is not None and took < 1.0, f"worker alive {time.monotonic() - deadline_at:.2f}s after deadline"


def test_progress_is_throttled(shared_server: Harness, sqlite_market: Market) -> None:
    h = shared_server
    request = engine_pb2.RunBacktestRequest(strategy_code=SLEEPY, params=_params(sleep=0.01),
                                            config=h.config(sqlite_market))
    started = time.monotonic()
    events = list(h.stub.RunBacktest(request, metadata=AUTH, timeout=60))
    duration = time.monotonic() - started
    assert events[-1].WhichOneof("event") == "result"
    progress = [e.progress for e in events[:-1]]
    assert all(e.WhichOneof("event") == "progress" for e in events[:-1])
    # 160 bars × 10 ms ≈ 1.6 s of strategy time, and the worker reports ~100 ticks: the service
    # forwards one per 0.25 s (plus the final 1.0). Counted against the whole call's duration,
    # which bounds the server-side run, so client-side delivery jitter cannot fail it.
    assert 3 <= len(progress) <= duration / 0.25 + 2, (len(progress), duration)
    assert progress[-1].fraction == 1.0


def test_slots_and_queue_bound_concurrency(make_server: Any, sqlite_market: Market) -> None:
    """1 slot, queue 1, 4 simultaneous calls: one runs, one waits then runs, two are refused."""
    h: Harness = make_server(sqlite_market, slots=1, queue=1)
    request = engine_pb2.RunBacktestRequest(strategy_code=SLEEPY, params=_params(sleep=0.005),
                                            config=h.config(sqlite_market))
    outcomes: list[tuple[str, str, float]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def call() -> None:
        barrier.wait()
        try:
            events = h.run(request, timeout=60)
            outcome = (events[-1].WhichOneof("event"), "", time.monotonic())
        except grpc.RpcError as exc:
            outcome = (exc.code().name, exc.details(), time.monotonic())
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a call hung"
    kinds = sorted(o[0] for o in outcomes)
    assert kinds == ["RESOURCE_EXHAUSTED", "RESOURCE_EXHAUSTED", "result", "result"], outcomes
    refused = [o for o in outcomes if o[0] == "RESOURCE_EXHAUSTED"]
    for _, details, _ in refused:  # admitted calls count as waiting until they hold the slot
        m = re.fullmatch(r"engine busy: (\d) running, (\d) waiting; retry later or use another replica", details)
        assert m and int(m.group(1)) + int(m.group(2)) == 2 and int(m.group(1)) <= 1, details
    done = sorted(o[2] for o in outcomes if o[0] == "result")
    assert done[1] - done[0] > 0.5  # the second ran after the first, not beside it
    assert h.core.pool.stats().running == 0 and h.core.pool.stats().waiting == 0


def test_cancelled_waiting_call_leaves_the_queue(make_server: Any, sqlite_market: Market) -> None:
    h: Harness = make_server(sqlite_market, slots=1, queue=1)
    long_run = h.stub.RunBacktest(engine_pb2.RunBacktestRequest(strategy_code=SLEEPY, config=h.config(sqlite_market)),
                                  metadata=AUTH, timeout=60)
    _first_progress(long_run)
    waiter = h.stub.RunBacktest(engine_pb2.RunBacktestRequest(strategy_code=SLEEPY, config=h.config(sqlite_market)),
                                metadata=AUTH, timeout=60)
    assert wait_until(lambda: h.core.pool.stats().waiting == 1, timeout=5) is not None
    waiter.cancel()
    assert wait_until(lambda: h.core.pool.stats().waiting == 0, timeout=2) is not None
    # Its place is free again: a new call is admitted (waits) instead of being refused.
    third = h.stub.RunBacktest(engine_pb2.RunBacktestRequest(strategy_code=SLEEPY, config=h.config(sqlite_market)),
                               metadata=AUTH, timeout=60)
    assert wait_until(lambda: h.core.pool.stats().waiting == 1, timeout=5) is not None
    third.cancel()
    long_run.cancel()
    assert wait_until(lambda: not live_descendants(), timeout=5) is not None



def test_range_without_market_data_is_an_in_band_data_error(shared_server: Harness, sqlite_market: Market) -> None:
    h = shared_server
    events = h.run(engine_pb2.RunBacktestRequest(
        strategy_code=BUY_AND_HOLD, config=h.config(sqlite_market, start_date="2010-01-04", end_date="2010-03-01")))
    assert len(events) == 1 and events[0].error.kind == Kind.DATA_ERROR
    assert "2010-01-04" in events[0].error.message
    assert h.core.pool.stats().running == 0 and h.core.pool.stats().waiting == 0


def test_validate_empty_code_is_a_problem_not_an_error(shared_server: Harness) -> None:
    response = shared_server.stub.ValidateStrategy(engine_pb2.ValidateStrategyRequest(strategy_code="  \n"),
                                                   metadata=AUTH)
    assert not response.valid and response.problems[0].message == "strategy code is empty"
    with pytest.raises(grpc.RpcError) as info:
        shared_server.stub.ValidateStrategy(
            engine_pb2.ValidateStrategyRequest(strategy_code="#" * (1024 * 1024 + 1)), metadata=AUTH)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(info.value)] == ["strategy_code"]


def test_run_and_validate_rpcs_are_for_service_principals_only(shared_server: Harness,
                                                                sqlite_market: Market) -> None:
    h = shared_server
    config = h.config(sqlite_market)
    denied = {
        "RunBacktest": lambda md: list(h.stub.RunBacktest(
            engine_pb2.RunBacktestRequest(strategy_code=BUY_AND_HOLD, config=config), metadata=md, timeout=60)),
        "ValidateStrategy": lambda md: h.stub.ValidateStrategy(
            engine_pb2.ValidateStrategyRequest(strategy_code=BUY_AND_HOLD), metadata=md, timeout=30),
        "ValidateBacktest": lambda md: h.stub.ValidateBacktest(
            engine_pb2.ValidateBacktestRequest(config=config), metadata=md, timeout=30),
        "GetDailyBars": lambda md: h.stub.GetDailyBars(engine_pb2.GetDailyBarsRequest(
            symbol=sqlite_market.stocks[0], start_date=config.start_date, end_date=config.end_date),
            metadata=md, timeout=30),
        "RunTrials": lambda md: list(h.stub.RunTrials(engine_pb2.RunTrialsRequest(
            strategy_code=BUY_AND_HOLD, config=config, params=[_params(fraction=0.2)]), metadata=md, timeout=60)),
        "GetDataFingerprint": lambda md: h.stub.GetDataFingerprint(
            engine_pb2.GetDataFingerprintRequest(config=config), metadata=md, timeout=30),
    }
    for name, call in denied.items():
        with pytest.raises(grpc.RpcError) as info:
            call(USER_AUTH)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED, name
        assert "service principals only" in info.value.details(), name
        call(AUTH)  # the service principal gets through
    # What the REST API exposes to users stays open.
    listed = h.stub.ListSymbols(engine_pb2.ListSymbolsRequest(), metadata=USER_AUTH, timeout=30)
    assert [s.symbol for s in listed.symbols][:1] == sorted(sqlite_market.stocks)[:1]


def test_validate_backtest_reports_every_violation_and_the_normalized_config(shared_server: Harness,
                                                                             sqlite_market: Market) -> None:
    h = shared_server
    ok = h.stub.ValidateBacktest(engine_pb2.ValidateBacktestRequest(
        strategy_code=BUY_AND_HOLD, params=_params(window=5),
        config=h.config(sqlite_market, symbols=[sqlite_market.stocks[0].lower(), sqlite_market.stocks[0]])),
        metadata=AUTH, timeout=30)
    assert ok.valid and list(ok.violations) == []
    c = ok.config
    assert list(c.symbols) == [sqlite_market.stocks[0]] and (c.frequency, c.adjust_type) == ("daily", "qfq")
    assert (c.initial_capital, c.commission_rate, c.min_commission, c.tax_rate, c.slippage_rate,
            c.annualization, c.risk_free_rate) == (1_000_000, 0.0003, 5.0, 0.001, 0.001, 252, 0.0)
    assert all(c.HasField(f) for f in ("initial_capital", "commission_rate", "min_commission", "annualization"))

    deep = struct_pb2.Struct()
    inner = deep.fields["x"].list_value
    for _ in range(34):  # deeper than the JSON limit (32), within protobuf's 100 message levels
        inner = inner.values.add().list_value
    bad = h.stub.ValidateBacktest(engine_pb2.ValidateBacktestRequest(
        strategy_code="class Strategy(:\n", params=deep,
        config=h.config(sqlite_market, min_commission=2_000_000, symbols=["999999.SH"], benchmark="999998.SH")),
        metadata=AUTH, timeout=30)
    assert not bad.valid and not bad.HasField("config")
    assert [(v.field, v.description) for v in bad.violations][:4] == [
        ("config.min_commission", "must be in [0, 1e+06], got 2e+06"),
        ("config.symbols", "no market data for: 999999.SH"),
        ("config.benchmark", "no market data for benchmark 999998.SH"),
        ("params", "is nested too deeply: JSON may nest at most 32 arrays/objects"),
    ]
    assert bad.violations[4].field == "strategy_code" and bad.violations[4].description.startswith("line 1:")


def test_run_trials_streams_each_trial_like_a_single_run_and_one_fails_alone(shared_server: Harness,
                                                                             sqlite_market: Market) -> None:
    h = shared_server
    config = h.config(sqlite_market, benchmark=sqlite_market.index)
    request = engine_pb2.RunTrialsRequest(strategy_code=BUY_AND_HOLD, config=config, reference="t-trials",
                                          params=[_params(fraction=0.1), _params(fraction="x"), _params(fraction=0.3)])
    events = list(h.stub.RunTrials(request, metadata=AUTH, timeout=120))
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[-1] == "done" and kinds.count("trial") == 3 and "error" not in kinds, kinds
    trials = [e.trial for e in events if e.WhichOneof("event") == "trial"]
    assert [t.index for t in trials] == [0, 1, 2]
    assert trials[1].failure.kind == Kind.STRATEGY_ERROR and "TypeError" in trials[1].failure.message
    assert not trials[1].nav
    done = events[-1].done
    for t, fraction in ((trials[0], 0.1), (trials[2], 0.3)):
        single = h.run(engine_pb2.RunBacktestRequest(strategy_code=BUY_AND_HOLD, config=config,
                                                     params=_params(fraction=fraction)))[-1].result
        assert list(t.dates) == [d.date for d in single.daily]
        assert list(t.nav) == pytest.approx([d.total_value for d in single.daily], rel=1e-12)
        assert t.trades == len(single.trades) and t.orders == len(single.orders) and t.mismatch_days == 0
        assert metrics_from_proto(t.metrics) == pytest.approx(metrics_from_proto(single.metrics), rel=1e-9)
        assert (done.engine_version, done.data_hash) == (single.engine_version, single.data_hash)
    fingerprint = h.stub.GetDataFingerprint(engine_pb2.GetDataFingerprintRequest(config=config), metadata=AUTH,
                                            timeout=30)
    assert (fingerprint.engine_version, fingerprint.data_hash) == (done.engine_version, done.data_hash)
    assert list(fingerprint.dates) == list(trials[0].dates)
    with pytest.raises(grpc.RpcError) as info:
        list(h.stub.RunTrials(engine_pb2.RunTrialsRequest(strategy_code=BUY_AND_HOLD, config=config), metadata=AUTH,
                              timeout=30))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(info.value)] == ["params"]
