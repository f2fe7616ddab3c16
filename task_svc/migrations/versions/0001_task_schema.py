"""task_svc schema: strategies, tasks, results

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

# Written out rather than imported from models.py: a migration is a frozen snapshot.
# sqlite_autoincrement: without AUTOINCREMENT SQLite reuses the id of a deleted last row, and a
# task id must never name two different tasks (watchers, engine references, logs).


def upgrade() -> None:
    op.create_table(
        "backtest_strategies",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("category", sa.String(50), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("params_schema", sa.Text(), nullable=False),
        sa.Column("is_template", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_strategies_user_created", "backtest_strategies", ["user_id", "created_at"])
    op.create_index("ix_strategies_template_created", "backtest_strategies", ["is_template", "created_at"])

    op.create_table(
        "backtest_tasks",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("strategy_id", sa.Integer(), nullable=True),
        sa.Column("strategy_name", sa.String(200), nullable=False),
        sa.Column("strategy_code", sa.Text(), nullable=False),
        sa.Column("params_json", sa.Text(), nullable=False),
        sa.Column("config_json", sa.Text(), nullable=False),
        sa.Column("start_date", sa.String(10), nullable=False),
        sa.Column("end_date", sa.String(10), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=False),
        sa.Column("progress", sa.Double(), nullable=False),
        sa.Column("equity", sa.Double(), nullable=False),
        sa.Column("current_date", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("not_before", sa.DateTime(), nullable=True),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('PENDING','RUNNING','COMPLETED','FAILED','CANCELLED')", name="ck_tasks_status"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_tasks_user_created", "backtest_tasks", ["user_id", "created_at", "id"])
    op.create_index("ix_tasks_user_updated", "backtest_tasks", ["user_id", "updated_at", "id"])
    op.create_index("ix_tasks_user_status", "backtest_tasks", ["user_id", "status", "created_at"])
    op.create_index("ix_tasks_user_name", "backtest_tasks", ["user_id", "strategy_name", "id"])
    op.create_index("ix_tasks_status_created", "backtest_tasks", ["status", "created_at", "id"])
    op.create_index("ix_tasks_status_lease", "backtest_tasks", ["status", "lease_expires_at"])

    op.create_table(
        "backtest_results",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "task_id", sa.Integer(), sa.ForeignKey("backtest_tasks.id", ondelete="CASCADE"),
            nullable=False, unique=True,
        ),
        sa.Column("user_id", sa.Integer(), nullable=False),
        *[sa.Column(name, sa.Double(), nullable=True) for name in (
            "total_return", "annual_return", "max_drawdown", "sharpe_ratio", "win_rate",
            "profit_loss_ratio", "alpha", "beta",
        )],
        sa.Column("metrics_json", sa.Text(), nullable=False),
        sa.Column("trades_json", sa.Text(), nullable=False),
        sa.Column("portfolio_json", sa.Text(), nullable=False),
        sa.Column("result_pb", sa.LargeBinary(), nullable=False),
        sa.Column("engine_version", sa.String(64), nullable=False),
        sa.Column("data_hash", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_results_user_created", "backtest_results", ["user_id", "created_at", "id"])
    op.create_index("ix_results_user_total_return", "backtest_results", ["user_id", "total_return"])
    op.create_index("ix_results_user_annual_return", "backtest_results", ["user_id", "annual_return"])
    op.create_index("ix_results_user_sharpe", "backtest_results", ["user_id", "sharpe_ratio"])
    op.create_index("ix_results_user_max_drawdown", "backtest_results", ["user_id", "max_drawdown"])


def downgrade() -> None:
    op.drop_table("backtest_results")
    op.drop_table("backtest_tasks")
    op.drop_table("backtest_strategies")
