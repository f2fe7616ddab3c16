"""EngineService over gRPC: proto in, EngineCore, proto out. Nothing else lives here.

RunBacktest runs the core on its own thread and streams what it emits: the gRPC handler thread
only relays events, so it can notice the call going away (cancellation, deadline) while the
worker runs. Cancellation reaches the core through a ``threading.Event`` set by
``context.add_callback`` — gRPC runs that callback the moment the call terminates for any
reason, which is what kills the worker "at once" rather than at the next progress tick.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from zquant.engine.v1 import engine_pb2, engine_pb2_grpc, engine_rest_pb2

from engine_svc.service import convert
from engine_svc.service.core import (
    MALFORMED_RESULT_MESSAGE,
    EngineCore,
    PreparedRun,
    Progress,
    RunEvent,
    RunFailure,
    RunSuccess,
    TrialsSuccess,
)
from services import rest
from services.principal import require_service
from services.server import MAX_MESSAGE_BYTES

log = logging.getLogger("zquant.engine.service")

SERVICE_NAME = engine_pb2.DESCRIPTOR.services_by_name["EngineService"].full_name


class EngineServicer(engine_pb2_grpc.EngineServiceServicer):
    def __init__(self, core: EngineCore) -> None:
        self.core = core

    def RunBacktest(
        self, request: engine_pb2.RunBacktestRequest, context: grpc.ServicerContext
    ) -> Iterator[engine_pb2.RunBacktestEvent]:
        # Anything raised before the first yield becomes the call's status (PERMISSION_DENIED,
        # INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE) through the shared error interceptor.
        require_service()
        prepared = self.core.prepare(convert.spec_from_proto(request))
        for event in _relay(context, prepared, self.core.execute, f"backtest-{request.reference or 'run'}"):
            yield convert.progress_event(event) if isinstance(event, Progress) else self._terminal(event)

    def RunTrials(
        self, request: engine_pb2.RunTrialsRequest, context: grpc.ServicerContext
    ) -> Iterator[engine_pb2.RunTrialsEvent]:
        require_service()
        prepared = self.core.prepare_trials(convert.trials_request_from_proto(request))
        for event in _relay(context, prepared, self.core.execute_trials, f"trials-{request.reference or 'run'}"):
            if isinstance(event, Progress):
                yield convert.trials_progress_event(event)
            elif isinstance(event, TrialsSuccess):
                for trial in event.trials:
                    yield convert.trial_event(trial)
                yield convert.trials_done_event(event)
            else:
                assert isinstance(event, RunFailure)
                yield convert.trials_error_event(event)

    def GetDataFingerprint(
        self, request: engine_pb2.GetDataFingerprintRequest, context: grpc.ServicerContext
    ) -> engine_pb2.DataFingerprint:
        require_service()
        return convert.fingerprint_to_proto(self.core.fingerprint(convert.config_from_proto(request.config)))

    @staticmethod
    def _terminal(event: RunEvent) -> engine_pb2.RunBacktestEvent:
        if isinstance(event, RunSuccess):
            try:
                message = convert.result_event(event.result)
            except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
                # A result that does not fit the contract (a value the metrics produced out of
                # range, say) is the run's failure, never a broken stream.
                log.warning("result does not convert", extra={"error": f"{type(exc).__name__}: {exc}"})
                return convert.error_event(RunFailure("NO_RESULT", MALFORMED_RESULT_MESSAGE))
            size = message.ByteSize()
            if size > MAX_MESSAGE_BYTES - 1024:
                return convert.error_event(RunFailure(
                    "TOO_LARGE", f"backtest result of {size // (1024 * 1024)} MB exceeds the "
                                 f"{MAX_MESSAGE_BYTES // (1024 * 1024)} MB message limit; use fewer symbols or days",
                ))
            return message
        assert isinstance(event, RunFailure)
        return convert.error_event(event)

    def ValidateStrategy(
        self, request: engine_pb2.ValidateStrategyRequest, context: grpc.ServicerContext
    ) -> engine_pb2.ValidateStrategyResponse:
        require_service()
        return convert.validate_response(self.core.validate(request.strategy_code))

    def ValidateBacktest(
        self, request: engine_pb2.ValidateBacktestRequest, context: grpc.ServicerContext
    ) -> engine_pb2.ValidateBacktestResponse:
        require_service()
        violations, cfg = self.core.validate_backtest(
            request.strategy_code, convert.config_from_proto(request.config), convert.params_from_proto(request.params))
        return convert.validate_backtest_response(violations, cfg)

    def GetDailyBars(
        self, request: engine_pb2.GetDailyBarsRequest, context: grpc.ServicerContext
    ) -> engine_pb2.GetDailyBarsResponse:
        require_service()
        bars = self.core.daily_bars(request.symbol, request.start_date.strip(), request.end_date.strip())
        return engine_pb2.GetDailyBarsResponse(symbol=request.symbol.strip(), bars=[engine_pb2.Bar(**b) for b in bars])

    def ListSymbols(
        self, request: engine_pb2.ListSymbolsRequest, context: grpc.ServicerContext
    ) -> engine_pb2.ListSymbolsResponse:
        rows, missing = self.core.list_symbols(list(request.symbols), request.search, request.include_indexes)
        return engine_pb2.ListSymbolsResponse(symbols=[convert.symbol_info(r) for r in rows], missing=missing)


def register(core: EngineCore) -> Callable[[grpc.Server], list[str]]:
    """A ``register`` callback for services.server.build_server."""

    def _register(server: grpc.Server) -> list[str]:
        servicer = EngineServicer(core)
        engine_pb2_grpc.add_EngineServiceServicer_to_server(servicer, server)
        return [SERVICE_NAME, rest.register_rest_service(
            server, engine_rest_pb2.DESCRIPTOR.services_by_name["EngineRestService"], servicer)]

    return _register


def _relay(context: grpc.ServicerContext, prepared: PreparedRun,
           execute: Callable[[PreparedRun, Callable[[Any], None], threading.Event], Any],
           thread_name: str) -> Iterator[Any]:
    """Run ``execute`` on its own thread and yield what it emits — progress, then one terminal
    event. The handler thread only relays, so it notices the call going away (cancellation,
    deadline, the client killed) at once: the cancel event is set by gRPC's callback, and again
    when the consumer stops early (GeneratorExit), so the worker always dies."""
    cancel = threading.Event()
    if not context.add_callback(cancel.set):  # already terminated
        prepared.release()
        return
    events: queue.Queue[Any] = queue.Queue()

    def work() -> None:
        try:
            terminal = execute(prepared, events.put, cancel)
        except Exception:
            log.exception("run failed inside the engine service", extra={"reference": prepared.spec.reference})
            terminal = RunFailure("INTERNAL", "internal error in the engine service")
        events.put(terminal)

    threading.Thread(target=work, name=thread_name, daemon=True).start()
    try:
        while True:
            event = events.get()
            yield event
            if not isinstance(event, Progress):
                return
    finally:
        cancel.set()
