"""Prometheus metrics every service exposes (prometheus-client), and the per-RPC interceptor.

One process runs one service, so the metrics live in prometheus-client's default registry:
per-RPC counters and latency histograms (the names of go-grpc-prometheus, so the usual
dashboards and alerts apply), each service's own counters (``auth_svc/metrics.py``,
``task_svc/metrics.py``, ``engine_svc/service/metrics.py``) and gauges read at scrape time from
the live objects that own the state (``register_source``), so a gauge can never drift from what
it measures.

``ZQ_<SERVICE>_METRICS_ADDR`` (e.g. ``0.0.0.0:9464``) starts the ``/metrics`` HTTP endpoint of
that service and installs the per-RPC interceptor; unset, nothing listens and RPCs are not
measured (the few domain counters still count). The interceptor's cost on auth_svc's calls is
measured by ``bench/metrics_bench.py`` (``bench/README.md``).

The interceptor comes in two flavours with one rule: ``MetricsInterceptor`` for the thread-pool
``grpc.server`` and ``AioMetricsInterceptor`` for ``grpc.aio``. It is installed outermost, so a
call's latency includes authentication and its code is the one the client receives.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any, TypeVar

import grpc
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from services.config import env_str

log = logging.getLogger("zquant.metrics")

# Unary calls take milliseconds; RunBacktest and watch streams last minutes.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                   300.0, 1800.0)

RPC_STARTED = Counter("grpc_server_started", "RPCs started on the server.", ["grpc_service", "grpc_method"])
RPC_HANDLED = Counter("grpc_server_handled", "RPCs completed on the server, by gRPC status code.",
                      ["grpc_service", "grpc_method", "grpc_code"])
RPC_SECONDS = Histogram("grpc_server_handling_seconds", "Time from the start of an RPC to its status.",
                        ["grpc_service", "grpc_method"], buckets=LATENCY_BUCKETS)
STREAMS_OPEN = Gauge("grpc_server_streams_open", "Server-streaming RPCs open now (task_svc: watches).",
                     ["grpc_service", "grpc_method"])


def split_method(full: str) -> tuple[str, str]:
    """"/pkg.Service/Method" → ("pkg.Service", "Method")."""
    _, _, rest = full.partition("/")
    service, _, method = rest.partition("/")
    return service or "unknown", method or "unknown"


def _code_name(context: Any) -> str:
    """The status the handler ended the call with (OK when it set none)."""
    code = context.code()
    if code is None:
        return "OK"
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):  # grpc.aio may report the raw integer
        return next((c.name for c in grpc.StatusCode if c.value[0] == code), "UNKNOWN")
    return "UNKNOWN"


class _Method:
    """The labelled children of one method, looked up once (labels() takes a lock and hashes)."""

    __slots__ = ("handled", "labels", "seconds", "started", "streams")

    def __init__(self, method: str) -> None:
        self.labels = split_method(method)
        self.started = RPC_STARTED.labels(*self.labels)
        self.seconds = RPC_SECONDS.labels(*self.labels)
        self.streams = STREAMS_OPEN.labels(*self.labels)
        self.handled: dict[str, Any] = {}

    def handled_child(self, code: str) -> Any:
        child = self.handled.get(code)
        if child is None:
            child = self.handled[code] = RPC_HANDLED.labels(*self.labels, code)
        return child


_METHODS: dict[str, _Method] = {}


class _Call:
    """One RPC being measured."""

    __slots__ = ("method", "started")

    def __init__(self, method: str) -> None:
        known = _METHODS.get(method)
        if known is None:  # a race creates the same children twice: labels() returns the same ones
            known = _METHODS[method] = _Method(method)
        self.method = known
        self.started = time.perf_counter()
        known.started.inc()

    def done(self, code: str) -> None:
        self.method.handled_child(code).inc()
        self.method.seconds.observe(time.perf_counter() - self.started)


def _failed_code(context: Any, exc: BaseException) -> str:
    if isinstance(exc, GeneratorExit):  # the client went away mid-stream (sync flavour)
        return "CANCELLED"
    code = _code_name(context)
    return "UNKNOWN" if code == "OK" else code  # an exception that set no status reaches the client as UNKNOWN


def _rewrap(handler: Any, unary: Callable[[Any], Any], stream: Callable[[Any], Any]) -> Any:
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            unary(handler.unary_unary), handler.request_deserializer, handler.response_serializer)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            stream(handler.unary_stream), handler.request_deserializer, handler.response_serializer)
    return handler  # client/bidi streaming: none of our services use them


class MetricsInterceptor(grpc.ServerInterceptor):
    """Counts and times every RPC of a thread-pool ``grpc.server``."""

    def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method

        def unary(behaviour: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
            def run(request: Any, context: grpc.ServicerContext) -> Any:
                call = _Call(method)
                try:
                    reply = behaviour(request, context)
                except BaseException as exc:
                    call.done(_failed_code(context, exc))
                    raise
                call.done(_code_name(context))
                return reply

            return run

        def stream(behaviour: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Iterator[Any]]:
            def run(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                call = _Call(method)
                gauge = call.method.streams
                gauge.inc()
                try:
                    yield from behaviour(request, context)
                except BaseException as exc:
                    call.done(_failed_code(context, exc))
                    raise
                else:
                    # A handler that returns when its client went away ends a cancelled call.
                    call.done(_code_name(context) if context.is_active() else "CANCELLED")
                finally:
                    gauge.dec()

            return run

        return _rewrap(handler, unary, stream)


class AioMetricsInterceptor(grpc.aio.ServerInterceptor):
    """The same for ``grpc.aio`` (coroutines and async generators)."""

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method

        def unary(behaviour: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
            async def run(request: Any, context: grpc.aio.ServicerContext) -> Any:
                call = _Call(method)
                try:
                    reply = behaviour(request, context)
                    if inspect.isawaitable(reply):
                        reply = await reply
                except BaseException as exc:
                    call.done(_aio_failed_code(context, exc))
                    raise
                call.done(_code_name(context))
                return reply

            return run

        def stream(behaviour: Callable[[Any, Any], Any]) -> Callable[[Any, Any], AsyncIterator[Any]]:
            async def run(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                call = _Call(method)
                gauge = call.method.streams
                gauge.inc()
                try:
                    items = behaviour(request, context)
                    if hasattr(items, "__aiter__"):
                        async for item in items:
                            yield item
                    elif inspect.isawaitable(items):  # a coroutine that sends with context.write()
                        await items
                    else:
                        for item in items:
                            yield item
                except BaseException as exc:
                    call.done(_aio_failed_code(context, exc))
                    raise
                else:
                    call.done("CANCELLED" if context.cancelled() else _code_name(context))
                finally:
                    gauge.dec()

            return run

        return _rewrap(handler, unary, stream)


def _aio_failed_code(context: Any, exc: BaseException) -> str:
    import asyncio

    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        return "CANCELLED"
    return _failed_code(context, exc)


# ---- gauges read at scrape time ------------------------------------------------------------------

class _Sources(Collector):
    """Yields the metrics of every live source: an object that owns some state (the engine's
    slot pool, task_svc's database) and a function reading metric families from it. The owner
    is held weakly, so a stopped service in a test process stops reporting by itself."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sources: list[tuple[weakref.ref[Any], Callable[[Any], Iterable[Metric]]]] = []

    def add(self, owner: Any, read: Callable[[Any], Iterable[Metric]]) -> None:
        with self._lock:
            self._sources.append((weakref.ref(owner), read))

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            live = [(ref(), read) for ref, read in self._sources]
            self._sources = [src for src, (owner, _) in zip(self._sources, live, strict=True) if owner is not None]
        merged: dict[str, Metric] = {}
        for owner, read in live:
            if owner is None:
                continue
            try:
                families = list(read(owner))
            except Exception:
                log.warning("metrics source failed", exc_info=True)
                continue
            for family in families:
                if family.name in merged:  # two owners in one process (tests): one family, more samples
                    merged[family.name].samples.extend(family.samples)
                else:
                    merged[family.name] = family
        yield from merged.values()


_SOURCES = _Sources()
REGISTRY.register(_SOURCES)

T = TypeVar("T")


def register_source(owner: T, read: Callable[[T], Iterable[Metric]]) -> None:
    """``read(owner)`` (e.g. GaugeMetricFamily objects) is computed on every scrape while ``owner`` lives."""
    _SOURCES.add(owner, read)


# ---- the /metrics endpoint -----------------------------------------------------------------------


def metrics_addr(service: str) -> str:
    """``ZQ_<SERVICE>_METRICS_ADDR``: host:port of the service's /metrics endpoint ("" = off)."""
    return env_str(f"ZQ_{service.upper()}_METRICS_ADDR", "")


class MetricsEndpoint:
    def __init__(self, server: Any, thread: threading.Thread) -> None:
        self._server, self._thread = server, thread
        self.port: int = server.server_address[1]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_metrics_endpoint(service: str) -> MetricsEndpoint | None:
    """Serves /metrics on ``ZQ_<SERVICE>_METRICS_ADDR`` (port 0: a free one); None when unset."""
    addr = metrics_addr(service)
    if not addr:
        return None
    host, _, port = addr.rpartition(":")
    server, thread = start_http_server(int(port), addr=host.strip("[]") or "0.0.0.0")  # noqa: S104
    endpoint = MetricsEndpoint(server, thread)
    log.info("metrics endpoint", extra={"addr": f"{host}:{endpoint.port}"})
    return endpoint
