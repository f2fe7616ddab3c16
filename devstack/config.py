"""Where everything of a local stack lives and listens: paths, ports, the services and how to start them.

Every value comes from the environment (``ZQ_DATA_DIR``, ``ZQ_<NAME>_ADDR``, ...), so a second
stack with another data dir and other ports runs beside the first.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENVOY_TEMPLATE = ROOT / "deploy" / "envoy.yaml"
DESCRIPTOR = ROOT / "deploy" / "envoy.pb"
# The gateway's request body check (Lua, hand-written); it reads the JSON types `make proto`
# writes next to the descriptor set (request_types.lua) from the path in this variable.
REQUEST_CHECK = ROOT / "deploy" / "request_check.lua"
REQUEST_TYPES_ENV = "ZQ_GATEWAY_REQUEST_TYPES"

DEFAULT_GATEWAY_PORT = 8080
DEFAULT_ADMIN_PORT = 9901
# `make up` is a developer stack: loopback unless asked otherwise. The committed
# deploy/envoy.yaml listens on 0.0.0.0 because a deployed gateway is meant to be reached.
DEFAULT_GATEWAY_HOST = "127.0.0.1"


@dataclass(frozen=True)
class ServiceSpec:
    name: str  # short name: pid/log file name, ZQ_<NAME>_ADDR, Envoy cluster
    package: str  # started as `python -m <package> <*args>`
    args: tuple[str, ...]
    health_service: str  # the grpc.health.v1 name Envoy also checks

    def argv(self) -> list[str]:
        return [sys.executable, "-m", self.package, *self.args]

    def available(self) -> bool:
        """The package exists as a runnable module (services are built in parallel)."""
        return (ROOT / self.package / "__main__.py").is_file()


# Start order: task_svc needs auth (credentials) and engine (backtests) to be reachable.
SERVICES: dict[str, ServiceSpec] = {
    "auth": ServiceSpec("auth", "auth_svc", (), "zquant.auth.v1.AuthService"),
    "engine": ServiceSpec("engine", "engine_svc", ("serve",), "zquant.engine.v1.EngineService"),
    "task": ServiceSpec("task", "task_svc", (), "zquant.backtest.v1.TaskService"),
}
DEFAULT_ADDRS = {"auth": "127.0.0.1:50051", "task": "127.0.0.1:50052", "engine": "127.0.0.1:50053"}
ENVOY = "envoy"
ALL_PROCESSES = [*SERVICES, ENVOY]
# Engine processes `up` starts by default: one per core (each with one slot), at most this many.
MAX_DEFAULT_ENGINES = 8



def env_get(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name)
    return value if value else default


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env_get(env, "ZQ_DATA_DIR", "./var")).resolve()


def service_addr(name: str, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env_get(env, f"ZQ_{name.upper()}_ADDR", DEFAULT_ADDRS[name])


def engine_addrs(env: Mapping[str, str] | None = None) -> list[str]:
    """Where the engine processes of a local stack listen, one address each: every address
    ``ZQ_ENGINE_ADDR`` lists, or — one address given — ``ZQ_ENGINE_PROCESSES`` of them (default:
    one per core, at most MAX_DEFAULT_ENGINES) on consecutive ports from it.

    One process per core rather than one process with a slot per core: the trusted side of each
    backtest runs in the engine's process, and two of them in one process share its GIL (two
    sweep batches took 1.5x the ideal as two threads of one engine, 0.95x as two engines;
    bench/README.md). task_svc and the gateway balance over the addresses."""
    env = os.environ if env is None else env
    items = [a.strip() for a in service_addr("engine", env).split(",") if a.strip()]
    if len(items) != 1:
        return items
    count = int(env_get(env, "ZQ_ENGINE_PROCESSES", str(min(os.cpu_count() or 1, MAX_DEFAULT_ENGINES))))
    if count < 1:
        raise ValueError(f"ZQ_ENGINE_PROCESSES must be at least 1, got {count}")
    host, port = split_addr(items[0])
    shown = f"[{host}]" if ":" in host else host
    return [items[0]] + [f"{shown}:{port + k}" for k in range(1, count)]


def engine_label(index: int) -> str:
    """The pid and log file name of the index-th engine process: engine, engine-2, engine-3, …"""
    return "engine" if index == 0 else f"engine-{index + 1}"


def split_addr(addr: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port)."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address must be host:port, got {addr!r}")
    return host.strip("[]"), int(port)


def connect_host(host: str) -> str:
    """Where to connect to reach a server listening on ``host`` (wildcards mean this machine)."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::", "*") else host  # noqa: S104


def connect_addr(addr: str) -> str:
    host, port = split_addr(addr)
    host = connect_host(host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def free_port() -> int:
    """A TCP port free right now on loopback (the kernel picks; a tiny reuse race remains)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env(extra: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a service process: the caller's, plus the repo and stubs on sys.path.

    The path entries let `python -m auth_svc` work from a fresh checkout before
    `pip install -e .` maps the `zquant` stubs package; with the install they are redundant.
    """
    env = dict(os.environ if base is None else base)
    env.update(extra or {})
    paths = [str(ROOT), str(ROOT / "services" / "stubs")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["ZQ_DATA_DIR"] = str(data_dir(env))  # absolute: children may chdir
    env.setdefault("PYTHONUNBUFFERED", "1")  # logs appear as they happen
    return env
