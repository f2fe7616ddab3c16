"""Tasks: submission rules, the happy path, failures, cancel/delete, listing, isolation, quotas."""

from __future__ import annotations

import json
import time

import grpc
import pytest
from google.protobuf import json_format
from tasksvc_helpers import SIMPLE_CODE, expect, run_request, wait_status
from zquant.backtest.v1 import strategy_pb2, task_pb2

from services.errors import field_violations
from services.rest import to_json_value

S = task_pb2.Task
ALICE, BOB = "user:1", "user:2"


def test_run_backtest_validation(make_app, connect) -> None:
    app = make_app(workers=0)  # nothing runs: this is about submission only
    api = connect(app, ALICE)
    run = api.tasks.RunBacktest

    err = expect(lambda: run(run_request(strategy_code="")), grpc.StatusCode.INVALID_ARGUMENT)
    assert err.details() == "strategy_id or strategy_code is required"
    expect(lambda: run(run_request(strategy_code="", strategy_id=424242)), grpc.StatusCode.NOT_FOUND)

    cases = {
        "config.start_date": {"start_date": "2024/01/01"},
        "config.end_date": {"start_date": "2024-03-01", "end_date": "2024-02-01"},
        "config.initial_capital": {"initial_capital": 0},
        "config.symbols": {"symbols": []},
        "config.frequency": {"frequency": "minute"},
        "config.adjust_type": {"adjust_type": "xyz"},
        "config.commission_rate": {"commission_rate": 0.1},
        "config.min_commission": {"min_commission": -1},
        # The engine's upper bound (1e6): it used to pass here and FAIL later in the engine.
        "config.min_commission ": {"min_commission": 2_000_000},
        "config.tax_rate": {"tax_rate": -0.01},
        "config.slippage_rate": {"slippage_rate": 0.5},
        "config.annualization": {"annualization": 400},
        "config.risk_free_rate": {"risk_free_rate": 2},
    }
    for field, config in cases.items():
        err = expect(lambda config=config: run(run_request(config=config)), grpc.StatusCode.INVALID_ARGUMENT)
        assert field.strip() in [f for f, _ in field_violations(err)], (field, field_violations(err))
    err = expect(lambda: run(run_request(config={"min_commission": 2_000_000})), grpc.StatusCode.INVALID_ARGUMENT)
    assert field_violations(err) == [("config.min_commission", "must be in [0, 1e+06], got 2e+06")]
    # Every problem at once, config and code together.
    err = expect(lambda: run(run_request(strategy_code="def broken(:\n", config={"tax_rate": 0.5,
                                                                               "symbols": ["999999.SZ"]})),
                 grpc.StatusCode.INVALID_ARGUMENT)
    assert [f for f, _ in field_violations(err)] == ["config.tax_rate", "config.symbols", "strategy_code"]
    err = expect(lambda: run(run_request(config={"symbols": ["999999.SZ"]}, strategy_code="def broken(:\n")),
                 grpc.StatusCode.INVALID_ARGUMENT)
    assert [f for f, _ in field_violations(err)] == ["config.symbols", "strategy_code"]
    expect(lambda: run(run_request(config={"start_date": "2024-02-30"})), grpc.StatusCode.INVALID_ARGUMENT)

    err = expect(lambda: run(run_request(config={"symbols": ["600000.SH", "999999.SZ"]})),
                 grpc.StatusCode.INVALID_ARGUMENT)
    assert field_violations(err) == [("config.symbols", "no market data for: 999999.SZ")]
    err = expect(lambda: run(run_request(config={"benchmark": "399999.SZ"})), grpc.StatusCode.INVALID_ARGUMENT)
    assert field_violations(err) == [("config.benchmark", "no market data for benchmark 399999.SZ")]
    err = expect(lambda: run(run_request(strategy_code="def broken(:\n")), grpc.StatusCode.INVALID_ARGUMENT)
    assert field_violations(err)[0][0] == "strategy_code" and field_violations(err)[0][1].startswith("line 1:")
    # nothing was stored by any of the rejected requests
    assert api.tasks.ListTasks(task_pb2.ListTasksRequest()).total == 0

    # defaults filled in, config and params kept, code snapshotted
    task = run(run_request(config={"benchmark": "000300.SH"}))
    assert task.status == S.PENDING and task.id > 0 and task.user_id == 1
    c = task.config
    assert (c.initial_capital, c.frequency, c.adjust_type, c.commission_rate, c.min_commission, c.tax_rate,
            c.slippage_rate, c.annualization, c.risk_free_rate) == (
        1_000_000, "daily", "qfq", 0.0003, 5.0, 0.001, 0.001, 252, 0.0)
    assert c.benchmark == "000300.SH" and list(c.symbols) == ["600000.SH"]
    assert task.start_date == "2024-01-01" and task.end_date == "2024-03-31"
    assert json_format.MessageToDict(task.params)["window"] == 5


def test_strategy_id_snapshot_and_name(make_app, connect) -> None:
    app = make_app(workers=0)
    api = connect(app, ALICE)
    s = api.strategies.CreateStrategy(strategy_pb2.CreateStrategyRequest(name="Lib MA", code=SIMPLE_CODE))
    task = api.tasks.RunBacktest(run_request(strategy_code="", strategy_name="", strategy_id=s.id))
    assert task.strategy_id == s.id and task.strategy_name == "Lib MA"
    template = api.strategies.ListTemplates(strategy_pb2.ListTemplatesRequest()).strategies[0]
    t2 = api.tasks.RunBacktest(run_request(strategy_code="", strategy_name="", strategy_id=template.id))
    assert t2.strategy_name == template.name
    # bob cannot run alice's strategy
    bob = connect(app, BOB)
    expect(lambda: bob.tasks.RunBacktest(run_request(strategy_code="", strategy_id=s.id)),
           grpc.StatusCode.NOT_FOUND)
    # the snapshot survives the strategy's deletion
    api.strategies.DeleteStrategy(strategy_pb2.DeleteStrategyRequest(strategy_id=s.id))
    from sqlalchemy import select

    from task_svc.models import Task

    with app.sessions() as session:
        assert session.scalar(select(Task.strategy_code).where(Task.id == task.id)) == SIMPLE_CODE


def test_happy_path_stores_the_engine_result(make_app, connect, engine_server) -> None:
    app = make_app()
    api = connect(app, ALICE)
    task = api.tasks.RunBacktest(run_request(fake={"steps": 4, "delay": 0.05, "total_return": 0.2},
                                             config={"benchmark": "000300.SH"}))
    assert task.status == S.PENDING
    expect(lambda: api.tasks.GetResult(task_pb2.GetResultRequest(task_id=task.id)), grpc.StatusCode.NOT_FOUND)
    done = wait_status(api, task.id, S.COMPLETED)
    assert done.progress == 1.0 and done.attempts == 1 and done.error_message == ""
    assert done.started_at.seconds > 0 and done.completed_at.ToDatetime() >= done.started_at.ToDatetime()
    run = engine_server.engine.runs_for(task.id)[0]
    sent = run.result
    assert sent is not None
    # progress fields end on the last day and the final equity, not the last throttled tick
    assert done.current_date == sent.end_date and done.equity == sent.daily[-1].total_value
    # the engine got the stored config, params and code
    assert run.request.strategy_code == SIMPLE_CODE and run.request.config.benchmark == "000300.SH"
    assert run.request.config.initial_capital == 1_000_000
    assert json_format.MessageToDict(run.request.params)["window"] == 5

    result = api.tasks.GetResult(task_pb2.GetResultRequest(task_id=task.id))
    assert result.task_id == task.id and result.strategy_name == "t"
    assert result.total_return == pytest.approx(0.2) and result.annual_return == pytest.approx(0.4)
    assert result.sharpe_ratio == 1.25 and result.max_drawdown == 0.05 and result.win_rate == 1.0
    assert result.alpha == 0.02 and result.beta == 0.9
    assert not result.HasField("profit_loss_ratio")  # undefined stays undefined, not 0
    assert result.engine_version == sent.engine_version and result.data_hash == sent.data_hash
    metrics = json.loads(result.metrics_json)
    assert metrics == to_json_value(sent.metrics) and metrics["profit_loss_ratio"] is None
    assert json.loads(result.trades_json) == [to_json_value(t) for t in sent.trades]
    portfolio = json.loads(result.portfolio_json)
    assert len(portfolio) == 4 and portfolio[0]["positions"][0]["quantity"] == 100
    assert portfolio == [to_json_value(d) for d in sent.daily]

    perf = api.tasks.GetPerformance(task_pb2.GetPerformanceRequest(task_id=task.id))
    assert perf.task_id == task.id
    assert perf.metrics == sent.metrics
    assert list(perf.trades) == list(sent.trades) and list(perf.daily_portfolio) == list(sent.daily)
    assert list(perf.round_trips) == list(sent.round_trips) and list(perf.orders) == list(sent.orders)


def test_engine_error_marks_failed_with_message(make_app, connect) -> None:
    app = make_app()
    api = connect(app, ALICE)
    task = api.tasks.RunBacktest(run_request(fake={"outcome": "error", "error_line": 12,
                                                   "error_message": "KeyError: 'x'\n  strategy line 12, in on_bar"}))
    failed = wait_status(api, task.id, S.FAILED)
    assert failed.error_message == "KeyError: 'x'\n  strategy line 12, in on_bar"
    assert (failed.failure_kind, failed.failure_line) == (task_pb2.TaskFailure.STRATEGY_ERROR, 12)
    assert failed.completed_at.seconds > 0
    expect(lambda: api.tasks.GetResult(task_pb2.GetResultRequest(task_id=task.id)), grpc.StatusCode.NOT_FOUND)
    t2 = api.tasks.RunBacktest(run_request(fake={"outcome": "error", "error_line": 7,
                                                 "error_message": "time limit exceeded (30 s)"}))
    assert wait_status(api, t2.id, S.FAILED).error_message == "time limit exceeded (30 s) (strategy line 7)"
    # Each engine kind reaches the task as its client-facing kind; a line only where the strategy is at fault.
    kinds = {"TIME_LIMIT": "TIME_LIMIT", "CPU_LIMIT": "TIME_LIMIT", "MEMORY_LIMIT": "MEMORY_LIMIT",
             "TOO_LARGE": "OUTPUT_LIMIT", "CRASHED": "WORKER_FAILED", "INVALID_STRATEGY": "INVALID_STRATEGY",
             "DATA_ERROR": "INVALID_CONFIG", "INTERNAL": "INTERNAL"}
    submitted = {engine_kind: api.tasks.RunBacktest(run_request(fake={
        "outcome": "error", "error_kind": engine_kind, "error_line": 3})).id for engine_kind in kinds}
    for engine_kind, task_kind in kinds.items():
        done = wait_status(api, submitted[engine_kind], S.FAILED)
        assert task_pb2.TaskFailure.Kind.Name(done.failure_kind) == task_kind, engine_kind
        assert done.failure_line == (3 if task_kind == "INVALID_STRATEGY" else 0), engine_kind
    # Streams carry them too: the snapshot of a finished task is its terminal event.
    events = list(api.tasks.WatchTask(task_pb2.WatchTaskRequest(task_id=task.id)))
    assert (events[-1].task.failure_kind, events[-1].task.failure_line) == (task_pb2.TaskFailure.STRATEGY_ERROR, 12)


def test_cancel_pending_running_and_terminal(make_app, connect, engine_server) -> None:
    app = make_app(workers=1)
    api = connect(app, ALICE)
    running = api.tasks.RunBacktest(run_request(fake={"outcome": "hang"}))
    record = engine_server.engine.wait_run(running.id)
    wait_status(api, running.id, S.RUNNING)
    pending = api.tasks.RunBacktest(run_request(fake={"steps": 1}))  # the only worker is busy

    c1 = api.tasks.CancelTask(task_pb2.CancelTaskRequest(task_id=pending.id))
    assert c1.status == S.CANCELLED and c1.error_message == "cancelled by the user"
    assert c1.failure_kind == task_pb2.TaskFailure.CANCELLED
    c2 = api.tasks.CancelTask(task_pb2.CancelTaskRequest(task_id=running.id))
    assert c2.status == S.CANCELLED
    assert record.cancelled.wait(5), "the engine run was not cancelled"
    time.sleep(0.5)  # the dispatcher must not overwrite the terminal state afterwards
    assert api.tasks.GetTask(task_pb2.GetTaskRequest(task_id=running.id)).status == S.CANCELLED
    assert api.tasks.GetTask(task_pb2.GetTaskRequest(task_id=pending.id)).status == S.CANCELLED
    assert engine_server.engine.runs_for(pending.id) == []  # never started
    err = expect(lambda: api.tasks.CancelTask(task_pb2.CancelTaskRequest(task_id=running.id)),
                 grpc.StatusCode.FAILED_PRECONDITION)
    assert "CANCELLED" in err.details()
    # the freed worker runs new work
    t3 = api.tasks.RunBacktest(run_request(fake={"steps": 1}))
    wait_status(api, t3.id, S.COMPLETED)
    expect(lambda: api.tasks.CancelTask(task_pb2.CancelTaskRequest(task_id=t3.id)),
           grpc.StatusCode.FAILED_PRECONDITION)


def test_delete_task_and_result(make_app, connect, engine_server) -> None:
    app = make_app()
    api = connect(app, ALICE)
    done = api.tasks.RunBacktest(run_request(fake={"steps": 1}))
    wait_status(api, done.id, S.COMPLETED)
    api.tasks.DeleteTask(task_pb2.DeleteTaskRequest(task_id=done.id))
    expect(lambda: api.tasks.GetTask(task_pb2.GetTaskRequest(task_id=done.id)), grpc.StatusCode.NOT_FOUND)
    expect(lambda: api.tasks.GetResult(task_pb2.GetResultRequest(task_id=done.id)), grpc.StatusCode.NOT_FOUND)
    assert api.tasks.ListResults(task_pb2.ListResultsRequest()).total == 0
    # deleting a running task cancels its engine run first
    hanging = api.tasks.RunBacktest(run_request(fake={"outcome": "hang"}))
    record = engine_server.engine.wait_run(hanging.id)
    api.tasks.DeleteTask(task_pb2.DeleteTaskRequest(task_id=hanging.id))
    assert record.cancelled.wait(5)
    expect(lambda: api.tasks.DeleteTask(task_pb2.DeleteTaskRequest(task_id=hanging.id)), grpc.StatusCode.NOT_FOUND)


def test_other_users_tasks_are_not_found_everywhere(make_app, connect) -> None:
    app = make_app()
    alice, bob = connect(app, ALICE), connect(app, BOB)
    task = alice.tasks.RunBacktest(run_request(fake={"steps": 1}))
    wait_status(alice, task.id, S.COMPLETED)
    tid = task.id
    for call in (
        lambda: bob.tasks.GetTask(task_pb2.GetTaskRequest(task_id=tid)),
        lambda: bob.tasks.GetResult(task_pb2.GetResultRequest(task_id=tid)),
        lambda: bob.tasks.GetPerformance(task_pb2.GetPerformanceRequest(task_id=tid)),
        lambda: bob.tasks.CancelTask(task_pb2.CancelTaskRequest(task_id=tid)),
        lambda: bob.tasks.DeleteTask(task_pb2.DeleteTaskRequest(task_id=tid)),
        lambda: next(iter(bob.tasks.WatchTask(task_pb2.WatchTaskRequest(task_id=tid)))),
    ):
        expect(call, grpc.StatusCode.NOT_FOUND)
    assert bob.tasks.ListTasks(task_pb2.ListTasksRequest()).total == 0
    assert bob.tasks.ListResults(task_pb2.ListResultsRequest()).total == 0
    assert alice.tasks.GetTask(task_pb2.GetTaskRequest(task_id=tid)).status == S.COMPLETED


def test_list_tasks_order_and_paging(make_app, connect) -> None:
    app = make_app(workers=0)
    api = connect(app, ALICE)
    names = ["delta", "alpha", "charlie", "bravo", "alpha"]
    ids = []
    for n in names:
        ids.append(api.tasks.RunBacktest(run_request(strategy_name=n)).id)
    # make statuses differ: cancel two
    api.tasks.CancelTask(task_pb2.CancelTaskRequest(task_id=ids[1]))
    api.tasks.CancelTask(task_pb2.CancelTaskRequest(task_id=ids[3]))
    connect(app, BOB).tasks.RunBacktest(run_request(strategy_name="bob's"))  # never listed for alice

    tasks = {t.id: t for t in api.tasks.ListTasks(task_pb2.ListTasksRequest(limit=1000)).tasks}
    assert set(tasks) == set(ids)

    def key(order_by):  # type: ignore[no-untyped-def]
        return {
            "id": lambda t: (t.id,),
            "name": lambda t: (t.strategy_name, t.id),
            "status": lambda t: (S.Status.Name(t.status), t.id),
            "created_at": lambda t: (t.created_at.ToNanoseconds(), t.id),
            "updated_at": lambda t: (t.updated_at.ToNanoseconds(), t.id),
        }[order_by]

    for order_by in ("id", "name", "status", "created_at", "updated_at"):
        for order in ("asc", "desc"):
            got = [t.id for t in api.tasks.ListTasks(task_pb2.ListTasksRequest(order_by=order_by, order=order)).tasks]
            want = [t.id for t in sorted(tasks.values(), key=key(order_by), reverse=order == "desc")]
            assert got == want, (order_by, order)
    newest_first = [t.id for t in sorted(tasks.values(), key=key("created_at"), reverse=True)]
    for bogus in ("", "bogus", "user_id; DROP TABLE backtest_tasks"):
        got = api.tasks.ListTasks(task_pb2.ListTasksRequest(order_by=bogus, order="asc"))
        assert [t.id for t in got.tasks] == newest_first
    page = api.tasks.ListTasks(task_pb2.ListTasksRequest(order_by="id", order="asc", skip=1, limit=2))
    assert [t.id for t in page.tasks] == sorted(ids)[1:3] and page.total == 5
    last = api.tasks.ListTasks(task_pb2.ListTasksRequest(order_by="id", order="asc", skip=4, limit=2))
    assert [t.id for t in last.tasks] == sorted(ids)[4:] and last.total == 5
    cancelled = api.tasks.ListTasks(task_pb2.ListTasksRequest(status=S.CANCELLED, order_by="id", order="asc"))
    assert [t.id for t in cancelled.tasks] == [ids[1], ids[3]] and cancelled.total == 2
    # A page past the end has no row to carry the total: it is counted on its own.
    past = api.tasks.ListTasks(task_pb2.ListTasksRequest(skip=5, limit=2))
    assert list(past.tasks) == [] and past.total == 5
    searched = api.tasks.ListTasks(task_pb2.ListTasksRequest(search="ALPHA", order_by="id", order="asc"))
    assert [t.id for t in searched.tasks] == [ids[1], ids[4]] and searched.total == 2
    # Totals follow creates and deletes at once.
    api.tasks.DeleteTask(task_pb2.DeleteTaskRequest(task_id=ids[0]))
    extra = api.tasks.RunBacktest(run_request(strategy_name="echo")).id
    api.tasks.RunBacktest(run_request(strategy_name="foxtrot"))
    first = api.tasks.ListTasks(task_pb2.ListTasksRequest(order_by="id", order="asc", limit=2))
    assert [t.id for t in first.tasks] == sorted(ids)[1:3] and first.total == 6
    newest = api.tasks.ListTasks(task_pb2.ListTasksRequest(limit=1)).tasks[0]
    assert newest.id > extra and newest.strategy_name == "foxtrot" and newest.status == S.PENDING
    assert not newest.HasField("started_at") and newest.created_at.seconds > 0
    one = api.tasks.GetTask(task_pb2.GetTaskRequest(task_id=newest.id))
    assert one.strategy_code and not newest.strategy_code  # the list never carries the code
    one.ClearField("strategy_code")
    assert newest == one  # otherwise the same task, field for field (params, config, times)
    for bad in ({"limit": 1001}, {"limit": -1}, {"skip": -1}):
        expect(lambda bad=bad: api.tasks.ListTasks(task_pb2.ListTasksRequest(**bad)),
               grpc.StatusCode.INVALID_ARGUMENT)


def test_list_results_sorting(make_app, connect) -> None:
    app = make_app()
    api = connect(app, ALICE)
    returns = [0.1, -0.3, None, 0.5]
    ids = [api.tasks.RunBacktest(run_request(fake={"steps": 1, "total_return": r})).id for r in returns]
    for tid in ids:
        wait_status(api, tid, S.COMPLETED)
    desc = api.tasks.ListResults(task_pb2.ListResultsRequest(order_by="total_return", order="desc"))
    assert [r.task_id for r in desc.results] == [ids[3], ids[0], ids[1], ids[2]]  # undefined last
    asc = api.tasks.ListResults(task_pb2.ListResultsRequest(order_by="total_return", order="asc"))
    assert [r.task_id for r in asc.results] == [ids[1], ids[0], ids[3], ids[2]]
    assert asc.total == 4 and not asc.results[3].HasField("total_return")
    # Default: newest result first. Two workers may finish tasks out of submission order, so
    # the expected order comes from the results' own timestamps (ties: higher id first).
    everything = api.tasks.ListResults(task_pb2.ListResultsRequest()).results
    keys = [(r.created_at.ToDatetime(), r.id) for r in everything]
    assert keys == sorted(keys, reverse=True) and len(keys) == 4
    default = api.tasks.ListResults(task_pb2.ListResultsRequest(limit=2))
    assert [r.task_id for r in default.results] == [r.task_id for r in everything[:2]] and default.total == 4


def test_quotas(make_app, connect) -> None:
    app = make_app(workers=0, max_active_per_user=3, max_pending=5)
    alice, bob, carol = connect(app, ALICE), connect(app, BOB), connect(app, "user:3")
    a_ids = [alice.tasks.RunBacktest(run_request()).id for _ in range(3)]
    err = expect(lambda: alice.tasks.RunBacktest(run_request()), grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert "at most 3" in err.details()
    # cancelling one frees a slot
    alice.tasks.CancelTask(task_pb2.CancelTaskRequest(task_id=a_ids[0]))
    alice.tasks.RunBacktest(run_request())
    bob.tasks.RunBacktest(run_request())
    bob.tasks.RunBacktest(run_request())
    err = expect(lambda: carol.tasks.RunBacktest(run_request()), grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert "queue is full" in err.details()
