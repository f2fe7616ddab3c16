"""The runner stores a batch's results in one executemany per set of columns: every trial still
held under the batch's token gets its result, one no longer held (cancelled, taken over) is left
alone, and the NAV is stored as json.dumps would write it."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select, update
from test_sweep_watch import make_sweep, sessions  # noqa: F401  (the fixture)
from zquant.engine.v1 import engine_pb2

from services.db import transaction
from sweeplib.spec import parse_spec
from task_svc.config import TaskSettings
from task_svc.models import SweepTrial
from task_svc.sweep_repository import Batch
from task_svc.sweep_runner import SweepRunner, _BatchRun

OWNER = "replica:token"


def test_a_batch_is_stored_at_once_and_only_where_still_held(sessions: Any) -> None:  # noqa: F811
    sweep_id = make_sweep(sessions, 4)
    with transaction(sessions) as session:
        session.execute(update(SweepTrial).where(SweepTrial.sweep_id == sweep_id, SweepTrial.number <= 3)
                        .values(status="RUNNING", lease_owner=OWNER))
        session.execute(update(SweepTrial).where(SweepTrial.sweep_id == sweep_id, SweepTrial.number == 3)
                        .values(status="SKIPPED", lease_owner=None))  # cancelled meanwhile
        trials = list(session.scalars(select(SweepTrial).where(SweepTrial.sweep_id == sweep_id)
                                      .order_by(SweepTrial.number)))[:3]
        session.expunge_all()
    dates = ["2020-01-02", "2020-01-03"]
    results = {0: engine_pb2.TrialResult(index=0, metrics=engine_pb2.Metrics(sharpe_ratio=1.25), trades=4,
                                         dates=dates, nav=[100000.0, 100123.5]),
               1: engine_pb2.TrialResult(index=1, failure=engine_pb2.EngineError(message="boom")),
               2: engine_pb2.TrialResult(index=2, metrics=engine_pb2.Metrics(sharpe_ratio=9.0), dates=dates,
                                         nav=[1.0, 2.0])}
    runner = SweepRunner(sessions, None, TaskSettings())  # type: ignore[arg-type]
    spec = parse_spec({"space": {"a": {"min": 1, "max": 4, "step": 1}}, "method": "grid",
                       "objective": {"metric": "sharpe_ratio", "direction": "maximize"}}, max_trials_limit=10)
    runner._store(_BatchRun(Batch(sweep_id, 7, OWNER, [t.id for t in trials])), trials, results, 0.5, spec)
    with sessions() as session:
        rows = {t.number: t for t in session.scalars(select(SweepTrial).where(SweepTrial.sweep_id == sweep_id))}
    one, two, three, four = rows[1], rows[2], rows[3], rows[4]
    assert (one.status, one.objective, one.trades, one.seconds, one.lease_owner) == ("DONE", 1.25, 4, 0.5, None)
    assert one.nav_json == json.dumps({"dates": dates, "nav": [100000.0, 100123.5]})
    assert json.loads(one.metrics_json)["sharpe_ratio"] == 1.25 and one.finished_at is not None
    assert (two.status, two.error_message, two.nav_json, two.lease_owner) == ("FAILED", "boom", "", None)
    assert (three.status, three.nav_json, three.objective) == ("SKIPPED", "", None)  # not held: left alone
    assert (four.status, four.finished_at) == ("QUEUED", None)
