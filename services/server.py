"""The gRPC server bootstrap every service uses.

Two flavours with one interface (`set_serving`, `stop`, `wait`, `port`, hooks):
- `build_server`: thread-pool `grpc.server` (measured faster than grpc.aio for small unary
  calls) for services whose calls all end quickly (auth_svc, engine_svc);
- `build_aio_server`: `grpc.aio` on an event loop of its own thread, for a service with
  long-lived streams (task_svc's watches): a stream waits on the loop and holds no thread, so
  any number of them cannot starve unary calls. Blocking work (SQL, calls to other services)
  runs on the loop's default executor, bounded by `max_workers`.

Both serve the standard health service (NOT_SERVING until the service's readiness check — DB
reachable, migrations applied — has passed), server reflection, and graceful shutdown on
SIGTERM/SIGINT: health flips to NOT_SERVING, `before_stop` hooks drain the service's own
work (e.g. engine runs, so each stream can end with an in-band reason), the port stops
accepting and in-flight calls get the rest of `grace_seconds`, then `on_shutdown` hooks run.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.config import ServerSettings
from services.interceptors import AioServiceInterceptor, Authenticator, ServiceInterceptor
from services.metrics import AioMetricsInterceptor, MetricsEndpoint, MetricsInterceptor, start_metrics_endpoint
from services.stream_limits import StreamLimits
from services.tracing import aio_server_interceptors, server_interceptors

log = logging.getLogger("zquant.server")

MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # backtest results with years of daily positions are large
MIN_FINAL_GRACE_SECONDS = 0.5  # after draining, time for the last in-band messages to be sent
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.so_reuseport", 0),  # a second process on the same port must fail, not share it
    # The gateway refuses requests with more than 16 KiB of headers (431, deploy/envoy.yaml);
    # what it lets through (the transcoder adds a copy of the path) must fit here.
    ("grpc.max_metadata_size", 64 * 1024),
    # Clients reconnect (and re-resolve DNS) at least every 5 minutes, so a replica added by a
    # scale-up gets its share of a long-lived channel's calls; calls in flight finish first
    # (no max_connection_age_grace: a backtest stream may run long).
    ("grpc.max_connection_age_ms", 300_000),
    # Clients' keepalive pings (task_svc → engine, every ZQ_TASK_ENGINE_KEEPALIVE_SECONDS while a
    # run streams) are welcome however often: never answered with GOAWAY "too_many_pings".
    ("grpc.http2.max_ping_strikes", 0),
]


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
        _stop_in_order(self, grace, lambda remaining: self.server.stop(remaining).wait())

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
    # Tracing outermost (when OTEL_TRACES_EXPORTER is set): authentication and the access log
    # run inside the call's span. Then metrics: a call's latency includes authentication, its
    # code is the client's.
    # Without an endpoint nobody reads them, so the calls are not measured at all.
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.max_workers, thread_name_prefix=f"{settings.service}-rpc"),
        interceptors=[*server_interceptors(), *([MetricsInterceptor()] if metrics else []),
                      ServiceInterceptor(authenticator, frozenset(public_methods))],
        options=SERVER_OPTIONS,
    )
    names = list(register(server))
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(_health_names(names), server)
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


def _health_names(names: list[str]) -> list[str]:
    return [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME]


class AioRunningServer:
    """A `grpc.aio` server running on an event loop in its own thread, driven from ordinary
    (blocking) code exactly like `RunningServer`: the tests and `serve_until_signal` use both."""

    def __init__(self, settings: ServerSettings, register: Callable[[grpc.aio.Server], Iterable[str]],
                 authenticator: Authenticator | None, public_methods: Iterable[str],
                 stream_limits: StreamLimits | None = None) -> None:
        self.grace_seconds = settings.grace_seconds
        self.before_stop: list[Callable[[float], None]] = []
        self.on_shutdown: list[Callable[[], None]] = []
        self.service_names: list[str] = []
        self.port = 0
        self._settings = settings
        self._register = register
        self._interceptor = AioServiceInterceptor(authenticator, frozenset(public_methods), stream_limits)
        self.metrics: MetricsEndpoint | None = None
        self._stopped = threading.Event()
        self._done = threading.Event()
        self._executor = futures.ThreadPoolExecutor(max_workers=settings.max_workers,
                                                    thread_name_prefix=f"{settings.service}-blocking")
        self.loop = asyncio.new_event_loop()
        self.loop.set_default_executor(self._executor)
        self._thread = threading.Thread(target=self.loop.run_forever, name=f"{settings.service}-aio", daemon=True)

    def start(self) -> AioRunningServer:
        self.metrics = start_metrics_endpoint(self._settings.service)
        self._thread.start()
        try:
            self.call(self._start())
        except BaseException:
            self._close_loop()
            if self.metrics is not None:
                self.metrics.stop()
            raise
        if self.metrics is not None:
            self.on_shutdown.append(self.metrics.stop)
        log.info("listening", extra={"addr": self._settings.addr, "port": self.port, "services": self.service_names})
        return self

    async def _start(self) -> None:
        # Tracing, then metrics outermost, as on the thread-pool server.
        self.server = grpc.aio.server(
            interceptors=[*aio_server_interceptors(), *([AioMetricsInterceptor()] if self.metrics else []),
                          self._interceptor],
            options=SERVER_OPTIONS)
        self.service_names = list(self._register(self.server))
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(_health_names(self.service_names), self.server)
        self.port = self.server.add_insecure_port(self._settings.addr)
        if self.port == 0:
            raise RuntimeError(f"cannot listen on {self._settings.addr}")
        await self._set_serving(False)
        await self.server.start()

    def call(self, coro: Any) -> Any:
        """Runs a coroutine on the server's loop and waits for its result (not from the loop)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def _set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ["", *self.service_names]:
            await self.health.set(name, status)

    def set_serving(self, serving: bool) -> None:
        self.call(self._set_serving(serving))

    def stop(self, grace: float | None = None) -> None:
        if _stop_in_order(self, grace, lambda remaining: self.call(self.server.stop(remaining))):
            self._close_loop()

    def _close_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self.loop.is_running():
            self.loop.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._done.set()

    def wait(self) -> None:
        self._done.wait()


def build_aio_server(
    settings: ServerSettings,
    *,
    register: Callable[[grpc.aio.Server], Iterable[str]],
    authenticator: Authenticator | None,
    public_methods: Iterable[str] = (),
    stream_limits: StreamLimits | None = None,
) -> AioRunningServer:
    """Creates and starts a grpc.aio server on its own loop thread (health NOT_SERVING); the
    caller flips it once ready. `settings.max_workers` bounds the threads for blocking work;
    `stream_limits` bounds the open server streams per user and in total."""
    return AioRunningServer(settings, register, authenticator, public_methods, stream_limits).start()



def _stop_in_order(running: RunningServer | AioRunningServer, grace: float | None,
                   stop_server: Callable[[float], None]) -> bool:
    """The stop sequence of both server flavours; False when the server was already stopped.

    NOT_SERVING first, so balancers stop sending; the before_stop hooks (draining work) share the
    grace period; the server gets what is left of it (at least MIN_FINAL_GRACE_SECONDS to finish
    in-flight calls); the on_shutdown hooks last. A failing hook is logged and the rest still run.
    """
    if running._stopped.is_set():
        return False
    running._stopped.set()
    running.set_serving(False)
    total = running.grace_seconds if grace is None else grace
    started = time.monotonic()
    for drain in running.before_stop:
        try:
            drain(total)
        except Exception:
            log.exception("before_stop hook failed")
    stop_server(max(MIN_FINAL_GRACE_SECONDS if total > 0 else 0.0, total - (time.monotonic() - started)))
    for hook in running.on_shutdown:
        try:
            hook()
        except Exception:
            log.exception("shutdown hook failed")
    return True

def serve_until_signal(running: RunningServer | AioRunningServer, ready: Callable[[], None]) -> None:
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
