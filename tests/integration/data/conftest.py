"""Reusable database fixtures: a fresh PostgreSQL database per test module, SQLite files.

``pg_url`` is a fresh database per module from tests/pgtools.py (skipped when the server is
unreachable on a developer machine, a failure under CI). ``db_url`` runs a test on both.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pgtools import temporary_database


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with temporary_database("zq_test") as url:
        yield url


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
