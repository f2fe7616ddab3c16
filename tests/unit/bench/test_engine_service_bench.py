"""bench/engine_service_bench.py still runs against the service as it is (it calls RunBacktest,
an RPC for service principals only: a bench calling it as a user broke without any test
noticing). Tiny sizes: this checks the bench's plumbing and report, not the timings."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "engine_service_bench.py"


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="the sandbox's bubblewrap layer is not installed")
def test_the_bench_runs_every_measure_and_reports_them(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--symbols", "2", "--days", "20", "--samples", "2",
         "--throughput-calls", "3", "--json", str(out)],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["backtest"]["symbols"] == 2 and report["backtest"]["days"] == 20
    for measure in ("worker_start", "in_process", "sandbox_run", "service"):
        assert report[measure]["n"] == 2
        assert report[measure]["p50_s"] > 0
    # The service path runs the backtest in a sandboxed worker and the in-process one does not.
    assert report["service"]["p50_s"] > report["in_process"]["p50_s"]
    assert report["throughput"]["calls"] == 3
    assert report["throughput"]["backtests_per_minute"] > 0
    assert "service overhead (p50)" in proc.stdout
