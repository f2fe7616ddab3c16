"""``python -m engine_svc sweep``: a parameter sweep in-process, with sweeplib's planner.

    python -m engine_svc sweep strategy.py --start 2012-01-04 --end 2016-12-30 --symbols 600036.SH,000002.SZ \\
        --param short_window=3:12:1 --param long_window=20:60:5 --constraint 'short_window < long_window' \\
        --objective sharpe_ratio [--method grid|random|tpe --trials N --seed S] \\
        [--result-constraint 'max_drawdown < 0.25'] [--target 1.5] \\
        [--validation walk-forward --train-days 250 --test-days 60 [--step-days 60] [--anchored]] \\
        [--validation holdout --in-sample-end 2015-06-30] [--json SWEEP.json] [--top 10]

``--param NAME=SPEC``: ``MIN:MAX:STEP`` (an exact grid), ``MIN:MAX:log`` or ``MIN:MAX`` (continuous,
random/tpe), ``A,B,C`` (values; numbers, true/false or text), or one value. The trials of one
generation run together through the engine's trials host (``engine_svc.engine.runner.run_trials``:
one compile, the trials in lockstep over the same data), in batches of ``--batch``. The strategy runs
in this process, as with ``run``; the services run it sandboxed.

With validation, each fold's search runs over its in-sample days and its best point over the
out-of-sample days; the out-of-sample runs are stitched into one equity curve (sweeplib.walkforward).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from services.param_numbers import plain
from sweeplib import (
    SweepInputError,
    SweepSpec,
    TrialRecord,
    TrialResult,
    deflated_sharpe,
    leaderboard,
    make_folds,
    nav_returns,
    parse_spec,
    per_period_sharpe,
    run_search,
    search_value,
    stitch,
)
from sweeplib.ranking import Ranked
from sweeplib.walkforward import Fold, Segment

LEADERBOARD_METRICS = ("sharpe_ratio", "total_return", "max_drawdown", "total_trades")


def add_parser(sub: Any, add_config_arguments: Callable[..., None]) -> None:
    p = sub.add_parser("sweep", help="run a parameter sweep in-process and print the leaderboard")
    add_config_arguments(p, params_help="JSON object: base params every trial starts from")
    p.add_argument("--param", action="append", default=[], metavar="NAME=SPEC",
                   help="a swept parameter: MIN:MAX:STEP, MIN:MAX:log, MIN:MAX or A,B,C (repeatable)")
    p.add_argument("--constraint", action="append", default=[], help="parameter constraint (repeatable)")
    p.add_argument("--result-constraint", action="append", default=[],
                   help="result constraint, e.g. 'max_drawdown < 0.25' (repeatable); breaking trials are not ranked")
    p.add_argument("--objective", default="sharpe_ratio", help="metric to optimise (default sharpe_ratio)")
    p.add_argument("--direction", choices=("maximize", "minimize"), help="default: the metric's natural one")
    p.add_argument("--method", choices=("grid", "random", "tpe"), default="grid")
    p.add_argument("--trials", type=int, help="max trials (required for random/tpe)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--target", type=float, help="stop once the best objective reaches this")
    p.add_argument("--max-parallel", type=int, default=0, help="TPE: trials per generation (default 8)")
    p.add_argument("--validation", choices=("none", "holdout", "walk-forward"), default="none")
    p.add_argument("--in-sample-end", help="holdout: last in-sample day")
    p.add_argument("--train-days", type=int, help="walk-forward: in-sample trading days per fold")
    p.add_argument("--test-days", type=int, help="walk-forward: out-of-sample trading days per fold")
    p.add_argument("--step-days", type=int, help="walk-forward: trading days between folds (default test-days)")
    p.add_argument("--anchored", action="store_true", help="walk-forward: in sample from the first day")
    p.add_argument("--batch", type=int, default=100, help="trials per engine call (default 100)")
    p.add_argument("--top", type=int, default=10, help="leaderboard rows to print (default 10)")
    p.add_argument("--json", dest="json_out", help="write the sweep (every trial, folds) here as JSON")
    p.add_argument("--database-url", help="override ZQ_ENGINE_DATABASE_URL")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


# ------------------------------------------------------------------------------------ arguments
def _scalar(text: str) -> Any:
    t = text.strip()
    if t.lower() in ("true", "false"):
        return t.lower() == "true"
    for conv in (int, float):
        try:
            value = conv(t)
        except ValueError:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            break
        return value
    return t


def parse_param(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME=SPEC`` → (name, sweeplib space entry); ValueError on a malformed one."""
    name, sep, spec = text.partition("=")
    name, spec = name.strip(), spec.strip()
    if not sep or not name or not spec:
        raise ValueError(f"--param {text!r}: expected NAME=MIN:MAX:STEP, NAME=MIN:MAX[:log] or NAME=A,B,C")
    if ":" in spec:
        parts = [p.strip() for p in spec.split(":")]
        if len(parts) not in (2, 3):
            raise ValueError(f"--param {text!r}: expected MIN:MAX, MIN:MAX:STEP or MIN:MAX:log")
        lo, hi = _scalar(parts[0]), _scalar(parts[1])
        entry: dict[str, Any] = {"min": lo, "max": hi}
        if len(parts) == 2:
            entry["log"] = False
        elif parts[2].lower() == "log":
            entry["log"] = True
        else:
            entry["step"] = _scalar(parts[2])
        return name, entry
    return name, {"values": [_scalar(v) for v in spec.split(",") if v.strip()]}


def build_request(args: argparse.Namespace) -> dict[str, Any]:
    space: dict[str, Any] = {}
    for text in args.param:
        name, entry = parse_param(text)
        if name in space:
            raise ValueError(f"--param {name} given twice")
        space[name] = entry
    objective: dict[str, Any] = {"metric": args.objective}
    if args.direction:
        objective["direction"] = args.direction
    validation: dict[str, Any] = {"kind": args.validation.replace("-", "_")}
    if args.validation == "holdout":
        validation["in_sample_end"] = args.in_sample_end
    elif args.validation == "walk-forward":
        validation.update(train_days=args.train_days, test_days=args.test_days, step_days=args.step_days,
                          anchored=args.anchored)
    return {"space": space, "method": args.method, "max_trials": args.trials, "seed": args.seed,
            "constraints": args.constraint, "objective": objective, "result_constraints": args.result_constraint,
            "validation": validation, "max_parallel": args.max_parallel, "target": args.target}


_FLAGS = {"space": "--param", "constraints": "--constraint", "result_constraints": "--result-constraint",
          "objective": "--objective", "method": "--method", "max_trials": "--trials", "seed": "--seed",
          "target": "--target", "max_parallel": "--max-parallel", "validation": "--validation"}


def flag_of(field: str) -> str:
    """The command-line flag a sweeplib field path came from (``constraints[1]`` → ``--constraint #2``)."""
    head = field.split(".")[0].split("[")[0]
    flag = _FLAGS.get(head, field)
    if "[" in field and head in ("constraints", "result_constraints"):
        k = int(field.split("[")[1].split("]")[0])
        return f"{flag} #{k + 1}"
    if head == "space" and "." in field:
        return f"--param {field.split('.')[1]}"
    if head == "validation" and "." in field:
        return "--" + field.split(".")[1].replace("_", "-")
    return flag


# ------------------------------------------------------------------------------------ execution
@dataclasses.dataclass
class TrialRun:
    number: int
    params: dict[str, Any]
    metrics: dict[str, Any] | None
    failure: dict[str, Any] | None
    dates: list[str]
    nav: list[float]


class Runner:
    """Runs trials of one strategy over one period with the engine's trials host."""

    def __init__(self, panel: Any, code: str, config: Any, batch: int, on_done: Callable[[float], None]) -> None:
        self.panel, self.code, self.config, self.batch, self.on_done = panel, code, config, max(1, batch), on_done

    def benchmark_close(self, config: Any) -> list[float | None] | None:
        from engine_svc.engine.session import day_rows

        bench = self.panel.benchmark
        if bench is None:
            return None
        rows = day_rows(self.panel, config.start_date, config.end_date)
        return [v if v == v else None for v in bench.close[rows.start:rows.stop].tolist()]

    def run(self, config: Any, trials: Sequence[tuple[int, dict[str, Any]]]) -> list[TrialRun]:
        from engine_svc.engine.runner import run_trials
        from engine_svc.metrics import compute_metrics

        bench = self.benchmark_close(config)
        out: list[TrialRun] = []
        for k in range(0, len(trials), self.batch):
            chunk = trials[k:k + self.batch]
            shown = [0.0]

            def progress(fraction: float, _day: str, _equity: float, size: int = len(chunk),
                         shown: list[float] = shown) -> None:
                step = fraction * size - shown[0]  # a batch advances its trials together, day by day
                shown[0] += step
                self.on_done(step)

            # The strategy sees what the service would give it (services.param_numbers).
            sets = [plain({**config.params, **p}) for _, p in chunk]
            outcomes = run_trials(self.panel, self.code, config, sets, progress)
            for (number, params), o in zip(chunk, outcomes, strict=True):
                metrics = None
                if o.failure is None:
                    metrics = compute_metrics(o.as_result(config.initial_capital, bench),
                                              annualization=config.annualization, risk_free_rate=config.risk_free_rate)
                out.append(TrialRun(number, params, metrics, o.failure, o.dates, o.nav))
            self.on_done(len(chunk) - shown[0])
        return out

    def search(self, spec: SweepSpec, config: Any) -> dict[int, TrialRun]:
        runs: dict[int, TrialRun] = {}

        def evaluate(planned: Any) -> list[TrialRecord]:
            done = self.run(config, [(t.number, t.params) for t in planned])
            records = []
            for r in done:
                runs[r.number] = r
                value = search_value(TrialResult(r.number, r.params, r.metrics), spec.objective,
                                     spec.result_constraints)
                records.append(TrialRecord(r.number, r.params, value))
            return records

        run_search(spec, evaluate)
        return runs


def rank(spec: SweepSpec, runs: dict[int, TrialRun]) -> list[Ranked]:
    return leaderboard([TrialResult(r.number, r.params, r.metrics) for r in runs.values()], spec.objective,
                       spec.result_constraints)


def overfitting(spec: SweepSpec, runs: dict[int, TrialRun], board: list[Ranked], config: Any) -> dict[str, Any] | None:
    if not board or board[0].status != "ranked":
        return None
    top = runs[board[0].number]
    sharpes = [per_period_sharpe(r.metrics["sharpe_ratio"], config.annualization) for r in runs.values()
               if r.metrics and r.metrics.get("sharpe_ratio") is not None]
    d = deflated_sharpe(nav_returns(top.nav, config.initial_capital), sharpes,
                        risk_free_per_period=(1 + config.risk_free_rate) ** (1 / config.annualization) - 1)
    if d is None:
        return {"trials": len(runs), "deflated_sharpe": None}
    root_a = math.sqrt(config.annualization)
    return {"trials": len(runs), "deflated_sharpe": d.dsr, "expected_max_sharpe": d.sr0 * root_a,
            "best_sharpe": d.sr_best * root_a}


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def format_board(spec: SweepSpec, board: list[Ranked], top: int) -> str:
    names = list(spec.space.names)
    metrics = [spec.objective.metric, *(m for m in LEADERBOARD_METRICS if m != spec.objective.metric)]
    head = ["rank", "trial", *names, *metrics, "status"]
    rows = [[_fmt(r.rank), str(r.number), *(_fmt(r.params.get(n)) for n in names),
             *(_fmt((r.metrics or {}).get(m)) for m in metrics), r.status] for r in board[:top]]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def _trial_json(r: Ranked) -> dict[str, Any]:
    return {"number": r.number, "params": r.params, "rank": r.rank, "status": r.status, "value": r.value,
            "metrics": r.metrics}


def cmd_sweep(args: argparse.Namespace, build_config: Callable[[Any], Any], load_market: Callable[..., Any],
              usage_error: type[Exception]) -> int:
    try:
        code = Path(args.strategy).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise usage_error(f"cannot read strategy {args.strategy}: {exc}") from None
    try:
        request = build_request(args)
        spec = parse_spec(request)
    except SweepInputError as exc:
        raise usage_error(f"{flag_of(exc.field)}: {exc.message}") from None
    except ValueError as exc:
        raise usage_error(str(exc)) from None
    config = build_config(args)
    panel = load_market(config, args.database_url)

    from tqdm import tqdm

    from engine_svc.engine.session import day_rows

    try:
        rows = day_rows(panel, config.start_date, config.end_date)
    except ValueError as exc:
        raise usage_error(str(exc)) from None
    calendar = [str(d) for d in panel.dates[rows.start:rows.stop]]
    try:
        folds = make_folds(spec.validation, calendar)
    except SweepInputError as exc:
        raise usage_error(f"{flag_of(exc.field)}: {exc.message}") from None

    total = spec.trial_count * max(1, len(folds)) + len(folds)
    t0 = time.monotonic()
    with tqdm(total=total, file=sys.stderr, disable=args.quiet, leave=False, unit="trial",
              bar_format="{percentage:3.0f}%|{bar}| {n:.0f}/{total} trials [{elapsed}<{remaining}]") as bar:
        runner = Runner(panel, code, config, args.batch, bar.update)
        try:
            if not folds:
                report = _plain(spec, runner, config, args.top)
            else:
                report = _validated(spec, runner, config, folds, args.top)
        except ValueError as exc:  # the engine's: symbols or days the data does not cover
            raise usage_error(str(exc)) from None
    report["elapsed_seconds"] = round(time.monotonic() - t0, 3)
    print(report.pop("_text"))
    print(f"{report['trials']} trials in {report['elapsed_seconds']:.1f} s")
    if args.json_out:
        try:
            Path(args.json_out).write_text(json.dumps(report, ensure_ascii=False, default=str), encoding="utf-8")
        except OSError as exc:
            raise usage_error(f"cannot write {args.json_out}: {exc.strerror}") from None
    return 0


def _plain(spec: SweepSpec, runner: Runner, config: Any, top: int) -> dict[str, Any]:
    runs = runner.search(spec, config)
    board = rank(spec, runs)
    over = overfitting(spec, runs, board, config)
    text = format_board(spec, board, top)
    if over and over.get("deflated_sharpe") is not None:
        text += (f"\ndeflated Sharpe ratio of the best: {over['deflated_sharpe']:.4f} "
                 f"({over['trials']} trials; expected max Sharpe by luck {over['expected_max_sharpe']:.3f})")
    failed = sum(1 for r in board if r.status == "failed")
    if failed:
        first = next(runs[r.number].failure for r in board if r.status == "failed")
        text += f"\n{failed} trial(s) failed, e.g. {first}"
    best = board[0] if board and board[0].status == "ranked" else None
    return {"_text": text, "trials": len(runs), "best": _trial_json(best) if best else None,
            "overfitting": over, "leaderboard": [_trial_json(r) for r in board]}


def _validated(spec: SweepSpec, runner: Runner, config: Any, folds: list[Fold], top: int) -> dict[str, Any]:
    from engine_svc.metrics import compute_metrics

    fold_rows: list[dict[str, Any]] = []
    segments: list[Segment] = []
    trials = 0
    lines = [f"{'fold':>4}  {'in sample':>23}  {'out of sample':>23}  {'IS ' + spec.objective.metric:>18}  "
             f"{'OOS ' + spec.objective.metric:>18}  best params"]
    last_board: list[Ranked] = []
    for fold in folds:
        train_cfg = dataclasses.replace(config, start_date=fold.train_start, end_date=fold.train_end)
        runs = runner.search(spec, train_cfg)
        trials += len(runs)
        board = rank(spec, runs)
        last_board = board
        best = board[0] if board and board[0].status == "ranked" else None
        row: dict[str, Any] = {"index": fold.index, "train_start": fold.train_start, "train_end": fold.train_end,
                               "test_start": fold.test_start, "test_end": fold.test_end, "trials": len(runs),
                               "best": _trial_json(best) if best else None, "in_sample": best.value if best else None,
                               "out_of_sample": None, "out_of_sample_metrics": None}
        if best is not None:
            test_cfg = dataclasses.replace(config, start_date=fold.test_start, end_date=fold.test_end)
            (oos,) = runner.run(test_cfg, [(-1, dict(best.params))])
            if oos.metrics is not None:
                row["out_of_sample_metrics"] = oos.metrics
                row["out_of_sample"] = oos.metrics.get(spec.objective.metric)
                segments.append(Segment(oos.dates, oos.nav, config.initial_capital))
        else:
            runner.on_done(1)
        fold_rows.append(row)
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in (best.params if best else {}).items()) or "-"
        lines.append(f"{fold.index:>4}  {fold.train_start + '…' + fold.train_end:>23}  "
                     f"{fold.test_start + '…' + fold.test_end:>23}  {_fmt(row['in_sample']):>18}  "
                     f"{_fmt(row['out_of_sample']):>18}  {params}")
    stitched = stitch(segments, config.initial_capital)
    stitched_metrics = None
    if stitched.dates:
        stitched_metrics = compute_metrics(
            {"initial_capital": config.initial_capital, "trades": [], "benchmark_close": None,
             "daily": [{"date": d, "total_value": v} for d, v in zip(stitched.dates, stitched.equity, strict=True)]},
            annualization=config.annualization, risk_free_rate=config.risk_free_rate)
        lines.append(f"stitched out of sample: {len(stitched.dates)} days, total return "
                     f"{_fmt(stitched_metrics['total_return'])}, Sharpe {_fmt(stitched_metrics['sharpe_ratio'])}, "
                     f"max drawdown {_fmt(stitched_metrics['max_drawdown'])}")
    lines += ["", "last fold's in-sample leaderboard:", format_board(spec, last_board, top)]
    return {"_text": "\n".join(lines), "trials": trials, "folds": fold_rows,
            "stitched": {"dates": stitched.dates, "equity": stitched.equity,
                         "metrics": {k: v for k, v in (stitched_metrics or {}).items() if k not in (
                             "total_trades", "total_fees", "turnover", "win_rate")} or None}}
