"""The body of every service's Alembic ``env.py``: online migrations on a given connection."""

from __future__ import annotations

from alembic import context
from sqlalchemy import MetaData, create_engine


def run(target_metadata: MetaData) -> None:
    config = context.config
    version_table = config.attributes.get("version_table", "alembic_version")
    connection = config.attributes.get("connection")
    if connection is None:  # invoked from the alembic CLI: open our own connection
        engine = create_engine(config.get_main_option("sqlalchemy.url"))
        with engine.begin() as conn:
            _migrate(conn, target_metadata, version_table)
        return
    _migrate(connection, target_metadata, version_table)


def _migrate(connection, target_metadata: MetaData, version_table: str) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=version_table,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTER needs batch mode
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
