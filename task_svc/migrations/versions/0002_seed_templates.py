"""data: seed the nine template strategies (owner: system user id 0)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

Templates belong to user id 0, the *system* owner (no real user has id 0; users live in
auth_svc). Any admin may edit or delete a system template; a template an admin publishes
later belongs to that admin. The code comes from ``task_svc/templates/*.py`` so the shipped
files and the seeded rows are the same text; a later change to a template ships as a new
data migration. Rows that already exist (same name, system-owned template) are left alone.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from task_svc.models import SYSTEM_USER_ID, utcnow
from task_svc.templates import TEMPLATES

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None

_strategies = sa.table(
    "backtest_strategies",
    sa.column("id", sa.Integer()),
    sa.column("user_id", sa.Integer()),
    sa.column("name", sa.String()),
    sa.column("description", sa.Text()),
    sa.column("category", sa.String()),
    sa.column("code", sa.Text()),
    sa.column("params_schema", sa.Text()),
    sa.column("is_template", sa.Boolean()),
    sa.column("created_at", sa.DateTime()),
    sa.column("updated_at", sa.DateTime()),
)


def upgrade() -> None:
    conn = op.get_bind()
    existing = set(
        conn.execute(
            sa.select(_strategies.c.name).where(
                _strategies.c.user_id == SYSTEM_USER_ID, _strategies.c.is_template.is_(True)
            )
        ).scalars()
    )
    now = utcnow()
    rows = [
        {
            "user_id": SYSTEM_USER_ID, "name": t.name, "description": t.description,
            "category": t.category, "code": t.code(), "params_schema": t.params_schema_json(),
            "is_template": True, "created_at": now, "updated_at": now,
        }
        for t in TEMPLATES
        if t.name not in existing
    ]
    if rows:
        op.bulk_insert(_strategies, rows)


def downgrade() -> None:
    op.execute(
        _strategies.delete().where(
            _strategies.c.user_id == SYSTEM_USER_ID,
            _strategies.c.is_template.is_(True),
            _strategies.c.name.in_([t.name for t in TEMPLATES]),
        )
    )
