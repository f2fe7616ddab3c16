"""The sweep watch reads what changed: after its snapshot, a poll decodes only the trials finished
since the last one (a finished trial never changes) and reads the best's NAV only when the best
changes — while the events and their values stay those of a full re-read, whichever writer (any
replica) changed the rows."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import update

import task_svc.sweeps as sweeps_mod
from services.db import make_engine, make_session_factory, transaction
from task_svc.config import TaskSettings
from task_svc.models import Sweep, SweepTrial, TaskBase, utcnow
from task_svc.sweeps import Sweeps, WatchEvent

USER = 7
NAV = json.dumps({"dates": [f"2020-01-{d:02d}" for d in range(1, 21)],
                  "nav": [100000.0 * (1 + 0.002 * d + 0.001 * (d % 3)) for d in range(20)]})


@pytest.fixture
def sessions(tmp_path) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'task.db'}")
    TaskBase.metadata.create_all(engine)
    yield make_session_factory(engine)
    engine.dispose()


def make_sweep(sessions: Any, n: int) -> int:
    now = utcnow()
    search = {"space": {"a": {"min": 1, "max": n, "step": 1}}, "method": "grid",
              "objective": {"metric": "sharpe_ratio", "direction": "maximize"}}
    with transaction(sessions) as session:
        sweep = Sweep(user_id=USER, strategy_name="s", strategy_code="", method="GRID", max_trials=n,
                      config_json=json.dumps({"initial_capital": 100000, "start_date": "2020-01-01",
                                              "end_date": "2020-01-31"}),
                      spec_json=json.dumps(search), request_json=json.dumps(search), status="RUNNING",
                      folds_json=json.dumps([{"index": 0, "train_start": "2020-01-01", "train_end": "2020-01-31",
                                              "test_start": "", "test_end": ""}]),
                      created_at=now, updated_at=now, started_at=now)
        session.add(sweep)
        session.flush()
        for k in range(1, n + 1):
            session.add(SweepTrial(sweep_id=sweep.id, user_id=USER, number=k, seq=k - 1, fold=0, phase="FULL",
                                   start_date="2020-01-01", end_date="2020-01-31", params_json=json.dumps({"a": k}),
                                   cache_key=f"k{k}", status="QUEUED", created_at=now))
        return sweep.id


def set_status(sessions: Any, sweep_id: int, numbers: list[int], status: str, sharpe: float = 0.0) -> None:
    """What a runner (of any replica) writes: through its own session, not the watch's."""
    values: dict[str, Any] = {"status": status}
    if status == "DONE":
        values |= {"metrics_json": json.dumps({"sharpe_ratio": sharpe}), "nav_json": NAV, "objective": sharpe,
                   "finished_at": utcnow()}
    with transaction(sessions) as session:
        for number in numbers:
            session.execute(update(SweepTrial).where(SweepTrial.sweep_id == sweep_id, SweepTrial.number == number)
                            .values(**values))


class Counting:
    """Counts what the watch decodes and reads, around the module's own functions."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.decoded: list[int] = []
        self.navs = 0
        view, nav = sweeps_mod._view, sweeps_mod.SweepRepository.nav

        def counted_view(sweep: Any, trial: Any) -> Any:
            self.decoded.append(trial.number)
            return view(sweep, trial)

        def counted_nav(repo: Any, trial_id: int) -> str:
            self.navs += 1
            return nav(repo, trial_id)

        monkeypatch.setattr(sweeps_mod, "_view", counted_view)
        monkeypatch.setattr(sweeps_mod.SweepRepository, "nav", counted_nav)

    def take(self) -> tuple[list[int], int]:
        out = (sorted(self.decoded), self.navs)
        self.decoded, self.navs = [], 0
        return out


def summary(view: Any) -> tuple[Any, ...]:
    return (view.counts, view.best.row.number if view.best else 0, view.best.rank if view.best else 0,
            view.evaluated, view.deflated_sharpe, view.sweep.status)


def test_a_poll_decodes_only_newly_finished_trials_and_reads_the_nav_when_the_best_changes(
        sessions: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    sweep_id = make_sweep(sessions, 10)
    set_status(sessions, sweep_id, [1], "DONE", 0.5)
    set_status(sessions, sweep_id, [2], "DONE", 0.9)
    sweeps = Sweeps(sessions, None, None, TaskSettings())  # type: ignore[arg-type]
    count = Counting(monkeypatch)

    def full() -> tuple[Any, ...]:
        """What a full re-read says (GetSweep's summary), not counted."""
        decoded, navs = list(count.decoded), count.navs
        view = sweeps._summarize(*sweeps._load(USER, sweep_id))
        count.decoded, count.navs = decoded, navs
        return summary(view)

    async def scenario() -> None:
        events: asyncio.Queue[WatchEvent] = asyncio.Queue()

        async def pump() -> None:
            async for event in sweeps.watch(USER, sweep_id, interval=0.01):
                await events.put(event)

        async def step() -> list[WatchEvent]:
            """The events of the next poll that has any (one poll's come together)."""
            out = [await asyncio.wait_for(events.get(), 5)]
            await asyncio.sleep(0.1)
            while not events.empty():
                out.append(events.get_nowait())
            return out

        pumping = asyncio.create_task(pump())
        snapshot = await step()
        assert [e.kind for e in snapshot] == ["SNAPSHOT"]
        assert summary(snapshot[0].view) == full()
        assert snapshot[0].view.best is not None and snapshot[0].view.best.row.number == 2
        count.take()

        await asyncio.to_thread(set_status, sessions, sweep_id, [3, 4, 5], "RUNNING")  # a claim: counts only
        got = await step()
        assert [e.kind for e in got] == ["PROGRESS"]
        assert (got[0].view.counts.running, got[0].view.counts.queued) == (3, 5)
        assert summary(got[0].view) == full()
        assert count.take() == ([], 0)

        await asyncio.to_thread(set_status, sessions, sweep_id, [3, 4], "DONE", 0.1)  # worse: no NAV read
        got = await step()
        assert [(e.kind, e.trial.row.number if e.trial else 0, e.trial.rank if e.trial else 0) for e in got
                ] == [("TRIAL", 3, 3), ("TRIAL", 4, 4)]
        assert summary(got[-1].view) == full()
        assert count.take() == ([3, 4], 0)

        await asyncio.to_thread(set_status, sessions, sweep_id, [5], "DONE", 2.0)  # the new best: NAV read once
        got = await step()
        assert [(e.kind, e.trial.row.number if e.trial else 0, e.trial.rank if e.trial else 0) for e in got
                ] == [("TRIAL", 5, 1), ("BEST", 5, 1)]
        assert summary(got[-1].view) == full() and got[-1].view.deflated_sharpe is not None
        assert count.take() == ([5], 1)

        def cancel() -> None:
            with transaction(sessions) as session:
                session.execute(update(Sweep).where(Sweep.id == sweep_id).values(status="CANCELLED",
                                                                                   completed_at=utcnow()))
        await asyncio.to_thread(cancel)
        got = await step()
        assert [(e.kind, e.terminal) for e in got] == [("STATUS", True)]
        assert count.take() == ([], 0)
        await asyncio.wait_for(pumping, 5)

    asyncio.run(scenario())
