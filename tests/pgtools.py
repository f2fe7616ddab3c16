"""Throw-away PostgreSQL databases for tests.

Each caller gets a fresh database with a random name on the server at ``ZQ_TEST_PG_URL``
(default ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``), dropped WITH (FORCE)
afterwards. When the server cannot be reached the test is skipped on a developer machine
but FAILS under CI (``CI`` set): CI must never pass by skipping the PostgreSQL half.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy.engine import make_url

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def base_url() -> str:
    return os.environ.get("ZQ_TEST_PG_URL", DEFAULT_PG_URL)


def _admin_conninfo() -> str:
    return make_url(base_url()).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def temporary_database(prefix: str = "zq_test") -> Iterator[str]:
    """Yields a SQLAlchemy URL (postgresql+psycopg://…) of a new, empty database."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    try:
        admin = psycopg.connect(_admin_conninfo(), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL not reachable at {base_url()} (required under CI): {exc}")
        pytest.skip(f"PostgreSQL not reachable at {base_url()}: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(base_url()).set(drivername="postgresql+psycopg", database=name).render_as_string(
            hide_password=False)
    finally:
        with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
