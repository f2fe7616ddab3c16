"""Market-data benchmark: panel load (cold / warm) and importer write throughput.

    .venv/bin/python bench/data_bench.py [--symbols 300] [--days 2500] [--no-pg] [--json-only]

For each back end (a temporary PostgreSQL database on ZQ_TEST_PG_URL's server, and a SQLite
file in a temp dir) it: writes the synthetic market (generate-synthetic's writer) and imports
the same bars as one Tushare-style daily CSV (parse + validate + upsert) — rows/s for both —
then loads the symbols × days panel (with the 000300.SH benchmark):

- cold, fresh process: a new Python process, timing only the ``load_panel`` call;
- cold, in process: pooled connections disposed and the panel cache cleared (median of 3);
- warm: served by the panel cache, including the data_version check (median of 5).

Prints a table on stderr-free stdout and the JSON document last.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import psycopg  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from engine_svc.data.cache import PanelCache  # noqa: E402
from engine_svc.data.csv_import import import_csv  # noqa: E402
from engine_svc.data.db import dispose_all  # noqa: E402
from engine_svc.data.loader import load_panel  # noqa: E402
from engine_svc.data.synthetic import generate_panel  # noqa: E402
from engine_svc.data.synthetic_db import write_synthetic  # noqa: E402

SEED = 42
START = "2010-01-04"
CHILD = """
import sys, time
sys.path.insert(0, {root!r})
from engine_svc.data.loader import load_panel
symbols = {symbols!r}
t = time.perf_counter()
load_panel({url!r}, symbols, {start!r}, {end!r}, benchmark="000300.SH")
print(time.perf_counter() - t)
"""


def _tushare_csv(path: Path, n_symbols: int, n_days: int) -> int:
    """The synthetic bars as one Tushare daily CSV (vol in lots, amount in thousand CNY)."""
    p = generate_panel(n_symbols, n_days, seed=SEED + 1, start=START)
    cols, rows = np.nonzero(p.has_bar.T)
    b = p.bars
    frame = pd.DataFrame(
        {
            # Beijing-exchange codes: disjoint from the synthetic market's symbols loaded below.
            "ts_code": np.array([f"{830001 + j:06d}.BJ" for j in range(n_symbols)], dtype=object)[cols],
            "trade_date": pd.to_datetime(p.dates[rows]).strftime("%Y%m%d"),
            **{f: b[f][rows, cols] for f in ("open", "high", "low", "close", "pre_close")},
            "vol": b["volume"][rows, cols] / 100,
            "amount": b["amount"][rows, cols] / 1000,
        }
    )
    frame.to_csv(path, index=False)
    return len(frame)


def bench_backend(name: str, url: str, n_symbols: int, n_days: int, workdir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"backend": name}
    started = time.perf_counter()
    report = write_synthetic(url, n_symbols, n_days, seed=SEED, start=START, progress=False)
    seconds = time.perf_counter() - started
    rows = report.totals()["inserted"]
    out["synthetic_write"] = {"rows": rows, "seconds": round(seconds, 3), "rows_per_s": round(rows / seconds)}

    csv_path = workdir / f"daily_{name}.csv"
    csv_rows = _tushare_csv(csv_path, n_symbols, n_days)
    for label in ("csv_import_insert", "csv_import_replace"):
        started = time.perf_counter()
        rep = import_csv(url, [csv_path], "daily", on_error="fail", progress=False)
        seconds = time.perf_counter() - started
        assert rep.committed and rep.totals()["read"] == csv_rows
        out[label] = {"rows": csv_rows, "seconds": round(seconds, 3), "rows_per_s": round(csv_rows / seconds)}

    mem = generate_panel(n_symbols, n_days, seed=SEED, start=START)
    symbols, start, end = list(mem.symbols), str(mem.dates[0]), str(mem.dates[-1])

    child = CHILD.format(root=str(ROOT), symbols=symbols, url=url, start=start, end=end)
    fresh = [
        float(subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True).stdout.strip())
        for _ in range(3)
    ]
    out["load_cold_fresh_process_s"] = round(statistics.median(fresh), 3)

    cold = []
    for _ in range(3):
        dispose_all()
        cache = PanelCache(1 << 30)
        t = time.perf_counter()
        panel = load_panel(url, symbols, start, end, benchmark="000300.SH", cache=cache)
        cold.append(time.perf_counter() - t)
    out["load_cold_in_process_s"] = round(statistics.median(cold), 3)
    assert np.array_equal(panel.bars["close"], mem.bars["close"], equal_nan=True)
    warm = []
    for _ in range(5):
        t = time.perf_counter()
        again = load_panel(url, symbols, start, end, benchmark="000300.SH", cache=cache)
        warm.append(time.perf_counter() - t)
        assert again is panel
    out["load_warm_s"] = round(statistics.median(warm), 4)
    out["panel"] = {"dates": len(mem.dates), "symbols": len(symbols), "bars": int(mem.has_bar.sum())}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=300)
    parser.add_argument("--days", type=int, default=2500)
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument(
        "--pg-url", default=os.environ.get("ZQ_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    )
    args = parser.parse_args()

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="zq_data_bench_") as tmp:
        work = Path(tmp)
        if not args.no_pg:
            admin_url = make_url(args.pg_url)
            conninfo = admin_url.set(drivername="postgresql").render_as_string(hide_password=False)
            db = f"zq_bench_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(conninfo, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{db}"')
            try:
                url = admin_url.set(drivername="postgresql+psycopg", database=db).render_as_string(hide_password=False)
                results.append(bench_backend("postgresql", url, args.symbols, args.days, work))
            finally:
                dispose_all()
                with psycopg.connect(conninfo, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        results.append(bench_backend("sqlite", f"sqlite:///{work / 'bench.db'}", args.symbols, args.days, work))
        dispose_all()

    print(f"panel {args.symbols} symbols x {args.days} days (+ benchmark)")
    print(
        f"{'backend':<11} {'cold fresh':>10} {'cold':>8} {'warm':>9} {'synth write rows/s':>19} "
        f"{'csv insert rows/s':>18} {'csv replace rows/s':>19}"
    )
    for r in results:
        print(
            f"{r['backend']:<11} {r['load_cold_fresh_process_s']:>9.3f}s {r['load_cold_in_process_s']:>7.3f}s "
            f"{r['load_warm_s'] * 1000:>7.2f}ms {r['synthetic_write']['rows_per_s']:>19,} "
            f"{r['csv_import_insert']['rows_per_s']:>18,} {r['csv_import_replace']['rows_per_s']:>19,}"
        )
    doc = {"symbols": args.symbols, "days": args.days, "python": sys.version.split()[0], "results": results}
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
