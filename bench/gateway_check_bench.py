"""What the gateway's request body check costs: POST latency through Envoy with and without it.

    .venv/bin/python bench/gateway_check_bench.py                 # 5 rounds
    .venv/bin/python bench/gateway_check_bench.py --rounds 3 --json out.json

Two Envoys rendered from deploy/envoy.yaml by devstack, identical except that one lacks the
`zq.request_check` Lua filter (deploy/request_check.lua), in front of one fake gRPC upstream (a
separate process answering every REST method with an empty body at once), so the difference is
the gateway's work alone. Bodies: a login, a backtest submission and a sweep as the README sends
them, and strategies carrying 100 KB and 1 MB of code. Each round sends every body to both
gateways (alternating which goes first) from one keep-alive connection, sequentially; reported:
the median over rounds of each p50, the ratio with/without, and the added microseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent import futures
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchstats import summary_ms  # noqa: E402  (bench/ is sys.path[0] when run as a script)

import devstack  # noqa: E402  (repo on sys.path first when run as a script)

HEALTH = ["zquant.auth.v1.AuthService", "zquant.backtest.v1.TaskService", "zquant.engine.v1.EngineService"]
CODE_LINE = "        short = self.history(symbol, self.params['short_window']).mean()  # 均线\n"
RUN = {"strategy_id": 2, "params": {"short_window": 5, "long_window": 20},
       "config": {"start_date": "2012-01-04", "end_date": "2016-12-30", "initial_capital": 1000000,
                  "symbols": ["600036.SH", "000002.SZ", "300059.SZ"], "benchmark": "000001.SH"}}
SWEEP = {"strategy_id": 2, "config": {**RUN["config"], "symbols": ["600036.SH", "600085.SH", "600809.SH"]},
         "space": {"short_window": {"min": 3, "max": 12, "step": 1}, "long_window": {"min": 20, "max": 65, "step": 5}},
         "constraints": ["short_window < long_window"],
         "objective": {"metric": "sharpe_ratio", "direction": "maximize"},
         "result_constraints": ["max_drawdown < 0.5"], "seed": "42"}


def strategy(size: int) -> dict[str, Any]:
    code = (CODE_LINE * (size // len(CODE_LINE.encode()) + 1))[:size]
    return {"name": f"bench {size}", "code": code, "description": "", "category": "trend", "params_schema": "{}"}


CASES = [  # name, path, body, requests per round
    ("login", "/api/v1/auth/login", {"username": "admin", "password": "correct horse battery"}, 300),
    ("backtest submit", "/api/v1/backtest/run", RUN, 300),
    ("sweep submit", "/api/v1/backtest/sweeps", SWEEP, 300),
    ("strategy, 100 KB code", "/api/v1/backtest/strategies", strategy(100_000), 100),
    ("strategy, 1 MB code", "/api/v1/backtest/strategies", strategy(1_000_000), 30),
]


def serve_upstream(port_file: str) -> None:
    """The fake upstream (run in its own process): every method answers an empty HttpBody."""
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    class Answer(grpc.GenericRpcHandler):
        def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
            if details.method.startswith("/grpc.health"):
                return None
            return grpc.unary_unary_rpc_method_handler(lambda request, context: b"")

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                         options=[("grpc.max_receive_message_length", 8 << 20)])
    server.add_generic_rpc_handlers((Answer(),))
    checks = health.HealthServicer()
    for name in ["", *HEALTH]:
        checks.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    Path(port_file).write_text(str(port))
    server.wait_for_termination()


def start_envoy(directory: Path, upstream: str, with_check: bool) -> tuple[subprocess.Popen[bytes], str]:
    import yaml

    directory.mkdir(parents=True)
    config = devstack.GatewayConfig(gateway_port=devstack.free_port(), admin_port=devstack.free_port(),
                                    auth_addr=upstream, task_addr=upstream, engine_addr=upstream)
    doc = yaml.safe_load(devstack.render_envoy_config(config.render_values()))
    if not with_check:
        manager = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        before = len(manager["http_filters"])
        manager["http_filters"] = [f for f in manager["http_filters"] if f["name"] != "zq.request_check"]
        assert len(manager["http_filters"]) == before - 1
    path = directory / "envoy.yaml"
    path.write_text(yaml.safe_dump(doc))
    binary = devstack.envoy_binary()
    assert binary, "envoy binary not found"
    process = subprocess.Popen([binary, "-c", str(path), "--concurrency", "2", "--disable-hot-restart",
                                "--log-level", "warn"], stdout=(directory / "envoy.log").open("wb"),
                               stderr=subprocess.STDOUT, env=config.envoy_env(os.environ))
    admin = f"http://127.0.0.1:{config.admin_port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{admin}/clusters?format=json", timeout=2) as r:  # noqa: S310
                clusters = json.load(r)["cluster_statuses"]
            if all(h.get("health_status", {}).get("eds_health_status") == "HEALTHY" and
                   not any(v is True for k, v in h["health_status"].items() if k != "eds_health_status")
                   for c in clusters for h in c.get("host_statuses", [])):
                return process, f"http://127.0.0.1:{config.gateway_port}"
        except OSError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"envoy in {directory} not healthy: {(directory / 'envoy.log').read_text()[-2000:]}")


def timed(client: Any, path: str, content: bytes, n: int) -> list[float]:
    headers = {"content-type": "application/json", "authorization": "Bearer bench"}
    for _ in range(3):  # warm-up
        client.post(path, content=content, headers=headers)
    out = []
    for _ in range(n):
        start = time.perf_counter()
        response = client.post(path, content=content, headers=headers)
        out.append(time.perf_counter() - start)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", dest="json_out")
    ap.add_argument("--upstream", help=argparse.SUPPRESS)  # internal: run the fake upstream
    args = ap.parse_args()
    if args.upstream:
        serve_upstream(args.upstream)
        return 0

    import httpx

    tmp = tempfile.TemporaryDirectory(prefix="zq_gwcheck_bench_")
    base = Path(tmp.name)
    port_file = base / "upstream.port"
    upstream = subprocess.Popen([sys.executable, __file__, "--upstream", str(port_file)])
    envoys: list[subprocess.Popen[bytes]] = []
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline:
                raise RuntimeError("fake upstream did not start")
            time.sleep(0.05)
        addr = f"127.0.0.1:{port_file.read_text()}"
        urls = {}
        for mode, with_check in (("with", True), ("without", False)):
            process, urls[mode] = start_envoy(base / mode, addr, with_check)
            envoys.append(process)
        bodies = [(name, path, json.dumps(body).encode(), n) for name, path, body, n in CASES]
        p50s: dict[str, dict[str, list[float]]] = {name: {"with": [], "without": []} for name, *_ in CASES}
        clients = {mode: httpx.Client(base_url=url, timeout=30) for mode, url in urls.items()}
        for round_ in range(args.rounds):
            order = ["with", "without"] if round_ % 2 == 0 else ["without", "with"]
            for name, path, content, n in bodies:
                for mode in order:
                    p50s[name][mode].append(summary_ms(timed(clients[mode], path, content, n))["p50_ms"])
        for client in clients.values():
            client.close()
    finally:
        for process in envoys:
            process.terminate()
            process.wait(10)
        upstream.terminate()
        upstream.wait(10)
        tmp.cleanup()

    rows = []
    for name, _, content, n in bodies:
        with_ms = statistics.median(p50s[name]["with"])
        without_ms = statistics.median(p50s[name]["without"])
        rows.append({"case": name, "body_bytes": len(content), "requests_per_round": n, "rounds": args.rounds,
                     "p50_without_ms": round(without_ms, 3), "p50_with_ms": round(with_ms, 3),
                     "ratio": round(with_ms / without_ms, 3), "added_us": round((with_ms - without_ms) * 1000),
                     "round_p50s": p50s[name]})
    load = os.getloadavg()[0]
    report = {"load_average_1m": round(load, 2), "cases": rows}
    print(json.dumps(report, indent=1))
    print(f"\nload average (1 min) at the end: {load:.2f}")
    print("| case | body | p50 without ms | p50 with ms | with/without | added |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['body_bytes']:,} B | {r['p50_without_ms']:.3f} | {r['p50_with_ms']:.3f} | "
              f"{r['ratio']:.3f} | {r['added_us']} µs |")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
