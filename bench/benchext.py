"""What the benches need to measure backtesting.py and vectorbt next to the engine.

Those libraries live in their own venv (their numba / numpy / pandas pins would move the
project's; bench/README.md says how to make it) and run in a child process of that interpreter.
Shared by engine_bench.py and sweep_bench.py:

  qfq_prices          the price view the external libraries trade on, from a Panel
  write_adjusted_npz  that view as plain arrays, so a child needs numpy only (not engine_svc)
  importable          whether an interpreter can import a module
  run_json_child      one child run: its last stdout line as JSON, its wall time and peak RSS
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PRICE_FIELDS = ("open", "high", "low", "close")


def qfq_prices(panel: Any) -> dict[str, Any]:
    """open/high/low/close × adj_factor / the last known factor (classic qfq as of the panel's
    last day), NaN where the symbol has no bar.

    The engine's strategies see point-in-time qfq (docs/engine.md): on day T, a day d ≤ T shows
    raw × adj_d / adj_T. That differs from this view by the factor adj_T / adj_last, the same for
    every day of a window seen on T, so ratios and comparisons of prices in one window — moving
    average crossovers, close above an average — agree exactly. A symbol's days before its first
    factor take that first factor (as the engine's view does); a symbol without any factor is raw.
    """
    import numpy as np

    adj = np.asarray(panel.bars["adj_factor"], dtype=float)
    filled = adj.copy()
    for j in range(filled.shape[1]):
        col = filled[:, j]
        known = np.isfinite(col)
        if not known.any():
            col[:] = 1.0
            continue
        idx = np.where(known, np.arange(len(col)), 0)
        np.maximum.accumulate(idx, out=idx)
        first = int(np.argmax(known))
        col[:] = col[idx]
        col[:first] = col[first]
    mult = filled / filled[-1]
    return {k: np.asarray(panel.bars[k], dtype=float) * mult for k in PRICE_FIELDS}


def write_adjusted_npz(panel: Any, path: Path) -> Path:
    """The panel in the qfq view (qfq_prices) as plain arrays: dates (datetime64[D]), symbols
    (str), open/high/low/close (dates × symbols, NaN on days without a bar), volume (raw)."""
    import numpy as np

    np.savez(path, dates=np.asarray(panel.dates, dtype="datetime64[D]"), symbols=np.array(panel.symbols, dtype=str),
             volume=np.asarray(panel.bars["volume"], dtype=float), **qfq_prices(panel))
    return path


def importable(python: str, module: str) -> bool:
    probe = subprocess.run([python, "-c", f"import {module}"], capture_output=True, check=False, cwd=ROOT)
    return probe.returncode == 0


def run_json_child(argv: list[str], python: str, timeout: float, path: list[str] | None = None) -> dict[str, Any]:
    """Run ``python argv…`` with ``path`` on PYTHONPATH and one BLAS thread; return the JSON
    object the child printed last, with ``wall_s`` and ``peak_rss_mb`` (of exactly that child,
    from os.wait4), or ``{"error": …}`` (its last stderr line, or the timeout)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join(path)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([python, *argv], stdout=out, stderr=err, cwd=ROOT, env=env)
        status, usage = wait_child(proc, timeout)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode(errors="replace")
    if status is None:
        return {"error": f"timeout after {timeout:.0f} s"}
    if status != 0:
        return {"error": (stderr.strip().splitlines() or ["?"])[-1]}
    rec = json.loads(stdout.strip().splitlines()[-1])
    rec.update({"wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024})  # ru_maxrss: KiB on Linux
    return rec


def wait_child(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int | None, Any]:
    """Reap ``proc`` with os.wait4 (its own rusage, unlike the cumulative RUSAGE_CHILDREN);
    kill it after ``timeout`` seconds (status None)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, raw, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(raw)
            return proc.returncode, usage
        if time.monotonic() > deadline:
            proc.kill()
            _, raw, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(raw)
            return None, usage
        time.sleep(0.02)
