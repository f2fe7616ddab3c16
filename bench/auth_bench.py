"""auth benchmark: the REST gateway path against direct gRPC, in one invocation.

    .venv/bin/python bench/auth_bench.py                  # 10 s per case, 4 client threads
    .venv/bin/python bench/auth_bench.py --seconds 3 --threads 2 --json out.json

Starts a real `python -m auth_svc` (SQLite in a temporary ZQ_DATA_DIR, ZQ_LOG_LEVEL=WARNING)
and a real Envoy in front of it with devstack — exactly as `make up` does — then runs each
case with `--threads` closed-loop client threads (one connection each) for `--seconds`
after a 1 s warm-up:

  gateway_me      GET /api/v1/users/me through Envoy (HTTP/1.1 keep-alive, Bearer JWT)
  grpc_me         GetMe direct over gRPC (same work minus the gateway)
  grpc_auth_jwt   Authenticate(access_token) direct over gRPC
  grpc_auth_key   Authenticate(api_key, api_secret) direct over gRPC

Target (issue 2): gateway_me p50 within 1.5× of grpc_auth_jwt p50. Prints a table and JSON.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from zquant.auth.v1 import auth_pb2, auth_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchstats import summary_ms  # noqa: E402  (bench/ is sys.path[0] when run as a script)

import devstack  # noqa: E402  (repo on sys.path first when run as a script)

Call = Callable[[], None]


def run_case(make_call: Callable[[], Call], threads: int, seconds: float) -> dict[str, Any]:
    """Each thread gets its own client from make_call (connection set up before timing)."""
    measuring, stop = threading.Event(), threading.Event()
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads
    barrier = threading.Barrier(threads + 1)

    def worker(i: int) -> None:
        call = make_call()
        call()
        barrier.wait()
        own = latencies[i]
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                call()
            except Exception:
                errors[i] += 1
                continue
            if measuring.is_set():
                own.append(time.perf_counter() - t0)

    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    time.sleep(1.0)
    measuring.set()
    began = time.perf_counter()
    time.sleep(seconds)
    measuring.clear()
    elapsed = time.perf_counter() - began
    stop.set()
    for t in pool:
        t.join()
    lat = [x for own in latencies for x in own]
    stats = summary_ms(lat)
    return {"requests": len(lat), "errors": sum(errors), "rps": round(len(lat) / elapsed, 1),
            "p50_ms": stats["p50_ms"], "p90_ms": stats["p90_ms"], "p99_ms": stats["p99_ms"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="zq_auth_bench_")
    data_dir = Path(tmp.name)
    password = secrets.token_urlsafe(16)
    addr = f"127.0.0.1:{devstack.free_port()}"
    env = devstack.child_env(extra={"ZQ_DATA_DIR": str(data_dir), "ZQ_AUTH_ADDR": addr, "ZQ_LOG_LEVEL": "WARNING",
                                    "ZQ_ADMIN_USERNAME": "bench_admin", "ZQ_ADMIN_PASSWORD": password})
    env.pop("ZQ_AUTH_DATABASE_URL", None)
    subprocess.run([sys.executable, "-m", "auth_svc", "create-admin"], env=env, cwd=ROOT, check=True,
                   capture_output=True)
    handles = [devstack.start_service("auth", env)]
    try:
        gw_port, admin_port = devstack.free_port(), devstack.free_port()
        handles.append(devstack.start_envoy(data_dir / "envoy", gw_port, admin_port, auth_addr=addr))
        stub = auth_pb2_grpc.AuthServiceStub(grpc.insecure_channel(addr))
        pair = stub.Login(auth_pb2.LoginRequest(username="bench_admin", password=password))
        bearer = f"Bearer {pair.access_token}"
        key = stub.CreateApiKey(auth_pb2.CreateApiKeyRequest(name="bench"), metadata=[("authorization", bearer)])
        time.sleep(2.5)  # Envoy's first active health check marks the cluster healthy

        def gateway_me() -> Call:
            conn = http.client.HTTPConnection("127.0.0.1", gw_port, timeout=5)

            def call() -> None:
                conn.request("GET", "/api/v1/users/me", headers={"authorization": bearer})
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    raise RuntimeError(resp.status)

            return call

        def grpc_call(method: str, request: Any, metadata: list[tuple[str, str]] | None = None) -> Callable[[], Call]:
            def make() -> Call:
                rpc = getattr(auth_pb2_grpc.AuthServiceStub(grpc.insecure_channel(addr)), method)
                return lambda: rpc(request, metadata=metadata, timeout=5)

            return make

        cases = {
            "gateway_me": gateway_me,
            "grpc_me": grpc_call("GetMe", auth_pb2.GetMeRequest(), [("authorization", bearer)]),
            "grpc_auth_jwt": grpc_call("Authenticate", auth_pb2.AuthenticateRequest(access_token=pair.access_token)),
            "grpc_auth_key": grpc_call("Authenticate", auth_pb2.AuthenticateRequest(api_key=key.access_key,
                                                                                    api_secret=key.secret_key)),
        }
        results = {name: run_case(make, args.threads, args.seconds) for name, make in cases.items()}
    finally:
        for handle in reversed(handles):
            handle.stop(grace=5)
        tmp.cleanup()

    base = results["grpc_auth_jwt"]["p50_ms"] or 1.0
    ratio = round(results["gateway_me"]["p50_ms"] / base, 2)
    doc = {"bench": "auth: REST via Envoy vs direct gRPC", "threads": args.threads, "seconds": args.seconds,
           "cpus": os.cpu_count(), "results": results,
           "gateway_me_p50_over_grpc_auth_jwt_p50": ratio,
           "gateway_me_p50_over_grpc_me_p50": round(results["gateway_me"]["p50_ms"]
                                                     / (results["grpc_me"]["p50_ms"] or 1.0), 2),
           "target_met": ratio <= 1.5}
    header = f"{'case':<14} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'requests':>9} {'errors':>6}"
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        print(f"{name:<14} {r['rps']:>9} {r['p50_ms']:>8} {r['p90_ms']:>8} {r['p99_ms']:>8} "
              f"{r['requests']:>9} {r['errors']:>6}")
    print(f"gateway_me p50 / grpc_auth_jwt p50 = {ratio} (target ≤ 1.5)")
    print(json.dumps(doc, indent=1))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
