"""Engine benchmark: a dual moving-average (5/20) equal-weight strategy on synthetic panels.

    .venv/bin/python bench/engine_bench.py                 # default matrix, table + JSON
    .venv/bin/python bench/engine_bench.py --sizes S,M --cases xs,numpy --json out.json
    .venv/bin/python bench/engine_bench.py --full          # also the slow zquant-style forms on M
    .venv/bin/python bench/engine_bench.py --zquant-src ~/src/zquant   # + the original engine

Sizes (symbols × days): S 50×1000, M 300×2500, L 1000×2500.

Strategy (same trades in every engine form): a symbol is wanted while MA5 > MA20 of its close
(adjusted view); an unwanted holding is sold in full, a wanted symbol not held is bought for
total_value / n_symbols; holdings are not rebalanced in between. Capital is 100 000 per symbol.

Engine forms:
  xs           bar_mode = "arrays": numpy over all symbols, context.order_target_values — O(1)
               Python per day besides the orders themselves; in-process (the CLI path)
  xs-none      the xs strategy with adjust_type "none" (xs uses the default qfq, point in time:
               qfq_vs_none = xs total / xs-none total is what the price view costs)
  xs-split     the same strategy as engine_svc runs it (engine_svc.sandbox.api.run_in_sandbox):
               ledger, matching and valuation in this process, the strategy in a fresh sandboxed
               worker fed one day at a time; total_vs_xs = its total / xs's total; rss_sum_mb =
               this process's peak RSS + the worker's
  numpy        zquant dict bar_data, context.history(symbol, "close", 20) + numpy per symbol
  zquant       zquant dict bar_data, closes kept in Python lists, pandas rolling per symbol, only
               the original zquant API (S only unless --full)
  zquant-orig  the same zquant-style strategy text on the ORIGINAL zquant engine, from a checkout
               given with --zquant-src (bench/zquant_original.py drives it)
External (when importable in --external-python, else skipped with a note):
  backtesting.py (one Backtest per symbol, same signal) and vectorbt Portfolio.from_signals.

Data: the parent generates each size once (engine_svc.data.synthetic, seed 1; gen_s) and stores
its arrays. Each case runs in its own subprocess, which times loading them (load_s) and the
backtest (run_s); total_s = load_s + run_s. Peak RSS comes from os.wait4 on the
child (the per-child form of RUSAGE_CHILDREN, which would otherwise report the max over all
children). For numpy / zquant / zquant-orig, run_s is split into the strategy's own time and
the engine's (bench/strategy_timing.py).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchext import importable, qfq_prices, run_json_child  # bench/ is sys.path[0] as a script

ROOT = Path(__file__).resolve().parents[1]
SIZES: dict[str, tuple[int, int]] = {"S": (50, 1000), "M": (300, 2500), "L": (1000, 2500)}
CAPITAL_PER_SYMBOL = 100_000.0
SPLIT_CASE = "xs-split"  # the xs strategy as engine_svc runs it: trusted ledger here, strategy in a worker
RAW_CASE = "xs-none"  # the xs strategy on raw prices (adjust_type none): what point-in-time qfq costs
ENGINE_CASES = ("xs", RAW_CASE, SPLIT_CASE, "numpy", "zquant")
ORIGINAL_CASE = "zquant-orig"  # the original zquant engine, from --zquant-src
# Cases whose run time is split into the strategy's own time and the engine's (strategy_timing.py;
# the proxy costs ~1 µs per context access, too much to put on the 1-second xs case).
SPLIT_CASES = ("numpy", "zquant", ORIGINAL_CASE)
TIMED_SUFFIX = "\nfrom strategy_timing import timed as _bench_timed\nStrategy = _bench_timed(Strategy)\n"
EXTERNAL_CASES = ("backtesting", "vectorbt")

STRATEGIES: dict[str, str] = {
    "xs": '''
import numpy as np
from zquant.backtest.strategy import BaseStrategy

class Strategy(BaseStrategy):
    bar_mode = "arrays"

    def on_bar(self, context, bars):
        h = context.history_matrix("close", 20)
        if h.shape[0] < 20:
            return
        want = (h[-5:].mean(axis=0) > h.mean(axis=0)) & bars.has_bar
        held = context.portfolio.quantities > 0
        target = np.full(len(bars.symbols), np.nan)
        target[want & ~held] = context.portfolio.total_value / len(bars.symbols)
        target[~want & held & bars.has_bar] = 0.0
        context.order_target_values(target)
''',
    "numpy": '''
from zquant.backtest.context import Context
from zquant.backtest.strategy import BaseStrategy

class Strategy(BaseStrategy):
    def on_bar(self, context: Context, bar_data):
        slot = context.portfolio.total_value / len(context.symbols)
        positions = context.portfolio.positions
        sells, buys = [], []
        for symbol in bar_data:
            h = context.history(symbol, "close", 20)
            if len(h) < 20:
                continue
            want = h[-5:].mean() > h.mean()
            held = symbol in positions
            if held and not want:
                sells.append(symbol)
            elif want and not held:
                buys.append(symbol)
        for symbol in sells:
            context.order_target(symbol, 0)
        for symbol in buys:
            context.order_target_value(symbol, slot)
''',
    # Written against the ORIGINAL zquant API only (no context.symbols / history, positions may
    # hold zero-quantity entries there, order_target_value without a price does nothing there),
    # so the very same text also runs on the original engine (case zquant-orig).
    "zquant": '''
import pandas as pd
from zquant.backtest.context import Context
from zquant.backtest.strategy import BaseStrategy

class Strategy(BaseStrategy):
    def initialize(self):
        self.symbols = list(self.params["symbols"])
        self.closes = {}

    def on_bar(self, context: Context, bar_data):
        slot = context.portfolio.total_value / len(self.symbols)
        positions = context.portfolio.positions
        sells, buys = [], []
        for symbol in self.symbols:
            # suspended days count as NaN, as context.history() has them
            closes = self.closes.setdefault(symbol, [])
            bar = bar_data.get(symbol)
            closes.append(bar["close"] if bar is not None else float("nan"))
            if bar is None or len(closes) < 20:
                continue
            s = pd.Series(closes[-20:])
            want = s.rolling(5).mean().iloc[-1] > s.rolling(20).mean().iloc[-1]
            pos = positions.get(symbol)
            held = pos is not None and pos.quantity > 0
            if held and not want:
                sells.append(symbol)
            elif want and not held:
                buys.append((symbol, bar["close"]))
        for symbol in sells:
            context.order_target(symbol, 0)
        for symbol, close in buys:
            context.order(symbol, int(slot / close / 100) * 100)
''',
}


# ------------------------------------------------------------------------------------ data
def write_panel(size: str, directory: Path) -> tuple[Path, float]:
    """Generate ``size``'s synthetic panel (seed 1) once and store its arrays (``.npz``,
    uncompressed); returns the file and the generation time."""
    import numpy as np

    from engine_svc.data.synthetic import generate_panel

    t0 = time.perf_counter()
    panel = generate_panel(*SIZES[size], seed=1)
    gen_s = time.perf_counter() - t0
    path = directory / f"panel-{size}.npz"
    np.savez(path, dates=panel.dates, symbols=np.array(panel.symbols), is_st=panel.is_st,
             **{f"bars_{k}": v for k, v in panel.bars.items()})
    return path, gen_s


def load_panel(path: Path) -> Any:
    """Read the stored arrays into memory (the service then keeps a panel in its cache)."""
    import numpy as np

    from engine_svc.engine.panel import Panel

    with np.load(path) as z:
        bars = {k.removeprefix("bars_"): z[k] for k in z.files if k.startswith("bars_")}
        return Panel(dates=z["dates"], symbols=tuple(z["symbols"].tolist()), bars=bars, is_st=z["is_st"])


# ------------------------------------------------------------------------------------ child side
def _preload() -> None:
    """Import what a timed section uses, so load_s / run_s measure work, not imports."""
    importlib.import_module("engine_svc.engine.runner")
    importlib.import_module("engine_svc.sandbox.api")


def _spare_pool() -> Any:
    """The engine service's pool of started workers (ZQ_SANDBOX_SPARES, default 1), with a spare
    ready; None when spares are off."""
    from engine_svc.sandbox.launcher import SparePool
    from engine_svc.sandbox.limits import SandboxLimits

    limits = SandboxLimits.from_env()
    if not limits.spares:
        return None
    pool = SparePool(limits, size=limits.spares)
    deadline = time.monotonic() + 60
    while not pool._spares and time.monotonic() < deadline:
        time.sleep(0.01)
    return pool


def run_engine_case(case: str, size: str, prefix: Path) -> dict[str, Any]:
    from engine_svc.engine.config import BacktestConfig
    from engine_svc.engine.runner import run_backtest

    n_sym = SIZES[size][0]
    _preload()
    spares = _spare_pool() if case == SPLIT_CASE else None
    t0 = time.perf_counter()
    panel = load_panel(prefix)
    t1 = time.perf_counter()
    c1 = time.process_time()
    config = BacktestConfig(
        start_date=str(panel.dates[0]), end_date=str(panel.dates[-1]), symbols=panel.symbols,
        initial_capital=CAPITAL_PER_SYMBOL * n_sym, params={"symbols": list(panel.symbols)},
        adjust_type="none" if case == RAW_CASE else "qfq",
    )
    extra: dict[str, Any] = {}
    if case == SPLIT_CASE:
        # As engine_svc runs it: the ledger in this process, the strategy in a sandboxed worker
        # fed one day at a time, taken from the spare the service keeps started (it started
        # before the timer, as it would between two runs; its hardening is timed).
        from engine_svc.sandbox.api import run_in_sandbox
        from engine_svc.sandbox.limits import SandboxLimits

        outcome = run_in_sandbox(panel, STRATEGIES["xs"], config.to_dict(), limits=SandboxLimits.from_env(),
                                 spares=spares)
        result = outcome.result
        extra = {"worker_rss_mb": outcome.max_rss_mb, "worker_cpu_s": outcome.cpu_seconds,
                 "worker_start_s": outcome.timings["start_s"], "bwrap": bool(outcome.isolation.get("bwrap")),
                 "spare": spares is not None}
    else:
        code = STRATEGIES["xs" if case == RAW_CASE else case] + (TIMED_SUFFIX if case in SPLIT_CASES else "")
        result = run_backtest(panel, code, config)
    t2 = time.perf_counter()
    run_cpu_s = time.process_time() - c1
    if spares is not None:  # the service keeps its pool; stopping it is this bench's teardown
        spares.close()
    return {
        "load_s": t1 - t0, "run_s": t2 - t1, "total_s": t2 - t0, "run_cpu_s": run_cpu_s,
        **_split(case, t2 - t1), **extra,
        "orders": len(result["orders"]), "trades": len(result["trades"]),
        "final_value": round(result["daily"][-1]["total_value"], 2),
    }


def _signals(panel: Any) -> tuple[Any, Any, Any]:
    """(close DataFrame in the adjusted view, entries, exits) for the external libraries."""
    import pandas as pd

    close = pd.DataFrame(qfq_prices(panel)["close"], index=pd.DatetimeIndex(panel.dates), columns=list(panel.symbols))
    ma5 = close.rolling(5).mean()
    ma20 = close.rolling(20).mean()
    want = ma5 > ma20
    return close, want & ~want.shift(1, fill_value=False), ~want & want.shift(1, fill_value=False)


def run_external_case(case: str, size: str, prefix: Path) -> dict[str, Any]:
    _preload()
    extra: dict[str, Any] = {}
    if case == "vectorbt":
        import vectorbt as vbt

        def simulate(panel: Any) -> Any:
            close, entries, exits = _signals(panel)
            return vbt.Portfolio.from_signals(
                close.ffill(), entries, exits, size=CAPITAL_PER_SYMBOL, size_type="value",
                init_cash=CAPITAL_PER_SYMBOL * len(panel.symbols), cash_sharing=True, group_by=True,
                fees=0.0003, slippage=0.001, freq="1D",
            )

        # numba compiles on first use (tens of seconds): warm up on a tiny panel, report it apart
        tj = time.perf_counter()
        tiny = load_panel(prefix)
        simulate(tiny.slice(symbols=list(tiny.symbols[:3]), end=str(tiny.dates[59]))).value()
        extra["jit_warmup_s"] = time.perf_counter() - tj
    t0 = time.perf_counter()
    panel = load_panel(prefix)
    t1 = time.perf_counter()
    c1 = time.process_time()
    if case == "vectorbt":
        pf = simulate(panel)
        trades, final = len(pf.orders.records), float(pf.value().iloc[-1])
    else:
        import pandas as pd
        from backtesting import Backtest, Strategy

        class MaCross(Strategy):
            def init(self) -> None:
                c = pd.Series(self.data.Close)
                self.ma5 = self.I(lambda: c.rolling(5).mean().to_numpy())
                self.ma20 = self.I(lambda: c.rolling(20).mean().to_numpy())

            def next(self) -> None:
                want = self.ma5[-1] > self.ma20[-1]
                if want and not self.position:
                    self.buy()
                elif not want and self.position:
                    self.position.close()

        view = qfq_prices(panel)  # trade on the prices the signal is computed on
        index = pd.DatetimeIndex(panel.dates)
        trades, final = 0, 0.0
        for j in range(len(panel.symbols)):
            df = pd.DataFrame({k.capitalize(): view[k][:, j] for k in ("open", "high", "low", "close")},
                              index=index).dropna()
            df["Volume"] = panel.bars["volume"][:, j][~pd.isna(panel.bars["close"][:, j])]
            if len(df) < 25:
                continue
            stats = Backtest(df, MaCross, cash=CAPITAL_PER_SYMBOL, commission=0.0003, finalize_trades=True).run()
            trades += int(stats["# Trades"])
            final += float(stats["Equity Final [$]"])
    t2 = time.perf_counter()
    return {"load_s": t1 - t0, "run_s": t2 - t1, "total_s": t2 - t0, "run_cpu_s": time.process_time() - c1,
            "orders": trades, "trades": trades, "final_value": round(final, 2), **extra}


def run_original_case(prefix: Path) -> dict[str, Any]:
    """The zquant-style strategy text on the original engine (bench/zquant_original.py)."""
    import zquant_original

    t0 = time.perf_counter()
    panel = load_panel(prefix)
    load_s = time.perf_counter() - t0
    out = zquant_original.run(panel, STRATEGIES["zquant"] + TIMED_SUFFIX, CAPITAL_PER_SYMBOL * len(panel.symbols),
                              {"symbols": list(panel.symbols)})
    return {"load_s": load_s, "total_s": load_s + out["run_s"], **out, **_split(ORIGINAL_CASE, out["run_s"])}


def _split(case: str, run_s: float) -> dict[str, float]:
    if case not in SPLIT_CASES:
        return {}
    from strategy_timing import CLOCK

    return {"strategy_s": CLOCK.strategy_s, "engine_s": run_s - CLOCK.strategy_s}


def child_main(case: str, size: str, prefix: Path) -> None:
    if case == ORIGINAL_CASE:
        out = run_original_case(prefix)
    elif case in ENGINE_CASES:
        out = run_engine_case(case, size, prefix)
    else:
        out = run_external_case(case, size, prefix)
    print(json.dumps(out))


# ----------------------------------------------------------------------------------- parent side
def run_child(case: str, size: str, prefix: Path, timeout: float, python: str = sys.executable,
              zquant_src: str | None = None) -> dict[str, Any]:
    """One case in a fresh interpreter; the peak RSS of exactly that child comes from wait4."""
    path = [str(ROOT), str(ROOT / "bench")]
    if case == ORIGINAL_CASE and zquant_src:  # its `zquant` package must shadow the stubs' one
        path.insert(0, zquant_src)
    rec = run_json_child([str(Path(__file__).resolve()), "--child", case, size, str(prefix)], python, timeout, path)
    rec.update({"case": case, "size": size})
    return rec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="S,M,L")
    ap.add_argument("--cases", default="xs,xs-none,xs-split,numpy,zquant,zquant-orig,backtesting,vectorbt")
    ap.add_argument("--full", action="store_true", help="run the zquant-style form on M and L too")
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--repeat", type=int, default=1, metavar="N",
                    help="run each case N times (fresh child each); the run with the median total_s (lower median "
                         "for even N) is reported, every total in total_s_all (this host is shared and noisy)")
    ap.add_argument("--json", dest="json_out")
    ap.add_argument("--external-python", default=sys.executable,
                    help="interpreter with backtesting.py / vectorbt installed (they may need other "
                         "numpy/pandas versions than the project venv); the repo is put on its PYTHONPATH")
    ap.add_argument("--zquant-src", metavar="DIR",
                    help="checkout of the original zquant (DIR/zquant/backtest/engine.py): runs the "
                         "zquant-style strategy text on the original engine too (needs loguru)")
    ap.add_argument("--child", nargs=3, metavar=("CASE", "SIZE", "PANEL"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child_main(args.child[0], args.child[1], Path(args.child[2]))
        return 0
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    notes: list[str] = []
    for ext in EXTERNAL_CASES:
        if ext in cases and not importable(args.external_python, "backtesting" if ext == "backtesting" else "vectorbt"):
            cases.remove(ext)
            notes.append(f"{ext}: not importable in {args.external_python}, skipped "
                         "(--external-python with a venv made as bench/README.md says)")
    original_ok = bool(args.zquant_src) and Path(args.zquant_src, "zquant/backtest/engine.py").is_file()
    if ORIGINAL_CASE in cases and not original_ok:
        cases.remove(ORIGINAL_CASE)
        notes.append(f"{ORIGINAL_CASE}: skipped (--zquant-src DIR with DIR/zquant/backtest/engine.py)")
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="engine-bench-") as tmp:
        for size in sizes:
            prefix, gen_s = write_panel(size, Path(tmp))
            for case in cases:
                if case in ("zquant", ORIGINAL_CASE) and size != "S" and not args.full:
                    notes.append(f"{case} on {size}: skipped (slow by design; --full runs it)")
                    continue
                if case in EXTERNAL_CASES and size == "L" and not args.full:
                    notes.append(f"{case} on L: skipped (--full runs it)")
                    continue
                python = args.external_python if case in EXTERNAL_CASES else sys.executable
                rec = _median_run([run_child(case, size, prefix, args.timeout, python, args.zquant_src)
                                   for _ in range(max(1, args.repeat))])
                rec["gen_s"] = gen_s  # once per size, in this process; not part of any case's total
                records.append(rec)
                print(_row(rec), file=sys.stderr, flush=True)
    _add_ratios(records)
    print(_table(records))
    for note in notes:
        print(f"note: {note}")
    doc = {"python": sys.version.split()[0], "cpu_count": os.cpu_count(), "results": records, "notes": notes}
    print(json.dumps(doc, indent=1))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(doc, indent=1))
    return 0


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = sorted((r for r in runs if "error" not in r), key=lambda r: r["total_s"])
    if not ok:
        return runs[0]
    rec = ok[(len(ok) - 1) // 2]
    if len(runs) > 1:
        rec["total_s_all"] = [round(r["total_s"], 4) for r in ok]
        rec["failed_runs"] = len(runs) - len(ok)
    return rec


def _add_ratios(records: list[dict[str, Any]]) -> None:
    """Throughput and ratios use the child's CPU time: on a shared machine wall time mostly
    measures the neighbours (both are reported)."""
    base = {r["size"]: r["run_cpu_s"] for r in records if r.get("case") == "xs" and "run_cpu_s" in r}
    for r in records:
        if "run_cpu_s" not in r:
            continue
        n_sym, n_days = SIZES[r["size"]]
        r["symbol_bars_per_cpu_s"] = round(n_sym * n_days / r["run_cpu_s"])
        r["run_cpu_vs_xs"] = round(r["run_cpu_s"] / base[r["size"]], 2) if r["size"] in base else None
    # The trusted split as the service runs it, against the in-process run of the same engine.
    xs_total = {r["size"]: r["total_s"] for r in records if r.get("case") == "xs" and "total_s" in r}
    for r in records:
        if r.get("case") == SPLIT_CASE and "total_s" in r:
            r["rss_sum_mb"] = round(r["peak_rss_mb"] + r.get("worker_rss_mb", 0.0), 1)
            if r["size"] in xs_total:
                r["total_vs_xs"] = round(r["total_s"] / xs_total[r["size"]], 3)
    raw_total = {r["size"]: r["total_s"] for r in records if r.get("case") == RAW_CASE and "total_s" in r}
    for r in records:
        if r.get("case") == "xs" and r["size"] in raw_total:
            r["qfq_vs_none"] = round(r["total_s"] / raw_total[r["size"]], 3)
    # The "≥ 2× faster than the original engine on the same strategy code".
    orig = {r["size"]: r for r in records if r.get("case") == ORIGINAL_CASE and "run_cpu_s" in r}
    for r in records:
        o = orig.get(r.get("size", ""))
        if r.get("case") == "zquant" and "run_cpu_s" in r and o is not None:
            r["original_cpu_over_this"] = round(o["run_cpu_s"] / r["run_cpu_s"], 2)
            r["original_wall_over_this"] = round(o["run_s"] / r["run_s"], 2)
            r["original_engine_over_this"] = round(o["engine_s"] / r["engine_s"], 2)


def _row(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{r['size']:<4} {r['case']:<12} ERROR {r['error']}"
    return (f"{r['size']:<4} {r['case']:<12} load {r['load_s']:7.3f}s run {r['run_s']:8.3f}s "
            f"(cpu {r.get('run_cpu_s', float('nan')):7.3f}s) "
            f"total {r['total_s']:8.3f}s rss {r['peak_rss_mb']:7.0f} MB trades {r['trades']}")


def _opt(r: dict[str, Any], key: str) -> str:
    return f"{r[key]:9.3f}" if key in r else f"{'-':>9}"


def _table(records: list[dict[str, Any]]) -> str:
    head = (f"{'size':<5}{'case':<13}{'load s':>8}{'run s':>9}{'run cpu':>9}{'total s':>9}{'wall s':>9}"
            f"{'strat s':>9}{'engine s':>9}{'bars/cpu-s':>12}{'RSS MB':>8}{'cpu/xs':>8}{'trades':>8}"
            f"{'final value':>16}")
    lines = [head, "-" * len(head)]
    for r in records:
        if "error" in r:
            lines.append(f"{r['size']:<5}{r['case']:<13} error: {r['error']}")
            continue
        ratio = "-" if r.get("run_cpu_vs_xs") is None else f"{r['run_cpu_vs_xs']:.1f}x"
        lines.append(
            f"{r['size']:<5}{r['case']:<13}{r['load_s']:8.3f}{r['run_s']:9.3f}{r.get('run_cpu_s', float('nan')):9.3f}"
            f"{r['total_s']:9.3f}{r['wall_s']:9.2f}{_opt(r, 'strategy_s')}{_opt(r, 'engine_s')}"
            f"{r['symbol_bars_per_cpu_s']:12,d}{r['peak_rss_mb']:8.0f}{ratio:>8}{r['trades']:8d}"
            f"{r['final_value']:16,.2f}"
        )
    lines += [
        f"{r['size']}: xs with point-in-time qfq (synthetic ex-rights days) total {r['total_s']:.3f} s = "
        f"{r['qfq_vs_none']:.2f}x the same run on raw prices ({RAW_CASE})"
        for r in records if "qfq_vs_none" in r
    ]
    lines += [
        f"{r['size']}: {SPLIT_CASE} (ledger here, strategy in a sandboxed worker) total {r['total_s']:.3f} s = "
        f"{r['total_vs_xs']:.2f}x the in-process xs run; run CPU {r['run_cpu_s']:.3f} s here + "
        f"{r.get('worker_cpu_s', 0):.3f} s in the worker; peak RSS {r['peak_rss_mb']:.0f} + worker "
        f"{r.get('worker_rss_mb', 0):.0f} = {r['rss_sum_mb']:.0f} MB"
        for r in records if "total_vs_xs" in r
    ]
    lines += [
        f"{r['size']}: zquant-style on this engine vs the original engine, same strategy text: "
        f"{r['original_cpu_over_this']:.2f}x less CPU, {r['original_wall_over_this']:.2f}x less wall time; "
        f"engine time (run minus the strategy's own time) {r['original_engine_over_this']:.2f}x less"
        for r in records if "original_cpu_over_this" in r
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
