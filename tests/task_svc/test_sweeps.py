"""Parameter sweeps in task_svc against the real engine_svc (in-process gRPC server, real
sandboxed workers, synthetic market data), on SQLite and PostgreSQL: grid/random trials and their
best, ranking and result constraints, the result cache, heatmap, walk-forward folds and the
stitched equity, bad input naming the field, limits, another user's sweep, cancel, promote."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from tasksvc_helpers import expect, wait_status
from zquant.backtest.v1 import sweep_pb2, sweep_pb2_grpc, task_pb2
from zquant.engine.v1 import engine_pb2

from services.errors import Unauthenticated, field_violations
from services.principal import Credentials, Principal

serve = pytest.importorskip("engine_svc.serve")
data_db = pytest.importorskip("engine_svc.data.db")
synthetic_db = pytest.importorskip("engine_svc.data.synthetic_db")
limits_mod = pytest.importorskip("engine_svc.sandbox.limits")

from services.config import ServerSettings  # noqa: E402

SERVICE_TOKEN = "task-svc-service-token"
S, T = sweep_pb2.Sweep, sweep_pb2.Trial

# Dual moving average: long when the short mean is above the long one.
DUAL_MA = """from zquant.backtest.strategy import BaseStrategy


class Strategy(BaseStrategy):
    def initialize(self):
        self.short = int(self.params["short_window"])
        self.long = int(self.params["long_window"])
        self.pause = float(self.params.get("pause", 0))

    def on_bar(self, context, bar_data):
        if self.pause:
            import time
            time.sleep(self.pause)
        for symbol in bar_data:
            closes = context.history(symbol, "close", self.long)
            if len(closes) < self.long:
                continue
            fast = sum(closes[-self.short:]) / self.short
            slow = sum(closes) / self.long
            held = context.portfolio.get_position(symbol).quantity
            if fast > slow and held == 0:
                context.order_target_percent(symbol, 0.3)
            elif fast < slow and held > 0:
                context.order_target_percent(symbol, 0)
"""


class ServiceTokenAuthenticator:
    def authenticate(self, credentials: Credentials) -> Principal:
        if credentials.bearer_token != SERVICE_TOKEN:
            raise Unauthenticated("invalid token")
        return Principal(user_id=0, username="task_svc", is_admin=False, auth_method="api_key", is_service=True)


@pytest.fixture(scope="module")
def real_engine(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path_factory.mktemp('engine') / 'engine.db'}"
    engine = data_db.get_engine(url)
    data_db.ensure_schema(engine)
    synthetic_db.write_synthetic(engine, 3, 160, seed=11, progress=False)
    from engine_svc.data.loader import list_symbols

    rows = list_symbols(engine)
    core = serve.build_core(engine, limits=limits_mod.SandboxLimits(memory_mb=768, cpu_seconds=20, wall_seconds=30),
                            slots=2, queue=8)
    settings = ServerSettings(service="engine", addr="127.0.0.1:0", database_url=url, max_workers=24,
                              grace_seconds=1.0)
    running = serve.start_server(settings, core, ServiceTokenAuthenticator())
    running.set_serving(True)
    stocks = [r["symbol"] for r in rows if not r["is_index"] and r["first_date"] == rows[0]["first_date"]]
    index = next(r for r in rows if r["is_index"])
    yield {"addr": f"127.0.0.1:{running.port}", "stocks": stocks, "index": str(index["symbol"]),
           "first": str(index["first_date"]), "last": str(index["last_date"]), "core": core, "data": engine}
    running.stop(grace=0.5)
    data_db.dispose_all()


class SweepApi:
    def __init__(self, channel: grpc.Channel, token: str) -> None:
        self.stub = sweep_pb2_grpc.SweepServiceStub(channel)
        self.md = (("authorization", f"Bearer {token}"),)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.stub, name)
        return lambda request, timeout=15.0: method(request, metadata=self.md, timeout=timeout)


def space(**ranges: dict[str, Any]) -> dict[str, sweep_pb2.ParamSpace]:
    out = {}
    for name, r in ranges.items():
        ps = sweep_pb2.ParamSpace()
        for v in r.get("values", []):
            ps.values.append(struct_pb2.Value(number_value=v))
        for key in ("min", "max", "step"):
            if key in r:
                setattr(ps, key, r[key])
        ps.log = r.get("log", False)
        out[name] = ps
    return out


def request(env: dict[str, Any], **overrides: Any) -> sweep_pb2.CreateSweepRequest:
    cfg = engine_pb2.BacktestConfig(start_date=env["first"], end_date=env["last"], symbols=env["stocks"][:2],
                                    benchmark=env["index"])
    req = sweep_pb2.CreateSweepRequest(
        strategy_code=DUAL_MA, strategy_name="dual ma", config=cfg,
        space=space(short_window={"min": 3, "max": 5, "step": 1}, long_window={"values": [10, 20]}),
        constraints=["short_window < long_window"],
        objective=sweep_pb2.Objective(metric="sharpe_ratio", direction="maximize"))
    for key, value in overrides.items():
        if key == "space":
            req.ClearField("space")
            for k, v in value.items():
                req.space[k].CopyFrom(v)
        elif key == "params":
            req.params.update(value)
        elif isinstance(value, list):
            req.ClearField(key)
            getattr(req, key).extend(value)
        elif hasattr(value, "CopyFrom"):
            getattr(req, key).CopyFrom(value)
        else:
            setattr(req, key, value)
    return req


def wait_sweep(api: SweepApi, sweep_id: int, *statuses: int, timeout: float = 60.0) -> sweep_pb2.Sweep:
    deadline = time.monotonic() + timeout
    while True:
        sweep = api.GetSweep(sweep_pb2.GetSweepRequest(sweep_id=sweep_id))
        if sweep.status in statuses:
            return sweep
        if time.monotonic() > deadline:
            raise AssertionError(f"sweep {sweep_id} is {S.Status.Name(sweep.status)}: {sweep}")
        time.sleep(0.1)


def all_trials(api: SweepApi, sweep_id: int, **kw: Any) -> list[sweep_pb2.Trial]:
    return list(api.ListTrials(sweep_pb2.ListTrialsRequest(sweep_id=sweep_id, limit=1000, **kw)).trials)


def metric(trial: sweep_pb2.Trial, name: str) -> float | None:
    return getattr(trial.metrics, name) if trial.metrics.HasField(name) else None


@pytest.fixture
def sweep_tables(db_url):  # type: ignore[no-untyped-def]
    """Empties the sweep tables after the test (make_app empties the task tables)."""
    yield
    from sqlalchemy import create_engine, text

    db = create_engine(db_url)
    with db.begin() as conn:
        conn.execute(text("DELETE FROM backtest_sweep_trials"))
        conn.execute(text("DELETE FROM backtest_sweeps"))
    db.dispose()


@pytest.fixture
def sweep_app(make_app, real_engine, sweep_tables):  # type: ignore[no-untyped-def]
    return make_app(engine_addr=real_engine["addr"], engine_token=SERVICE_TOKEN, sweep_batch_trials=4,
                    engine_timeout=20.0)


def test_grid_sweep_runs_every_point_ranks_and_reuses_results(sweep_app, real_engine) -> None:
    import grpc as _grpc

    channel = _grpc.insecure_channel(f"127.0.0.1:{sweep_app.port}")
    api = SweepApi(channel, "user:1")
    created = api.CreateSweep(request(real_engine, result_constraints=["max_drawdown < 0.5"]))
    assert created.status in (S.PENDING, S.RUNNING) and created.trials_total == 6 and created.method == sweep_pb2.GRID
    done = wait_sweep(api, created.id, S.COMPLETED)
    assert (done.done, done.failed, done.cached, done.queued, done.running) == (6, 0, 0, 0, 0)
    trials = all_trials(api, created.id, order_by="number", order="asc")
    points = [(int(t.params["short_window"]), int(t.params["long_window"])) for t in trials]
    # parameters sorted by name (long_window, short_window), the last varying fastest
    assert points == [(3, 10), (4, 10), (5, 10), (3, 20), (4, 20), (5, 20)]
    assert all(t.status == T.DONE and len(t.start_date) == 10 for t in trials)
    # the best: the highest Sharpe among trials meeting the result constraint (ties: lower number)
    eligible = [t for t in trials if metric(t, "max_drawdown") is not None and metric(t, "max_drawdown") < 0.5
                and metric(t, "sharpe_ratio") is not None]
    expected = max(eligible, key=lambda t: (metric(t, "sharpe_ratio"), -t.number))
    assert done.best.number == expected.number and done.best.rank == 1 and done.best.ranked
    assert done.best.objective == pytest.approx(metric(expected, "sharpe_ratio"))
    assert done.trials_evaluated == 6 and 0.0 <= done.deflated_sharpe <= 1.0
    # ListTrials by the objective: best first, ranks 1..n
    ranked = all_trials(api, created.id)
    assert ranked[0].number == expected.number
    sharpes = [metric(t, "sharpe_ratio") for t in ranked if t.ranked]
    assert sharpes == sorted(sharpes, reverse=True)
    by_return = all_trials(api, created.id, order_by="total_return", order="asc")
    returns = [metric(t, "total_return") for t in by_return]
    assert returns == sorted(returns)
    # heatmap: each cell is the trial's metric at that point
    hm = api.GetHeatmap(sweep_pb2.GetHeatmapRequest(sweep_id=created.id, x="short_window", y="long_window",
                                                    metric="total_return"))
    assert [v.number_value for v in hm.x_values] == [3, 4, 5] and [v.number_value for v in hm.y_values] == [10, 20]
    for t in trials:
        ix, iy = [3, 4, 5].index(int(t.params["short_window"])), [10, 20].index(int(t.params["long_window"]))
        assert hm.values[iy * 3 + ix] == pytest.approx(metric(t, "total_return"))

    # The same sweep again: every point comes from the cache, the same best.
    again = api.CreateSweep(request(real_engine, result_constraints=["max_drawdown < 0.5"]))
    again = wait_sweep(api, again.id, S.COMPLETED, timeout=10)
    assert (again.cached, again.done) == (6, 0)
    assert again.best.number == done.best.number and again.best.objective == done.best.objective
    # a bigger grid reuses the overlapping points only
    wider = api.CreateSweep(request(real_engine, space=space(short_window={"min": 3, "max": 6, "step": 1},
                                                             long_window={"values": [10, 20]})))
    wider = wait_sweep(api, wider.id, S.COMPLETED)
    assert (wider.cached, wider.done) == (6, 2)

    listed = api.ListSweeps(sweep_pb2.ListSweepsRequest(limit=2))
    assert listed.total == 3 and [s.id for s in listed.sweeps] == [wider.id, again.id]

    # promote the best to a full task: orders and daily portfolio, same total return
    from tasksvc_helpers import Api

    tasks = Api(channel, "user:1")
    task = api.PromoteTrial(sweep_pb2.PromoteTrialRequest(sweep_id=created.id, trial_number=done.best.number))
    assert task.status == task_pb2.Task.PENDING and task.params["short_window"] == done.best.params["short_window"]
    wait_status(tasks, task.id, task_pb2.Task.COMPLETED, timeout=30)
    result = tasks.tasks.GetResult(task_pb2.GetResultRequest(task_id=task.id))
    assert result.total_return == pytest.approx(metric(done.best, "total_return"), rel=1e-9)
    channel.close()


def test_random_sweep_is_reproducible_and_walk_forward_stitches(sweep_app, real_engine) -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{sweep_app.port}")
    api = SweepApi(channel, "user:2")
    rnd = dict(method=sweep_pb2.RANDOM, seed=7, max_trials=4,
               space=space(short_window={"min": 2, "max": 8, "step": 1}, long_window={"min": 10, "max": 30, "step": 2}))
    a = wait_sweep(api, api.CreateSweep(request(real_engine, **rnd)).id, S.COMPLETED)
    b = wait_sweep(api, api.CreateSweep(request(real_engine, **rnd)).id, S.COMPLETED, timeout=10)
    pa = [dict(t.params) for t in all_trials(api, a.id, order_by="number", order="asc")]
    pb = [dict(t.params) for t in all_trials(api, b.id, order_by="number", order="asc")]
    assert pa == pb and len(pa) == 4 and all(p["short_window"] < p["long_window"] for p in pa)
    assert b.cached == 4 and b.best.number == a.best.number
    other = wait_sweep(api, api.CreateSweep(request(real_engine, **{**rnd, "seed": 8})).id, S.COMPLETED)
    assert [dict(t.params) for t in all_trials(api, other.id, order_by="number", order="asc")] != pa

    wf = request(real_engine, validation=sweep_pb2.Validation(kind=sweep_pb2.Validation.WALK_FORWARD,
                                                              train_days=60, test_days=30),
                 space=space(short_window={"values": [3, 5]}, long_window={"values": [10, 15]}))
    sweep = wait_sweep(api, api.CreateSweep(wf).id, S.COMPLETED, S.FAILED)
    folds = api.GetFolds(sweep_pb2.GetFoldsRequest(sweep_id=sweep.id))
    assert folds.kind == sweep_pb2.Validation.WALK_FORWARD and len(folds.folds) == 3  # 160 days: 60 + 3×30
    trials = {t.number: t for t in all_trials(api, sweep.id)}
    chained: list[float] = []
    level = 1_000_000.0
    for fold in folds.folds:
        assert fold.train_end < fold.test_start <= fold.test_end
        ins = [t for t in trials.values() if t.fold == fold.index and t.phase == T.IN_SAMPLE]
        assert len(ins) == 4 and all(t.end_date == fold.train_end for t in ins)
        best = max((t for t in ins if t.ranked), key=lambda t: (metric(t, "sharpe_ratio"), -t.number))
        assert fold.best_trial == best.number and fold.in_sample_sharpe == pytest.approx(metric(best, "sharpe_ratio"))
        oos = trials[fold.out_of_sample_trial]
        assert oos.phase == T.OUT_OF_SAMPLE and oos.start_date == fold.test_start and oos.end_date == fold.test_end
        assert dict(oos.params) == dict(best.params)
        level *= 1 + metric(oos, "total_return")
        chained.append(level)
    assert len(folds.stitched_dates) == 90 and folds.stitched_nav[-1] == pytest.approx(chained[-1], rel=1e-9)
    assert folds.stitched_return == pytest.approx(chained[-1] / 1_000_000 - 1, rel=1e-9)
    channel.close()


def test_bad_input_names_the_field_and_limits(sweep_app, real_engine) -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{sweep_app.port}")
    api = SweepApi(channel, "user:3")
    cases = [
        (dict(space={}), "space"),
        (dict(space=space(short_window={"min": 1, "max": 400, "step": 1},
                          long_window={"min": 1, "max": 400, "step": 1}), max_trials=50), "space"),
        (dict(objective=sweep_pb2.Objective(metric="sharpness")), "objective.metric"),
        (dict(objective=sweep_pb2.Objective(metric="cvar_95")), "objective.metric"),  # not per trial
        (dict(constraints=["short_window < medium_window"]), "constraints[0]"),
        (dict(constraints=["__import__('os').system('true') < 1"]), "constraints[0]"),
        (dict(constraints=["short_window.bit_length() < 3"]), "constraints[0]"),
        (dict(result_constraints=["profit < 3"]), "result_constraints[0]"),
    ]
    for overrides, fieldname in cases:
        err = expect(lambda o=overrides: api.CreateSweep(request(real_engine, **o)), grpc.StatusCode.INVALID_ARGUMENT)
        assert fieldname in [f for f, _ in field_violations(err)], (overrides, err.details())
        err = expect(lambda o=overrides: api.EstimateSweep(request(real_engine, **o)), grpc.StatusCode.INVALID_ARGUMENT)
        assert fieldname in [f for f, _ in field_violations(err)]
    assert api.ListSweeps(sweep_pb2.ListSweepsRequest()).total == 0  # nothing half-written

    estimate = api.EstimateSweep(request(real_engine))
    assert estimate.trials == 6 and estimate.seconds > 0 and estimate.basis

    # limits: trials per sweep and active sweeps per user → RESOURCE_EXHAUSTED (HTTP 429)
    expect(lambda: api.CreateSweep(request(real_engine, method=sweep_pb2.RANDOM, max_trials=5000,
                                           space=space(short_window={"min": 2, "max": 8, "step": 1},
                                                       long_window={"min": 10, "max": 30, "step": 1}))),
           grpc.StatusCode.RESOURCE_EXHAUSTED)
    slow = dict(params={"pause": 0.05})
    active = [api.CreateSweep(request(real_engine, **slow)).id for _ in range(3)]
    expect(lambda: api.CreateSweep(request(real_engine, **slow)), grpc.StatusCode.RESOURCE_EXHAUSTED)

    # another user: NOT_FOUND on every RPC
    intruder = SweepApi(channel, "user:4")
    sid = active[0]
    for call in (lambda: intruder.GetSweep(sweep_pb2.GetSweepRequest(sweep_id=sid)),
                 lambda: intruder.ListTrials(sweep_pb2.ListTrialsRequest(sweep_id=sid)),
                 lambda: intruder.GetHeatmap(sweep_pb2.GetHeatmapRequest(sweep_id=sid, x="short_window",
                                                                         y="long_window")),
                 lambda: intruder.GetFolds(sweep_pb2.GetFoldsRequest(sweep_id=sid)),
                 lambda: next(iter(intruder.WatchSweep(sweep_pb2.WatchSweepRequest(sweep_id=sid)))),
                 lambda: intruder.CancelSweep(sweep_pb2.CancelSweepRequest(sweep_id=sid)),
                 lambda: intruder.DeleteSweep(sweep_pb2.DeleteSweepRequest(sweep_id=sid)),
                 lambda: intruder.PromoteTrial(sweep_pb2.PromoteTrialRequest(sweep_id=sid, trial_number=1))):
        expect(call, grpc.StatusCode.NOT_FOUND)
    assert intruder.ListSweeps(sweep_pb2.ListSweepsRequest()).total == 0

    # cancel: the running batch's worker is killed within a second, the rest skipped
    core = real_engine["core"]
    deadline = time.monotonic() + 20
    while core.active_runs() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert core.active_runs() > 0
    for sid in active:
        cancelled = api.CancelSweep(sweep_pb2.CancelSweepRequest(sweep_id=sid))
        assert cancelled.status == S.CANCELLED
    t0 = time.monotonic()
    while core.active_runs() and time.monotonic() - t0 < 3:
        time.sleep(0.02)
    assert core.active_runs() == 0 and time.monotonic() - t0 < 1.0
    final = api.GetSweep(sweep_pb2.GetSweepRequest(sweep_id=active[0]))
    assert final.status == S.CANCELLED and final.queued == 0 and final.running == 0 and final.skipped >= 1
    expect(lambda: api.CancelSweep(sweep_pb2.CancelSweepRequest(sweep_id=active[0])),
           grpc.StatusCode.FAILED_PRECONDITION)
    api.DeleteSweep(sweep_pb2.DeleteSweepRequest(sweep_id=active[0]))
    expect(lambda: api.GetSweep(sweep_pb2.GetSweepRequest(sweep_id=active[0])), grpc.StatusCode.NOT_FOUND)
    channel.close()


def test_watch_streams_trials_best_and_the_end(sweep_app, real_engine) -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{sweep_app.port}")
    api = SweepApi(channel, "user:5")
    created = api.CreateSweep(request(real_engine))
    events = list(api.stub.WatchSweep(sweep_pb2.WatchSweepRequest(sweep_id=created.id), metadata=api.md, timeout=60))
    kinds = [sweep_pb2.SweepEvent.Kind.Name(e.kind) for e in events]
    assert kinds[0] == "SNAPSHOT" and kinds[-1] == "STATUS" and events[-1].terminal
    assert events[-1].sweep.status == S.COMPLETED
    finished = [e.trial.number for e in events if e.kind == sweep_pb2.SweepEvent.TRIAL]
    assert sorted(finished) == list(range(1, 7))
    bests = [e.trial.number for e in events if e.kind == sweep_pb2.SweepEvent.BEST]
    assert bests and bests[-1] == events[-1].sweep.best.number
    assert not math.isnan(events[-1].sweep.elapsed_seconds)
    json.dumps(kinds)
    channel.close()


def test_max_parallel_tpe_determinism_and_single_tasks_not_starved(make_app, sweep_tables, real_engine,
                                                                   db_url) -> None:
    from sqlalchemy import create_engine, text
    from tasksvc_helpers import Api

    # One active task per user at most: a sweep's trials must not count against it.
    sweep_app = make_app(engine_addr=real_engine["addr"], engine_token=SERVICE_TOKEN, sweep_batch_trials=4,
                         engine_timeout=20.0, max_active_per_user=1)

    channel = grpc.insecure_channel(f"127.0.0.1:{sweep_app.port}")
    api = SweepApi(channel, "user:6")
    db = create_engine(db_url)
    # A sweep that can take every engine slot (16 points, 4 per engine call, no max_parallel), and a
    # single task submitted right after it: the task waits in the engine's FIFO slot queue behind
    # the two batches already running, not behind the whole sweep.
    wide = request(real_engine, params={"pause": 0.002},
                   space=space(short_window={"values": [3, 4, 5, 6]}, long_window={"values": [10, 12, 16, 20]}))
    sweep = api.CreateSweep(wide)
    task = Api(channel, "user:6").tasks.RunBacktest(task_pb2.RunBacktestRequest(
        strategy_code=DUAL_MA, params=struct_pb2.Struct(fields={
            "short_window": struct_pb2.Value(number_value=3), "long_window": struct_pb2.Value(number_value=10)}),
        config=wide.config))
    tasks = Api(channel, "user:6")
    wait_status(tasks, task.id, task_pb2.Task.COMPLETED, timeout=90)
    at_task_end = api.GetSweep(sweep_pb2.GetSweepRequest(sweep_id=sweep.id))
    assert at_task_end.status == S.RUNNING and at_task_end.queued + at_task_end.running > 0, at_task_end
    assert wait_sweep(api, sweep.id, S.COMPLETED).done == 16

    # max_parallel = 1: never more than one engine call of the sweep at a time
    narrow = request(real_engine, max_parallel=1, params={"pause": 0.003},
                     space=space(short_window={"values": [3, 4, 5, 6]}, long_window={"values": [10, 20]}))
    sweep = api.CreateSweep(narrow)
    batches_seen: set[int] = set()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        with db.connect() as conn:
            batches_seen.add(int(conn.execute(text(
                "SELECT COUNT(DISTINCT lease_owner) FROM backtest_sweep_trials WHERE sweep_id = :s AND status = "
                "'RUNNING'"), {"s": sweep.id}).scalar_one()))
        if api.GetSweep(sweep_pb2.GetSweepRequest(sweep_id=sweep.id)).status == S.COMPLETED:
            break
        time.sleep(0.05)
    db.dispose()
    assert max(batches_seen) == 1, batches_seen
    done = api.GetSweep(sweep_pb2.GetSweepRequest(sweep_id=sweep.id))
    assert done.status == S.COMPLETED and done.done == 8
    assert all(t.attempts == 1 for t in all_trials(api, sweep.id))

    # TPE: generations of max_parallel points; the same seed plans the same trials and best
    tpe = dict(method=sweep_pb2.TPE, seed=3, max_trials=6, max_parallel=3,
               space=space(short_window={"min": 2, "max": 9, "step": 1}, long_window={"min": 10, "max": 40}))
    first = wait_sweep(api, api.CreateSweep(request(real_engine, **tpe)).id, S.COMPLETED)
    second = wait_sweep(api, api.CreateSweep(request(real_engine, **tpe)).id, S.COMPLETED)
    p1 = [dict(t.params) for t in all_trials(api, first.id, order_by="number", order="asc")]
    p2 = [dict(t.params) for t in all_trials(api, second.id, order_by="number", order="asc")]
    assert len(p1) == 6 and p1 == p2 and second.cached == 6 and second.best.number == first.best.number
    assert all(p["short_window"] < p["long_window"] for p in p1)
    channel.close()


# Fails the trial unless the int parameters reach it as ints (Struct carries doubles only).
STRICT_INTS = DUAL_MA.replace('''    def initialize(self):
''', '''    def initialize(self):
        for name in ("short_window", "long_window", "lot"):
            if type(self.params[name]) is not int:
                raise TypeError(f"{name} is {self.params[name]!r}, not an int")
        if type(self.params["ratio"]) is not float:
            raise TypeError(f"ratio is {self.params['ratio']!r}, not a float")
''')


def test_int_parameters_stay_ints_for_the_strategy_in_rest_json_and_when_promoted(sweep_app, real_engine,
                                                                                  db_url) -> None:
    from sqlalchemy import create_engine, text
    from tasksvc_helpers import Api

    from services import rest

    channel = grpc.insecure_channel(f"127.0.0.1:{sweep_app.port}")
    api = SweepApi(channel, "user:7")
    req = request(real_engine, params={"lot": 100},
                  space=space(short_window={"min": 3, "max": 4, "step": 1}, long_window={"values": [10]},
                              ratio={"min": 0.25, "max": 0.5, "step": 0.25}))
    req.strategy_code = STRICT_INTS
    done = wait_sweep(api, api.CreateSweep(req).id, S.COMPLETED, S.FAILED)
    assert (done.status, done.done, done.failed) == (S.COMPLETED, 4, 0), [t.error_message for t in
                                                                          all_trials(api, done.id)]

    def ints(params: dict[str, Any]) -> None:
        assert [type(params[k]) for k in ("short_window", "long_window", "lot", "ratio")] == [int, int, int, float]

    # REST renders these replies (services.rest): whole numbers as JSON integers
    listed = rest.to_json_value(api.ListTrials(sweep_pb2.ListTrialsRequest(sweep_id=done.id, limit=10)))
    assert len(listed["trials"]) == 4
    for t in listed["trials"]:
        ints(t["params"])
    assert b'"short_window":3.0' not in rest.dumps(listed) and b'"short_window":3' in rest.dumps(listed)
    got = rest.to_json_value(api.GetSweep(sweep_pb2.GetSweepRequest(sweep_id=done.id)))
    ints(got["best"]["params"])
    assert got["params"] == {"lot": 100} and type(got["params"]["lot"]) is int
    assert got["space"]["long_window"]["values"] == [10] and type(got["space"]["long_window"]["values"][0]) is int
    assert (got["space"]["short_window"]["type"], got["space"]["ratio"]["type"]) == ("int", "float")
    hm = rest.to_json_value(api.GetHeatmap(sweep_pb2.GetHeatmapRequest(sweep_id=done.id, x="short_window",
                                                                       y="ratio")))
    assert hm["x_values"] == [3, 4] and all(type(x) is int for x in hm["x_values"]) and hm["y_values"] == [0.25, 0.5]

    # promoted: the task stores and shows ints, and the strict strategy completes as a full task
    task = api.PromoteTrial(sweep_pb2.PromoteTrialRequest(sweep_id=done.id, trial_number=done.best.number))
    ints(rest.to_json_value(task)["params"])
    db = create_engine(db_url)
    with db.connect() as conn:
        stored = json.loads(conn.execute(text("SELECT params_json FROM backtest_tasks WHERE id = :i"),
                                         {"i": task.id}).scalar_one())
    db.dispose()
    ints(stored)
    finished = wait_status(Api(channel, "user:7"), task.id, task_pb2.Task.COMPLETED, task_pb2.Task.FAILED,
                           timeout=30)
    assert finished.status == task_pb2.Task.COMPLETED, finished.error_message
    channel.close()


# Burns `burn` seconds of CPU per trial (in initialize): the work of a batch grows with its size.
CPU_BURNER = DUAL_MA.replace('''    def initialize(self):
''', '''    def initialize(self):
        import time
        t0 = time.process_time()
        while time.process_time() - t0 < float(self.params.get("burn", 0)):
            pass
''')


def test_a_batch_over_the_workers_cpu_limit_is_split_and_every_trial_runs_once(make_app, sweep_tables, real_engine,
                                                                                caplog) -> None:
    """The engine fails a whole batch that hits its worker's CPU limit (CPU_LIMIT): the runner
    puts the batch back (attempt not charged) and runs that sweep's trials in halves. 8 trials of
    0.45 s CPU (3.6 s) in one worker exceed a 2 s limit whatever the worker's start-up used (the
    limit is counted from the next whole second after it: 2–3 s for the strategy — 0.35 s a trial
    fit in that when the start-up was cheap); 4 of them (1.8 s) may split once more, and every
    trial still runs once."""
    import logging

    from zquant.engine.v1 import engine_pb2_grpc

    tight_core = serve.build_core(real_engine["data"], limits=limits_mod.SandboxLimits(
        memory_mb=768, cpu_seconds=2, wall_seconds=60, spares=0), slots=2, queue=8)
    settings = ServerSettings(service="engine", addr="127.0.0.1:0", database_url="sqlite://", max_workers=8,
                              grace_seconds=1.0)
    tight = serve.start_server(settings, tight_core, ServiceTokenAuthenticator())
    tight.set_serving(True)
    try:
        app = make_app(engine_addr=f"127.0.0.1:{tight.port}", engine_token=SERVICE_TOKEN, sweep_batch_trials=8,
                       engine_timeout=60.0)
        channel = grpc.insecure_channel(f"127.0.0.1:{app.port}")
        api = SweepApi(channel, "user:8")
        grid = space(short_window={"values": [3, 4, 5, 6]}, long_window={"values": [10, 20]})
        req = request(real_engine, params={"burn": 0.45}, space=grid)
        req.strategy_code = CPU_BURNER
        with caplog.at_level(logging.WARNING, logger="zquant.task.sweeps"):
            done = wait_sweep(api, api.CreateSweep(req).id, S.COMPLETED, S.FAILED, timeout=90)
        trials = all_trials(api, done.id, order_by="number", order="asc")
        assert (done.status, done.done, done.failed, done.trials_total) == (S.COMPLETED, 8, 0, 8), \
            [t.error_message for t in trials]
        splits = [r for r in caplog.records if r.getMessage() == "trial batch over a worker limit; splitting"]
        assert splits and splits[0].trials == 8 and splits[0].kind == "CPU_LIMIT", caplog.text
        # exactly once: every point once, one attempt each (the split batch was not charged)
        assert sorted((int(t.params["short_window"]), int(t.params["long_window"])) for t in trials) == \
            sorted((x, y) for x in (3, 4, 5, 6) for y in (10, 20))
        assert all(t.status == T.DONE and t.attempts == 1 for t in trials), [(t.number, t.attempts) for t in trials]
        channel.close()
    finally:
        tight.stop(grace=0.5)

    # the right results: each trial's metrics equal those of the same point run in one unlimited
    # batch (burn 0 changes nothing the strategy trades)
    ref = engine_pb2.RunTrialsRequest(strategy_code=CPU_BURNER, config=req.config, reference="split-reference")
    for t in trials:
        ref.params.append(struct_pb2.Struct(fields={**{k: v for k, v in t.params.fields.items() if k != "burn"}}))
    with grpc.insecure_channel(real_engine["addr"]) as ch:
        events = list(engine_pb2_grpc.EngineServiceStub(ch).RunTrials(
            ref, metadata=[("authorization", f"Bearer {SERVICE_TOKEN}")], timeout=60))
    expected = {e.trial.index: e.trial for e in events if e.WhichOneof("event") == "trial"}
    assert len(expected) == 8
    for k, t in enumerate(trials):
        assert not expected[k].HasField("failure")
        assert t.metrics == expected[k].metrics and t.trades == expected[k].trades, t.number
