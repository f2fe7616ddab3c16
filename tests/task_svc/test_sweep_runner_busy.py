"""The sweep runner and an engine with no free slot: RunTrials refused at once (RESOURCE_EXHAUSTED,
before any event) is called again right away — the channel's round-robin takes the call to the next
engine — and only after BUSY_RETRIES refusals does the batch go back to the queue."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from zquant.engine.v1 import engine_pb2

from task_svc.config import TaskSettings
from task_svc.sweep_repository import Batch
from task_svc.sweep_runner import BUSY_RETRIES, SweepRunner, _BatchRun


class Refused(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


class Call:
    def __init__(self, events: list[engine_pb2.RunTrialsEvent] | grpc.StatusCode) -> None:
        self._events = events
        self.cancelled = False

    def events(self) -> Iterator[engine_pb2.RunTrialsEvent]:
        if isinstance(self._events, grpc.StatusCode):
            raise Refused(self._events)
        yield from self._events

    def cancel(self) -> None:
        self.cancelled = True


class Engines:
    """Answers the n-th RunTrials call with the n-th script: a status (refused) or events."""

    def __init__(self, *scripts: list[engine_pb2.RunTrialsEvent] | grpc.StatusCode) -> None:
        self.scripts = list(scripts)
        self.calls: list[Call] = []

    def run_trials(self, request: engine_pb2.RunTrialsRequest) -> Call:
        self.calls.append(Call(self.scripts.pop(0)))
        return self.calls[-1]


DONE = [engine_pb2.RunTrialsEvent(trial=engine_pb2.TrialResult(index=0)),
        engine_pb2.RunTrialsEvent(done=engine_pb2.TrialsDone())]
BUSY = grpc.StatusCode.RESOURCE_EXHAUSTED


def events(engines: Engines, stopped: bool = False) -> list[Any]:
    runner = SweepRunner(None, engines, TaskSettings())  # type: ignore[arg-type]
    run = _BatchRun(Batch(1, 1, "replica:token", [1]))
    if stopped:
        run.stop("cancelled")
    return list(runner._engine_events(run, engine_pb2.RunTrialsRequest()))


def test_a_batch_refused_for_want_of_a_slot_is_called_again_at_once_and_runs() -> None:
    engines = Engines(BUSY, BUSY, DONE)
    assert events(engines) == DONE
    assert len(engines.calls) == 3


def test_after_busy_retries_the_refusal_counts() -> None:
    engines = Engines(*[BUSY] * (BUSY_RETRIES + 1))
    with pytest.raises(grpc.RpcError) as info:
        events(engines)
    assert info.value.code() == BUSY  # type: ignore[attr-defined]
    assert len(engines.calls) == BUSY_RETRIES + 1


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INVALID_ARGUMENT])
def test_other_errors_are_not_retried_here(code: grpc.StatusCode) -> None:
    engines = Engines(code, DONE)
    with pytest.raises(grpc.RpcError):
        events(engines)
    assert len(engines.calls) == 1


def test_a_stopped_batch_is_not_called_again() -> None:
    engines = Engines(BUSY, DONE)
    with pytest.raises(grpc.RpcError):
        events(engines, stopped=True)
    assert len(engines.calls) == 1 and engines.calls[0].cancelled
