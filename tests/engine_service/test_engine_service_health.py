"""Health follows the market data: NOT_SERVING while it is unusable, SERVING again after."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine_service_helpers import Harness, load_market, wait_until
from grpc_health.v1 import health_pb2
from sqlalchemy import text

from engine_svc.serve import watch_health

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def test_health_tracks_data_reachability(make_server: Any, tmp_path: Path) -> None:
    market = load_market(f"sqlite:///{tmp_path / 'engine.db'}")
    h: Harness = make_server(market, check_ready=True)
    watch_health(h.running, h.core, interval=0.05)
    assert h.health_status() == SERVING
    with market.engine.begin() as conn:  # what a botched manual migration would look like
        conn.execute(text("ALTER TABLE data_version RENAME TO data_version_gone"))
    assert wait_until(lambda: h.health_status() == NOT_SERVING, timeout=3) is not None
    with market.engine.begin() as conn:
        conn.execute(text("ALTER TABLE data_version_gone RENAME TO data_version"))
    assert wait_until(lambda: h.health_status() == SERVING, timeout=3) is not None


def test_health_recovers_within_a_second_of_the_data_coming_back(make_server: Any, tmp_path: Path) -> None:
    """Healthy, the data is checked every `interval` (long here); down, every RECOVERY_INTERVAL,
    so the engine is SERVING again about a second after the database is back, not an interval later."""
    market = load_market(f"sqlite:///{tmp_path / 'engine.db'}")
    h: Harness = make_server(market, check_ready=True)
    watch_health(h.running, h.core, interval=3.0)
    with market.engine.begin() as conn:
        conn.execute(text("ALTER TABLE data_version RENAME TO data_version_gone"))
    assert wait_until(lambda: h.health_status() == NOT_SERVING, timeout=5) is not None
    with market.engine.begin() as conn:
        conn.execute(text("ALTER TABLE data_version_gone RENAME TO data_version"))
    assert wait_until(lambda: h.health_status() == SERVING, timeout=0.9) is not None
