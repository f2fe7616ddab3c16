"""The per-RPC metrics interceptor on both server flavours, with the standard health service:
Check (unary: OK, and NOT_FOUND for an unknown service) and Watch (a server stream)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from services.metrics import AioMetricsInterceptor, MetricsInterceptor, split_method

SERVICE = "grpc.health.v1.Health"


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def snapshot() -> Callable[[str], float]:
    keys = [("grpc_server_handled_total", {"grpc_method": "Check", "grpc_code": "OK"}),
            ("grpc_server_handled_total", {"grpc_method": "Check", "grpc_code": "NOT_FOUND"}),
            ("grpc_server_handled_total", {"grpc_method": "Watch", "grpc_code": "CANCELLED"}),
            ("grpc_server_handling_seconds_count", {"grpc_method": "Check"}),
            ("grpc_server_streams_open", {"grpc_method": "Watch"})]
    before = {f"{n}:{sorted(lb.items())}": value(n, grpc_service=SERVICE, **lb) for n, lb in keys}

    def delta(key: str) -> float:
        name, _, rest = key.partition(" ")
        labels = dict(kv.split("=") for kv in rest.split()) if rest else {}
        return value(name, grpc_service=SERVICE, **labels) - before[f"{name}:{sorted(labels.items())}"]

    return delta


def exercise(port: int) -> Callable[[], None]:
    """OK and NOT_FOUND checks, then opens a Watch; returns a function that cancels it."""
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = health_pb2_grpc.HealthStub(channel)
    assert stub.Check(health_pb2.HealthCheckRequest(service="")).status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as info:
        stub.Check(health_pb2.HealthCheckRequest(service="nope"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    watch = stub.Watch(health_pb2.HealthCheckRequest(service=""))
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING

    def cancel() -> None:
        watch.cancel()
        channel.close()

    return cancel


def wait_for(check: Callable[[], bool]) -> None:
    for _ in range(100):
        if check():
            return
        asyncio.run(asyncio.sleep(0.02))
    raise AssertionError("condition not reached")


def assert_counted(delta: Callable[[str], float], cancel: Callable[[], None]) -> None:
    assert delta("grpc_server_handled_total grpc_method=Check grpc_code=OK") == 1
    assert delta("grpc_server_handled_total grpc_method=Check grpc_code=NOT_FOUND") == 1
    assert delta("grpc_server_handling_seconds_count grpc_method=Check") == 2
    assert delta("grpc_server_streams_open grpc_method=Watch") == 1
    cancel()
    wait_for(lambda: delta("grpc_server_streams_open grpc_method=Watch") == 0)
    wait_for(lambda: delta("grpc_server_handled_total grpc_method=Watch grpc_code=CANCELLED") == 1)


def test_sync_server() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(4), interceptors=[MetricsInterceptor()])
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        delta = snapshot()
        assert_counted(delta, exercise(port))
    finally:
        server.stop(0)


def test_aio_server() -> None:
    loop = asyncio.new_event_loop()
    import threading

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def call(coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, loop).result(10)

    async def start() -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server(interceptors=[AioMetricsInterceptor()])
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    server, port = call(start())
    try:
        delta = snapshot()
        assert_counted(delta, exercise(port))
    finally:
        call(server.stop(0))
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def test_split_method() -> None:
    assert split_method("/zquant.auth.v1.AuthService/Login") == ("zquant.auth.v1.AuthService", "Login")
    assert split_method("garbage") == ("unknown", "unknown")
