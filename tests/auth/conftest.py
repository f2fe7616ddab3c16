"""Fixtures for auth tests: a database per test module on SQLite AND PostgreSQL, and a real
auth_svc gRPC server on a free loopback port.

PostgreSQL: a fresh database per module from tests/pgtools.py (skipped when the server is
unreachable on a developer machine, a failure under CI).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.auth.helpers import AuthServer, start_auth_server
from tests.pgtools import temporary_database


@pytest.fixture(scope="session", autouse=True)
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private ZQ_DATA_DIR for the whole test session."""
    path = tmp_path_factory.mktemp("zq_data")
    old = os.environ.get("ZQ_DATA_DIR")
    os.environ["ZQ_DATA_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("ZQ_DATA_DIR", None)
    else:
        os.environ["ZQ_DATA_DIR"] = old


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'auth.db'}"
        return
    with temporary_database("zq_auth_test") as url:
        yield url


@pytest.fixture(scope="module")
def server(db_url: str) -> Iterator[AuthServer]:
    srv = start_auth_server(db_url)
    yield srv
    srv.channel.close()
    srv.running.stop(grace=0)
