"""Trace context: backtest_tasks.trace_context, the W3C traceparent/tracestate (JSON) of the
call that submitted the task, so the dispatcher's run continues that trace.

Nullable: rows written before, or while tracing is off, have none (the run starts a new trace).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("backtest_tasks") as batch:
        batch.add_column(sa.Column("trace_context", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("backtest_tasks") as batch:
        batch.drop_column("trace_context")
