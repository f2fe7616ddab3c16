"""Tracing is off unless OTEL_TRACES_EXPORTER names an exporter: no interceptors, no stored
context, log lines without trace ids, and the run span a plain pass-through. (On: the three real
services in tests/e2e/test_traces_e2e.py.)"""

from __future__ import annotations

import json
import logging

import grpc
import pytest

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
