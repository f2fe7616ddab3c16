"""The only code in task_svc that talks to engine_svc (through its generated stubs).

``EngineClient`` is the small interface the rest of task_svc uses; ``GrpcEngineClient`` is
the real implementation. Errors are reduced to two kinds the domain understands:
``EngineUnavailable`` (try again later: UNAVAILABLE, RESOURCE_EXHAUSTED, connection refused,
deadline on a unary call) and ``EngineRejected`` (anything else: the request itself is bad or
the engine failed).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from google.protobuf import struct_pb2
from zquant.engine.v1 import engine_pb2, engine_pb2_grpc

from services.logs import RequestIdClientInterceptor
from services.tracing import traced_channel

TRANSIENT_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})
# Calls spread over every engine address the target resolves to (gRPC's default, pick_first,
# sends everything to the first one: one task replica would use one engine however many run).
# An engine that is down is skipped until it reconnects.
FINISH_SECONDS = 5.0  # the status follows the last event at once; longer means a hung engine
ROUND_ROBIN = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})


GRPC_SCHEMES = frozenset({"dns", "ipv4", "ipv6", "unix", "unix-abstract", "vsock"})


def engine_target(addr: str) -> str:
    """The gRPC target for ``ZQ_ENGINE_ADDR``: ``host:port`` (every address DNS gives for the
    name, e.g. a headless Kubernetes Service), a comma-separated list of ``ip:port`` (several
    engines on known addresses), or any gRPC target URI as it is (``dns:///…``, ``ipv4:…``)."""
    items = [a.strip() for a in addr.split(",") if a.strip()]
    if len(items) > 1 and items[0].split(":", 1)[0] not in GRPC_SCHEMES:
        return "ipv4:" + ",".join(items)
    return addr


class EngineUnavailable(Exception):
    """engine_svc cannot take the call now; the same request may succeed later."""


class EngineRejected(Exception):
    """engine_svc refused or failed the call for a reason retrying will not fix."""


@dataclass(frozen=True)
class CodeProblem:
    line: int
    column: int
    message: str


class EngineRun(Protocol):
    """One running backtest: iterate its events; cancel() kills the engine's worker."""

    def events(self) -> Iterator[engine_pb2.RunBacktestEvent]: ...

    def finish(self) -> None: ...

    def cancel(self) -> None: ...


class TrialsRun(Protocol):
    """One running batch of trials: iterate its events; cancel() kills the engine's worker."""

    def events(self) -> Iterator[engine_pb2.RunTrialsEvent]: ...

    def finish(self) -> None: ...

    def cancel(self) -> None: ...


class EngineClient(Protocol):
    def validate_strategy(self, code: str) -> list[CodeProblem]: ...

    def validate_backtest(self, code: str, params: struct_pb2.Struct, config: engine_pb2.BacktestConfig
                          ) -> tuple[list[tuple[str, str]], engine_pb2.BacktestConfig]: ...

    def run_backtest(self, request: engine_pb2.RunBacktestRequest) -> EngineRun: ...

    def daily_bars(self, symbol: str, start: str, end: str) -> engine_pb2.GetDailyBarsResponse: ...

    def run_trials(self, request: engine_pb2.RunTrialsRequest) -> TrialsRun: ...

    def fingerprint(self, config: dict[str, Any]) -> tuple[str, str, list[str]]: ...

    def close(self) -> None: ...


def classify(error: grpc.RpcError) -> Exception:
    code = error.code()  # type: ignore[attr-defined]
    details = error.details() or code.name  # type: ignore[attr-defined]
    if code in TRANSIENT_CODES:
        return EngineUnavailable(f"engine unavailable ({code.name}): {details}")
    return EngineRejected(f"engine error ({code.name}): {details}")


class _GrpcRun:
    def __init__(self, call: grpc.Call) -> None:
        self._call = call

    def events(self) -> Iterator[engine_pb2.RunBacktestEvent]:
        return iter(self._call)  # type: ignore[call-overload]

    def finish(self) -> None:
        """Wait for the call's status after the last event. A call dropped unread is cancelled
        when it is garbage collected, so the engine would count a delivered result as CANCELLED."""
        try:
            self._call.exception(timeout=FINISH_SECONDS)  # type: ignore[attr-defined]
        except grpc.FutureTimeoutError:
            self._call.cancel()

    def cancel(self) -> None:
        self._call.cancel()


class GrpcEngineClient:
    """EngineService over one shared channel (gRPC multiplexes calls; it reconnects itself),
    round-robin over the engine replicas the address names (``engine_target``)."""

    def __init__(self, addr: str, *, metadata: Callable[[], Sequence[tuple[str, str]]] = list,
                 timeout: float = 15.0, keepalive: float = 20.0) -> None:
        self._channel = grpc.intercept_channel(
            traced_channel(grpc.insecure_channel(engine_target(addr), options=[
                ("grpc.service_config", ROUND_ROBIN),
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
                # Fail fast while the engine is down instead of waiting out backoff.
                ("grpc.initial_reconnect_backoff_ms", 200),
                ("grpc.max_reconnect_backoff_ms", 2000),
                # A hung engine (frozen, partitioned: no RST) would hold a run's stream, which has
                # no deadline, forever: pings while calls are open find it, and the closed
                # connection fails its calls UNAVAILABLE (the run goes back to the queue).
                ("grpc.keepalive_time_ms", int(keepalive * 1000)),
                ("grpc.keepalive_timeout_ms", int(keepalive * 1000)),
                ("grpc.http2.max_pings_without_data", 0),
                ("grpc.http2.ping_timeout_ms", int(keepalive * 1000)),  # else a ping waits 60 s
            ])),
            RequestIdClientInterceptor(),
        )
        self._stub = engine_pb2_grpc.EngineServiceStub(self._channel)
        self._metadata = metadata
        self._timeout = timeout

    def validate_strategy(self, code: str) -> list[CodeProblem]:
        try:
            resp = self._stub.ValidateStrategy(
                engine_pb2.ValidateStrategyRequest(strategy_code=code),
                timeout=self._timeout, metadata=tuple(self._metadata()))
        except grpc.RpcError as exc:
            raise self._unary_error(exc) from None
        return [CodeProblem(p.line, p.column, p.message) for p in resp.problems]

    def validate_backtest(self, code: str, params: struct_pb2.Struct, config: engine_pb2.BacktestConfig
                          ) -> tuple[list[tuple[str, str]], engine_pb2.BacktestConfig]:
        """(field violations, the normalized config) by the engine's rules; empty code is not checked."""
        try:
            resp = self._stub.ValidateBacktest(
                engine_pb2.ValidateBacktestRequest(strategy_code=code, params=params, config=config),
                timeout=self._timeout, metadata=tuple(self._metadata()))
        except grpc.RpcError as exc:
            raise self._unary_error(exc) from None
        return [(v.field, v.description) for v in resp.violations], resp.config

    def daily_bars(self, symbol: str, start: str, end: str) -> engine_pb2.GetDailyBarsResponse:
        """The symbol's bars over [start, end]; none (an empty reply) when the engine has none."""
        try:
            return self._stub.GetDailyBars(
                engine_pb2.GetDailyBarsRequest(symbol=symbol, start_date=start, end_date=end),
                timeout=self._timeout, metadata=tuple(self._metadata()))
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:  # type: ignore[attr-defined]
                return engine_pb2.GetDailyBarsResponse(symbol=symbol)
            raise self._unary_error(exc) from None

    def run_backtest(self, request: engine_pb2.RunBacktestRequest) -> EngineRun:
        # No deadline: the engine enforces the wall-clock limit and reports TIME_LIMIT.
        call = self._stub.RunBacktest(request, metadata=tuple(self._metadata()))
        return _GrpcRun(call)  # type: ignore[arg-type]

    def run_trials(self, request: engine_pb2.RunTrialsRequest) -> TrialsRun:
        call = self._stub.RunTrials(request, metadata=tuple(self._metadata()))
        return _GrpcRun(call)  # type: ignore[arg-type,return-value]

    def fingerprint(self, config: dict[str, Any]) -> tuple[str, str, list[str]]:
        """(engine version, market data hash, trading days) of what ``config`` would run on."""
        try:
            reply = self._stub.GetDataFingerprint(
                engine_pb2.GetDataFingerprintRequest(config=engine_pb2.BacktestConfig(**config)),
                timeout=self._timeout, metadata=tuple(self._metadata()))
        except grpc.RpcError as exc:
            raise self._unary_error(exc) from None
        return reply.engine_version, reply.data_hash, list(reply.dates)

    def close(self) -> None:
        self._channel.close()

    @staticmethod
    def _unary_error(exc: grpc.RpcError) -> Exception:
        if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:  # type: ignore[attr-defined]
            return EngineUnavailable("engine did not answer in time")
        return classify(exc)
