"""What sweeplib's planning costs next to the trials it plans, in one invocation.

    .venv/bin/python bench/sweep_planner_bench.py [--repeats 3] [--json out.json]

Baseline: the CPU time of one trial of the dual-MA template (task_svc/templates/dual_ma_trend.py)
on a synthetic market of 10 symbols × 1 250 days, run in-process through the engine's trials host
(``run_trials``, 10 trials a batch) and as single direct runs. Then the planner's CPU time per
generation: GRID and RANDOM (100- and 1 000-point spaces), and TPE (8 trials a generation) with
0, 100, 500 and 1 000 finished trials behind it — each also as a multiple of one trial's time.
Medians of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine_svc.data.synthetic import generate_panel  # noqa: E402
from engine_svc.engine.config import BacktestConfig  # noqa: E402
from engine_svc.engine.runner import run_backtest, run_trials  # noqa: E402
from sweeplib import TrialRecord, parse_spec, plan_generation  # noqa: E402

TEMPLATE = (ROOT / "task_svc" / "templates" / "dual_ma_trend.py").read_text()


def cpu(fn: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        samples.append(time.process_time() - t0)
    return statistics.median(samples)


def history_for(spec, n: int) -> list[TrialRecord]:
    rng = random.Random(0)
    hist: list[TrialRecord] = []
    g = 0
    while len(hist) < n:
        planned = plan_generation(spec, g, hist)
        hist += [TrialRecord(t.number, t.params, rng.random()) for t in planned]
        g += 1
    return hist[:n]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()

    panel = generate_panel(10, 1250, seed=3)
    cfg = BacktestConfig(start_date=str(panel.dates[60]), end_date=str(panel.dates[-1]), symbols=tuple(panel.symbols))
    params = [{"short_window": s, "long_window": lw} for s in (3, 5, 7, 9, 11) for lw in (20, 40)]
    trial = cpu(lambda: run_trials(panel, TEMPLATE, cfg, params), args.repeats) / len(params)
    single = cpu(lambda: [run_backtest(panel, TEMPLATE, cfg.with_params(p)) for p in params[:3]], args.repeats) / 3

    rows: list[dict[str, object]] = []

    def case(name: str, fn: Callable[[], object]) -> None:
        sec = cpu(fn, args.repeats)
        rows.append({"case": name, "cpu_s": round(sec, 4), "trials_equivalent": round(sec / trial, 3)})

    grid1000 = parse_spec({"space": grid1000_space(), "objective": {"metric": "sharpe_ratio"}})
    case("GRID 100 points: parse + generation 0", lambda: plan_generation(parse_spec({
        "space": {"short_window": {"min": 3, "max": 12, "step": 1}, "long_window": {"min": 20, "max": 65, "step": 5}},
        "objective": {"metric": "sharpe_ratio"}}), 0, []))
    case("GRID 1000 points: a generation (100)", lambda: plan_generation(grid1000, 5, history_for(grid1000, 500)))
    rnd = parse_spec({"space": grid1000_space(), "method": "random", "max_trials": 1000, "seed": 1,
                      "objective": {"metric": "sharpe_ratio"}})
    case("RANDOM 1000 of a 1000-point space: last generation", lambda: plan_generation(rnd, 9, history_for(rnd, 900)))
    tpe = parse_spec({"space": {**grid1000_space(), "stop": {"min": 0.01, "max": 0.2, "log": True}}, "method": "tpe",
                      "max_trials": 1008, "seed": 1, "max_parallel": 8, "objective": {"metric": "sharpe_ratio"}})
    for n in (0, 96, 496, 992):
        hist = history_for(tpe, n)
        case(f"TPE generation of 8 after {n} trials", lambda hist=hist, n=n: plan_generation(tpe, n // 8, hist))

    report = {"trial_cpu_s": round(trial, 4), "single_run_cpu_s": round(single, 4),
              "trials_host_vs_single": round(trial / single, 3), "repeats": args.repeats, "cases": rows}
    print(f"one trial (trials host, batch of 10): {trial:.3f} s CPU; one single direct run: {single:.3f} s "
          f"({trial / single:.2f}×)")
    width = max(len(str(r["case"])) for r in rows)
    print(f"{'case':<{width}}  {'CPU s':>8}  {'× one trial':>11}")
    for r in rows:
        print(f"{r['case']!s:<{width}}  {r['cpu_s']:>8.4f}  {r['trials_equivalent']:>11.3f}")
    print(json.dumps(report))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2))
    return 0


def grid1000_space() -> dict[str, dict[str, int]]:
    return {"short_window": {"min": 3, "max": 42, "step": 1}, "long_window": {"min": 50, "max": 295, "step": 10}}


if __name__ == "__main__":
    sys.exit(main())
