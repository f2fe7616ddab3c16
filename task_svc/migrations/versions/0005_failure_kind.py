"""Failure kinds: backtest_tasks.failure_kind (a TaskFailure.Kind name) and failure_line.

Rows written before have none ("" and 0; the API shows kind null).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER a column's constraints in place.
    with op.batch_alter_table("backtest_tasks") as batch:
        batch.add_column(sa.Column("failure_kind", sa.String(32), nullable=False, server_default=""))
        batch.add_column(sa.Column("failure_line", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("backtest_tasks") as batch:
        batch.drop_column("failure_line")
        batch.drop_column("failure_kind")
