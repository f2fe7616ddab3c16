"""The local stack behind ``make up`` / ``make down`` / ``make status`` (a developer tool, not
runtime kit: no service imports it, and it is not part of the wheel).

    python -m devstack up      # admin user, sample data, services, Envoy; idempotent
    python -m devstack down    # stops exactly what `up` started (by pid file)
    python -m devstack status

- :mod:`devstack.config`: paths, ports and the services, all from the environment
- :mod:`devstack.processes`: start a process with a pid file and log, find it, wait for ready, stop it
- :mod:`devstack.envoy`: render deploy/envoy.yaml for this stack and start Envoy
- :mod:`devstack.seed`: the first admin's service key for task_svc, sample market data check
- :mod:`devstack.cli`: ``up``, ``down``, ``status``

Tests and benchmarks start processes exactly as ``make up`` does with the names exported here
(see tests/e2e/conftest.py): :func:`free_port`, :func:`start_service`, :func:`start_envoy`;
each returns a :class:`Handle` with ``stop()``.
"""

from devstack.config import (
    ALL_PROCESSES,
    DEFAULT_ADDRS,
    DESCRIPTOR,
    ENVOY,
    ROOT,
    SERVICES,
    ServiceSpec,
    child_env,
    connect_addr,
    connect_host,
    data_dir,
    engine_addrs,
    engine_label,
    free_port,
    service_addr,
    split_addr,
)
from devstack.envoy import (
    GatewayConfig,
    envoy_binary,
    render_envoy_config,
    start_envoy,
    start_gateway,
    validate_envoy_config,
    write_envoy_config,
)
from devstack.processes import (
    Handle,
    StartError,
    find_running,
    proc_cmdline,
    read_pid,
    spawn,
    start_service,
    wait_grpc_serving,
    wait_http_ready,
)
from devstack.seed import engine_has_market_data, service_credentials

__all__ = [
    "ALL_PROCESSES",
    "DEFAULT_ADDRS",
    "DESCRIPTOR",
    "ENVOY",
    "ROOT",
    "SERVICES",
    "GatewayConfig",
    "Handle",
    "ServiceSpec",
    "StartError",
    "child_env",
    "connect_addr",
    "connect_host",
    "data_dir",
    "engine_addrs",
    "engine_has_market_data",
    "engine_label",
    "envoy_binary",
    "find_running",
    "free_port",
    "proc_cmdline",
    "read_pid",
    "render_envoy_config",
    "service_addr",
    "service_credentials",
    "spawn",
    "split_addr",
    "start_envoy",
    "start_gateway",
    "start_service",
    "validate_envoy_config",
    "wait_grpc_serving",
    "wait_http_ready",
    "write_envoy_config",
]
