"""The README's "Deploying" section followed as written on this machine: the images built offline
with podman (the debootstrapped base cached between runs), the podman overlay played with
`podman kube play` (PostgreSQL, the migration and sample-data Jobs, auth, task, engine, Envoy),
the README's curl session run against the gateway to a COMPLETED backtest, Prometheus metrics
scraped from the pods, and `down` leaving no pod, volume or secret behind.

Needs root, podman, buildah and debootstrap (.ci/run installs them); skipped with the reason
otherwise. Takes ~1.5 min with the base cached (~+1 min to debootstrap it the first time).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
GATEWAY = "http://127.0.0.1:18080/api/v1"
ADMIN_PASSWORD = "local-admin-password"  # deploy/k8s/overlays/local/secrets.yaml
OVERLAY = ROOT / "deploy" / "k8s" / "overlays" / "podman"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def _blocks(heading: str) -> list[str]:
    text = README.read_text()
    section = text[text.index(heading):]
    section = section[:section.index("\n## ", 1)] if "\n## " in section[1:] else section
    return re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)


def _json_values(text: str) -> list:
    decoder, values, at = json.JSONDecoder(), [], 0
    while at < len(text):
        if text[at] in "{[":
            value, at = decoder.raw_decode(text, at)
            values.append(value)
        else:
            at += 1
    return values


def _podman_usable(env: dict[str, str]) -> str:
    """'' when podman can run containers here, else why not."""
    missing = [tool for tool in ("podman", "buildah", "debootstrap") if shutil.which(tool) is None]
    if missing:
        return f"not installed: {', '.join(missing)} (.ci/run installs them with apt)"
    if os.geteuid() != 0:
        return "needs root (debootstrap, and rootful podman with runc and cgroupfs)"
    info = subprocess.run(["podman", "info", "--format", "{{.Host.OCIRuntime.Name}}"], capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    if info.returncode != 0:
        return f"podman info failed: {info.stderr.strip()[:300]}"
    return ""


def _bash(script: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=timeout, check=False)


def _leftovers(env: dict[str, str]) -> list[str]:
    out = []
    for args in (["pod", "ps", "--format", "{{.Name}}"], ["ps", "-a", "--format", "{{.Names}}"],
                 ["volume", "ls", "--format", "{{.Name}}"], ["secret", "ls", "--format", "{{.Name}}"]):
        listed = subprocess.run(["podman", *args], capture_output=True, text=True, env=env, timeout=60,
                                check=True).stdout.split()
        out += [f"{args[0]} {name}" for name in listed if name.startswith("zquant")]
    return out


def test_readme_deploying_with_podman() -> None:
    env = {**os.environ, "CONTAINERS_CONF": str(ROOT / "deploy" / "image" / "containers.conf"),
           "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}"}
    reason = _podman_usable(env)
    if reason:
        pytest.skip(f"podman test: {reason}")
    up, down = _blocks("**On one machine with podman**")[:2]
    readme = README.read_text()
    curl = re.search(r"```bash\n(.*?)```", readme[readme.index("## A complete session by curl"):], flags=re.DOTALL)
    assert curl and "podman.py up" in up and "podman.py down" in down
    leftovers = _leftovers(env)
    assert not leftovers, f"a previous run left {leftovers}: run the README's down command"
    try:
        built = _bash(up, env, timeout=900)
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]

        session = curl.group(1).replace("G=http://127.0.0.1:8080/api/v1", f"G={GATEWAY}") \
            .replace("<password>", ADMIN_PASSWORD)
        shell = _bash(session, env, timeout=300)
        assert shell.returncode == 0, shell.stderr[-3000:]
        values = _json_values(shell.stdout)
        me, templates, symbols, created, *rest = values
        assert isinstance(symbols, dict) and "symbols" in symbols, shell.stdout[:2000]
        assert me["username"] == "admin" and me["role_id"] == 1
        assert len(templates) == 9
        assert {s["symbol"] for s in symbols["symbols"]} >= {"600036.SH", "000002.SZ", "300059.SZ", "000001.SH"}
        assert created["id"] == 1 and created["status"] == "pending"
        events = [v for v in rest if isinstance(v, dict) and "kind" in v]
        assert events[-1]["terminal"] is True and events[-1]["task"]["status"] == "completed", events[-1]
        task, result = rest[len(events):len(events) + 2]
        assert task["status"] == "completed" and result["task_id"] == 1
        assert isinstance(result["total_return"], float)

        # The pods' metrics (podman overlay: 127.0.0.1:19464..19466, Envoy's stats on 19902).
        def scrape(url: str) -> str:
            with urllib.request.urlopen(url, timeout=10) as reply:  # noqa: S310  (fixed http URLs)
                return reply.read().decode()

        task_metrics = scrape("http://127.0.0.1:19465/metrics")
        assert 'zq_tasks{status="completed"} 1.0' in task_metrics
        engine_metrics = scrape("http://127.0.0.1:19466/metrics")
        assert re.search(r'zq_engine_backtest_seconds_count\{outcome="COMPLETED"\} 1\.0', engine_metrics)
        assert 'grpc_server_handled_total{grpc_code="OK",grpc_method="Login"' in scrape("http://127.0.0.1:19464/metrics")
        assert "envoy_http_downstream_rq_xx" in scrape("http://127.0.0.1:19902/stats/prometheus")
    finally:
        stopped = _bash(down, env, timeout=300)
    assert stopped.returncode == 0, stopped.stderr[-2000:]
    assert _leftovers(env) == []
