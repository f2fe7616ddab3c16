"""Configuration from environment variables.

Every name here is part of the public interface and is documented in the README's
configuration table. Values are read when a settings object is built, never at import time,
so tests can set variables per process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def env_str(name: str, default: str) -> str:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from exc


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be a number, got {raw!r}") from exc


def data_dir() -> Path:
    """``ZQ_DATA_DIR`` (default ``./var``): SQLite files, pid files, logs and signing keys."""
    path = Path(env_str("ZQ_DATA_DIR", "./var")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url(service: str) -> str:
    """``ZQ_<SERVICE>_DATABASE_URL``, defaulting to a SQLite file in the data dir."""
    default = f"sqlite:///{data_dir() / f'{service}.db'}"
    return env_str(f"ZQ_{service.upper()}_DATABASE_URL", default)


DEFAULT_ADDRS = {"auth": "127.0.0.1:50051", "task": "127.0.0.1:50052", "engine": "127.0.0.1:50053"}


def service_addr(service: str) -> str:
    """``ZQ_<SERVICE>_ADDR``: where a service listens and where the others find it."""
    return env_str(f"ZQ_{service.upper()}_ADDR", DEFAULT_ADDRS[service])


@dataclass(frozen=True)
class ServerSettings:
    """Settings every gRPC service process shares."""

    service: str
    addr: str
    database_url: str
    max_workers: int = 16
    grace_seconds: float = 10.0
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, service: str) -> ServerSettings:
        return cls(
            service=service,
            addr=service_addr(service),
            database_url=database_url(service),
            max_workers=env_int("ZQ_GRPC_MAX_WORKERS", 16),
            grace_seconds=env_float("ZQ_SHUTDOWN_GRACE_SECONDS", 10.0),
            log_level=env_str("ZQ_LOG_LEVEL", "INFO"),
        )
