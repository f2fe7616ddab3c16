"""Sweep trace context: backtest_sweeps.trace_context, the W3C traceparent/tracestate (JSON) of the
call that created the sweep, so each trial batch's run (on any replica, later) continues that
trace: one sweep, one trace.

Nullable: rows written before, or while tracing is off, have none (each batch starts a new trace).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("backtest_sweeps") as batch:
        batch.add_column(sa.Column("trace_context", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("backtest_sweeps") as batch:
        batch.drop_column("trace_context")
