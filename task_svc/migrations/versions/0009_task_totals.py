"""Each user's number of tasks, kept by the database: backtest_task_totals.

ListTasks answers the total with every page. Counted, it was an index-only scan of all the
user's index entries on every page: ~1 ms of PostgreSQL CPU at 10,000 tasks a user, half of a
page's database time (bench/tasks_list_bench.py, EXPLAIN ANALYZE). Kept here, it is one primary
key lookup in the page's own statement (repository.page_statements).

Triggers keep it, in the writing transaction, whoever writes: every INSERT and DELETE on
backtest_tasks (the service, COPY, a manual fix) moves the user's row by the rows it added or
removed, under that row's lock, so it is exactly the committed count in every snapshot. Not covered: TRUNCATE (no row
triggers; the totals would have to be truncated too) and changing a task's user_id (never done).

SQLite: a batch migration that rebuilds backtest_tasks (op.batch_alter_table "move and copy")
drops the table's triggers; such a migration must create these again (`create_triggers`).
The task tests assert totals after creates and deletes on both databases.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels = None
depends_on = None

# PostgreSQL: per statement, from its transition table — one upsert per user a statement
# touched. (Per row, COPYing 100,000 tasks took 75 s instead of 4: each update of a user's row
# within the one transaction adds a version the next one has to step over.)
_POSTGRES = [
    """CREATE FUNCTION backtest_task_totals_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO backtest_task_totals (user_id, tasks)
      SELECT user_id, count(*) FROM added GROUP BY user_id
      ON CONFLICT (user_id) DO UPDATE SET tasks = backtest_task_totals.tasks + EXCLUDED.tasks;
  ELSE
    UPDATE backtest_task_totals t SET tasks = t.tasks - d.n
      FROM (SELECT user_id, count(*) AS n FROM removed GROUP BY user_id) d WHERE t.user_id = d.user_id;
  END IF;
  RETURN NULL;
END $$""",
    """CREATE TRIGGER tr_task_totals_insert AFTER INSERT ON backtest_tasks
  REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION backtest_task_totals_follow()""",
    """CREATE TRIGGER tr_task_totals_delete AFTER DELETE ON backtest_tasks
  REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION backtest_task_totals_follow()""",
]
_SQLITE = [
    """CREATE TRIGGER tr_task_totals_insert AFTER INSERT ON backtest_tasks BEGIN
  INSERT INTO backtest_task_totals (user_id, tasks) VALUES (NEW.user_id, 1)
    ON CONFLICT (user_id) DO UPDATE SET tasks = tasks + 1;
END""",
    """CREATE TRIGGER tr_task_totals_delete AFTER DELETE ON backtest_tasks BEGIN
  UPDATE backtest_task_totals SET tasks = tasks - 1 WHERE user_id = OLD.user_id;
END""",
]


def create_triggers() -> None:
    for sql in _POSTGRES if op.get_bind().dialect.name == "postgresql" else _SQLITE:
        op.execute(sql)


def upgrade() -> None:
    op.create_table(
        "backtest_task_totals",
        sa.Column("user_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("tasks", sa.Integer(), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        # No task may be written between the backfill and the triggers.
        op.execute("LOCK TABLE backtest_tasks IN SHARE ROW EXCLUSIVE MODE")
    op.execute("INSERT INTO backtest_task_totals (user_id, tasks) "
               "SELECT user_id, count(*) FROM backtest_tasks GROUP BY user_id")
    create_triggers()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER tr_task_totals_insert ON backtest_tasks")
        op.execute("DROP TRIGGER tr_task_totals_delete ON backtest_tasks")
        op.execute("DROP FUNCTION backtest_task_totals_follow()")
    else:
        op.execute("DROP TRIGGER tr_task_totals_insert")
        op.execute("DROP TRIGGER tr_task_totals_delete")
    op.drop_table("backtest_task_totals")
