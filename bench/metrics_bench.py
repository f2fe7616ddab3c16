"""Metrics overhead: auth_bench's direct gRPC cases against auth_svc with /metrics on and off.

    .venv/bin/python bench/metrics_bench.py                    # 5 rounds × 4 s per case and mode
    .venv/bin/python bench/metrics_bench.py --rounds 3 --seconds 2 --json out.json

Starts two real `python -m auth_svc` processes on one SQLite database (devstack, as `make up`
does, ZQ_LOG_LEVEL=WARNING): one with ZQ_AUTH_METRICS_ADDR set (the per-RPC interceptor and the
/metrics endpoint, scraped once a second during the run as Prometheus would), one without. Each
round runs every case against both, alternating which goes first, with auth_bench's closed-loop
clients (`--threads` connections, 1 s warm-up). Reported: the median over rounds of each p50,
and on/off ratios; then the interceptor's own cost per call, timed in-process (a figure the
machine's load does not blur). Target (issue 13): metrics-on p50 within 5 % of metrics-off p50.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import grpc
from zquant.auth.v1 import auth_pb2, auth_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from auth_bench import run_case  # noqa: E402  (bench/ is sys.path[0] when run as a script)

import devstack  # noqa: E402  (repo on sys.path first when run as a script)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="zq_metrics_bench_")
    data_dir = Path(tmp.name)
    password = secrets.token_urlsafe(16)
    addrs = {"off": f"127.0.0.1:{devstack.free_port()}", "on": f"127.0.0.1:{devstack.free_port()}"}
    metrics_port = devstack.free_port()
    base = {"ZQ_DATA_DIR": str(data_dir), "ZQ_LOG_LEVEL": "WARNING",
            "ZQ_ADMIN_USERNAME": "bench_admin", "ZQ_ADMIN_PASSWORD": password}
    # One database, two data dirs: devstack keeps one process per service and data dir.
    env = devstack.child_env(extra={**base, "ZQ_AUTH_ADDR": addrs["off"],
                                    "ZQ_AUTH_DATABASE_URL": f"sqlite:///{data_dir / 'auth.db'}"})
    env.pop("ZQ_AUTH_METRICS_ADDR", None)
    subprocess.run([sys.executable, "-m", "auth_svc", "create-admin"], env=env, cwd=ROOT, check=True,
                   capture_output=True)
    handles = [devstack.start_service("auth", env)]
    stop_scraper = threading.Event()
    try:
        (data_dir / "on").mkdir()
        on_env = {**env, "ZQ_DATA_DIR": str(data_dir / "on"), "ZQ_AUTH_ADDR": addrs["on"],
                  "ZQ_AUTH_METRICS_ADDR": f"127.0.0.1:{metrics_port}"}
        handles.append(devstack.start_service("auth", on_env))
        pair = auth_pb2_grpc.AuthServiceStub(grpc.insecure_channel(addrs["off"])).Login(
            auth_pb2.LoginRequest(username="bench_admin", password=password))
        bearer = [("authorization", f"Bearer {pair.access_token}")]

        def scraper() -> None:
            while not stop_scraper.wait(1.0):
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
                    r.read()

        threading.Thread(target=scraper, daemon=True).start()

        def case(addr: str, method: str, request: Any, metadata: list[tuple[str, str]] | None) -> Any:
            def make() -> Any:
                rpc = getattr(auth_pb2_grpc.AuthServiceStub(grpc.insecure_channel(addr)), method)
                return lambda: rpc(request, metadata=metadata, timeout=5)

            return make

        cases = {"grpc_me": ("GetMe", auth_pb2.GetMeRequest(), bearer),
                 "grpc_auth_jwt": ("Authenticate", auth_pb2.AuthenticateRequest(access_token=pair.access_token), None)}
        p50: dict[str, dict[str, list[float]]] = {name: {"off": [], "on": []} for name in cases}
        for i in range(args.rounds):
            order = ("off", "on") if i % 2 == 0 else ("on", "off")
            for name, (method, request, metadata) in cases.items():
                for mode in order:
                    r = run_case(case(addrs[mode], method, request, metadata), args.threads, args.seconds)
                    if r["errors"]:
                        raise RuntimeError(f"{name}/{mode}: {r['errors']} errors")
                    p50[name][mode].append(r["p50_ms"])
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            counted = sum(1 for line in r.read().decode().splitlines()
                          if line.startswith("grpc_server_handled_total{") and 'grpc_code="OK"' in line)
        if counted < 2:
            raise RuntimeError("the metrics-on server did not count the calls")
    finally:
        stop_scraper.set()
        for handle in reversed(handles):
            handle.stop(grace=5)
        tmp.cleanup()

    # The interceptor's own work per call (counters, histogram, label lookup), in this process:
    # independent of the machine's load, which moves the end-to-end p50s by more than it.
    from services.metrics import _Call

    n = 20000
    costs = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            _Call("/zquant.auth.v1.AuthService/GetMe").done("OK")
        costs.append((time.perf_counter() - t0) / n * 1e6)
    per_call_us = round(statistics.median(costs), 2)

    results = {}
    for name, modes in p50.items():
        off, on = statistics.median(modes["off"]), statistics.median(modes["on"])
        results[name] = {"p50_ms_off": round(off, 3), "p50_ms_on": round(on, 3), "ratio": round(on / off, 3),
                         "rounds_off": modes["off"], "rounds_on": modes["on"]}
    worst = max(r["ratio"] for r in results.values())
    doc = {"bench": "metrics overhead on auth_svc (on vs off)", "rounds": args.rounds, "seconds": args.seconds,
           "threads": args.threads, "cpus": os.cpu_count(), "results": results,
           "worst_ratio": worst, "target_met": worst <= 1.05, "interceptor_us_per_call": per_call_us,
           "interceptor_share_of_off_p50": {name: round(per_call_us / 1000 / r["p50_ms_off"], 5)
                                            for name, r in results.items()}}
    header = f"{'case':<14} {'p50 off ms':>11} {'p50 on ms':>10} {'on/off':>7}"
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        print(f"{name:<14} {r['p50_ms_off']:>11} {r['p50_ms_on']:>10} {r['ratio']:>7}")
    print(f"worst on/off p50 ratio = {worst} (target ≤ 1.05); the interceptor's own cost: {per_call_us} µs/call")
    print(json.dumps(doc, indent=1))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
