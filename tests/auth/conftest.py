"""Fixtures for auth tests: a database per test module on SQLite AND PostgreSQL, and a real
auth_svc gRPC server on a free loopback port.

PostgreSQL: a fresh database with a random name per module, created through the server at
ZQ_TEST_PG_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/postgres) in autocommit
mode and dropped WITH (FORCE) afterwards. If that server is unreachable the postgres variants
are skipped with the reason shown (-ra).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.auth.helpers import AuthServer, start_auth_server

PG_URL = os.environ.get("ZQ_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


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


def _pg_conninfo(url: str) -> str:
    u = make_url(url)
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'auth.db'}"
        return
    admin = _pg_conninfo(PG_URL)
    name = f"zq_auth_test_{secrets.token_hex(6)}"
    try:
        conn = psycopg.connect(admin, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {exc}")
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def server(db_url: str) -> Iterator[AuthServer]:
    srv = start_auth_server(db_url)
    yield srv
    srv.channel.close()
    srv.running.stop(grace=0)
