"""engine_svc service-path benchmark: what the gRPC service + sandbox add to a backtest.

    .venv/bin/python bench/engine_service_bench.py                  # table + JSON on stdout
    .venv/bin/python bench/engine_service_bench.py --samples 40 --json out.json

Measures, on a small synthetic backtest (default 5 symbols × 250 days in a temp SQLite DB):
  worker_start   spawn → hardened worker ready (sandbox timings.start_s), p50 / p99
  in_process     engine_svc.engine.runner.run_backtest on the same panel, in this process
  service        RunBacktest over loopback gRPC into the real servicer (auth interceptor, cached
                 panel load, slot, sandboxed worker, metrics + round trips, proto conversion),
                 from call to the last event; overhead = median over samples of (service − in-process),
                 the two measured back to back (target < 0.2 s). The service keeps ZQ_SANDBOX_SPARES
                 (default 1) workers started ahead, so a run does not wait for a worker to start.
  sandbox_run    the same backtest through run_in_sandbox directly with a worker started for it
                 (no spare, no gRPC, no metrics): what a run costs when no spare is ready
  throughput     backtests completed per minute with 2 slots (queue large enough for every call),
                 the calls issued at once from a client thread pool

Everything runs in one process (client and server) on this host; numbers depend on the CPU and
on whatever else is running (check `uptime`).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from benchstats import percentile  # bench/ is sys.path[0] when run as a script
from zquant.engine.v1 import engine_pb2, engine_pb2_grpc

from engine_svc.data.db import ensure_schema, get_engine
from engine_svc.data.loader import load_panel
from engine_svc.data.synthetic_db import write_synthetic
from engine_svc.engine.config import BacktestConfig
from engine_svc.engine.runner import run_backtest
from engine_svc.sandbox import api as sandbox_api
from engine_svc.sandbox.limits import SandboxLimits
from engine_svc.serve import build_core, start_server
from services.config import ServerSettings
from services.principal import Credentials, Principal

STRATEGY = """
from zquant.backtest.strategy import BaseStrategy

class Strategy(BaseStrategy):
    def on_bar(self, context, bar_data):
        for symbol in bar_data:
            if context.portfolio.get_position(symbol).quantity == 0:
                context.order_value(symbol, context.portfolio.total_value * 0.15)
        if context.current_date.day == 15:
            for symbol in list(context.portfolio.positions):
                context.order_target(symbol, 0)
"""
TOKEN = "bench-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)


class _BenchAuth:
    """The bench calls as task_svc does: RunBacktest is for service principals only."""

    def authenticate(self, credentials: Credentials) -> Principal:
        return Principal(user_id=1, username="bench", is_admin=False, auth_method="api_key", is_service=True)


def _summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_s": round(percentile(values, 50), 4), "p99_s": round(percentile(values, 99), 4),
            "mean_s": round(statistics.fmean(values), 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", type=int, default=5)
    parser.add_argument("--days", type=int, default=250)
    parser.add_argument("--samples", type=int, default=20, help="runs per latency measurement")
    parser.add_argument("--throughput-calls", type=int, default=24)
    parser.add_argument("--json", dest="json_out", help="also write the JSON here")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="zq-engine-bench-"))
    atexit.register(shutil.rmtree, tmp, True)
    engine = get_engine(f"sqlite:///{tmp / 'engine.db'}")
    ensure_schema(engine)
    write_synthetic(engine, args.symbols, args.days, seed=3, progress=False)
    with engine.connect() as conn:
        first, last = conn.exec_driver_sql("SELECT MIN(trade_date), MAX(trade_date) FROM daily_bars").one()
        symbols = [r[0] for r in conn.exec_driver_sql(
            "SELECT symbol FROM daily_bars GROUP BY symbol ORDER BY symbol").all()]
    start, end = str(first)[:10], str(last)[:10]
    config = BacktestConfig(start_date=start, end_date=end, symbols=tuple(symbols))
    panel = load_panel(engine, symbols, start, end)
    limits = SandboxLimits.from_env()
    load_before = os.getloadavg()[0]

    def serve(slots: int, queue: int) -> tuple[Any, grpc.Channel, engine_pb2_grpc.EngineServiceStub]:
        settings = ServerSettings(service="engine", addr="127.0.0.1:0", database_url=str(engine.url),
                                  max_workers=16, grace_seconds=1)
        core = build_core(engine, limits=limits, slots=slots, queue=queue)
        running = start_server(settings, core, _BenchAuth())
        running.set_serving(True)
        channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
        return running, channel, engine_pb2_grpc.EngineServiceStub(channel)

    request = engine_pb2.RunBacktestRequest(
        strategy_code=STRATEGY,
        config=engine_pb2.BacktestConfig(start_date=start, end_date=end, symbols=symbols),
    )

    def call(stub: engine_pb2_grpc.EngineServiceStub) -> float:
        t0 = time.perf_counter()
        events = list(stub.RunBacktest(request, metadata=AUTH, timeout=120))
        elapsed = time.perf_counter() - t0
        if events[-1].WhichOneof("event") != "result":
            raise RuntimeError(f"backtest failed: {events[-1]}")
        return elapsed

    # 1 + 2. Interleaved, so load from other processes hits all three measures alike: a bare
    # sandbox run (its spawn → ready time), the in-process engine, and the full service path.
    running, channel, stub = serve(slots=1, queue=1)
    call(stub)  # warm the panel cache and the channel
    starts: list[float] = []
    sandbox_total: list[float] = []
    in_process: list[float] = []
    service: list[float] = []
    overheads: list[float] = []
    for _ in range(args.samples):
        outcome = sandbox_api.run_in_sandbox(panel, STRATEGY, config.to_dict(), limits=limits)
        starts.append(outcome.timings["start_s"])
        sandbox_total.append(outcome.timings["total_s"])
        t0 = time.perf_counter()
        run_backtest(panel, STRATEGY, config)
        in_process.append(time.perf_counter() - t0)
        service.append(call(stub))
        overheads.append(service[-1] - in_process[-1])
    running.stop(grace=1)
    channel.close()

    # 3. throughput with 2 slots: every call admitted, two run at a time.
    running, channel, stub = serve(slots=2, queue=args.throughput_calls)
    call(stub)
    lock = threading.Lock()
    done = 0
    t0 = time.perf_counter()
    with futures.ThreadPoolExecutor(max_workers=args.throughput_calls) as pool:
        for _ in pool.map(lambda _i: call(stub), range(args.throughput_calls)):
            with lock:
                done += 1
    wall = time.perf_counter() - t0
    running.stop(grace=1)
    channel.close()

    overhead = percentile(overheads, 50)
    report = {
        "host": {"cpus": os.cpu_count(), "loadavg_1m_before": round(load_before, 2),
                 "loadavg_1m_after": round(os.getloadavg()[0], 2), "preload": list(limits.preload),
                 "isolation": {k: v for k, v in sandbox_api.isolation_report(limits).items()
                               if k in ("seccomp", "landlock_abi", "bwrap")}},
        "backtest": {"symbols": len(symbols), "days": len(panel.dates), "start": start, "end": end},
        "worker_start": _summary(starts),
        "in_process": _summary(in_process),
        "sandbox_run": _summary(sandbox_total),
        "service": _summary(service),
        "service_overhead_p50_s": round(overhead, 4),
        "service_overhead_p99_s": round(percentile(overheads, 99), 4),
        "overhead_target_s": 0.2,
        "spares": limits.spares,
        "throughput": {"slots": 2, "calls": done, "wall_s": round(wall, 3),
                       "backtests_per_minute": round(done / wall * 60, 1)},
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json_out:
        Path(args.json_out).write_text(text + "\n")
    rows = [
        ("worker start (spawn → ready)", report["worker_start"]),
        ("in-process run_backtest", report["in_process"]),
        ("sandboxed run (no service)", report["sandbox_run"]),
        ("service RunBacktest (gRPC)", report["service"]),
    ]
    print(f"\n{'measure':32} {'n':>4} {'p50 s':>8} {'p99 s':>8}")
    for name, s in rows:
        print(f"{name:32} {s['n']:>4} {s['p50_s']:>8.3f} {s['p99_s']:>8.3f}")
    print(f"{'service overhead (p50)':32} {'':>4} {overhead:>8.3f}   target < 0.2 ({limits.spares} spare workers)")
    print(f"{'throughput, 2 slots':32} {done:>4} {report['throughput']['backtests_per_minute']:>8.1f} backtests/min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
