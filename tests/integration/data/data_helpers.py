"""Shared helpers for the market-data integration tests."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from engine_svc.data.db import ensure_schema, get_engine

TABLES = ("trading_calendar", "instruments", "st_periods", "daily_bars", "daily_basic", "index_bars")


def empty_db(url: str) -> str:
    """Schema at head and no market rows (the module's PostgreSQL database is shared)."""
    engine = get_engine(url)
    ensure_schema(engine)
    with engine.begin() as conn:
        for table in TABLES:
            conn.execute(text(f"DELETE FROM {table}"))  # noqa: S608
        conn.execute(text("UPDATE data_version SET version = version + 1 WHERE id = 1"))
    return url


def count(url: str, table: str) -> int:
    with get_engine(url).connect() as conn:
        return int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())  # noqa: S608


def write_csv(path: Path, text_: str) -> Path:
    path.write_text(text_.lstrip("\n"), encoding="utf-8")
    return path
