"""auth_svc benchmark: `Authenticate` called directly over gRPC on loopback.

    .venv/bin/python bench/auth_bench.py                       # spawns auth_svc (SQLite), 10 s per case
    .venv/bin/python bench/auth_bench.py --seconds 5 --threads 8 --cases jwt --json out.json
    .venv/bin/python bench/auth_bench.py --addr 127.0.0.1:50051 --username admin --password …

Without --addr the script starts a real `python -m auth_svc` subprocess with a temporary
ZQ_DATA_DIR (SQLite, ZQ_LOG_LEVEL=WARNING so per-request logging is not measured), creates an
admin with a random password, logs in and creates an API key. Each case runs `--threads`
client threads, one channel each, for `--seconds` after a 1 s warm-up, calling Authenticate in
a closed loop:

  jwt      Authenticate(access_token): Ed25519 verify + user lookup by primary key
  api_key  Authenticate(api_key, api_secret): key lookup + sha256 + compare_digest + user lookup

Prints a table (stderr-free) and one JSON document. The Envoy side is measured elsewhere.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from zquant.auth.v1 import auth_pb2, auth_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(data_dir: str) -> tuple[subprocess.Popen[bytes], str, str, str]:
    addr = f"127.0.0.1:{_free_port()}"
    password = secrets.token_urlsafe(16)
    env = {**os.environ, "ZQ_DATA_DIR": data_dir, "ZQ_AUTH_ADDR": addr, "ZQ_LOG_LEVEL": "WARNING",
           "ZQ_ADMIN_USERNAME": "bench_admin", "ZQ_ADMIN_PASSWORD": password,
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("ZQ_AUTH_DATABASE_URL", None)
    subprocess.run([sys.executable, "-m", "auth_svc", "create-admin"], env=env, cwd=ROOT, check=True,
                   capture_output=True)
    proc = subprocess.Popen([sys.executable, "-m", "auth_svc"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(addr))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == \
                    health_pb2.HealthCheckResponse.SERVING:
                return proc, addr, "bench_admin", password
        except grpc.RpcError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("auth_svc did not become SERVING")


def _run_case(addr: str, request: auth_pb2.AuthenticateRequest, threads: int, seconds: float) -> dict[str, Any]:
    stop_at: list[float] = [0.0]
    measuring = threading.Event()
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads
    start_barrier = threading.Barrier(threads + 1)

    def worker(i: int) -> None:
        channel = grpc.insecure_channel(addr)
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        stub.Authenticate(request, timeout=5)  # connect before the clock starts
        start_barrier.wait()
        own = latencies[i]
        while True:
            t0 = time.perf_counter()
            if stop_at[0] and t0 >= stop_at[0]:
                break
            try:
                stub.Authenticate(request, timeout=5)
            except grpc.RpcError:
                errors[i] += 1
                continue
            if measuring.is_set():
                own.append(time.perf_counter() - t0)
        channel.close()

    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for t in pool:
        t.start()
    start_barrier.wait()
    time.sleep(1.0)  # warm-up
    measuring.set()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - began
    all_lat = sorted(x for own in latencies for x in own)
    if not all_lat:
        return {"requests": 0, "errors": sum(errors)}

    def pct(p: float) -> float:
        return round(all_lat[min(len(all_lat) - 1, int(p / 100 * len(all_lat)))] * 1000, 3)

    return {"requests": len(all_lat), "errors": sum(errors), "seconds": round(elapsed, 2),
            "rps": round(len(all_lat) / elapsed, 1), "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99),
            "mean_ms": round(statistics.fmean(all_lat) * 1000, 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--addr", help="benchmark a running auth_svc instead of spawning one")
    ap.add_argument("--username", default=os.environ.get("ZQ_ADMIN_USERNAME", "admin"))
    ap.add_argument("--password", default=os.environ.get("ZQ_ADMIN_PASSWORD", ""))
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--cases", default="jwt,api_key")
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()

    proc = None
    tmp = tempfile.TemporaryDirectory(prefix="zq_auth_bench_")
    try:
        if args.addr:
            addr, username, password = args.addr, args.username, args.password
        else:
            proc, addr, username, password = _spawn(tmp.name)
        stub = auth_pb2_grpc.AuthServiceStub(grpc.insecure_channel(addr))
        pair = stub.Login(auth_pb2.LoginRequest(username=username, password=password))
        md = [("authorization", f"Bearer {pair.access_token}")]
        key = stub.CreateApiKey(auth_pb2.CreateApiKeyRequest(name="bench"), metadata=md)
        requests = {
            "jwt": auth_pb2.AuthenticateRequest(access_token=pair.access_token),
            "api_key": auth_pb2.AuthenticateRequest(api_key=key.key, api_secret=key.secret),
        }
        results: dict[str, Any] = {}
        for case in [c.strip() for c in args.cases.split(",") if c.strip()]:
            results[case] = _run_case(addr, requests[case], args.threads, args.seconds)
        stub.RevokeApiKey(auth_pb2.RevokeApiKeyRequest(key_id=key.id), metadata=md)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        tmp.cleanup()

    doc = {"bench": "auth_svc Authenticate, direct gRPC on loopback", "threads": args.threads,
           "seconds": args.seconds, "cpus": os.cpu_count(), "spawned": not args.addr, "results": results}
    header = f"{'case':<8} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'requests':>9} {'errors':>6}"
    print(header)
    print("-" * len(header))
    for case, r in results.items():
        print(f"{case:<8} {r.get('rps', 0):>9} {r.get('p50_ms', 0):>8} {r.get('p90_ms', 0):>8} "
              f"{r.get('p99_ms', 0):>8} {r['requests']:>9} {r['errors']:>6}")
    print(json.dumps(doc, indent=1))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
