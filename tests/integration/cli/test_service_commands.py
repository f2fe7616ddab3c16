"""Every service's command line: `--help` starts nothing; `migrate` migrates a fresh PostgreSQL
database and exits, idempotently, and two at once on one database both succeed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.pgtools import temporary_database

ROOT = Path(__file__).resolve().parents[3]
SERVICES = ("auth", "task", "engine")
# One table each service's first migration creates, besides its version table.
OWN_TABLE = {"auth": "users", "task": "backtest_tasks", "engine": "daily_bars"}


def service_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "ZQ_DATA_DIR": str(tmp_path), "ZQ_LOG_LEVEL": "WARNING", **extra}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "services" / "stubs"), env.get("PYTHONPATH", "")])
    for name in SERVICES:  # a developer's own settings must not leak in
        env.pop(f"ZQ_{name.upper()}_DATABASE_URL", None)
    env.update(extra)
    return env


def command(service: str, *args: str) -> list[str]:
    return [sys.executable, "-m", f"{service}_svc", *args]


@pytest.mark.parametrize("service", SERVICES)
def test_help_prints_usage_and_starts_nothing(service: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    result = subprocess.run(command(service, "--help"), env=service_env(data_dir), cwd=ROOT, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m {service}_svc")
    assert "migrate" in result.stdout and "serve" in result.stdout
    # Nothing was opened: no SQLite file, not even the data dir.
    assert not data_dir.exists(), sorted(p.name for p in data_dir.iterdir())


def _state(url: str, service: str) -> tuple[list[str], set[str]]:
    db = sa.create_engine(url)
    try:
        with db.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            table = sa.table(f"alembic_version_{service}", sa.column("version_num"))
            versions = list(conn.execute(sa.select(table.c.version_num)).scalars())
        return versions, tables
    finally:
        db.dispose()


def _migrate(service: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(command(service, "migrate"), env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _succeeds(service: str, proc: subprocess.Popen[str]) -> None:
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, f"{service}: {err}"


@pytest.mark.postgres
@pytest.mark.slow
def test_migrate_on_a_fresh_database_concurrently_then_again(tmp_path: Path) -> None:
    """Two `migrate` processes per service, all six at once on one fresh shared database: the
    migration lock lets one of each pair migrate while the other waits and then finds the schema
    at head. A third run per service changes nothing."""
    with temporary_database("zq_migrate") as url:
        env = service_env(tmp_path, **{f"ZQ_{s.upper()}_DATABASE_URL": url for s in SERVICES})
        for service, proc in [(s, _migrate(s, env)) for s in SERVICES for _ in range(2)]:
            _succeeds(service, proc)
        before = {}
        for service in SERVICES:
            before[service] = _state(url, service)
            versions, tables = before[service]
            assert len(versions) == 1 and OWN_TABLE[service] in tables, (service, versions, sorted(tables))

        for service, proc in [(s, _migrate(s, env)) for s in SERVICES]:
            _succeeds(service, proc)
        assert {s: _state(url, s) for s in SERVICES} == before
    assert not list(tmp_path.glob("*.db"))  # the URLs were used, not the SQLite defaults
