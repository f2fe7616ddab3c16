"""The original zquant web frontend's service layer, unchanged, against the real stack.

shared/zquant-web-client/services/{auth,users,backtest}.ts are compiled at test time (esbuild,
pinned in tests/zquant_web_client/package.json) with umi's `request` shimmed as umi behaves,
and run through Envoy against real services on the A-share sample; tests/zquant_web_client/
run.mjs asserts every response against the client's own types (services/typings.d.ts) and the
checks its pages make. `make test` installs the node packages (`npm ci`) first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.e2e.realstack import start_real_stack

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "tests" / "zquant_web_client"
ADMIN_PASSWORD = "admin-password-web-client"


def client_dir() -> Path:
    """The zquant web client: shared/zquant-web-client beside the repository (ZQ_WEB_CLIENT_DIR overrides)."""
    given = os.environ.get("ZQ_WEB_CLIENT_DIR")
    candidates = [Path(given)] if given else [ROOT.parent / "shared" / "zquant-web-client",
                                              ROOT.parents[1] / "shared" / "zquant-web-client"]
    for path in candidates:
        if (path / "services" / "backtest.ts").is_file():
            return path
    pytest.fail(f"the zquant web client is not at {', '.join(map(str, candidates))} (set ZQ_WEB_CLIENT_DIR)")


def test_the_original_web_client_works_unchanged(tmp_path: Path, module_gateway_factory) -> None:
    node = shutil.which("node")
    if node is None or not (HARNESS / "node_modules" / "esbuild").is_dir():
        pytest.fail("node and tests/zquant_web_client/node_modules are needed: run `make test` (it runs npm ci)")
    web_client = client_dir()
    with ExitStack() as cleanup:
        stack = start_real_stack(cleanup, tmp_path, module_gateway_factory, admin_password=ADMIN_PASSWORD)
        run = subprocess.run(
            [node, str(HARNESS / "run.mjs")], cwd=HARNESS, capture_output=True, text=True, timeout=300,
            env={**os.environ, "ZQ_GATEWAY_URL": stack.gateway.url, "ZQ_WEB_CLIENT_DIR": str(web_client),
                 "ZQ_ADMIN_USERNAME": "admin", "ZQ_ADMIN_PASSWORD": ADMIN_PASSWORD,
                 "ZQ_SYMBOLS": "600036.SH,000002.SZ"})
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no report from run.mjs (exit {run.returncode}):\n{run.stdout}\n{run.stderr}"
    report = json.loads(lines[-1])
    failed = [f"{c['name']}: {c['detail']}" for c in report["checks"] if not c["ok"]]
    assert not failed, "\n".join(failed)
    names = {c["name"] for c in report["checks"]}
    for must in ("login is a ZQuant.Token", "runBacktest answers 201", "the detail page's condition holds: "
                 "status === 'completed'", "getPerformance is a ZQuant.PerformanceResponse",
                 "deleteStrategy answers 204 with no body", "createAPIKey is a ZQuant.APIKeyCreateResponse",
                 "logout answers {message}", "getUsers is a ZQuant.PageResponse", "deleteUser answers {message}"):
        assert must in names, f"the scenario did not reach: {must}"
    assert run.returncode == 0, run.stderr
