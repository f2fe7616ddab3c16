"""market data: calendar, instruments, ST periods, daily bars, daily_basic, index bars

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
_BAR = ("open", "high", "low", "close", "pre_close", "volume", "amount")
_BASIC = (
    "pe",
    "pe_ttm",
    "pb",
    "ps",
    "ps_ttm",
    "turnover_rate",
    "turnover_rate_f",
    "volume_ratio",
    "dv_ratio",
    "dv_ttm",
    "total_share",
    "float_share",
    "free_share",
    "total_mv",
    "circ_mv",
)


def _key() -> list[sa.Column]:
    return [
        sa.Column("symbol", sa.String(16), primary_key=True),
        sa.Column("trade_date", sa.Date(), primary_key=True),
    ]


def _doubles(names: tuple[str, ...]) -> list[sa.Column]:
    return [sa.Column(n, sa.Double(), nullable=True) for n in names]


def upgrade() -> None:
    op.create_table(
        "trading_calendar",
        sa.Column("exchange", sa.String(8), primary_key=True),
        sa.Column("cal_date", sa.Date(), primary_key=True),
        sa.Column("is_open", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "instruments",
        sa.Column("symbol", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("board", sa.String(8), nullable=False),
        sa.Column("exchange", sa.String(4), nullable=False),
        sa.Column("list_date", sa.Date(), nullable=True),
        sa.Column("delist_date", sa.Date(), nullable=True),
        sa.Column("is_index", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "st_periods",
        sa.Column("symbol", sa.String(16), primary_key=True),
        sa.Column("start_date", sa.Date(), primary_key=True),
        sa.Column("end_date", sa.Date(), nullable=True),
    )
    op.create_table("daily_bars", *_key(), *_doubles((*_BAR, "adj_factor", "up_limit", "down_limit")))
    op.create_table("daily_basic", *_key(), *_doubles(_BASIC))
    op.create_table("index_bars", *_key(), *_doubles(_BAR))
    data_version = op.create_table(
        "data_version",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(data_version, [{"id": 1, "version": 0}])


def downgrade() -> None:
    for table in (
        "data_version",
        "index_bars",
        "daily_basic",
        "daily_bars",
        "st_periods",
        "instruments",
        "trading_calendar",
    ):
        op.drop_table(table)
