"""REST → Envoy (deploy/envoy.yaml, real binary) → gRPC fakes built from the generated stubs.

What is under test is the gateway configuration and the REST binding layer: error conversion,
local replies, success statuses (the Lua filter), X-Total-Count, header hygiene, routing,
health. The fakes implement the typed services; services.rest serves their REST twins, as in
the real services. The fakes only answer and record what they got.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field

import grpc
import httpx
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from zquant.auth.v1 import auth_pb2, auth_pb2_grpc, auth_rest_pb2
from zquant.backtest.v1 import task_pb2, task_pb2_grpc, task_rest_pb2

import devstack
from services import rest

pytestmark = pytest.mark.envoy

AUTH_SERVICE = "zquant.auth.v1.AuthService"
TASK_SERVICE = "zquant.backtest.v1.TaskService"


@dataclass
class Call:
    method: str
    request: object
    metadata: dict[str, str]


@dataclass
class Recorder:
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, method: str, request: object, context: grpc.ServicerContext) -> None:
        with self.lock:
            self.calls.append(Call(method, request, dict(context.invocation_metadata())))

    def methods(self) -> list[str]:
        with self.lock:
            return [c.method for c in self.calls]

    def last(self, method: str) -> Call:
        with self.lock:
            return [c for c in self.calls if c.method == method][-1]


class FakeAuth(auth_pb2_grpc.AuthServiceServicer):
    """Answers by username / token so each test picks the behaviour it needs."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def Login(self, request, context):
        self.recorder.record("Login", request, context)
        if request.username == "":
            violation = error_details_pb2.BadRequest.FieldViolation(
                field="username", description="must be 1-64 characters"
            )
            detail = any_pb2.Any()
            detail.Pack(error_details_pb2.BadRequest(field_violations=[violation]))
            status = status_pb2.Status(
                code=code_pb2.INVALID_ARGUMENT, message="invalid login request", details=[detail]
            )
            context.abort_with_status(rpc_status.to_status(status))
        if request.password != "right":
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "wrong username or password")
        # refresh_expires_in deliberately left 0: zero values must still be printed.
        return auth_pb2.TokenPair(
            access_token="access-" + request.username, refresh_token="refresh", token_type="bearer", expires_in=1800
        )

    def GetMe(self, request, context):
        self.recorder.record("GetMe", request, context)
        return auth_pb2.User(id=7, username="alice", is_active=True)

    def Authenticate(self, request, context):
        self.recorder.record("Authenticate", request, context)
        return auth_pb2.Principal(user_id=1, username="admin", is_admin=True, auth_method="jwt")

    def GetSigningKeys(self, request, context):
        self.recorder.record("GetSigningKeys", request, context)
        return auth_pb2.GetSigningKeysResponse()


class FakeTasks(task_pb2_grpc.TaskServiceServicer):
    def RunBacktest(self, request, context):
        if request.strategy_id < 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "strategy_id: must be > 0")
        return task_pb2.Task(id=9, status=task_pb2.Task.Status.PENDING, strategy_id=request.strategy_id)

    def ListTasks(self, request, context):
        tasks = [task_pb2.Task(id=i, status=task_pb2.Task.Status.COMPLETED) for i in (3, 2)]
        return task_pb2.ListTasksResponse(tasks=tasks, total=57)

    def DeleteTask(self, request, context):
        if request.task_id == 404:
            context.abort(grpc.StatusCode.NOT_FOUND, "task 404 not found")
        return task_pb2.DeleteTaskResponse()

    def WatchTask(self, request, context):
        Status = task_pb2.Task.Status
        yield task_pb2.TaskEvent(
            kind=task_pb2.TaskEvent.SNAPSHOT, task=task_pb2.Task(id=request.task_id, status=Status.PENDING)
        )
        yield task_pb2.TaskEvent(
            kind=task_pb2.TaskEvent.PROGRESS,
            task=task_pb2.Task(id=request.task_id, status=Status.RUNNING, progress=0.5),
        )
        yield task_pb2.TaskEvent(
            kind=task_pb2.TaskEvent.STATUS,
            task=task_pb2.Task(id=request.task_id, status=Status.COMPLETED, progress=1.0),
            terminal=True,
        )


@dataclass
class AuthStack:
    gateway: object
    recorder: Recorder
    auth_addr: str


@pytest.fixture(scope="module")
def auth_stack(module_gateway_factory, module_fake_grpc_server) -> AuthStack:
    """Fake auth up; task and engine clusters point at ports nobody listens on."""
    recorder = Recorder()
    def register(server: grpc.Server) -> None:
        fake = FakeAuth(recorder)
        auth_pb2_grpc.add_AuthServiceServicer_to_server(fake, server)
        rest.register_rest_service(server, auth_rest_pb2.DESCRIPTOR.services_by_name["AuthRestService"], fake)

    addr = module_fake_grpc_server(register, [AUTH_SERVICE])
    gateway = module_gateway_factory(auth_addr=addr)
    gateway.wait_healthy("auth")
    return AuthStack(gateway, recorder, addr)


@pytest.fixture
def client(auth_stack: AuthStack):
    with httpx.Client(base_url=auth_stack.gateway.url, timeout=10) as http:
        yield http


def assert_no_grpc_headers(response: httpx.Response) -> None:
    leaked = {name for name in response.headers if name.lower().startswith("grpc-")}
    assert not leaked, f"gRPC transport headers leaked to a REST client: {leaked}"


def test_login_json_round_trip_snake_case_and_zero_values(client, auth_stack):
    response = client.post("/api/v1/auth/login", json={"username": "alice", "password": "right"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {
        "access_token": "access-alice",
        "refresh_token": "refresh",
        "token_type": "bearer",
        "expires_in": 1800,
        "refresh_expires_in": 0,
    }
    assert_no_grpc_headers(response)
    request = auth_stack.recorder.last("Login").request
    assert (request.username, request.password) == ("alice", "right")


def test_invalid_argument_with_bad_request_details_is_400_json(client):
    response = client.post("/api/v1/auth/login", json={"username": "", "password": "x"})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == code_pb2.INVALID_ARGUMENT
    assert body["message"] == "invalid login request"
    (detail,) = body["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert detail["field_violations"][0]["field"] == "username"
    assert detail["field_violations"][0]["description"] == "must be 1-64 characters"
    assert_no_grpc_headers(response)


def test_unauthenticated_is_401_json(client):
    response = client.post("/api/v1/auth/login", json={"username": "alice", "password": "wrong"})
    assert response.status_code == 401
    assert response.json()["code"] == code_pb2.UNAUTHENTICATED
    assert response.json()["message"] == "wrong username or password"
    assert_no_grpc_headers(response)


def test_unknown_query_parameter_is_400_json(client, auth_stack):
    before = len(auth_stack.recorder.methods())
    response = client.get("/api/v1/users/me", params={"user_id": "1"})
    assert response.status_code == 400
    assert response.json()["code"] == code_pb2.INVALID_ARGUMENT
    assert "user_id" in response.json()["message"]
    assert len(auth_stack.recorder.methods()) == before, "the request must not reach the service"


def test_malformed_json_is_400_json(client):
    response = client.post("/api/v1/auth/login", content=b'{"username": ', headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["code"] == code_pb2.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/no/such/path"),
        ("DELETE", "/api/v1/auth/login"),  # known path, wrong method
        # auto_mapping is off: an RPC without an http rule has no REST path at all.
        ("POST", "/zquant.auth.v1.AuthService/Authenticate"),
        ("POST", "/zquant.auth.v1.AuthService/GetSigningKeys"),
        ("POST", "/zquant.auth.v1.AuthService/Login"),
        ("POST", "/zquant.auth.v1.AuthRestService/Login"),
    ],
)
def test_unknown_rest_path_is_404_json(client, auth_stack, method, path):
    before = len(auth_stack.recorder.methods())
    response = client.request(method, path, json={})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json()["code"] == code_pb2.NOT_FOUND
    assert len(auth_stack.recorder.methods()) == before


def test_task_cluster_down_is_503_json(client):
    response = client.get("/api/v1/backtest/tasks/1")
    assert response.status_code == 503
    assert response.json() == {"code": code_pb2.UNAVAILABLE, "message": "no healthy upstream"}


def test_identity_headers_from_client_are_stripped(client, auth_stack):
    configured = re.findall(
        r"^\s+- (x-[\w-]+)$",
        auth_stack.gateway.config_path.read_text().split("request_headers_to_remove:")[1].split("virtual_hosts:")[0],
        flags=re.MULTILINE,
    )
    # At least the ones the design names; the test sends every configured one.
    assert {"x-zq-user-id", "x-zq-principal", "x-forwarded-user"} <= set(configured)
    spoofed = dict.fromkeys(configured, "1")
    spoofed["x-envoy-external-address"] = "203.0.113.9"  # Envoy must overwrite it
    credentials = {"authorization": "Bearer token-1", "x-api-key": "zqk_1", "x-api-secret": "s3cret"}
    response = client.get("/api/v1/users/me", headers={**spoofed, **credentials})
    assert response.status_code == 200, response.text
    assert response.json()["username"] == "alice"
    metadata = auth_stack.recorder.last("GetMe").metadata
    for name, value in credentials.items():
        assert metadata.get(name) == value, f"credential header {name} must reach the service"
    leaked = set(configured) & set(metadata)
    assert not leaked, f"identity headers reached the service: {leaked}"
    # The client address the services may trust is Envoy's, not the client's claim.
    assert metadata["x-envoy-external-address"] == "127.0.0.1"


@pytest.mark.parametrize("method", ["Authenticate", "GetSigningKeys", "GetMe"])
def test_raw_grpc_through_the_gateway_is_refused(auth_stack, method):
    """The REST port is not a gRPC proxy: internal RPCs must be unreachable from outside."""
    before = len(auth_stack.recorder.methods())
    host = auth_stack.gateway.url.removeprefix("http://")
    with grpc.insecure_channel(host) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        request = getattr(auth_pb2, f"{method}Request")()
        with pytest.raises(grpc.RpcError) as raised:
            getattr(stub, method)(request, timeout=5)
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "REST/JSON only" in raised.value.details()
    assert len(auth_stack.recorder.methods()) == before
    # Same client straight to the service works: that is the supported gRPC path.
    with grpc.insecure_channel(auth_stack.auth_addr) as channel:
        getattr(auth_pb2_grpc.AuthServiceStub(channel), method)(request, timeout=5)
    assert auth_stack.recorder.methods()[-1] == method


def test_the_gateway_serves_its_openapi_document(client, envoy_descriptor):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == json.loads(envoy_descriptor.with_name("openapi.json").read_text())
    assert response.json()["openapi"] == "3.1.0"


def test_healthz_is_200_while_auth_is_healthy(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["code"] == 0


def test_healthz_is_503_without_auth(start_gateway):
    gateway = start_gateway()  # every upstream down
    response = httpx.get(f"{gateway.url}/healthz", timeout=10)
    assert response.status_code == 503
    assert response.json()["code"] == code_pb2.UNAVAILABLE


@pytest.fixture(scope="module")
def task_gateway(module_gateway_factory, module_fake_grpc_server):
    def register(server: grpc.Server) -> None:
        fake = FakeTasks()
        task_pb2_grpc.add_TaskServiceServicer_to_server(fake, server)
        rest.register_rest_service(server, task_rest_pb2.DESCRIPTOR.services_by_name["TaskRestService"], fake)

    gateway = module_gateway_factory(task_addr=module_fake_grpc_server(register, [TASK_SERVICE]))
    gateway.wait_healthy("task")
    return gateway


def test_watch_task_streams_ndjson_in_the_rest_dialect(task_gateway):
    with (
        httpx.Client(base_url=task_gateway.url, timeout=10) as http,
        http.stream("GET", "/api/v1/backtest/tasks/42/watch") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        lines = [line for line in response.iter_lines() if line.strip()]
    events = [json.loads(line) for line in lines]
    assert [e["kind"] for e in events] == ["snapshot", "progress", "status"]
    assert [e["task"]["status"] for e in events] == ["pending", "running", "completed"]
    assert [e["terminal"] for e in events] == [False, False, True]
    assert all(e["task"]["id"] == 42 and e["task"]["started_at"] is None for e in events)


def test_create_is_201_and_an_error_keeps_its_own_status(task_gateway):
    created = httpx.post(f"{task_gateway.url}/api/v1/backtest/run", json={"strategy_id": 4}, timeout=10)
    assert created.status_code == 201, created.text
    assert created.json()["id"] == 9 and created.json()["status"] == "pending"
    assert "x-zq-http-status" not in created.headers
    assert_no_grpc_headers(created)
    refused = httpx.post(f"{task_gateway.url}/api/v1/backtest/run", json={"strategy_id": -1}, timeout=10)
    assert refused.status_code == 400
    assert refused.json()["message"] == "strategy_id: must be > 0"


def test_delete_is_204_without_a_body_and_a_missing_one_404(task_gateway):
    deleted = httpx.delete(f"{task_gateway.url}/api/v1/backtest/tasks/5", timeout=10)
    assert deleted.status_code == 204
    assert deleted.content == b"" and "content-type" not in deleted.headers
    assert "x-zq-http-status" not in deleted.headers
    missing = httpx.delete(f"{task_gateway.url}/api/v1/backtest/tasks/404", timeout=10)
    assert missing.status_code == 404 and missing.json()["code"] == code_pb2.NOT_FOUND


def test_list_is_a_bare_array_with_the_total_in_a_header(task_gateway):
    response = httpx.get(f"{task_gateway.url}/api/v1/backtest/tasks", params={"status": "completed"}, timeout=10)
    assert response.status_code == 200, response.text
    assert [t["id"] for t in response.json()] == [3, 2]
    assert {t["status"] for t in response.json()} == {"completed"}
    assert response.headers["x-total-count"] == "57"


def test_two_gateways_side_by_side(start_gateway, auth_stack):
    """A second stack with its own ports and data dir runs beside the first."""
    second = start_gateway(auth_addr=auth_stack.auth_addr)
    second.wait_healthy("auth")
    assert second.url != auth_stack.gateway.url
    for gateway in (auth_stack.gateway, second):
        response = httpx.post(
            f"{gateway.url}/api/v1/auth/login", json={"username": "bob", "password": "right"}, timeout=10
        )
        assert response.status_code == 200
    assert second.config_path != auth_stack.gateway.config_path


def test_envoy_stop_removes_pid_file_and_process(start_gateway):
    gateway = start_gateway()
    pid_path = gateway.handle.pid_path
    assert devstack.read_pid(pid_path) == gateway.handle.pid
    gateway.handle.stop(grace=5)
    assert not gateway.handle.alive()
    assert not pid_path.exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{gateway.url}/healthz", timeout=2)
