"""deploy/openapi.json (protos/openapi.py, `make proto`): current, exactly the transcoded paths,
and describing what REST really returns (docs/rest-conventions.md). Served by the gateway:
tests/e2e/test_gateway_transcoding.py; fuzzed against the real stack: tests/e2e/test_openapi_fuzz.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protos import openapi
from tests.gateway.test_envoy_config import REST_EXTRAS, REST_TABLE


@pytest.fixture(scope="module")
def document(envoy_descriptor: Path) -> dict:
    return json.loads(envoy_descriptor.with_name("openapi.json").read_text())


def _operations(document: dict) -> set[tuple[str, str]]:
    return {(verb.upper(), path) for path, ops in document["paths"].items() for verb in ops}


def test_the_committed_build_is_current(document, envoy_descriptor):
    assert document == json.loads(json.dumps(openapi.build(envoy_descriptor))), "run `make proto`"


def test_it_lists_exactly_the_transcoded_paths(document):
    assert _operations(document) == openapi.transcoded_operations()
    assert _operations(document) == {(v, "/api/v1" + p) for v, p in {**REST_TABLE, **REST_EXTRAS}}
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


def _schema(document: dict, ref: dict) -> dict:
    return document["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]]


def test_lists_are_arrays_with_x_total_count_and_tasks_use_the_rest_dialect(document):
    ok = document["paths"]["/api/v1/backtest/tasks"]["get"]["responses"]["200"]
    assert ok["headers"]["X-Total-Count"]["schema"]["type"] == "integer"
    body = ok["content"]["application/json"]["schema"]
    assert body["type"] == "array"
    task = _schema(document, body["items"])
    assert set(task["required"]) == set(task["properties"]) and task["additionalProperties"] is False
    assert task["properties"]["status"]["enum"] == ["pending", "running", "completed", "failed", "cancelled", None]
    assert task["properties"]["started_at"]["type"] == ["string", "null"]
    assert task["properties"]["config"]["anyOf"][1] == {"type": "null"}
    assert "Current status" in task["properties"]["status"]["description"]
    params = {p["name"]: p for p in document["paths"]["/api/v1/backtest/tasks"]["get"]["parameters"]}
    assert set(params) == {"skip", "limit", "order_by", "order", "status", "search"}
    assert "completed" in params["status"]["schema"]["enum"]


def test_int64_share_counts_are_integers_and_undefined_metrics_nullable(document):
    position = document["components"]["schemas"]["zquant.engine.v1.Position"]["properties"]["quantity"]
    assert position["type"] == "integer" and position["format"] == "int64"
    metric = document["components"]["schemas"]["zquant.engine.v1.Metrics"]["properties"]["sharpe_ratio"]
    assert metric["type"] == ["number", "null"]
    performance = document["components"]["schemas"]["zquant.backtest.v1.Performance"]["properties"]
    assert {"metrics", "trades", "portfolio"} <= set(performance)


def test_success_statuses_security_and_errors(document):
    paths = document["paths"]
    assert set(paths["/api/v1/backtest/run"]["post"]["responses"]) == {"201", "default"}
    deleted = paths["/api/v1/backtest/strategies/{strategy_id}"]["delete"]["responses"]["204"]
    assert "content" not in deleted
    assert paths["/api/v1/auth/login"]["post"]["security"] == []
    assert paths["/api/v1/users/me"]["get"]["security"] == openapi.SECURITY
    error = paths["/api/v1/users/me"]["get"]["responses"]["default"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/google.rpc.Status"}
    watch = paths["/api/v1/backtest/tasks/{task_id}/watch"]["get"]["responses"]["200"]["content"]
    assert list(watch) == ["application/x-ndjson"]
    report = paths["/api/v1/backtest/tasks/{task_id}/report"]["get"]["responses"]["200"]["content"]
    assert report == {"text/html": {"schema": {"type": "string"}}}
    params = {p["name"] for p in paths["/api/v1/backtest/tasks/{task_id}/report"]["get"]["parameters"]}
    assert params == {"task_id", "lang"}
    assert set(document["components"]["securitySchemes"]) == {"bearerAuth", "apiKey", "apiSecret"}
