"""A whole local stack for a bench: auth, engine and task services plus Envoy, on free loopback
ports in a temporary data dir, configured like `make up` but with cheap password hashing and no
login throttling (benches log in thousands of times). Shared by the benches that go through REST.

    stack = BenchStack.create("zq_watch_bench_", {"ZQ_SANDBOX_SPARES": "0"})
    ... seed market data into stack.data_dir with stack.env ...
    stack.start()                        # create-admin, services, Envoy, clusters healthy
    try: ... stack.base_url, stack.password ...
    finally: stack.stop()
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import devstack

ROOT = Path(__file__).resolve().parents[1]
ADMIN = "bench_admin"


def wait_healthy(admin_port: int, names: list[str], timeout: float = 90.0) -> None:
    """Until Envoy's health checks see a healthy host in each named cluster: /ready only says
    Envoy is up, not that a request would reach a SERVING service."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/clusters?format=json", timeout=5) as r:
                data = json.load(r)
        except OSError:
            time.sleep(0.2)
            continue
        ok = {c["name"]: all(not any(v is True for k, v in h.get("health_status", {}).items()
                                     if k != "eds_health_status") for h in c.get("host_statuses", []))
              for c in data.get("cluster_statuses", [])}
        if all(ok.get(n) for n in names):
            return
        time.sleep(0.2)
    raise RuntimeError(f"Envoy clusters {names} not healthy within {timeout:.0f} s")


@dataclass
class BenchStack:
    data_dir: Path
    password: str
    ports: dict[str, int]
    env: dict[str, str]
    handles: list[devstack.Handle] = field(default_factory=list)

    @classmethod
    def create(cls, prefix: str, extra_env: dict[str, str] | None = None) -> BenchStack:
        data_dir = Path(tempfile.mkdtemp(prefix=prefix))
        password = secrets.token_urlsafe(16)
        ports = {name: devstack.free_port() for name in ("auth", "task", "engine", "gw", "admin")}
        env = devstack.child_env(extra={
            "ZQ_DATA_DIR": str(data_dir), "ZQ_LOG_LEVEL": "WARNING",
            "ZQ_AUTH_ADDR": f"127.0.0.1:{ports['auth']}", "ZQ_TASK_ADDR": f"127.0.0.1:{ports['task']}",
            "ZQ_ENGINE_ADDR": f"127.0.0.1:{ports['engine']}",
            "ZQ_ADMIN_USERNAME": ADMIN, "ZQ_ADMIN_PASSWORD": password,
            "ZQ_ARGON2_TIME_COST": "1", "ZQ_ARGON2_MEMORY_KIB": "1024", "ZQ_LOGIN_MAX_FAILURES_PER_IP": "100000",
            **(extra_env or {}),
        })
        # The stack's own SQLite files in data_dir and its own service key, never the caller's.
        for name in ("AUTH", "TASK", "ENGINE"):
            env.pop(f"ZQ_{name}_DATABASE_URL", None)
        for name in ("ZQ_ENGINE_API_KEY", "ZQ_ENGINE_API_SECRET", "ZQ_ENGINE_TOKEN"):
            env.pop(name, None)
        return cls(data_dir, password, ports, env)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gw']}"

    @property
    def engine_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'engine.db'}"

    def start(self, console_dist: Path | None = None, engines: int = 1) -> None:
        """The admin user and task_svc's service key, the three services, Envoy; returns when the
        gateway's health checks see every service SERVING. Seed market data before. ``engines``:
        engine_svc processes on the same market data (task_svc and Envoy round-robin over them)."""
        subprocess.run([sys.executable, "-m", "auth_svc", "create-admin"], env=self.env, check=True, cwd=ROOT,
                       capture_output=True)
        self.env.update(devstack.service_credentials(self.env))
        self.handles.append(devstack.start_service("auth", self.env))
        addrs = [self.env["ZQ_ENGINE_ADDR"]] + [f"127.0.0.1:{devstack.free_port()}" for _ in range(engines - 1)]
        for k, addr in enumerate(addrs):
            # Each its own port and pid files (data dir), all on the first one's market data.
            own = {"ZQ_ENGINE_ADDR": addr, "ZQ_ENGINE_DATABASE_URL": self.engine_url}
            if k:
                own["ZQ_DATA_DIR"] = str(self.data_dir / f"engine-{k + 1}")
            self.handles.append(devstack.start_service("engine", {**self.env, **own}))
        self.env["ZQ_ENGINE_ADDR"] = ",".join(addrs)
        self.handles.append(devstack.start_service("task", self.env))
        self.handles.append(devstack.start_envoy(
            self.data_dir / "envoy", self.ports["gw"], self.ports["admin"], auth_addr=self.env["ZQ_AUTH_ADDR"],
            task_addr=self.env["ZQ_TASK_ADDR"], engine_addr=self.env["ZQ_ENGINE_ADDR"], console_dist=console_dist))
        wait_healthy(self.ports["admin"], ["auth", "task", "engine"])

    def pids(self, service: str) -> list[int]:
        return [h.pid for h in self.handles if h.name == service]

    def stop(self, keep: bool = False) -> None:
        for handle in reversed(self.handles):
            handle.stop(5)
        if not keep:
            shutil.rmtree(self.data_dir, ignore_errors=True)
