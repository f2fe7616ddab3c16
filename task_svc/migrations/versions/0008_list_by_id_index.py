"""ListTasks ordered by id: an index on (user_id, id).

The page's ids are read by an index-only scan in the list's order (repository.page_statements).
Ordered by id, the one index that starts with user_id and ends with id was
ix_tasks_user_status_id (user_id, status, id): PostgreSQL read every id of the user and sorted
them (6–8 ms of a page at 10,000 tasks per user; bench/tasks_list_bench.py --explain all).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tasks_user_id", "backtest_tasks", ["user_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_tasks_user_id", table_name="backtest_tasks")
