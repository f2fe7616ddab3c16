"""Runs sweep trials on engine_svc: claim a batch, one RunTrials call, store each trial.

One runner per task_svc replica, threads like the task dispatcher's:
- the *loop* reaps expired trial leases (a killed replica's batch goes back to QUEUED and any
  replica runs it again) and claims batches while fewer than ZQ_SWEEP_WORKERS are running here;
  it sleeps until the poll interval or a sweep's back-off ends;
- one *batch* thread per claimed batch consumes the engine's RunTrials stream and writes each
  trial's lean result as it arrives (conditional on the batch still holding the trial, so a
  trial is counted once whoever finishes it), then lets the sweep plan its next step;
- each batch thread's *guard* renews the batch's lease every lease/3 seconds and checks the
  sweep every 0.25 s: when the sweep was cancelled or deleted (on any replica) it cancels the
  engine call, which kills the sandboxed worker — a cancel stops running trials within a second.

Fairness: a batch is one engine call, so it takes one engine slot for the time of its trials
(at most ZQ_SWEEP_BATCH_TRIALS of them, lockstep in one worker); single tasks wait in the same
FIFO slot queue of the engine and get the next free slot, so a large sweep cannot starve them.
Between sweeps, the one with the fewest running batches is served first (``TrialQueue``).

An engine with no free slot refuses a batch at once (batches never wait in an engine's queue,
where they would wait for that engine's running batch while another engine idles): the call is
made again at once, and the channel's round-robin takes it to the next engine.
Engine unreachable, busy after BUSY_RETRIES re-calls, or shutting down → the batch is released
(QUEUED again, attempt not charged) for any replica to take, and this replica stops claiming for a back-off that doubles
while its engine keeps refusing (a replica whose engine died must not keep taking batches from
the replicas whose engines work); a batch the engine fails as a whole (limits, worker
crash) fails its trials with the engine's message.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta

import grpc
from google.protobuf import struct_pb2
from sqlalchemy.orm import Session, sessionmaker
from zquant.engine.v1 import engine_pb2

from services.db import transaction
from services.tracing import continued_span
from sweeplib.spec import SweepSpec
from task_svc.config import TaskSettings
from task_svc.dispatcher import CONFIG_CODES, engine_error_message
from task_svc.engine_client import TRANSIENT_CODES, EngineClient, TrialsRun
from task_svc.models import Sweep, SweepStatus, SweepTrial, utcnow
from task_svc.sweep_repository import Batch, TrialQueue
from task_svc.sweeps import plan, search_spec, trial_config, trial_params

log = logging.getLogger("zquant.task.sweeps")

GUARD_SECONDS = 0.25
RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 10.0
IDLE_CHECK_SECONDS = 2.0
BUSY_RETRIES = 8  # immediate re-calls of a batch an engine refused for want of a free slot
BATCH_SYMBOL_DAYS = 25 * 10 * 1225
SPLIT_KINDS = frozenset({engine_pb2.EngineError.TIME_LIMIT, engine_pb2.EngineError.CPU_LIMIT,
                         engine_pb2.EngineError.MEMORY_LIMIT})
METRIC_FIELDS = tuple(f.name for f in engine_pb2.Metrics.DESCRIPTOR.fields)


def metrics_dict(m: engine_pb2.Metrics) -> dict[str, float | int | None]:
    return {name: (getattr(m, name) if m.HasField(name) else None) for name in METRIC_FIELDS}


def nav_json(dates_json: str, nav: list[float]) -> str:
    """json.dumps({"dates": dates, "nav": nav}), character for character, with the dates already
    encoded (``dates_json``: a batch's trials share them)."""
    return '{"dates": ' + dates_json + ', "nav": ' + json.dumps(nav) + "}"


class _BatchRun:
    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.handle: TrialsRun | None = None
        self.stopped = threading.Event()
        self.reason = ""
        self.lock = threading.Lock()

    def stop(self, reason: str) -> None:
        with self.lock:
            if not self.reason:
                self.reason = reason
            handle = self.handle
        self.stopped.set()
        if handle is not None:
            handle.cancel()

    def attach(self, handle: TrialsRun) -> None:
        with self.lock:
            self.handle = handle
            stopped = bool(self.reason)
        if stopped:
            handle.cancel()


class SweepRunner:
    def __init__(self, sessions: sessionmaker[Session], engine: EngineClient, settings: TaskSettings) -> None:
        self.sessions = sessions
        self.engine = engine
        self.settings = settings
        self._runs: dict[str, _BatchRun] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._loop_thread = threading.Thread(target=self._loop, name="sweep-dispatch", daemon=True)
        self._workers: list[threading.Thread] = []
        self._last_idle_check = 0.0
        self._backoff = 0.0
        self._paused_until = 0.0
        self._caps: dict[int, int] = {}  # sweep → trials per call after a batch hit a worker limit

    def start(self) -> None:
        self._loop_thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, grace: float) -> None:
        """Stop claiming; let running batches finish within ``grace``; release the rest."""
        self._stopping.set()
        self._wake.set()
        self._loop_thread.join(timeout=10)
        deadline = time.monotonic() + grace
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            run.stop("shutdown")
        for worker in list(self._workers):
            worker.join(timeout=10)

    def running(self) -> int:
        with self._lock:
            return len(self._runs)

    def _lease_until(self) -> datetime:
        return utcnow() + timedelta(seconds=self.settings.lease_seconds)

    # ------------------------------------------------------------------ claim loop
    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            wait = min(self.settings.poll_seconds, 1.0)
            try:
                with transaction(self.sessions) as session:
                    touched = TrialQueue(session).reap_expired(utcnow(), self.settings.max_attempts)
                if touched:
                    log.warning("took over trials with expired leases", extra={"sweeps": touched})
                if time.monotonic() - self._last_idle_check >= IDLE_CHECK_SECONDS:
                    self._last_idle_check = time.monotonic()
                    with self.sessions() as session:
                        touched = sorted(set(touched) | set(TrialQueue(session).idle_active_sweeps()))
                for sweep_id in touched:
                    self._plan(sweep_id)
                while (not self._stopping.is_set() and self.running() < self.settings.sweep_workers
                       and time.monotonic() >= self._paused_until):
                    if not self._claim():
                        break
                if time.monotonic() < self._paused_until:
                    wait = min(wait, max(0.01, self._paused_until - time.monotonic()))
                with self.sessions() as session:
                    due = TrialQueue(session).next_wakeup(utcnow())
                if due is not None:
                    wait = min(wait, max(0.01, (due - utcnow()).total_seconds()))
            except Exception:
                log.exception("sweep runner loop error; retrying")
            self._wake.wait(wait)

    def _claim(self) -> bool:
        owner = f"{self.settings.replica_id}:{uuid.uuid4().hex[:12]}"
        with transaction(self.sessions) as session:
            batch = TrialQueue(session).claim_batch(owner, self._lease_until(), utcnow(), self._batch_size)
        if batch is None:
            return False
        run = _BatchRun(batch)
        with self._lock:
            self._runs[owner] = run
        log.info("trial batch claimed", extra={"sweep_id": batch.sweep_id, "trials": len(batch.trial_ids),
                                               "owner": owner})
        worker = threading.Thread(target=self._work, args=(run,), name=f"sweep-{batch.sweep_id}", daemon=True)
        self._workers = [w for w in self._workers if w.is_alive()] + [worker]
        worker.start()
        return True

    def _batch_size(self, sweep: Sweep, start: str, end: str) -> int:
        """Trials per engine call: ZQ_SWEEP_BATCH_TRIALS, fewer for big trials — a batch runs its
        trials one after another in one worker, under one wall-clock limit, so it is kept near
        BATCH_SYMBOL_DAYS (25 trials of ten stocks over five years) of work."""
        symbols = len(json.loads(sweep.config_json).get("symbols") or []) or 1
        days = max(1, (date.fromisoformat(end) - date.fromisoformat(start)).days * 245 // 365)
        cap = self._caps.get(sweep.id, self.settings.sweep_batch_trials)
        return max(1, min(cap, BATCH_SYMBOL_DAYS // (symbols * days)))

    # ------------------------------------------------------------------ one batch
    def _work(self, run: _BatchRun) -> None:
        guard = threading.Thread(target=self._guard, args=(run,), name=f"sweep-guard-{run.batch.sweep_id}",
                                 daemon=True)
        guard.start()
        try:
            self._execute(run)
        except Exception:
            log.exception("trial batch crashed", extra={"sweep_id": run.batch.sweep_id})
            # Leave the trials RUNNING: their lease expires and they are run again (or FAILED
            # after max attempts) — never stuck, never counted twice.
        finally:
            run.stopped.set()
            if run.handle is not None:
                run.handle.cancel()
            guard.join(timeout=5)
            with self._lock:
                self._runs.pop(run.batch.owner, None)
            self._plan(run.batch.sweep_id)
            self._wake.set()

    def _guard(self, run: _BatchRun) -> None:
        renew_every = max(GUARD_SECONDS, self.settings.lease_seconds / 3)
        last_renew = time.monotonic()
        while not run.stopped.wait(GUARD_SECONDS):
            try:
                with self.sessions() as session:
                    status = TrialQueue(session).sweep_status(run.batch.sweep_id)
                if status != SweepStatus.RUNNING.value:
                    run.stop("cancelled")  # cancelled, deleted or ended elsewhere: kill the worker
                    return
                if time.monotonic() - last_renew >= renew_every:
                    with transaction(self.sessions) as session:
                        held = TrialQueue(session).renew(run.batch.owner, self._lease_until())
                    last_renew = time.monotonic()
                    if held == 0:
                        run.stop("lost")
                        return
            except Exception:
                log.warning("sweep guard could not check the sweep", exc_info=True)

    def _execute(self, run: _BatchRun) -> None:
        batch = run.batch
        with self.sessions() as session:
            sweep = session.get(Sweep, batch.sweep_id)
            trials = TrialQueue(session).batch_trials(batch)
            if sweep is None or not trials:
                return
            spec = search_spec(json.loads(sweep.spec_json), 10**9)
            config = trial_config(sweep, trials[0])
            params = [trial_params(sweep, t) for t in trials]
            code = sweep.strategy_code
            carrier = sweep.trace_context
        # The sweep's creation trace continues here (any replica, any time later): each batch is
        # a span under it, and the engine's RunTrials a child of the batch — one sweep, one trace.
        with continued_span("sweep.batch", carrier, {
                "zquant.sweep_id": batch.sweep_id, "zquant.trials": len(trials),
                "zquant.trial_numbers": [t.number for t in trials], "zquant.fold": trials[0].fold,
                "zquant.phase": trials[0].phase}):
            self._run_batch(run, trials, spec, code, config, params)

    def _run_batch(self, run: _BatchRun, trials: list[SweepTrial], spec: SweepSpec, code: str,
                   config: dict[str, object], params: list[dict[str, object]]) -> None:
        batch = run.batch
        request = engine_pb2.RunTrialsRequest(
            strategy_code=code, config=engine_pb2.BacktestConfig(**config), reference=f"sweep-{batch.sweep_id}")
        for p in params:
            s = struct_pb2.Struct()
            s.update(p)
            request.params.append(s)
        started = time.monotonic()
        results: dict[int, engine_pb2.TrialResult] = {}
        try:
            for event in self._engine_events(run, request):
                kind = event.WhichOneof("event")
                if kind == "trial":
                    results[event.trial.index] = event.trial
                elif kind == "done":
                    self._backoff = 0.0
                    per_trial = (time.monotonic() - started) / max(1, len(trials))
                    self._store(run, trials, results, per_trial, spec)
                    run.handle.finish()
                    return
                elif kind == "error":
                    err = event.error
                    if run.reason:
                        self._after_stop(run)
                    elif err.kind == engine_pb2.EngineError.CANCELLED:
                        self._release(run)  # the engine gave the batch up (it is shutting down)
                    elif err.kind in SPLIT_KINDS and len(trials) > 1:
                        # The batch as a whole hit a worker limit: run its trials in halves
                        # rather than failing them all; a single trial over the limit fails.
                        self._caps[batch.sweep_id] = max(1, len(trials) // 2)
                        log.warning("trial batch over a worker limit; splitting",
                                    extra={"sweep_id": batch.sweep_id, "trials": len(trials),
                                           "kind": engine_pb2.EngineError.Kind.Name(err.kind)})
                        with transaction(self.sessions) as session:
                            TrialQueue(session).release(run.batch.owner, run.batch.sweep_id, None)
                    else:
                        self._fail_all(run, trials, engine_error_message(err))
                    return
            if run.reason:
                self._after_stop(run)
            else:
                self._fail_all(run, trials, "the engine ended the batch without a result")
        except grpc.RpcError as exc:
            code_ = exc.code()  # type: ignore[attr-defined]
            if run.reason:
                self._after_stop(run)
            elif code_ in TRANSIENT_CODES or code_ in CONFIG_CODES:
                log.warning("engine unavailable; trial batch requeued",
                            extra={"sweep_id": batch.sweep_id, "code": code_.name})
                self._release(run)
            else:
                details = exc.details() or code_.name  # type: ignore[attr-defined]
                self._fail_all(run, trials, f"the engine rejected the batch ({code_.name}): {details}")

    def _engine_events(self, run: _BatchRun, request: engine_pb2.RunTrialsRequest
                       ) -> Iterator[engine_pb2.RunTrialsEvent]:
        """The batch's RunTrials events. An engine with no free slot refuses a batch at once
        (RESOURCE_EXHAUSTED before any event: batches never wait in an engine's queue); the call is
        made again right away, and the channel's round-robin sends it to the next engine — up to
        BUSY_RETRIES times before the refusal counts (the batch released, this replica backing off)."""
        for attempt in range(BUSY_RETRIES + 1):
            run.attach(self.engine.run_trials(request))
            assert run.handle is not None
            events = run.handle.events()
            try:
                first = next(events, None)
            except grpc.RpcError as exc:
                busy = exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
                if busy and attempt < BUSY_RETRIES and not run.reason:
                    continue
                raise
            if first is not None:
                yield first
                yield from events
            return

    def _store(self, run: _BatchRun, trials: list[SweepTrial], results: dict[int, engine_pb2.TrialResult],
               per_trial: float, spec: object) -> None:
        from sweeplib.ranking import objective_value

        objective = spec.objective  # type: ignore[attr-defined]
        rows: list[tuple[int, dict[str, object]]] = []
        dates: tuple[list[str], str] = ([], "[]")  # a batch's trials share their dates: encoded once
        for k, trial in enumerate(trials):
            r = results.get(k)
            if r is None:
                values: dict[str, object] = {"status": "FAILED", "error_message": "the engine sent no result",
                                             "seconds": per_trial}
            elif r.HasField("failure"):
                values = {"status": "FAILED", "error_message": engine_error_message(r.failure)[:20000],
                          "seconds": per_trial}
            else:
                metrics = metrics_dict(r.metrics)
                trial_dates = list(r.dates)
                if trial_dates != dates[0]:
                    dates = (trial_dates, json.dumps(trial_dates))
                values = {"status": "DONE", "metrics_json": json.dumps(metrics, allow_nan=False),
                          "nav_json": nav_json(dates[1], list(r.nav)),
                          "objective": objective_value(metrics, objective), "trades": r.trades,
                          "seconds": per_trial, "error_message": ""}
            rows.append((trial.id, values))
        with transaction(self.sessions) as session:
            TrialQueue(session).finish(run.batch.owner, rows)

    def _fail_all(self, run: _BatchRun, trials: list[SweepTrial], message: str) -> None:
        with transaction(self.sessions) as session:
            TrialQueue(session).finish(run.batch.owner, [(t.id, {"status": "FAILED", "error_message": message[:20000]})
                                                         for t in trials])

    def _release(self, run: _BatchRun) -> None:
        self._backoff = min(MAX_RETRY_SECONDS, max(RETRY_SECONDS, self._backoff * 2))
        self._paused_until = time.monotonic() + self._backoff
        with transaction(self.sessions) as session:
            TrialQueue(session).release(run.batch.owner, run.batch.sweep_id, None)

    def _after_stop(self, run: _BatchRun) -> None:
        if run.reason == "shutdown":  # hand the batch to another replica at once
            with transaction(self.sessions) as session:
                TrialQueue(session).release(run.batch.owner, run.batch.sweep_id, None)
        # cancelled / lost: someone else owns the trials' outcome

    def _plan(self, sweep_id: int) -> None:
        try:
            with transaction(self.sessions) as session:
                sweep = session.get(Sweep, sweep_id)
                if sweep is not None:
                    plan(session, sweep)
        except Exception:
            # A concurrent planner won (unique trial numbers) or the database hiccupped: the next
            # batch's end or the loop's next reap plans again.
            log.warning("sweep planning failed; will retry", exc_info=True, extra={"sweep_id": sweep_id})
