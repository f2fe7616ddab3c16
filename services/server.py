"""The gRPC server bootstrap every service uses.

Thread-pool `grpc.server` (measured faster than grpc.aio for our small unary calls, see
gateway.md), standard health service (NOT_SERVING until the service's readiness check — DB
reachable, migrations applied — has passed), server reflection, and graceful shutdown on
SIGTERM/SIGINT: health flips to NOT_SERVING, `before_stop` hooks drain the service's own
work (e.g. engine runs, so each stream can end with an in-band reason), the port stops
accepting and in-flight calls get the rest of `grace_seconds`, then `on_shutdown` hooks run.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.config import ServerSettings
from services.interceptors import Authenticator, ServiceInterceptor
from services.metrics import MetricsEndpoint, MetricsInterceptor, start_metrics_endpoint

log = logging.getLogger("zquant.server")

MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # backtest results with years of daily positions are large
MIN_FINAL_GRACE_SECONDS = 0.5  # after draining, time for the last in-band messages to be sent


@dataclass
class RunningServer:
    server: grpc.Server
    health: health.HealthServicer
    service_names: list[str]
    port: int
    grace_seconds: float
    # Called with the whole grace budget (seconds) while the port still serves the calls in
    # flight; whatever time they leave is gRPC's own grace for those calls.
    before_stop: list[Callable[[float], None]] = field(default_factory=list)
    on_shutdown: list[Callable[[], None]] = field(default_factory=list)
    metrics: MetricsEndpoint | None = None  # /metrics when ZQ_<SERVICE>_METRICS_ADDR is set
    _stopped: threading.Event = field(default_factory=threading.Event)

    def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ["", *self.service_names]:
            self.health.set(name, status)

    def stop(self, grace: float | None = None) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.set_serving(False)
        total = self.grace_seconds if grace is None else grace
        started = time.monotonic()
        for drain in self.before_stop:
            try:
                drain(total)
            except Exception:
                log.exception("before_stop hook failed")
        remaining = max(MIN_FINAL_GRACE_SECONDS if total > 0 else 0.0, total - (time.monotonic() - started))
        self.server.stop(remaining).wait()
        for hook in self.on_shutdown:
            try:
                hook()
            except Exception:
                log.exception("shutdown hook failed")

    def wait(self) -> None:
        self.server.wait_for_termination()


def build_server(
    settings: ServerSettings,
    *,
    register: Callable[[grpc.Server], Iterable[str]],
    authenticator: Authenticator | None,
    public_methods: Iterable[str] = (),
) -> RunningServer:
    """Creates and starts the server (health NOT_SERVING); the caller flips it once ready."""
    metrics = start_metrics_endpoint(settings.service)
    # Metrics outermost: a call's latency includes authentication, its code is the client's.
    # Without an endpoint nobody reads them, so the calls are not measured at all.
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.max_workers, thread_name_prefix=f"{settings.service}-rpc"),
        interceptors=[*([MetricsInterceptor()] if metrics else []),
                      ServiceInterceptor(authenticator, frozenset(public_methods))],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),  # a second process on the same port must fail, not share it
        ],
    )
    names = list(register(server))
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME], server
    )
    port = server.add_insecure_port(settings.addr)
    if port == 0:
        if metrics is not None:
            metrics.stop()
        raise RuntimeError(f"cannot listen on {settings.addr}")
    running = RunningServer(server, health_servicer, names, port, settings.grace_seconds, metrics=metrics)
    if metrics is not None:
        running.on_shutdown.append(metrics.stop)
    running.set_serving(False)
    server.start()
    log.info("listening", extra={"addr": settings.addr, "port": port, "services": names})
    return running


def serve_until_signal(running: RunningServer, ready: Callable[[], None]) -> None:
    """Runs `ready()` (raise to stay NOT_SERVING and exit), flips health to SERVING, then
    blocks until SIGTERM/SIGINT and shuts down gracefully."""
    stop_requested = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("shutdown requested", extra={"signal": signal.Signals(signum).name})
        stop_requested.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        ready()
    except Exception:
        log.exception("readiness check failed; shutting down")
        running.stop(grace=0)
        raise SystemExit(1) from None
    running.set_serving(True)
    log.info("serving")
    stop_requested.wait()
    running.stop()
    log.info("stopped")
