"""Fixtures shared by the gateway and end-to-end tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import devstack


@pytest.fixture(scope="session")
def envoy_descriptor() -> Path:
    """deploy/envoy.pb; ZQ_GATEWAY_DESCRIPTOR points the tests at another descriptor set."""
    path = Path(os.environ.get("ZQ_GATEWAY_DESCRIPTOR") or devstack.DESCRIPTOR)
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `make proto`")
    return path
