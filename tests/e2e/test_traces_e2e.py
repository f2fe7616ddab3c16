"""One backtest, one trace (issue 13): with OTEL_TRACES_EXPORTER=console on real auth, task and
engine services behind the real gateway, a backtest submitted over REST with a W3C
`traceparent` yields spans in all three services under that trace id — task_svc's RunBacktest,
auth_svc's Authenticate (task_svc checking the caller), the dispatcher's run (claimed later,
continued from the context stored on the task row) and engine_svc's RunBacktest under it — and
the services' JSON log lines written inside those spans carry the trace id next to the request
id. One sweep, one trace: each trial batch is a span under the creating call, with engine_svc's
RunTrials under it. (Tracing off, the default, is tests/unit/services/test_tracing.py.)"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.realstack import RealStack, start_real_stack

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

ADMIN_PASSWORD = "traces admin password"
CONFIG = {"start_date": "2013-01-04", "end_date": "2013-03-29", "symbols": ["600036.SH"]}
CODE = """from zquant.backtest.strategy import BaseStrategy


class Strategy(BaseStrategy):
    def on_bar(self, context, bar_data):
        context.order_target_percent("600036.SH", 0.5)
"""


@dataclass
class Traced:
    real: RealStack
    http: httpx.Client
    headers: dict[str, str]


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory, module_gateway_factory) -> Iterator[Traced]:  # type: ignore[no-untyped-def]
    data_dir: Path = tmp_path_factory.mktemp("e2e_traces")
    with ExitStack() as cleanup:
        real = start_real_stack(cleanup, data_dir, module_gateway_factory, admin_password=ADMIN_PASSWORD,
                                extra_env={"OTEL_TRACES_EXPORTER": "console", "OTEL_BSP_SCHEDULE_DELAY": "100",
                                           # every call asks auth_svc, so the submission's span has a child there
                                           "ZQ_AUTH_CACHE_SECONDS": "0",
                                           # a sweep of 3 trials runs as two batches (2 + 1)
                                           "ZQ_SWEEP_BATCH_TRIALS": "2",
                                           "ZQ_LOG_LEVEL": "DEBUG"})  # the per-call access log lines
        http = cleanup.enter_context(httpx.Client(base_url=f"{real.gateway.url}/api/v1", timeout=30))  # type: ignore[attr-defined]
        resp = http.post("/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert resp.status_code == 200, resp.text
        yield Traced(real, http, {"authorization": f"Bearer {resp.json()['access_token']}"})


def _lines(path: Path) -> list[dict]:
    found = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return found


def _spans(real: RealStack, trace_id: str) -> dict[str, list[dict]]:
    """Spans of `trace_id` by the service (log file) that wrote them."""
    return {name: [s for s in _lines(handle.log_path)
                   if isinstance(s.get("context"), dict) and s["context"].get("trace_id") == f"0x{trace_id}"]
            for name, handle in real.handles.items()}


def _finished(traced: Traced, path: str, timeout: float = 45) -> dict:
    """The task or sweep at `path` once it is in a terminal state (or as it is at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        item = traced.http.get(path, headers=traced.headers).json()
        if item["status"] in ("completed", "failed", "cancelled") or time.monotonic() > deadline:
            return item
        time.sleep(0.2)


def _names(spans: list[dict]) -> set[str]:
    return {s["name"] for s in spans}


def test_one_backtest_is_one_trace_across_the_three_services(traced: Traced) -> None:
    trace_id, parent_span = secrets.token_hex(16), secrets.token_hex(8)
    headers = {**traced.headers, "traceparent": f"00-{trace_id}-{parent_span}-01"}
    resp = traced.http.post("/backtest/run", json={"strategy_code": CODE, "config": CONFIG}, headers=headers)
    assert resp.status_code == 201, resp.text
    task_id = resp.json()["id"]

    task = _finished(traced, f"/backtest/tasks/{task_id}")
    assert task["status"] == "completed", task
    # A server stream on task_svc's grpc.aio server, traced too: a finished task's watch is
    # its snapshot, then the stream ends.
    with traced.http.stream("GET", f"/backtest/tasks/{task_id}/watch", headers=traced.headers) as watch:
        assert watch.status_code == 200
        events = [json.loads(line) for line in watch.iter_lines() if line.strip()]
    assert events[0]["kind"] == "snapshot" and events[-1]["terminal"] is True, events
    assert events[-1]["task"]["id"] == task_id and events[-1]["task"]["status"] == "completed"

    wanted = {"auth": "/zquant.auth.v1.AuthService/Authenticate",
              "task": "/zquant.backtest.v1.TaskRestService/RunBacktest",
              "engine": "/zquant.engine.v1.EngineService/RunBacktest"}
    deadline = time.monotonic() + 10  # spans are exported in batches every 100 ms
    while True:
        spans = _spans(traced.real, trace_id)
        if (all(wanted[n] in _names(spans[n]) for n in wanted) and "task.run" in _names(spans["task"])) \
                or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for name, span_name in wanted.items():
        assert span_name in _names(spans[name]), (name, _names(spans[name]))
    by_id = {s["context"]["span_id"]: s for ss in spans.values() for s in ss}

    # The gateway passed the caller's traceparent through: task_svc's server span is its child.
    task_server = next(s for s in spans["task"] if s["name"] == wanted["task"] and s["kind"] == "SpanKind.SERVER")
    assert task_server["parent_id"] == f"0x{parent_span}"
    assert task_server["resource"]["attributes"]["service.name"] == "zquant-task"
    # auth_svc answered task_svc's client call made inside that server span.
    auth_server = next(s for s in spans["auth"] if s["name"] == wanted["auth"])
    assert by_id[auth_server["parent_id"]]["parent_id"] == task_server["context"]["span_id"]
    # The dispatcher's run continues the submission (stored on the task row) …
    run = next(s for s in spans["task"] if s["name"] == "task.run")
    assert run["parent_id"] == task_server["context"]["span_id"]
    assert run["attributes"]["zquant.task_id"] == task_id
    # … and the engine's run is a child of its client call, made inside the run span.
    engine_server = next(s for s in spans["engine"] if s["name"] == wanted["engine"])
    engine_client = by_id[engine_server["parent_id"]]
    assert engine_client["kind"] == "SpanKind.CLIENT" and engine_client["parent_id"] == run["context"]["span_id"]
    assert engine_server["resource"]["attributes"]["service.name"] == "zquant-engine"

    # Log lines written inside the submission's spans carry the trace id next to the request id
    # (the gateway's x-request-id, which task_svc forwarded to auth_svc).
    logs = {name: [e for e in _lines(handle.log_path) if "msg" in e] for name, handle in traced.real.handles.items()}
    submission = [e for e in logs["task"] if e["msg"] == "rpc" and e["method"] == wanted["task"]
                  and e.get("trace_id") == trace_id]
    assert len(submission) == 1 and submission[0]["span_id"] == task_server["context"]["span_id"][2:]
    request_id = submission[0]["request_id"]
    by_request = [e for name in ("task", "auth") for e in logs[name] if e.get("request_id") == request_id]
    assert {e.get("trace_id") for e in by_request} == {trace_id}
    assert any(e["service"] == "auth" and e["msg"] == "rpc" and e["method"] == wanted["auth"] for e in by_request)
    # The engine's run has a request id of its own (it was started by the dispatcher, not a
    # request): the trace id on its lines leads back to the submission.
    engine_rpc = [e for e in logs["engine"] if e["msg"] == "rpc" and e.get("method") == wanted["engine"]
                  and e.get("trace_id") == trace_id]
    assert len(engine_rpc) == 1 and engine_rpc[0]["span_id"] == engine_server["context"]["span_id"][2:]


def test_one_sweep_is_one_trace_whose_spans_cover_its_trial_batches(traced: Traced) -> None:
    trace_id, parent_span = secrets.token_hex(16), secrets.token_hex(8)
    headers = {**traced.headers, "traceparent": f"00-{trace_id}-{parent_span}-01"}
    resp = traced.http.post("/backtest/sweeps", headers=headers, json={
        "strategy_code": CODE, "config": CONFIG, "space": {"weight": {"values": [1, 2, 3]}}})
    assert resp.status_code == 201, resp.text
    sweep_id = resp.json()["id"]
    sweep = _finished(traced, f"/backtest/sweeps/{sweep_id}")
    assert sweep["status"] == "completed" and sweep["done"] == 3, sweep

    create = "/zquant.backtest.v1.SweepRestService/CreateSweep"
    run_trials = "/zquant.engine.v1.EngineService/RunTrials"
    deadline = time.monotonic() + 10  # spans are exported in batches every 100 ms
    while True:
        spans = _spans(traced.real, trace_id)
        batches = [s for s in spans["task"] if s["name"] == "sweep.batch"]
        engine_runs = [s for s in spans["engine"] if s["name"] == run_trials]
        if (len(batches) == 2 and len(engine_runs) == 2) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    by_id = {s["context"]["span_id"]: s for ss in spans.values() for s in ss}
    creating = next(s for s in spans["task"] if s["name"] == create and s["kind"] == "SpanKind.SERVER")
    assert creating["parent_id"] == f"0x{parent_span}"
    # The batches continue the creating call (stored on the sweep row) and cover every trial once.
    assert len(batches) == 2, _names(spans["task"])
    assert all(b["parent_id"] == creating["context"]["span_id"] for b in batches)
    assert all(b["attributes"]["zquant.sweep_id"] == sweep_id for b in batches)
    numbers = sorted(n for b in batches for n in b["attributes"]["zquant.trial_numbers"])
    assert numbers == [1, 2, 3] and sorted(b["attributes"]["zquant.trials"] for b in batches) == [1, 2]
    # Each engine RunTrials is the child of a client call made inside one batch span.
    assert len(engine_runs) == 2
    parents = sorted(by_id[by_id[r["parent_id"]]["parent_id"]]["context"]["span_id"] for r in engine_runs)
    assert parents == sorted(b["context"]["span_id"] for b in batches)
    assert all(by_id[r["parent_id"]]["kind"] == "SpanKind.CLIENT" for r in engine_runs)
