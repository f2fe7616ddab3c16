"""Engines for the market-data store: one pooled engine per URL, schema upgrades, data_version."""

from __future__ import annotations

import threading

from sqlalchemy import Connection, Engine, text

from services.db import make_engine
from services.migrations import upgrade

_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()


def get_engine(url_or_engine: str | Engine) -> Engine:
    """The process-wide engine for a URL (created once, so repeated loads reuse its pool)."""
    if isinstance(url_or_engine, Engine):
        return url_or_engine
    with _LOCK:
        engine = _ENGINES.get(url_or_engine)
        if engine is None:
            engine = _ENGINES[url_or_engine] = make_engine(url_or_engine)
        return engine


def engine_key(engine: Engine) -> str:
    """A stable identity for cache keys: the URL without the password."""
    return engine.url.render_as_string(hide_password=True)


def ensure_schema(engine: Engine) -> None:
    """Apply engine_svc's pending migrations (idempotent; importers call it first)."""
    upgrade("engine", engine)


def read_data_version(conn: Connection) -> int:
    return int(conn.execute(text("SELECT version FROM data_version WHERE id = 1")).scalar_one())


def bump_data_version(conn: Connection) -> int:
    """Mark the data as changed, inside the importer's transaction (so a rollback undoes it)."""
    conn.execute(text("UPDATE data_version SET version = version + 1 WHERE id = 1"))
    return read_data_version(conn)


def dispose_all() -> None:
    """Close every pooled engine (tests dropping databases call this first)."""
    with _LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()
