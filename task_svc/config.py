"""task_svc settings (environment variables, read when the settings object is built).

| variable | default | meaning |
|---|---|---|
| ZQ_TASK_MAX_ACTIVE_PER_USER | 20 | PENDING+RUNNING tasks one user may have |
| ZQ_TASK_MAX_PENDING | 1000 | global queue bound (PENDING tasks of all users) |
| ZQ_TASK_WORKERS | 2 | backtests one replica runs at once |
| ZQ_TASK_LEASE_SECONDS | 30 | lease on a RUNNING task; renewed every lease/3 |
| ZQ_TASK_MAX_ATTEMPTS | 3 | runs before a task whose runner keeps dying is FAILED |
| ZQ_TASK_POLL_SECONDS | 1.0 | dispatcher queue poll (new tasks also wake it at once) |
| ZQ_TASK_RETRY_BASE_SECONDS | 2.0 | first back-off when the engine is unreachable (doubles) |
| ZQ_TASK_RETRY_MAX_SECONDS | 60 | back-off cap |
| ZQ_TASK_PROGRESS_INTERVAL | 0.5 | min seconds between progress writes per task (≤ 2/s) |
| ZQ_TASK_WATCH_TICK_SECONDS | 2.0 | watchers re-read the row at least this often (safety net) |
| ZQ_TASK_ENGINE_TIMEOUT | 15 | deadline of ValidateStrategy / ListSymbols calls |
| ZQ_TASK_ENGINE_KEEPALIVE_SECONDS | 20 | ping engines this often during calls; a hung one's runs go back to PENDING |
| ZQ_TASK_GRPC_WORKERS | 16 | threads for blocking work (SQL, auth and engine calls); watch streams hold none |
| ZQ_TASK_MAX_WATCHES_PER_USER | 32 | open watch streams (any watch) one user may hold on a replica (beyond → 429) |
| ZQ_TASK_MAX_WATCHES | 10000 | open watch streams of all users on one replica (beyond → 429) |
| ZQ_TASK_REPLICA_ID | host-pid | names this replica in lease_owner |
| ZQ_SWEEP_MAX_TRIALS | 1000 | trials one sweep may have (beyond → 429) |
| ZQ_SWEEP_MAX_ACTIVE_PER_USER | 3 | PENDING+RUNNING sweeps one user may have (beyond → 429) |
| ZQ_SWEEP_WORKERS | = ZQ_TASK_WORKERS | trial batches (engine calls) one replica runs at once |
| ZQ_SWEEP_BATCH_TRIALS | 25 | trials per engine call at most |
| ZQ_ENGINE_TOKEN or ZQ_ENGINE_API_KEY + ZQ_ENGINE_API_SECRET | — | credentials task_svc presents to engine_svc |
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from services.config import env_float, env_int, env_str


def _default_replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class TaskSettings:
    max_active_per_user: int = 20
    max_pending: int = 1000
    workers: int = 2
    lease_seconds: float = 30.0
    max_attempts: int = 3
    poll_seconds: float = 1.0
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 60.0
    progress_interval: float = 0.5
    watch_tick_seconds: float = 2.0
    engine_timeout: float = 15.0
    engine_keepalive: float = 20.0
    grpc_workers: int = 16
    max_watches_per_user: int = 32
    max_watches: int = 10000
    replica_id: str = field(default_factory=_default_replica_id)
    sweep_max_trials: int = 1000
    sweep_max_active_per_user: int = 3
    sweep_workers: int = 2
    sweep_batch_trials: int = 25

    @classmethod
    def from_env(cls) -> TaskSettings:
        return cls(
            max_active_per_user=env_int("ZQ_TASK_MAX_ACTIVE_PER_USER", 20),
            max_pending=env_int("ZQ_TASK_MAX_PENDING", 1000),
            workers=max(1, env_int("ZQ_TASK_WORKERS", 2)),
            lease_seconds=env_float("ZQ_TASK_LEASE_SECONDS", 30.0),
            max_attempts=max(1, env_int("ZQ_TASK_MAX_ATTEMPTS", 3)),
            poll_seconds=env_float("ZQ_TASK_POLL_SECONDS", 1.0),
            retry_base_seconds=env_float("ZQ_TASK_RETRY_BASE_SECONDS", 2.0),
            retry_max_seconds=env_float("ZQ_TASK_RETRY_MAX_SECONDS", 60.0),
            progress_interval=env_float("ZQ_TASK_PROGRESS_INTERVAL", 0.5),
            watch_tick_seconds=env_float("ZQ_TASK_WATCH_TICK_SECONDS", 2.0),
            engine_timeout=env_float("ZQ_TASK_ENGINE_TIMEOUT", 15.0),
            engine_keepalive=env_float("ZQ_TASK_ENGINE_KEEPALIVE_SECONDS", 20.0),
            grpc_workers=env_int("ZQ_TASK_GRPC_WORKERS", 16),
            max_watches_per_user=max(1, env_int("ZQ_TASK_MAX_WATCHES_PER_USER", 32)),
            max_watches=max(1, env_int("ZQ_TASK_MAX_WATCHES", 10000)),
            replica_id=env_str("ZQ_TASK_REPLICA_ID", _default_replica_id()),
            sweep_max_trials=max(1, env_int("ZQ_SWEEP_MAX_TRIALS", 1000)),
            sweep_max_active_per_user=max(1, env_int("ZQ_SWEEP_MAX_ACTIVE_PER_USER", 3)),
            sweep_workers=max(1, env_int("ZQ_SWEEP_WORKERS", max(1, env_int("ZQ_TASK_WORKERS", 2)))),
            sweep_batch_trials=min(1000, max(1, env_int("ZQ_SWEEP_BATCH_TRIALS", 25))),
        )


def engine_credentials() -> list[tuple[str, str]]:
    """Metadata task_svc sends to engine_svc (service credentials, never a user's)."""
    token = env_str("ZQ_ENGINE_TOKEN", "")
    if token:
        return [("authorization", f"Bearer {token}")]
    key, secret = env_str("ZQ_ENGINE_API_KEY", ""), env_str("ZQ_ENGINE_API_SECRET", "")
    if key and secret:
        return [("x-api-key", key), ("x-api-secret", secret)]
    return []
