"""Run a service's Alembic migrations: at start-up and as ``python -m <svc> migrate``.

Each service keeps its scripts in ``<svc>/migrations`` and its own version table
(``alembic_version_<svc>``), so several services may share one PostgreSQL database without
their migration histories colliding.

On PostgreSQL an upgrade holds a session-level advisory lock per service: replicas starting
together, or a migration Job racing a rolling update, migrate one at a time; the ones that
waited find the schema at head and do nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

# pg_advisory_lock keys, one per service (task's predates this module: old replicas still take it).
MIGRATION_LOCK_KEYS = {"task": 73210001, "auth": 73210002, "engine": 73210003}


def alembic_config(service: str, url: str) -> Config:
    package_dir = Path(__file__).resolve().parent.parent / f"{service}_svc"
    cfg = Config()
    cfg.set_main_option("script_location", str(package_dir / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["version_table"] = f"alembic_version_{service}"
    return cfg


@contextmanager
def migration_lock(service: str, engine: Engine) -> Iterator[None]:
    """Held while ``service`` migrates ``engine``'s database (PostgreSQL; a no-op elsewhere)."""
    if engine.dialect.name != "postgresql":
        yield
        return
    key = MIGRATION_LOCK_KEYS[service]
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        conn.commit()  # the lock is the session's; no transaction stays open while others wait
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()


def upgrade(service: str, engine: Engine, revision: str = "head") -> None:
    """Apply pending migrations on ``engine`` under the service's migration lock."""
    cfg = alembic_config(service, engine.url.render_as_string(hide_password=False))
    with migration_lock(service, engine), engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def migrate_command(service: str, database_url: str) -> int:
    """``python -m <svc> migrate``: apply the service's migrations to its database and exit 0."""
    from services.db import make_engine  # the kit's engine settings (SQLite pragmas, pool)

    db = make_engine(database_url)
    try:
        upgrade(service, db)
    finally:
        db.dispose()
    return 0
