"""Reusable database fixtures: a fresh PostgreSQL database per test module, SQLite files.

``pg_url`` creates ``zq_test_<hex>`` on the server at ``ZQ_TEST_PG_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``) and drops it afterwards; tests are
skipped when that server cannot be reached. ``db_url`` runs a test on both back ends.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _admin_conninfo() -> tuple[str, object]:
    url = make_url(os.environ.get("ZQ_TEST_PG_URL", DEFAULT_PG_URL))
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return conninfo, url


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    conninfo, url = _admin_conninfo()
    name = f"zq_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {conninfo}: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)  # type: ignore[attr-defined]
    finally:
        with psycopg.connect(conninfo, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test runs on a fresh SQLite file and on this module's PostgreSQL database.

    The PostgreSQL database is shared by the module's tests (creating one per test would be
    slow), so tests using it must not depend on it being empty: use distinct symbols, or
    the ``clean_db`` helper of the test module.
    """
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))
