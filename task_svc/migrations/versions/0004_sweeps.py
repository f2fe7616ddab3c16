"""Parameter sweeps: backtest_sweeps and their trials (claimed in batches with leases).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backtest_sweeps",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("strategy_id", sa.Integer, nullable=True),
        sa.Column("strategy_name", sa.String(200), nullable=False),
        sa.Column("strategy_code", sa.Text, nullable=False),
        sa.Column("config_json", sa.Text, nullable=False),
        sa.Column("params_json", sa.Text, nullable=False, server_default="{}"),
        sa.Column("spec_json", sa.Text, nullable=False),
        sa.Column("request_json", sa.Text, nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("max_trials", sa.Integer, nullable=False),
        sa.Column("max_parallel", sa.Integer, nullable=False, server_default="0"),
        sa.Column("status", sa.String(16), nullable=False, server_default="PENDING"),
        sa.Column("error_message", sa.Text, nullable=False, server_default=""),
        sa.Column("generations", sa.Integer, nullable=False, server_default="0"),
        sa.Column("engine_version", sa.String(64), nullable=False, server_default=""),
        sa.Column("data_hash", sa.String(128), nullable=False, server_default=""),
        sa.Column("folds_json", sa.Text, nullable=False, server_default="[]"),
        sa.Column("not_before", sa.DateTime, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=True),
        sa.Column("completed_at", sa.DateTime, nullable=True),
        sa.CheckConstraint("status IN ('PENDING','RUNNING','COMPLETED','FAILED','CANCELLED')",
                           name="ck_sweeps_status"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_sweeps_user_created", "backtest_sweeps", ["user_id", "created_at", "id"])
    op.create_index("ix_sweeps_status", "backtest_sweeps", ["status", "created_at", "id"])
    op.create_table(
        "backtest_sweep_trials",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("sweep_id", sa.Integer, sa.ForeignKey("backtest_sweeps.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False, server_default="0"),
        sa.Column("fold", sa.Integer, nullable=False, server_default="0"),
        sa.Column("phase", sa.String(16), nullable=False, server_default="FULL"),
        sa.Column("start_date", sa.String(10), nullable=False),
        sa.Column("end_date", sa.String(10), nullable=False),
        sa.Column("params_json", sa.Text, nullable=False),
        sa.Column("cache_key", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="QUEUED"),
        sa.Column("metrics_json", sa.Text, nullable=False, server_default=""),
        sa.Column("nav_json", sa.Text, nullable=False, server_default=""),
        sa.Column("objective", sa.Double, nullable=True),
        sa.Column("trades", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error_message", sa.Text, nullable=False, server_default=""),
        sa.Column("seconds", sa.Double, nullable=False, server_default="0"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime, nullable=True),
        sa.CheckConstraint("status IN ('QUEUED','RUNNING','DONE','FAILED','CACHED','SKIPPED')",
                           name="ck_trials_status"),
        sa.UniqueConstraint("sweep_id", "number", name="uq_trials_sweep_number"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_trials_sweep_status", "backtest_sweep_trials", ["sweep_id", "status", "number"])
    op.create_index("ix_trials_status_lease", "backtest_sweep_trials", ["status", "lease_expires_at"])
    op.create_index("ix_trials_user_key", "backtest_sweep_trials", ["user_id", "cache_key", "status"])
    op.create_index("ix_trials_lease_owner", "backtest_sweep_trials", ["lease_owner"])


def downgrade() -> None:
    op.drop_table("backtest_sweep_trials")
    op.drop_table("backtest_sweeps")
