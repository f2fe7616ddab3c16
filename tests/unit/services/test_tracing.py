"""Tracing is off unless OTEL_TRACES_EXPORTER names an exporter: no interceptors, no stored
context, log lines without trace ids, and the run span a plain pass-through. On: a traced server
stream stays cancellable and continues the caller's trace (the three real services:
tests/e2e/test_traces_e2e.py)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services import tracing
from services.logs import JsonFormatter


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "_enabled", None)


@pytest.mark.parametrize("value", [None, "", "none", " None "])
def test_off_by_default_and_with_none(fresh: None, monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    else:
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)
    assert tracing.configure_tracing("task") is False
    assert not tracing.enabled()
    assert tracing.server_interceptors() == [] and tracing.aio_server_interceptors() == []
    channel = grpc.insecure_channel("127.0.0.1:1")
    try:
        assert tracing.traced_channel(channel) is channel
    finally:
        channel.close()
    assert tracing.current_carrier() is None
    ran = []
    with tracing.continued_span("task.run", '{"traceparent":"00-' + "1" * 32 + "-" + "2" * 16 + '-01"}'):
        ran.append(tracing.current_ids())
    assert ran == [None]


def test_exporter_list_ignores_none_and_blanks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp, none,,Console")
    assert tracing.exporters_requested() == ["otlp", "console"]


def test_log_lines_outside_a_span_have_no_trace_id() -> None:
    record = logging.makeLogRecord({"name": "zquant.test", "levelname": "INFO", "msg": "hello"})
    entry = json.loads(JsonFormatter("task_svc").format(record))
    assert entry["msg"] == "hello" and "trace_id" not in entry and "span_id" not in entry


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Tracing on for this test, with spans kept in memory (the process-wide provider is set once)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    monkeypatch.setattr(tracing, "_enabled", True)
    yield exporter
    processor.shutdown()


def _ticks(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    while context.is_active():
        yield b"tick"
        time.sleep(0.01)


def test_a_traced_server_stream_stays_cancellable_and_continues_the_trace(spans: InMemorySpanExporter) -> None:
    """The dispatcher cancels engine runs: the traced channel must hand back the call itself
    (the library's own streaming wrapper returns a bare generator), with its span ended as
    CANCELLED, and the server's span in the caller's trace."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), interceptors=tracing.server_interceptors())
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "t.Ticker", {"Ticks": grpc.unary_stream_rpc_method_handler(_ticks)})])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = tracing.traced_channel(grpc.insecure_channel(f"127.0.0.1:{port}"))
    try:
        with tracing.continued_span("task.run", None):
            parent = tracing.current_ids()
            call = channel.unary_stream("/t.Ticker/Ticks")(b"")
            assert next(call) == b"tick"
            call.cancel()
        assert call.code() == grpc.StatusCode.CANCELLED
        deadline = time.monotonic() + 5
        while len(spans.get_finished_spans()) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        channel.close()
        server.stop(0)
    by_kind = {s.kind.name: s for s in spans.get_finished_spans() if s.name in ("/t.Ticker/Ticks", "task.run")}
    assert parent is not None and set(by_kind) == {"INTERNAL", "CLIENT", "SERVER"}
    client, server_span = by_kind["CLIENT"], by_kind["SERVER"]
    assert format(client.context.trace_id, "032x") == parent[0] == format(server_span.context.trace_id, "032x")
    assert format(client.parent.span_id, "016x") == parent[1]
    assert server_span.parent.span_id == client.context.span_id
    assert client.attributes["rpc.grpc.status_code"] == grpc.StatusCode.CANCELLED.value[0]
    assert client.status.status_code.name == "ERROR"
