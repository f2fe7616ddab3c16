"""The shared server kit: auth interceptor, error mapping, request ids, health and reflection —
the same behaviour from the thread-pool server and from the grpc.aio one."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from zquant.auth.v1 import auth_pb2, auth_pb2_grpc
from zquant.engine.v1 import engine_pb2, engine_pb2_grpc

from services.config import ServerSettings
from services.errors import InvalidArgument, PermissionDenied, Unauthenticated, field_violations
from services.logs import request_id_var
from services.principal import Credentials, Principal, current_principal
from services.server import build_aio_server, build_server

SEEN_REQUEST_IDS: list[str] = []


class TokenAuthenticator:
    def authenticate(self, credentials: Credentials) -> Principal:
        if credentials.bearer_token == "good":
            return Principal(7, "alice", False, "jwt")
        if credentials.bearer_token == "disabled":
            raise PermissionDenied("user is disabled")
        if credentials.api_key == "k" and credentials.api_secret == "s":
            return Principal(8, "bot", True, "api_key")
        raise Unauthenticated("invalid credentials")


class FakeAuth(auth_pb2_grpc.AuthServiceServicer):
    def GetMe(self, request, context):
        SEEN_REQUEST_IDS.append(request_id_var.get())
        p = current_principal()
        return auth_pb2.User(id=p.user_id, username=p.username, is_admin=p.is_admin)

    def CreateUser(self, request, context):
        raise InvalidArgument([("username", "must not be empty"), ("password", "too short")])

    def Login(self, request, context):
        raise RuntimeError("secret internals /etc/passwd")


class FakeEngine(engine_pb2_grpc.EngineServiceServicer):
    def RunBacktest(self, request, context):
        p = current_principal()  # the principal must stay set while the generator runs
        yield engine_pb2.RunBacktestEvent(progress=engine_pb2.Progress(fraction=0.5, current_date=p.username))
        if request.reference == "fail":
            raise InvalidArgument.field("config.symbols", "unknown symbol 999999.SH")
        yield engine_pb2.RunBacktestEvent(progress=engine_pb2.Progress(fraction=1.0))


class AioFakeAuth(auth_pb2_grpc.AuthServiceServicer):
    async def GetMe(self, request, context):
        return FakeAuth.GetMe(self, request, context)

    async def CreateUser(self, request, context):
        return FakeAuth.CreateUser(self, request, context)

    async def Login(self, request, context):
        return FakeAuth.Login(self, request, context)


class AioFakeEngine(engine_pb2_grpc.EngineServiceServicer):
    async def RunBacktest(self, request, context):
        for event in FakeEngine.RunBacktest(self, request, context):
            yield event


@pytest.fixture(scope="module", params=["threads", "aio"])
def channel(request):
    aio = request.param == "aio"

    def register(server: grpc.Server) -> list[str]:
        auth_pb2_grpc.add_AuthServiceServicer_to_server(AioFakeAuth() if aio else FakeAuth(), server)
        engine_pb2_grpc.add_EngineServiceServicer_to_server(AioFakeEngine() if aio else FakeEngine(), server)
        return ["zquant.auth.v1.AuthService", "zquant.engine.v1.EngineService"]

    settings = ServerSettings(service="kit", addr="127.0.0.1:0", database_url="sqlite://", grace_seconds=1)
    build = build_aio_server if aio else build_server
    running = build(settings, register=register, authenticator=TokenAuthenticator(),
                    public_methods=["/zquant.auth.v1.AuthService/Login"])
    running.set_serving(True)
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        yield ch
    running.stop(grace=0)


def test_bearer_and_api_key_reach_the_servicer_as_principal(channel):
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    me = stub.GetMe(auth_pb2.GetMeRequest(), metadata=[("authorization", "Bearer good")])
    assert (me.id, me.username, me.is_admin) == (7, "alice", False)
    me = stub.GetMe(auth_pb2.GetMeRequest(), metadata=[("x-api-key", "k"), ("x-api-secret", "s")])
    assert (me.id, me.username, me.is_admin) == (8, "bot", True)


@pytest.mark.parametrize(
    ("metadata", "code", "text"),
    [
        ([], grpc.StatusCode.UNAUTHENTICATED, "credentials required"),
        ([("authorization", "Bearer nope")], grpc.StatusCode.UNAUTHENTICATED, "invalid credentials"),
        ([("authorization", "Basic abc")], grpc.StatusCode.UNAUTHENTICATED, "Bearer"),
        ([("x-api-key", "k")], grpc.StatusCode.UNAUTHENTICATED, "together"),
        ([("authorization", "Bearer disabled")], grpc.StatusCode.PERMISSION_DENIED, "disabled"),
    ],
)
def test_auth_failures_map_to_status(channel, metadata, code, text):
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    with pytest.raises(grpc.RpcError) as err:
        stub.GetMe(auth_pb2.GetMeRequest(), metadata=metadata)
    assert err.value.code() == code
    assert text in err.value.details()


def test_invalid_argument_carries_bad_request_field_violations(channel):
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    with pytest.raises(grpc.RpcError) as err:
        stub.CreateUser(auth_pb2.CreateUserRequest(), metadata=[("authorization", "Bearer good")])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(err.value) == [("username", "must not be empty"), ("password", "too short")]
    status = rpc_status.from_call(err.value)
    assert status.details[0].Is(error_details_pb2.BadRequest.DESCRIPTOR)


def test_unexpected_error_is_internal_without_internals(channel):
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    with pytest.raises(grpc.RpcError) as err:
        stub.Login(auth_pb2.LoginRequest(username="a", password="b"), metadata=[("x-request-id", "rid-123")])
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert err.value.details() == "internal error (request id rid-123)"
    assert "passwd" not in err.value.details()


def test_request_id_is_taken_from_metadata_or_generated(channel):
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    SEEN_REQUEST_IDS.clear()
    stub.GetMe(auth_pb2.GetMeRequest(), metadata=[("authorization", "Bearer good"), ("x-request-id", "abc")])
    stub.GetMe(auth_pb2.GetMeRequest(), metadata=[("authorization", "Bearer good")])
    assert SEEN_REQUEST_IDS[0] == "abc"
    assert len(SEEN_REQUEST_IDS[1]) == 32 and SEEN_REQUEST_IDS[1] != "abc"


def test_streaming_keeps_principal_and_maps_mid_stream_errors(channel):
    stub = engine_pb2_grpc.EngineServiceStub(channel)
    md = [("authorization", "Bearer good")]
    events = list(stub.RunBacktest(engine_pb2.RunBacktestRequest(), metadata=md))
    assert [e.progress.fraction for e in events] == [0.5, 1.0]
    assert events[0].progress.current_date == "alice"

    call = stub.RunBacktest(engine_pb2.RunBacktestRequest(reference="fail"), metadata=md)
    first = next(call)
    assert first.progress.fraction == 0.5
    with pytest.raises(grpc.RpcError) as err:
        next(call)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(err.value) == [("config.symbols", "unknown symbol 999999.SH")]

    with pytest.raises(grpc.RpcError) as err:
        list(stub.RunBacktest(engine_pb2.RunBacktestRequest()))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_health_and_reflection_are_public(channel):
    health = health_pb2_grpc.HealthStub(channel)
    for name in ("", "zquant.auth.v1.AuthService", "zquant.engine.v1.EngineService"):
        resp = health.Check(health_pb2.HealthCheckRequest(service=name))
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"zquant.auth.v1.AuthService", "zquant.engine.v1.EngineService", "grpc.health.v1.Health"} <= names


def test_credentials_parsing_prefers_bearer_and_rejects_half_api_keys():
    c = Credentials.from_metadata((("authorization", "bearer  tok "), ("x-api-key", "k"), ("x-api-secret", "s")))
    assert (c.bearer_token, c.api_key, c.api_secret) == ("tok", "", "")
    assert not Credentials.from_metadata(()).present
    with pytest.raises(Unauthenticated):
        Credentials.from_metadata((("x-api-secret", "s"),))


class CachingAuthenticator(TokenAuthenticator):
    """Knows "good" without blocking; everything else needs the (blocking) full check."""

    def __init__(self) -> None:
        self.blocking: list[str] = []

    def authenticate_cached(self, credentials: Credentials) -> Principal | None:
        if credentials.bearer_token == "forged":
            raise Unauthenticated("invalid access token")
        return Principal(7, "alice", False, "jwt") if credentials.bearer_token == "good" else None

    def authenticate(self, credentials: Credentials) -> Principal:
        self.blocking.append(credentials.bearer_token or credentials.api_key)
        return super().authenticate(credentials)


def test_aio_server_takes_a_cached_answer_on_the_loop_and_offloads_only_a_miss() -> None:
    authenticator = CachingAuthenticator()

    def register(server: grpc.aio.Server) -> list[str]:
        auth_pb2_grpc.add_AuthServiceServicer_to_server(AioFakeAuth(), server)
        return ["zquant.auth.v1.AuthService"]

    settings = ServerSettings(service="kit", addr="127.0.0.1:0", database_url="sqlite://", grace_seconds=1)
    running = build_aio_server(settings, register=register, authenticator=authenticator)
    running.set_serving(True)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            stub = auth_pb2_grpc.AuthServiceStub(ch)
            assert stub.GetMe(auth_pb2.GetMeRequest(), metadata=[("authorization", "Bearer good")]).id == 7
            assert authenticator.blocking == []
            me = stub.GetMe(auth_pb2.GetMeRequest(), metadata=[("x-api-key", "k"), ("x-api-secret", "s")])
            assert me.id == 8 and authenticator.blocking == ["k"]
            for token, code in (("forged", grpc.StatusCode.UNAUTHENTICATED),
                                ("disabled", grpc.StatusCode.PERMISSION_DENIED)):
                with pytest.raises(grpc.RpcError) as err:
                    stub.GetMe(auth_pb2.GetMeRequest(), metadata=[("authorization", f"Bearer {token}")])
                assert err.value.code() == code
            assert authenticator.blocking == ["k", "disabled"]  # "forged": refused by the cached check
            with pytest.raises(grpc.RpcError) as err:
                stub.GetMe(auth_pb2.GetMeRequest())
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        running.stop(grace=0)
