"""The gateway image's entry: Envoy with the baked config, its addresses taken from the environment.

The image carries envoy.json (deploy/image/stage.py rendered it from deploy/envoy.yaml with the
descriptor set and console build next to it). Where Envoy listens and where the services are
differs per environment, so this launcher (standard library only) sets those values from the
same variables the services use, writes the result to /tmp and execs Envoy:

    ZQ_GATEWAY_HOST, ZQ_GATEWAY_PORT          REST + console listener (0.0.0.0, 8080)
    ZQ_GATEWAY_ADMIN_PORT                     admin, always on 127.0.0.1 (9901)
    ZQ_GATEWAY_STATS_PORT                     /stats/prometheus only (9902)
    ZQ_AUTH_ADDR, ZQ_TASK_ADDR, ZQ_ENGINE_ADDR upstreams, host:port (zquant-auth:50051, ...)
    ZQ_GATEWAY_CONCURRENCY                    Envoy worker threads (2)

The request check's JSON types (request_types.lua, staged next to the descriptor set they were
generated with) are named to Envoy's Lua by ZQ_GATEWAY_REQUEST_TYPES, which this launcher sets.
"""

from __future__ import annotations

import json
import os
import sys

CONFIG = "/srv/gateway/envoy.json"
RENDERED = "/tmp/envoy.json"  # noqa: S108  (the pod's private, memory-backed /tmp)
ENVOY = "/usr/local/bin/envoy"
REQUEST_TYPES = "/srv/gateway/request_types.lua"  # read by request_check.lua (deploy/request_check.lua)


def _addr(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"gateway: expected host:port, got {value!r}")
    return host.strip("[]"), int(port)


def configure(config: dict, env: dict[str, str]) -> dict:
    def get(name: str, default: str) -> str:
        return env.get(name) or default

    config["admin"]["address"]["socket_address"].update(
        address="127.0.0.1", port_value=int(get("ZQ_GATEWAY_ADMIN_PORT", "9901")))
    admin_port = config["admin"]["address"]["socket_address"]["port_value"]
    listeners = {item["name"]: item for item in config["static_resources"]["listeners"]}
    listeners["rest_gateway"]["address"]["socket_address"].update(
        address=get("ZQ_GATEWAY_HOST", "0.0.0.0"), port_value=int(get("ZQ_GATEWAY_PORT", "8080")))  # noqa: S104
    listeners["stats"]["address"]["socket_address"]["port_value"] = int(get("ZQ_GATEWAY_STATS_PORT", "9902"))
    defaults = {"auth": "zquant-auth:50051", "task": "zquant-task:50052", "engine": "zquant-engine:50053",
                "envoy_admin": f"127.0.0.1:{admin_port}"}
    for cluster in config["static_resources"]["clusters"]:
        name = cluster["name"]
        host, port = _addr(get(f"ZQ_{name.upper()}_ADDR", defaults[name]) if name != "envoy_admin"
                           else defaults[name])
        for group in cluster["load_assignment"]["endpoints"]:
            for endpoint in group["lb_endpoints"]:
                endpoint["endpoint"]["address"]["socket_address"].update(address=host, port_value=port)
    return config


def main() -> int:
    with open(CONFIG) as fh:
        config = configure(json.load(fh), dict(os.environ))
    with open(RENDERED, "w") as fh:
        json.dump(config, fh)
    argv = [ENVOY, "-c", RENDERED, "--concurrency", os.environ.get("ZQ_GATEWAY_CONCURRENCY") or "2",
            "--disable-hot-restart", "--log-level", os.environ.get("ZQ_GATEWAY_LOG_LEVEL") or "warn", *sys.argv[1:]]
    # The types baked with this config, whatever the environment says: they must match it.
    os.environ["ZQ_GATEWAY_REQUEST_TYPES"] = REQUEST_TYPES
    os.execv(ENVOY, argv)  # noqa: S606  (replaces this process: Envoy gets the signals)
    return 1


if __name__ == "__main__":
    sys.exit(main())
