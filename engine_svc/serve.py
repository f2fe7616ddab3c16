"""engine_svc process entry: ``python -m engine_svc serve`` (or ``python -m engine_svc.serve``).

Start-up: settings from the environment, the market-data engine for ZQ_ENGINE_DATABASE_URL, the
gRPC server (health NOT_SERVING), then readiness — migrations applied, data reachable, a sandboxed
worker starts and its isolation layers hold — before health flips to SERVING. The isolation report
(which layers a worker gets on this host) is logged once at start-up.

Environment (besides the shared ZQ_* names of services/config.py and ZQ_SANDBOX_* of the sandbox):

    ZQ_ENGINE_SLOTS                 backtests run at once (default: CPU count)
    ZQ_ENGINE_QUEUE                 calls that may wait for a slot (default: = slots); beyond → RESOURCE_EXHAUSTED
    ZQ_ENGINE_HEALTH_INTERVAL       seconds between data-reachability re-checks (default 15; 0 = off)

Shutdown (SIGTERM/SIGINT): health NOT_SERVING, new runs get UNAVAILABLE, running backtests get
ZQ_SHUTDOWN_GRACE_SECONDS to finish, then their workers are killed and each call ends with an
in-band CANCELLED error "engine shutting down; the run was cancelled".
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable

from sqlalchemy import Engine

from engine_svc.data.db import ensure_schema, get_engine
from engine_svc.sandbox.limits import SandboxLimits
from engine_svc.service.adapters import ProcessSandbox, SqlMarketData
from engine_svc.service.core import EngineCore
from engine_svc.service.servicer import register
from engine_svc.service.slots import SlotPool
from services.auth_client import RemoteAuthenticator
from services.config import ServerSettings, env_float, env_int, service_addr
from services.interceptors import Authenticator
from services.logs import configure_logging
from services.server import RunningServer, build_server, serve_until_signal
from services.tracing import configure_tracing

log = logging.getLogger("zquant.engine")

RPC_HEADROOM = 8  # gRPC threads kept free for health, ListSymbols, ValidateStrategy and refusals


def slots_from_env() -> tuple[int, int]:
    slots = env_int("ZQ_ENGINE_SLOTS", os.cpu_count() or 1)
    queue = env_int("ZQ_ENGINE_QUEUE", slots)
    if slots < 1 or queue < 0:
        raise ValueError("ZQ_ENGINE_SLOTS must be ≥ 1 and ZQ_ENGINE_QUEUE ≥ 0")
    return slots, queue


def build_core(
    engine: Engine, *, limits: SandboxLimits | None = None, slots: int | None = None, queue: int | None = None
) -> EngineCore:
    env_slots, env_queue = slots_from_env()
    pool = SlotPool(env_slots if slots is None else slots, env_queue if queue is None else queue)
    return EngineCore(SqlMarketData(engine), ProcessSandbox(limits), pool)


def start_server(
    settings: ServerSettings, core: EngineCore, authenticator: Authenticator | None
) -> RunningServer:
    """Build and start the server (NOT_SERVING) with the engine's shutdown order attached.

    Every admitted RunBacktest holds a gRPC thread while it runs or waits, so the thread pool is
    sized above slots + queue: health checks, ListSymbols and refusals must never wait behind them.
    """
    stats = core.pool.stats()
    needed = stats.slots + stats.queue + RPC_HEADROOM
    if settings.max_workers < needed:
        settings = dataclasses.replace(settings, max_workers=needed)
    running = build_server(settings, register=register(core), authenticator=authenticator)
    attach_shutdown(running, core)
    return running


def attach_shutdown(running: RunningServer, core: EngineCore) -> None:
    """Drain the engine before gRPC's own grace period.

    gRPC's ``server.stop(grace)`` aborts calls still active at the end of the grace with a bare
    CANCELLED status — too late to tell a caller *why* its run stopped. So the engine is drained
    first: refuse new runs, wait for the running ones, then kill the rest so each stream ends
    with an in-band error event; gRPC then stops with a short grace in which those last events
    are delivered.
    """

    def drain(total: float) -> None:
        margin = min(2.0, max(0.2, total * 0.2))  # time for cancelled runs to send their last event
        core.shutdown(max(0.0, total - margin), kill_wait=margin)

    running.before_stop.append(drain)


def ready_check(core: EngineCore, engine: Engine) -> Callable[[], None]:
    def ready() -> None:
        ensure_schema(engine)  # services run their pending migrations at start
        report = core.check_ready()
        log.info("sandbox isolation", extra={"isolation": report})

    return ready


RECOVERY_INTERVAL = 0.5  # seconds between data checks while NOT_SERVING


def watch_health(running: RunningServer, core: EngineCore, interval: float) -> threading.Thread | None:
    """Re-check data reachability so health follows the database (NOT_SERVING while it is down).
    While it is down the check runs every RECOVERY_INTERVAL seconds (at most `interval`), so the
    engine is SERVING again about a second after the database is back, not up to `interval`
    later. The worker self-check is not repeated: it costs a worker start and host layers do
    not change."""
    if interval <= 0:
        return None

    def loop() -> None:
        healthy = True
        stop = threading.Event()
        while not stop.wait(interval if healthy else min(interval, RECOVERY_INTERVAL)):
            if core.shutting_down:
                return
            try:
                core.check_data()
                ok = True
            except Exception as exc:
                ok = False
                if healthy:
                    log.warning("market data unreachable; NOT_SERVING", extra={"error": str(exc)})
            if ok != healthy and not core.shutting_down:
                running.set_serving(ok)
                if ok:
                    log.info("market data reachable again; SERVING")
            healthy = ok

    thread = threading.Thread(target=loop, name="engine-health", daemon=True)
    thread.start()
    return thread


def main() -> int:
    settings = ServerSettings.from_env("engine")
    configure_logging("engine", settings.log_level)
    configure_tracing("engine")  # before the auth client: its channel gets the interceptor
    engine = get_engine(settings.database_url)
    core = build_core(engine)
    authenticator = RemoteAuthenticator(service_addr("auth"))
    running = start_server(settings, core, authenticator)
    stats = core.pool.stats()
    log.info("engine slots", extra={"slots": stats.slots, "queue": stats.queue})
    ready = ready_check(core, engine)

    def ready_then_watch() -> None:
        ready()
        watch_health(running, core, env_float("ZQ_ENGINE_HEALTH_INTERVAL", 15.0))

    serve_until_signal(running, ready_then_watch)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
