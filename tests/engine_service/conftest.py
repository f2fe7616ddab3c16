"""Fixtures for engine_svc's gRPC layer (implementations in engine_service_helpers.py)."""

from __future__ import annotations

import engine_service_helpers as helpers
import pytest

sqlite_market = pytest.fixture(scope="session")(helpers.sqlite_market)
pg_market = pytest.fixture(scope="module")(helpers.pg_market)
make_server = pytest.fixture(helpers.make_server)
shared_server = pytest.fixture(scope="module")(helpers.shared_server)
