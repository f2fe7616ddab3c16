"""Production adapters for EngineCore's ports: the SQL market-data store and the process sandbox.

Kept apart from the core so its decisions stay testable without a database or workers, and so
the only place that knows the data layer's and the sandbox's module layout is this file.
"""

from __future__ import annotations

import threading
from typing import Any

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from engine_svc.data import loader
from engine_svc.data.codes import board_of
from engine_svc.data.db import read_data_version
from engine_svc.engine.panel import Panel
from engine_svc.engine.session import ProgressFn
from engine_svc.sandbox import api as sandbox_api
from engine_svc.sandbox.launcher import SparePool
from engine_svc.sandbox.limits import SandboxLimits
from engine_svc.service import telemetry
from engine_svc.service.core import UnknownSymbols
from services.migrations import alembic_config

SERVICE = "engine"


class SqlMarketData:
    """MarketData over engine_svc's SQL store (PostgreSQL or SQLite) via the cached loader."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # ListSymbols aggregates every bar table; its answer only changes when an import bumps
        # data_version, so keep the last answer per version (one cheap query per call).
        self._symbols_lock = threading.Lock()
        self._symbols: tuple[int, list[dict[str, Any]]] | None = None

    def load_panel(
        self, symbols: list[str], start: str, end: str, benchmark: str | None, use_daily_basic: bool
    ) -> Panel:
        try:
            return loader.load_panel(self.engine, symbols, start, end, benchmark, use_daily_basic)
        except loader.UnknownSymbolsError as exc:
            raise UnknownSymbols(exc.symbols) from None

    def list_symbols(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            version = read_data_version(conn)
        with self._symbols_lock:
            if self._symbols is not None and self._symbols[0] == version:
                return self._symbols[1]
        rows = loader.list_symbols(self.engine)
        for row in rows:
            row["board"] = _board(str(row["symbol"]), bool(row.get("is_index")))
        with self._symbols_lock:
            self._symbols = (version, rows)
        return rows

    def check_ready(self) -> None:
        """Raise unless the database answers and engine_svc's migrations are at head."""
        cfg = alembic_config(SERVICE, self.engine.url.render_as_string(hide_password=False))
        heads = set(ScriptDirectory.from_config(cfg).get_heads())
        with self.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": f"alembic_version_{SERVICE}"})
            current = set(context.get_current_heads())
            if current != heads:
                raise RuntimeError(f"market-data schema at {sorted(current)}, expected {sorted(heads)}")
            read_data_version(conn)


def _board(symbol: str, is_index: bool) -> str:
    try:
        return board_of(symbol, is_index)
    except (ValueError, IndexError):
        return ""  # a code outside the exchange rules (imported from an odd source): unknown board


class ProcessSandbox:
    """Sandbox over engine_svc.sandbox: one hardened worker process per job, started ahead of
    time when ``limits.spares`` > 0 (the pool starts with the first run and ends with close())."""

    def __init__(self, limits: SandboxLimits | None = None) -> None:
        self.limits = limits or SandboxLimits.from_env()
        self._spares: SparePool | None = None
        self._lock = threading.Lock()

    def _pool(self) -> SparePool | None:
        with self._lock:
            if self._spares is None and self.limits.spares > 0:
                self._spares = SparePool(self.limits, size=self.limits.spares)
            return self._spares

    def run(
        self, panel: Panel, code: str, config: dict[str, Any], *, on_progress: ProgressFn, cancel: threading.Event
    ) -> tuple[dict[str, Any], str]:
        outcome = sandbox_api.run_in_sandbox(
            panel, code, config, limits=self.limits, on_progress=on_progress, cancel=cancel, spares=self._pool()
        )
        telemetry.WORKER_START_SECONDS.observe(outcome.timings.get("start_s", 0.0))
        return outcome.result, outcome.logs

    def run_trials(
        self, panel: Panel, code: str, config: dict[str, Any], params: list[dict[str, Any]], *,
        on_progress: ProgressFn, cancel: threading.Event
    ) -> tuple[list[Any], str, float]:
        outcome = sandbox_api.run_trials_in_sandbox(
            panel, code, config, params, limits=self.limits, on_progress=on_progress, cancel=cancel,
            spares=self._pool())
        return list(outcome.result), outcome.logs, outcome.max_rss_mb

    def close(self) -> None:
        """Stop the spare workers (the service's shutdown)."""
        with self._lock:
            pool, self._spares = self._spares, None
        if pool is not None:
            pool.close()

    def validate(self, code: str) -> list[dict[str, Any]]:
        return sandbox_api.validate_in_sandbox(code, limits=self.limits)

    def selfcheck(self) -> None:
        sandbox_api.selfcheck(self.limits)

    def isolation_report(self) -> dict[str, Any]:
        return sandbox_api.isolation_report(self.limits)
