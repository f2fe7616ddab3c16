"""backtest_task_totals (migration 0009): each user's task count, kept by triggers — backfilled
from the tasks already there, then following every insert and delete whoever makes it."""

from __future__ import annotations

from sqlalchemy import create_engine, delete, func, select, text
from sqlalchemy.orm import Session

from services.migrations import upgrade
from services.paging import Page
from task_svc.models import Task, TaskStatus, TaskTotal
from task_svc.repository import TaskRepository


def _task(user_id: int, name: str = "s") -> Task:
    return Task(user_id=user_id, strategy_name=name, strategy_code="pass", params_json="{}", config_json="{}",
                start_date="2015-01-05", end_date="2015-12-31", status=TaskStatus.COMPLETED.value)


def _totals(session: Session) -> dict[int, int]:
    return {t.user_id: t.tasks for t in session.scalars(select(TaskTotal)) if t.tasks}


def _counts(session: Session) -> dict[int, int]:
    return dict(session.execute(select(Task.user_id, func.count()).group_by(Task.user_id)).all())  # type: ignore[arg-type]


def test_totals_are_backfilled_then_follow_inserts_and_deletes(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        upgrade("task", engine, "0008")
        with Session(engine) as session, session.begin():
            session.add_all([_task(1), _task(1), _task(2)])
        upgrade("task", engine)
        with Session(engine) as session:
            assert _totals(session) == {1: 2, 2: 1}
        with Session(engine) as session, session.begin():
            session.add_all([_task(2), _task(3), _task(3)])
            session.execute(delete(Task).where(Task.user_id == 1, Task.id == select(func.min(Task.id))
                                               .where(Task.user_id == 1).scalar_subquery()))
        with Session(engine) as session, session.begin():  # a write rolled back leaves no trace
            session.add(_task(1))
            session.flush()
            session.rollback()
        with engine.begin() as conn:  # plain SQL too: the database keeps the totals, not the service
            conn.execute(text("DELETE FROM backtest_tasks WHERE user_id = 3"))
        with Session(engine) as session:
            assert _totals(session) == _counts(session) == {1: 1, 2: 2}
            for user_id, want in ((1, 1), (2, 2), (3, 0), (4, 0)):
                rows, total = TaskRepository(session, user_id).list_page(Page(0, 100, "created_at", True))
                assert (len(rows), total) == (want, want)
                assert TaskRepository(session, user_id).list_page(Page(5, 100, "id", False)) == ([], want)
    finally:
        engine.dispose()
