"""The light views of a stored result (equity arrays, orders/trades/round trips pages, positions
of a day, logs, bars, the HTML report) over gRPC, on SQLite and PostgreSQL, with the fake engine."""

from __future__ import annotations

from html.parser import HTMLParser

import grpc
import pytest
from tasksvc_helpers import expect, run_request, wait_status
from zquant.backtest.v1 import task_pb2
from zquant.engine.v1 import engine_pb2

from services.errors import field_violations

S = task_pb2.Task
ALICE, BOB = "user:1", "user:2"


@pytest.fixture
def done(make_app, connect):  # type: ignore[no-untyped-def]
    app = make_app()
    api = connect(app, ALICE)
    task = api.tasks.RunBacktest(run_request(fake={"steps": 5}, config={"benchmark": "000300.SH"}))
    wait_status(api, task.id, S.COMPLETED)
    return app, api, task.id


def test_equity_arrays_follow_the_daily_records(done) -> None:  # type: ignore[no-untyped-def]
    _, api, tid = done
    perf = api.tasks.GetPerformance(task_pb2.GetPerformanceRequest(task_id=tid))
    eq = api.tasks.GetEquity(task_pb2.GetEquityRequest(task_id=tid))
    daily = perf.daily_portfolio
    assert list(eq.dates) == [d.date for d in daily]
    assert list(eq.total_value) == [d.total_value for d in daily]
    assert list(eq.cash) == [d.cash for d in daily]
    assert list(eq.benchmark_close) == [d.benchmark_close for d in daily]
    assert eq.benchmark == "000300.SH" and eq.initial_capital == 1_000_000
    peak = 0.0
    for value, dd, exp, d in zip(eq.total_value, eq.drawdown, eq.exposure, daily, strict=True):
        peak = max(peak, value)
        assert dd == pytest.approx(value / peak - 1)
        assert exp == pytest.approx(d.market_value / d.total_value)


def test_orders_trades_round_trips_pages(done) -> None:  # type: ignore[no-untyped-def]
    _, api, tid = done
    page = api.tasks.ListOrders(task_pb2.ListOrdersRequest(task_id=tid))
    assert [o.order_id for o in page.orders] == [1, 2] and page.total == 2
    expired = api.tasks.ListOrders(task_pb2.ListOrdersRequest(task_id=tid, status=engine_pb2.Order.EXPIRED))
    assert [o.order_id for o in expired.orders] == [2] and expired.total == 1
    desc = api.tasks.ListOrders(task_pb2.ListOrdersRequest(task_id=tid, order_by="order_id", order="desc", limit=1))
    assert [o.order_id for o in desc.orders] == [2] and desc.total == 2
    none = api.tasks.ListOrders(task_pb2.ListOrdersRequest(task_id=tid, symbol="000001.SZ"))
    assert none.total == 0
    err = expect(lambda: api.tasks.ListOrders(task_pb2.ListOrdersRequest(task_id=tid, order_by="price", limit=5000,
                                                                         side="short")),
                 grpc.StatusCode.INVALID_ARGUMENT)
    assert {f for f, _ in field_violations(err)} == {"order_by", "limit", "side"}

    summary = api.tasks.GetOrderSummary(task_pb2.GetOrderSummaryRequest(task_id=tid))
    assert (summary.total, summary.filled, summary.rejected, summary.expired, summary.cancelled) == (2, 1, 0, 1, 0)
    assert [(r.category, r.count) for r in summary.refusals] == [("other", 1)]
    assert list(summary.symbols) == ["600000.SH"]

    trades = api.tasks.ListTrades(task_pb2.ListTradesRequest(task_id=tid, side="buy"))
    assert trades.total == 1 and trades.trades[0].price == 10.01
    assert api.tasks.ListTrades(task_pb2.ListTradesRequest(task_id=tid, side="sell")).total == 0
    trips = api.tasks.ListRoundTrips(task_pb2.ListRoundTripsRequest(task_id=tid, order_by="pnl"))
    assert trips.total == 1 and trips.round_trips[0].pnl == 12.5
    assert api.tasks.ListExRights(task_pb2.ListExRightsRequest(task_id=tid)).total == 0


def test_positions_of_a_day(done) -> None:  # type: ignore[no-untyped-def]
    _, api, tid = done
    last = api.tasks.GetPositions(task_pb2.GetPositionsRequest(task_id=tid))
    assert last.date == "2024-01-06" and last.positions[0].quantity == 500
    # A weekend or holiday gives the last trading day before it.
    assert api.tasks.GetPositions(task_pb2.GetPositionsRequest(task_id=tid, date="2024-01-03")).date == "2024-01-03"
    assert api.tasks.GetPositions(task_pb2.GetPositionsRequest(task_id=tid, date="2024-02-01")).date == "2024-01-06"
    expect(lambda: api.tasks.GetPositions(task_pb2.GetPositionsRequest(task_id=tid, date="2023-12-31")),
           grpc.StatusCode.NOT_FOUND)
    err = expect(lambda: api.tasks.GetPositions(task_pb2.GetPositionsRequest(task_id=tid, date="Jan 3")),
                 grpc.StatusCode.INVALID_ARGUMENT)
    assert field_violations(err)[0][0] == "date"


def test_logs_tail_and_bars(done, engine_server) -> None:  # type: ignore[no-untyped-def]
    _, api, tid = done
    logs = api.tasks.GetLogs(task_pb2.GetLogsRequest(task_id=tid))
    assert (logs.text, logs.truncated, logs.total_bytes) == ("ran 5 days", False, 10)
    tail = api.tasks.GetLogs(task_pb2.GetLogsRequest(task_id=tid, max_bytes=4))
    assert tail.truncated and tail.total_bytes == 10 and len(tail.text.encode()) <= 4
    bars = api.tasks.GetBars(task_pb2.GetBarsRequest(task_id=tid, symbol="600000.SH"))
    assert [b.date for b in bars.bars] == ["2024-01-02", "2024-01-03", "2024-01-04"]
    assert engine_server.engine.bar_requests[-1] == ("600000.SH", "2024-01-01", "2024-03-31")
    expect(lambda: api.tasks.GetBars(task_pb2.GetBarsRequest(task_id=tid, symbol="600519.SH")),
           grpc.StatusCode.NOT_FOUND)


def test_report_is_html_with_the_metrics(done) -> None:  # type: ignore[no-untyped-def]
    _, api, tid = done
    body = api.tasks.GetReport(task_pb2.GetReportRequest(task_id=tid))
    assert body.content_type == "text/html; charset=utf-8"
    text = body.data.decode("utf-8")
    cells: list[str] = []

    class Cells(HTMLParser):
        def handle_data(self, data: str) -> None:
            cells.append(data.strip())

    Cells().feed(text)
    assert "10.00%" in cells and "1.250" in cells  # total return, Sharpe
    zh = api.tasks.GetReport(task_pb2.GetReportRequest(task_id=tid, lang="zh-CN")).data.decode("utf-8")
    assert "总收益" in zh and '<html lang="zh-CN">' in zh
    err = expect(lambda: api.tasks.GetReport(task_pb2.GetReportRequest(task_id=tid, lang="fr")),
                 grpc.StatusCode.INVALID_ARGUMENT)
    assert field_violations(err)[0][0] == "lang"


def test_views_are_the_owners_and_need_a_result(done, connect) -> None:  # type: ignore[no-untyped-def]
    app, api, tid = done
    bob = connect(app, BOB)
    for call in (lambda: bob.tasks.GetEquity(task_pb2.GetEquityRequest(task_id=tid)),
                 lambda: bob.tasks.ListOrders(task_pb2.ListOrdersRequest(task_id=tid)),
                 lambda: bob.tasks.GetReport(task_pb2.GetReportRequest(task_id=tid))):
        expect(call, grpc.StatusCode.NOT_FOUND)
    pending = api.tasks.RunBacktest(run_request(fake={"outcome": "hang"}))
    err = expect(lambda: api.tasks.GetEquity(task_pb2.GetEquityRequest(task_id=pending.id)), grpc.StatusCode.NOT_FOUND)
    assert "no result" in err.details()
    expect(lambda: api.tasks.GetEquity(task_pb2.GetEquityRequest(task_id=987654)), grpc.StatusCode.NOT_FOUND)
    api.tasks.CancelTask(task_pb2.CancelTaskRequest(task_id=pending.id))


def test_get_task_has_the_code_and_lists_filter_by_name(make_app, connect) -> None:  # type: ignore[no-untyped-def]
    app = make_app(workers=0)
    api = connect(app, ALICE)
    a = api.tasks.RunBacktest(run_request(strategy_name="Momentum 20d"))
    api.tasks.RunBacktest(run_request(strategy_name="value_50%"))
    got = api.tasks.GetTask(task_pb2.GetTaskRequest(task_id=a.id))
    assert "class Strategy" in got.strategy_code
    listed = api.tasks.ListTasks(task_pb2.ListTasksRequest())
    assert all(t.strategy_code == "" for t in listed.tasks)  # lists never carry code
    found = api.tasks.ListTasks(task_pb2.ListTasksRequest(search="MOMENTUM"))
    assert [t.id for t in found.tasks] == [a.id] and found.total == 1
    # "_" is literal: as a LIKE wildcard it would match the space of "Momentum 20d".
    assert api.tasks.ListTasks(task_pb2.ListTasksRequest(search="m_2")).total == 0
    assert api.tasks.ListTasks(task_pb2.ListTasksRequest(search="e_50%")).total == 1
