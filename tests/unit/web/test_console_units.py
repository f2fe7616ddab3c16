"""The console's TypeScript unit tests (Vitest: derived series, metrics, router, back-off,
message tables) run as part of `make test`, which builds web/ (and its node_modules) first."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[3] / "web"


def test_vitest_suite_passes() -> None:
    npx = shutil.which("npx")
    if npx is None or not (WEB / "node_modules" / ".bin" / "vitest").exists():
        pytest.fail("web/node_modules is missing: run `make web` (npm ci)")
    proc = subprocess.run([npx, "vitest", "run", "--reporter=dot"], cwd=WEB, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "CI": "1", "NO_COLOR": "1"})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert " passed" in proc.stdout
