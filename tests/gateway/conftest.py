"""Fixtures of the gateway tests: the descriptor set `make proto` builds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import devstack


@pytest.fixture(scope="module")
def descriptor_path() -> Path:
    path = Path(os.environ.get("ZQ_GATEWAY_DESCRIPTOR") or devstack.DESCRIPTOR)
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `make proto`")
    return path
