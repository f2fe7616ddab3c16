"""The CLI as a user runs it: a real subprocess, progress on stderr, summary on stdout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from data_helpers import count

from engine_svc.data.db import dispose_all
from engine_svc.data.loader import list_symbols

ROOT = Path(__file__).resolve().parents[3]


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine_svc.data", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_generate_synthetic_then_info_in_the_data_dir(tmp_path: Path) -> None:
    env = {**os.environ, "ZQ_DATA_DIR": str(tmp_path)}
    env.pop("ZQ_ENGINE_DATABASE_URL", None)
    done = _cli("generate-synthetic", "--symbols", "12", "--days", "60", "--seed", "3", env=env)
    assert done.returncode == 0, done.stderr
    assert "synthetic bars" in done.stderr and "100%" in done.stderr  # tqdm on stderr
    assert "synthetic:daily_bars" in done.stdout and "committed" in done.stdout
    url = f"sqlite:///{tmp_path / 'engine.db'}"
    assert count(url, "instruments") == 13  # 12 stocks + the benchmark index
    assert sum(1 for s in list_symbols(url) if not s["is_index"]) == 12
    info = _cli("info", env=env)
    assert info.returncode == 0
    assert "instruments: 12 stocks, 1 indexes" in info.stdout
    dispose_all()


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "ZQ_DATA_DIR": str(tmp_path)}
    done = _cli("import-csv", "x.csv", "--kind", "minute", env=env)
    assert done.returncode == 2 and "invalid choice" in done.stderr
