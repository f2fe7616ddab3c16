"""OpenTelemetry traces across the services: W3C `traceparent` on every gRPC hop.

Off by default: nothing is set up (no provider, no interceptors, no cost per call) unless
``OTEL_TRACES_EXPORTER`` names an exporter other than ``none``. The standard variables apply:

- ``OTEL_TRACES_EXPORTER``: ``otlp`` (OTLP/gRPC to ``OTEL_EXPORTER_OTLP_ENDPOINT``, default
  ``http://localhost:4317``) and/or ``console`` (comma-separated). ``console`` writes one JSON
  span per line to stderr, next to the service's JSON logs;
- ``OTEL_SERVICE_NAME`` (default ``zquant-<service>``), ``OTEL_RESOURCE_ATTRIBUTES``,
  ``OTEL_TRACES_SAMPLER``/``_ARG``, ``OTEL_BSP_*`` (batching) as the SDK reads them.

Spans come from `opentelemetry-instrumentation-grpc`: a server interceptor outermost on every
service (thread-pool and grpc.aio), a client interceptor (`traced_channel`) on the channels to auth_svc and
engine_svc. A backtest runs asynchronously (submitted, later claimed by a dispatcher, maybe on
another replica), so the submitting call's context is stored on the task row
(`current_carrier`) and the dispatcher's run span continues it (`continued_span`): one
backtest, one trace. Log lines carry ``trace_id``/``span_id`` while a span is active
(services/logs.py), so a request id leads to its trace and back.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
from opentelemetry import propagate, trace

log = logging.getLogger("zquant.tracing")

_lock = threading.Lock()
_enabled: bool | None = None
_HEALTH = "grpc.health.v1.Health"
_REFLECTION = ("grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection")


def exporters_requested() -> list[str]:
    names = [n.strip().lower() for n in os.environ.get("OTEL_TRACES_EXPORTER", "").split(",")]
    return [n for n in names if n and n != "none"]


def configure_tracing(service: str) -> bool:
    """Sets up the SDK once per process when ``OTEL_TRACES_EXPORTER`` asks for it; True if on."""
    global _enabled
    with _lock:
        if _enabled is not None:
            return _enabled
        names = exporters_requested()
        if not names:
            _enabled = False
            return False
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: f"zquant-{service}"}
        provider = TracerProvider(resource=Resource.create(attributes))
        for name in names:
            exporter = _exporter(name)
            if exporter is not None:
                provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        _enabled = True
        log.info("tracing on", extra={"exporters": names})
        return True


def _exporter(name: str) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        # One line per span: the log shipper reads the same stream as the JSON logs.
        return ConsoleSpanExporter(out=sys.stderr, formatter=lambda span: span.to_json(indent=None) + "\n")
    if name == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        except ImportError:
            log.error("OTEL_TRACES_EXPORTER=otlp but opentelemetry-exporter-otlp-proto-grpc is not installed")
            return None
        return OTLPSpanExporter()  # endpoint, headers, TLS: OTEL_EXPORTER_OTLP_* variables
    log.error("unknown OTEL_TRACES_EXPORTER entry ignored", extra={"exporter": name})
    return None


def enabled() -> bool:
    return bool(_enabled)


def _traced() -> Any:
    """Health checks and reflection (probes, every few seconds) make no spans."""
    from opentelemetry.instrumentation.grpc.filters import any_of, negate, service_name

    return negate(any_of(*(service_name(s) for s in (_HEALTH, *_REFLECTION))))


def server_interceptors() -> list[Any]:
    """For `grpc.server` (outermost): a span per call, continuing the caller's traceparent."""
    if not _enabled:
        return []
    from opentelemetry.instrumentation.grpc import server_interceptor

    return [server_interceptor(filter_=_traced())]


def aio_server_interceptors() -> list[Any]:
    if not _enabled:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor(filter_=_traced())]


def traced_channel(channel: grpc.Channel) -> grpc.Channel:
    """`channel` with a client span per call and the traceparent sent as metadata (as is when
    tracing is off).

    Unary calls use the library's client interceptor. Its server-streaming variant hands back a
    plain generator instead of the call, so the caller could no longer cancel it (the dispatcher
    cancels engine runs): those go through `_StreamClientSpans`, which returns the call itself
    and ends the span when the call is done."""
    if not _enabled:
        return channel
    from opentelemetry.instrumentation.grpc import client_interceptor, intercept_channel
    from opentelemetry.instrumentation.grpc.filters import all_of

    def unary(info: Any) -> bool:
        return not getattr(info, "is_server_stream", False)

    unary_spans = intercept_channel(channel, client_interceptor(filter_=all_of(_traced(), unary)))
    return grpc.intercept_channel(unary_spans, _StreamClientSpans())


class _StreamClientSpans(grpc.UnaryStreamClientInterceptor):
    def intercept_unary_stream(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        method = client_call_details.method
        service, _, name = method.lstrip("/").partition("/")
        span = trace.get_tracer("zquant").start_span(
            method, kind=trace.SpanKind.CLIENT,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name})
        metadata = dict(client_call_details.metadata or ())
        propagate.inject(metadata, context=trace.set_span_in_context(span))
        details = client_call_details._replace(metadata=tuple(metadata.items())) \
            if hasattr(client_call_details, "_replace") else _with_metadata(client_call_details, metadata)
        try:
            call = continuation(details, request)
        except Exception:
            span.end()
            raise

        def done(finished: Any) -> None:
            code = finished.code()
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code != grpc.StatusCode.OK:
                span.set_status(trace.Status(trace.StatusCode.ERROR, code.name))
            span.end()

        call.add_done_callback(done)
        return call


def _with_metadata(details: Any, metadata: dict[str, str]) -> Any:
    from services.logs import _CallDetails

    return _CallDetails(details.method, details.timeout, tuple(metadata.items()), details.credentials,
                        details.wait_for_ready, details.compression)


def current_carrier() -> str | None:
    """The active span's context as W3C headers (JSON), to continue the trace later; None when
    tracing is off or no span is active."""
    if not _enabled:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return json.dumps(carrier, separators=(",", ":")) if carrier else None


@contextmanager
def continued_span(name: str, carrier: str | None, attributes: dict[str, Any] | None = None) -> Iterator[None]:
    """A span that continues the trace stored by `current_carrier` (a root span without one)."""
    if not _enabled:
        yield
        return
    parent = None
    if carrier:
        try:
            parent = propagate.extract(json.loads(carrier))
        except (ValueError, TypeError, AttributeError):
            parent = None
    with trace.get_tracer("zquant").start_as_current_span(name, context=parent, attributes=attributes):
        yield


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the active span, for log lines; None outside any span."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
