"""Run a service's Alembic migrations programmatically (services migrate at start).

Each service keeps its scripts in ``<svc>/migrations`` and its own version table
(``alembic_version_<svc>``), so several services may share one PostgreSQL database without
their migration histories colliding.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine


def alembic_config(service: str, url: str) -> Config:
    package_dir = Path(__file__).resolve().parent.parent / f"{service}_svc"
    cfg = Config()
    cfg.set_main_option("script_location", str(package_dir / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["version_table"] = f"alembic_version_{service}"
    return cfg


def upgrade(service: str, engine: Engine, revision: str = "head") -> None:
    """Apply pending migrations on ``engine`` (the connection is shared with env.py)."""
    cfg = alembic_config(service, engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)
