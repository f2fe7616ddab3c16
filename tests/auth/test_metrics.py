"""auth_svc's /metrics after real calls: per-RPC counts and latency, logins by outcome, throttling."""

from __future__ import annotations

import grpc
import pytest
from zquant.auth.v1 import auth_pb2

from tests.auth.helpers import start_auth_server
from tests.scrape import scrape

LOGIN = {"grpc_service": "zquant.auth.v1.AuthService", "grpc_method": "Login"}


@pytest.fixture
def metered(db_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ZQ_AUTH_METRICS_ADDR", "127.0.0.1:0")
    srv = start_auth_server(db_url)
    yield srv
    srv.channel.close()
    srv.running.stop(grace=0)


def test_metrics_endpoint_is_off_without_its_address(server) -> None:  # type: ignore[no-untyped-def]
    assert server.running.metrics is None


def test_logins_counted_by_outcome_and_code(metered) -> None:  # type: ignore[no-untyped-def]
    assert metered.running.metrics is not None
    port = metered.running.metrics.port
    user, password = metered.new_user()
    before = scrape(port)

    metered.login(user.username, password)
    for _ in range(3):  # FAST allows 3 failures per user, then locks it
        with pytest.raises(grpc.RpcError) as info:
            metered.login(user.username, "wrong-password-1")
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as info:
        metered.login(user.username, password)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(grpc.RpcError) as info:
        metered.stub.Login(auth_pb2.LoginRequest(username="", password="x"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    after = scrape(port)

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert delta("zq_auth_logins_total", outcome="success") == 1
    assert delta("zq_auth_logins_total", outcome="bad_credentials") == 3
    assert delta("zq_auth_logins_total", outcome="throttled") == 1
    assert delta("zq_auth_logins_total", outcome="invalid") == 1
    assert delta("zq_auth_throttled_attempts_total") == 1
    assert delta("grpc_server_handled_total", **LOGIN, grpc_code="OK") == 1
    assert delta("grpc_server_handled_total", **LOGIN, grpc_code="UNAUTHENTICATED") == 3
    assert delta("grpc_server_handled_total", **LOGIN, grpc_code="RESOURCE_EXHAUSTED") == 1
    assert delta("grpc_server_handled_total", **LOGIN, grpc_code="INVALID_ARGUMENT") == 1
    assert delta("grpc_server_started_total", **LOGIN) == 6
    assert delta("grpc_server_handling_seconds_count", **LOGIN) == 6
    # every call took some time, and less than the whole test
    assert 0 < delta("grpc_server_handling_seconds_sum", **LOGIN) < 30
    assert delta("grpc_server_handling_seconds_bucket", **LOGIN, le="+Inf") == 6


def test_metrics_endpoint_stops_with_the_server(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZQ_AUTH_METRICS_ADDR", "127.0.0.1:0")
    srv = start_auth_server(db_url)
    assert srv.running.metrics is not None
    port = srv.running.metrics.port
    srv.new_user()
    assert scrape(port).value("grpc_server_handled_total", grpc_service="zquant.auth.v1.AuthService",
                              grpc_method="CreateUser", grpc_code="OK") >= 1
    srv.channel.close()
    srv.running.stop(grace=0)
    with pytest.raises(OSError):
        scrape(port)
