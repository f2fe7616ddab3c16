"""ListTasks ordered by status: an index on (user_id, status, id).

ORDER BY status, id could not use ix_tasks_user_status (user_id, status, created_at), so
PostgreSQL sorted every task of the user (measured with bench/tasks_list_bench.py at 100k tasks).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tasks_user_status_id", "backtest_tasks", ["user_id", "status", "id"])


def downgrade() -> None:
    op.drop_index("ix_tasks_user_status_id", table_name="backtest_tasks")
