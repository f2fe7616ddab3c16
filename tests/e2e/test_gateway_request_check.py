"""The gateway's request body check (deploy/request_check.lua + deploy/request_types.lua), through
the real Envoy config in front of a recording gRPC upstream.

A body whose JSON does not have its field's proto3 JSON type is a 400 in the services' error
shape naming the field path, and never reaches a service; a valid body reaches the service as
protobuf's own proto3 JSON parser (``json_format``) reads it. The real services behind the same
check: tests/e2e/test_auth_e2e.py (``"is_admin": "yes"`` creates and changes nobody).
"""

from __future__ import annotations

import importlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import descriptor_pool, json_format
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

pytestmark = pytest.mark.envoy

HEALTH_NAMES = ["zquant.auth.v1.AuthService", "zquant.backtest.v1.TaskService", "zquant.engine.v1.EngineService"]


@dataclass
class Recorder(grpc.GenericRpcHandler):
    """Answers every REST method with an empty google.api.HttpBody and keeps the request it got."""

    calls: list[tuple[str, Message]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        service_name, _, method_name = details.method.strip("/").partition("/")
        try:
            service = descriptor_pool.Default().FindServiceByName(service_name)
        except KeyError:
            return None
        message_class = GetMessageClass(service.methods_by_name[method_name].input_type)

        def answer(request: bytes, context: grpc.ServicerContext) -> bytes:
            with self.lock:
                self.calls.append((details.method, message_class.FromString(request)))
            return b""

        return grpc.unary_unary_rpc_method_handler(answer)

    def count(self) -> int:
        with self.lock:
            return len(self.calls)

    def last(self) -> tuple[str, Message]:
        with self.lock:
            return self.calls[-1]


@dataclass
class Checked:
    http: httpx.Client
    recorder: Recorder


@pytest.fixture(scope="module")
def gateway(module_gateway_factory, module_fake_grpc_server) -> Checked:
    # The REST services into the default descriptor pool, where the recorder looks them up.
    for module in ("auth.v1.auth_rest_pb2", "backtest.v1.strategy_rest_pb2", "backtest.v1.sweep_rest_pb2",
                   "backtest.v1.task_rest_pb2"):
        importlib.import_module(f"zquant.{module}")

    recorder = Recorder()
    addr = module_fake_grpc_server(lambda server: server.add_generic_rpc_handlers((recorder,)), HEALTH_NAMES)
    gw = module_gateway_factory(auth_addr=addr, task_addr=addr, engine_addr=addr)
    for cluster in ("auth", "task", "engine"):
        gw.wait_healthy(cluster)
    with httpx.Client(base_url=gw.url, timeout=15, headers={"authorization": "Bearer t"}) as http:
        yield Checked(http, recorder)


def send(gateway: Checked, method: str, path: str, body: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
    return gateway.http.request(method, path, content=content, headers={"content-type": "application/json"})


def nested(levels: int, kind: str = "object") -> str:
    return ('{"a":' * levels + "1" + "}" * levels) if kind == "object" else ("[" * levels + "]" * levels)


REJECTED = [
    # (method, path, body, field, words of the description)
    ("POST", "/api/v1/users", {"username": "u1", "password": "password-1", "is_admin": "yes"}, "is_admin",
     "must be true or false, not a string"),
    ("POST", "/api/v1/users", {"username": "u1", "is_admin": "t"}, "is_admin", "true or false"),
    ("POST", "/api/v1/users", {"username": "u1", "is_admin": 1}, "is_admin", "true or false, not a number"),
    ("POST", "/api/v1/users", {"username": "u1", "isAdmin": "1"}, "is_admin", "true or false"),  # JSON name
    ("PATCH", "/api/v1/users/5", {"is_admin": "yes"}, "is_admin", "true or false"),
    ("PUT", "/api/v1/users/5", {"is_active": "no"}, "is_active", "true or false"),
    ("POST", "/api/v1/users", {"username": ["u1"]}, "username", "must be a string, not an array"),
    ("POST", "/api/v1/users", {"role_id": "2.0"}, "role_id", "must be an integer"),
    ("POST", "/api/v1/users", {"role_id": 2.5}, "role_id", "must be an integer, not a fraction"),
    ("POST", "/api/v1/users", {"role_id": 2147483648}, "role_id", "out of range for int32"),
    ("POST", "/api/v1/backtest/strategies", {"name": "s", "params_schema": {"type": "object"}}, "params_schema",
     "must be a string, not an object"),
    ("PUT", "/api/v1/backtest/strategies/3", {"code": 12}, "code", "must be a string, not a number"),
    ("POST", "/api/v1/backtest/run", {"config": {"initial_capital": "lots"}}, "config.initial_capital",
     "must be a number"),
    ("POST", "/api/v1/backtest/run", {"config": {"initial_capital": [100000]}}, "config.initial_capital",
     "not an array"),
    ("POST", "/api/v1/backtest/run", {"config": {"symbols": "600036.SH"}}, "config.symbols",
     "must be a JSON array, not a string"),
    ("POST", "/api/v1/backtest/run", {"config": {"symbols": ["600036.SH", 7]}}, "config.symbols[1]",
     "must be a string, not a number"),
    ("POST", "/api/v1/backtest/run", {"config": {"symbols": [None]}}, "config.symbols[0]", "not null"),
    ("POST", "/api/v1/backtest/run", {"config": {"use_daily_basic": "yes"}}, "config.use_daily_basic",
     "true or false"),
    ("POST", "/api/v1/backtest/run", {"config": "2012-01-04"}, "config", "must be a JSON object, not a string"),
    ("POST", "/api/v1/backtest/run", {"params": [5, 20]}, "params", "must be a JSON object, not an array"),
    ("POST", "/api/v1/backtest/run", {"strategy_id": True}, "strategy_id", "must be an integer"),
    ("POST", "/api/v1/backtest/sweeps", {"space": {"short_window": {"min": "three"}}}, "space.short_window.min",
     "must be a number"),
    ("POST", "/api/v1/backtest/sweeps", {"space": [{"min": 1}]}, "space", "must be a JSON object (a map)"),
    ("POST", "/api/v1/backtest/sweeps", {"space": {"w": {"values": 5}}}, "space.w.values", "must be a JSON array"),
    ("POST", "/api/v1/backtest/sweeps", {"seed": "12345678901234567890"}, "seed", "out of range for int64"),
    ("POST", "/api/v1/backtest/sweeps", {"seed": 1.5}, "seed", "not a fraction"),
    ("POST", "/api/v1/backtest/sweeps:estimate", {"method": "bogus"}, "method",
     'must be one of grid, random, tpe (or its number), not "bogus"'),
    ("POST", "/api/v1/backtest/sweeps", {"validation": {"kind": True}}, "validation.kind", "must be one of"),
    ("POST", "/api/v1/backtest/sweeps", {"objective": {"metric": {"name": "sharpe_ratio"}}}, "objective.metric",
     "must be a string, not an object"),
    ("POST", "/api/v1/backtest/sweeps/1/trials/2:promote", {"sweep_id": "x"}, "sweep_id", "must be an integer"),
    ("POST", "/api/v1/backtest/tasks/3/cancel", {"task_id": {}}, "task_id",
     "must be an integer (a JSON number or a string of digits), not an object"),
    ("POST", "/api/v1/users/me/apikeys", {"name": "k", "expires_in_days": "30 days"}, "expires_in_days",
     "must be an integer"),
    # Nesting: user JSON by the services' rule (32), anything else by the body's bound (64).
    ("POST", "/api/v1/backtest/run", '{"params": ' + nested(33) + "}", "params",
     "nested too deeply: JSON may nest at most 32"),
    ("POST", "/api/v1/backtest/run", '{"params": {"a": ' + nested(40, "array") + "}}", "params",
     "nested too deeply: JSON may nest at most 32"),
    ("POST", "/api/v1/backtest/sweeps", '{"space": {"w": {"values": [' + nested(33) + "]}}}",
     "space.w.values[0]", "nested too deeply"),
    ("POST", "/api/v1/backtest/run", '{"unknown": ' + nested(5000, "array") + "}", "unknown",
     "a request body may nest at most 64"),
    # Not JSON: what the lenient converter accepted, and what it reported without a field.
    ("POST", "/api/v1/backtest/sweeps", '{"seed": 1,}', "request", "is not valid JSON"),
    ("POST", "/api/v1/backtest/sweeps", "{'seed': 1}", "request", "is not valid JSON"),
    ("POST", "/api/v1/backtest/run", '{"strategy_code": "a\tb"}', "strategy_code", "control character"),
    ("POST", "/api/v1/backtest/run", '{"strategy_code": "\\ud800"}', "strategy_code", "surrogate"),
    ("POST", "/api/v1/backtest/run", b'{"strategy_code": "\xff\xfe"}', "strategy_code", "must be valid UTF-8"),
    ("POST", "/api/v1/backtest/run", '{"config": {"initial_capital": 01}}', "config.initial_capital",
     "leading zero"),
    ("POST", "/api/v1/backtest/run", '{"strategy_id": 2} {}', "request", "unexpected data after"),
    ("POST", "/api/v1/backtest/run", "[]", "request", "must be a JSON object, not an array"),
    ("POST", "/api/v1/backtest/run", "   ", "request", "is not valid JSON"),
]


@pytest.mark.parametrize(("method", "path", "body", "field_path", "words"), REJECTED,
                         ids=[f"{r[0]} {r[1]} {r[3]}" for r in REJECTED])
def test_a_type_mismatch_is_a_400_naming_the_field_before_any_service(gateway, method, path, body, field_path,
                                                                       words):
    before = gateway.recorder.count()
    response = send(gateway, method, path, body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()
    assert error["code"] == 3  # INVALID_ARGUMENT
    assert error["message"].startswith(f"{field_path}: ")
    assert words in error["message"]
    (detail,) = error["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert detail["field_violations"] == [{"field": field_path, "description": error["message"][len(field_path) + 2:]}]
    assert gateway.recorder.count() == before, "a refused body must not reach the service"


def _parsed(body: dict, method_path: str) -> Message:
    service_name, _, method_name = method_path.strip("/").partition("/")
    service = descriptor_pool.Default().FindServiceByName(service_name)
    message = GetMessageClass(service.methods_by_name[method_name].input_type)()
    return json_format.ParseDict(body, message, ignore_unknown_fields=True)


RUN = {
    "strategy_id": 2, "strategy_name": "双均线 \u00e9\U0001F600", "strategy_code": "",
    "params": {"short_window": 5, "long_window": "20", "nested": {"a": [1, 2.5, None, True, {"b": "c"}]}},
    "config": {"start_date": "2012-01-04", "end_date": "2016-12-30", "initial_capital": "1e6",
               "symbols": ["600036.SH", "000002.SZ"], "benchmark": "000001.SH", "commission_rate": 0.0003,
               "min_commission": 5, "tax_rate": "0.001", "slippage_rate": 0, "use_daily_basic": False,
               "annualization": "252", "risk_free_rate": -0.01, "frequency": "daily", "adjust_type": "qfq"},
}
SWEEP = {
    "strategy_id": 2, "config": {"start_date": "2012-01-04", "end_date": "2016-12-30", "symbols": ["600036.SH"]},
    "space": {"short_window": {"min": 3, "max": "12", "step": 1},
              "long_window": {"values": [20, "40", None, 60.5, {"x": [1]}], "type": "int"}},
    "method": "TPE", "max_trials": 100.0, "seed": "9223372036854775807", "constraints": ["short_window < long_window"],
    "objective": {"metric": "sharpe_ratio", "direction": "maximize"}, "result_constraints": [],
    "validation": {"kind": 2, "in_sample_end": "2015-06-30"}, "max_parallel": 2, "target": 2.5,
}

ACCEPTED = [
    # (method, path, body, the gRPC method it reaches)
    ("POST", "/api/v1/auth/login", {"username": "admin", "password": "p\"w\\d\n"},
     "/zquant.auth.v1.AuthRestService/Login"),
    ("POST", "/api/v1/auth/logout", {}, "/zquant.auth.v1.AuthRestService/Logout"),
    ("POST", "/api/v1/users", {"username": "u1", "password": "password-1", "email": "u1@example.com",
                               "is_admin": False, "role_id": "2", "password_confirm": "password-1"},
     "/zquant.auth.v1.AuthRestService/CreateUser"),
    ("POST", "/api/v1/users", {"username": "u2", "isAdmin": True, "roleId": 1.0, "email": None},
     "/zquant.auth.v1.AuthRestService/CreateUser"),
    ("PATCH", "/api/v1/users/5", {"is_active": True, "is_admin": None, "role_id": None},
     "/zquant.auth.v1.AuthRestService/UpdateUser"),
    ("PUT", "/api/v1/users/5/apikeys/7/service", {"is_service": True},
     "/zquant.auth.v1.AuthRestService/SetApiKeyService"),
    ("POST", "/api/v1/users/me/apikeys", {"name": "research", "expires_in_days": 30},
     "/zquant.auth.v1.AuthRestService/CreateApiKey"),
    ("POST", "/api/v1/backtest/strategies", {"name": "s", "code": "class Strategy:\n\tpass\n",
                                             "params_schema": json.dumps({"type": "object"}), "is_template": False},
     "/zquant.backtest.v1.StrategyRestService/CreateStrategy"),
    ("POST", "/api/v1/backtest/run", RUN, "/zquant.backtest.v1.TaskRestService/RunBacktest"),
    ("POST", "/api/v1/backtest/run", {"strategy_id": 2, "params": None, "config": None, "extra": {"x": [1, None]}},
     "/zquant.backtest.v1.TaskRestService/RunBacktest"),
    ("POST", "/api/v1/backtest/sweeps", SWEEP, "/zquant.backtest.v1.SweepRestService/CreateSweep"),
    ("POST", "/api/v1/backtest/sweeps:estimate", {**SWEEP, "seed": -5, "method": "GRID"},
     "/zquant.backtest.v1.SweepRestService/EstimateSweep"),
    ("POST", "/api/v1/backtest/sweeps/1/trials/3:promote", {}, "/zquant.backtest.v1.SweepRestService/PromoteTrial"),
    ("POST", "/api/v1/backtest/tasks/3/cancel", {"task_id": "3"}, "/zquant.backtest.v1.TaskRestService/CancelTask"),
]


@pytest.mark.parametrize(("method", "path", "body", "grpc_method"), ACCEPTED,
                         ids=[f"{a[0]} {a[1]}" for a in ACCEPTED])
def test_a_valid_body_reaches_the_service_as_proto3_json_reads_it(gateway, method, path, body, grpc_method):
    response = send(gateway, method, path, body)
    assert response.status_code == 200, response.text
    called, request = gateway.recorder.last()
    assert called == grpc_method
    expected = _parsed(body, grpc_method)
    for name in ("user_id", "task_id", "sweep_id", "trial_number", "key_id"):  # from the path
        if name in request.DESCRIPTOR.fields_by_name:
            setattr(expected, name, getattr(request, name))
    assert request == expected


def test_int64_as_a_string_or_a_number_and_enums_in_any_case(gateway):
    for seed, method in (("9223372036854775807", "tpe"), ("-42", "Random"), (123, 1)):
        response = send(gateway, "POST", "/api/v1/backtest/sweeps:estimate", {"seed": seed, "method": method})
        assert response.status_code == 200, response.text
        request = gateway.recorder.last()[1]
        assert request.seed == int(seed)
        assert request.method == (method if isinstance(method, int) else {"tpe": 3, "random": 2}[method.lower()])


def test_no_body_and_bodies_of_other_routes_are_not_checked(gateway):
    response = gateway.http.post("/api/v1/auth/logout")
    assert response.status_code == 200, response.text
    assert gateway.recorder.last()[0] == "/zquant.auth.v1.AuthRestService/Logout"
    # A GET has no body rule; an unknown path is the transcoder's 404, as before.
    assert gateway.http.get("/api/v1/users/me").status_code == 200
    response = send(gateway, "POST", "/api/v1/no/such/path", {"is_admin": "yes"})
    assert response.status_code == 404 and response.json()["code"] == 5


def test_a_strategy_of_a_megabyte_passes(gateway):
    """The body is read whole before the transcoder: the listener's buffer must hold the largest
    body the transcoder accepts (4 MiB), or a 1 MB strategy (the services' limit) would be a 413."""
    code = ("x = 1  # \u7b56\u7565 \"quoted\"\n" * 40_000)[: 1024 * 1024 - 10]
    response = send(gateway, "POST", "/api/v1/backtest/run", {"strategy_code": code, "strategy_name": "big"})
    assert response.status_code == 200, response.text[:300]
    assert gateway.recorder.last()[1].strategy_code == code
