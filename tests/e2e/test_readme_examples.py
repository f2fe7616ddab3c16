"""The README's curl session and Python stub example, run as written against the real stack
(only the gateway URL, service addresses and the admin password are filled in)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

import devstack
from tests.e2e.realstack import start_real_stack

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

README = devstack.ROOT / "README.md"
PASSWORD = "admin-password-readme"


def _block(heading: str, language: str) -> str:
    text = README.read_text()
    section = text[text.index(heading):]
    match = re.search(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)
    assert match, f"no {language} block under {heading}"
    return match.group(1)


def _json_values(text: str) -> list:
    """Every JSON value curl printed, in order (bodies carry no trailing newline, so they run
    together; `curl -i` header lines in between are skipped)."""
    decoder, values, at = json.JSONDecoder(), [], 0
    while at < len(text):
        if text[at] in "{[":
            value, at = decoder.raw_decode(text, at)
            values.append(value)
        else:
            at += 1
    return values


def test_the_readme_sessions_run_as_written(tmp_path: Path, module_gateway_factory) -> None:
    curl = _block("## A complete session by curl", "bash")
    python = _block("## The same by gRPC", "python")
    with ExitStack() as cleanup:
        # The sessions run real 5-year backtests (the sweep: six of them on ten stocks) on a shared
        # machine: a generous worker time limit, so only a wrong answer fails the test.
        stack = start_real_stack(cleanup, tmp_path / "stack", module_gateway_factory, admin_password=PASSWORD,
                                 extra_env={"ZQ_SANDBOX_MAX_SECONDS": "120"})
        script = curl.replace("G=http://127.0.0.1:8080/api/v1", f"G={stack.gateway.url}/api/v1") \
            .replace("<password>", PASSWORD)
        shell = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True,
                               timeout=180)
        assert shell.returncode == 0, shell.stderr
        me, templates, symbols, created, *rest = _json_values(shell.stdout)
        assert me["username"] == "admin" and me["role_id"] == 1
        assert isinstance(templates, list) and len(templates) == 9 and templates[0]["is_template"] is True
        assert {s["symbol"] for s in symbols["symbols"]} >= {"600036.SH", "000001.SH"}
        assert created["id"] == 1 and created["status"] == "pending" and created["started_at"] is None
        events = [v for v in rest if isinstance(v, dict) and "kind" in v]
        assert events[0]["kind"] == "snapshot" and events[-1]["terminal"] is True
        assert events[-1]["task"]["status"] == "completed"
        task, result, performance, listed, cancel = rest[len(events):]
        assert task["status"] == "completed" and result["task_id"] == 1
        assert {"metrics", "trades", "portfolio"} <= set(performance)
        assert [t["id"] for t in listed] == [1] and "x-total-count: 1" in shell.stdout.lower()
        assert cancel["code"] == 9  # cancelling a finished task: FAILED_PRECONDITION

        # The sweep section, after the session's login lines; its grid narrowed to 3 × 2 points
        # (the README's 100 points take ~20 s of CPU).
        login = curl[:curl.index('H="authorization')]
        login += curl[curl.index('H="authorization'):].split("\n", 1)[0] + "\n"
        sweep = _block("## Parameter sweeps", "bash").replace('"max": 12', '"max": 5').replace('"max": 65', '"max": 25')
        script = (login + sweep).replace("G=http://127.0.0.1:8080/api/v1", f"G={stack.gateway.url}/api/v1") \
            .replace("<password>", PASSWORD)
        shell = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True,
                               timeout=300, cwd=tmp_path)
        assert shell.returncode == 0, shell.stderr
        estimate, created, *rest = _json_values(shell.stdout)
        assert estimate["trials"] == 6 and estimate["cached"] == 0 and estimate["seconds"] > 0
        assert created["id"] == 1 and created["status"] in ("pending", "running") and created["trials_total"] == 6
        events = [v for v in rest if isinstance(v, dict) and "kind" in v]
        assert events[0]["kind"] == "snapshot" and events[-1]["terminal"] is True
        assert sorted(e["trial"]["number"] for e in events if e["kind"] == "trial") == [1, 2, 3, 4, 5, 6]
        sweep_row, trials, heatmap, promoted, cancel = rest[len(events):]
        assert sweep_row["status"] == "completed" and sweep_row["done"] == 6 and sweep_row["best"]["rank"] == 1
        returns = [t["metrics"]["total_return"] for t in trials]
        assert returns == sorted(returns, reverse=True) and "x-total-count: 6" in shell.stdout.lower()
        assert heatmap["x_values"] == [3, 4, 5] and heatmap["y_values"] == [20, 25] and len(heatmap["values"]) == 6
        assert promoted["status"] == "pending" and promoted["params"]["long_window"] == 20
        assert cancel["code"] == 9  # a finished sweep cannot be cancelled

        code = python.replace("127.0.0.1:50051", stack.env["ZQ_AUTH_ADDR"]) \
            .replace("127.0.0.1:50052", stack.env["ZQ_TASK_ADDR"]).replace("<password>", PASSWORD)
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180,
                             env={**os.environ, "PYTHONPATH": f"{devstack.ROOT / 'services' / 'stubs'}"})
        assert run.returncode == 0, run.stderr
        out = run.stdout.splitlines()
        assert out[0].split()[0] == "SNAPSHOT" and out[-2] == "STATUS COMPLETED 1.0", out
        assert all(float(x) == float(x) for x in out[-1].split())  # four numbers
