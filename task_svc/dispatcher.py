"""Runs PENDING tasks on engine_svc: claim, lease, stream progress, store the outcome.

One dispatcher per task_svc replica, all threads:
- the *loop* reaps expired leases and claims PENDING tasks (oldest first) while a worker slot
  is free (ZQ_TASK_WORKERS); it sleeps until the poll interval, a backed-off task's
  not_before, or a hint (a new task, here or on another replica via NOTIFY) wakes it;
- one *worker* thread per running task consumes the engine's RunBacktest stream, writes
  progress at most every ZQ_TASK_PROGRESS_INTERVAL seconds (each write also extends the
  lease), and on the result stores it and marks COMPLETED in one transaction;
- the *renewer* extends every held lease each lease/3 seconds and notices tasks it lost;
- the *hint reader* cancels a run at once when its task is cancelled or deleted.

Every runner write is conditional on (status = RUNNING, lease_owner = this run's token): a
cancelled task stays CANCELLED and a task another replica took over is not touched.

Failure handling:
- engine error event → FAILED with the engine's message (strategy exception, limits …);
- engine unreachable / overloaded (UNAVAILABLE, RESOURCE_EXHAUSTED) → back to PENDING, attempt
  not charged, retried after an exponential back-off (not_before);
- the runner dies (crash, kill -9): its lease expires and any replica's loop requeues the
  task (RUNNING → PENDING, run again from the start) or, after ZQ_TASK_MAX_ATTEMPTS, FAILS it
  with "task failed after N attempts: the runner stopped responding";
- graceful stop (SIGTERM): stop claiming, give running tasks the grace period to finish, then
  cancel their engine calls and *release* them (RUNNING → PENDING, attempt not charged) so
  another replica starts them at once instead of waiting for the lease to expire.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import grpc
import sqlalchemy.exc
from google.protobuf import struct_pb2
from sqlalchemy.orm import Session, sessionmaker
from zquant.engine.v1 import engine_pb2

from services.db import transaction
from services.progress import ProgressGate
from services.tracing import continued_span
from task_svc import telemetry
from task_svc.config import TaskSettings
from task_svc.engine_client import TRANSIENT_CODES, EngineClient, EngineRun
from task_svc.events import DELETED, EventBus, Publisher, TaskHint
from task_svc.models import Task, TaskStatus, utcnow
from task_svc.repository import Changed, QueueRepository
from task_svc.results import build_result
from task_svc.tasks import stored_config

log = logging.getLogger("zquant.task.dispatcher")

# Engine answers that mean task_svc itself is misconfigured (service credentials).
CONFIG_CODES = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})

LOST = "lost"  # the task is no longer ours (cancelled, deleted, taken over): just stop
SHUTDOWN = "shutdown"  # this replica is stopping: hand the task back to the queue


@dataclass
class _Run:
    task_id: int
    user_id: int
    owner: str
    retries: int
    handle: EngineRun | None = None
    stop_reason: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def stop(self, reason: str) -> None:
        with self.lock:
            if not self.stop_reason:
                self.stop_reason = reason
            handle = self.handle
        if handle is not None:
            handle.cancel()

    def attach(self, handle: EngineRun) -> None:
        with self.lock:
            self.handle = handle
            stopped = bool(self.stop_reason)
        if stopped:  # stop() came before the call existed
            handle.cancel()


def engine_request(task: Task) -> engine_pb2.RunBacktestRequest:
    params = struct_pb2.Struct()
    params.update(json.loads(task.params_json or "{}"))
    return engine_pb2.RunBacktestRequest(
        strategy_code=task.strategy_code, params=params, reference=f"task-{task.id}",
        config=stored_config(task.config_json))


# EngineError.Kind name → TaskFailure.Kind name (what clients read in Task.failure_kind).
FAILURE_KIND_BY_ENGINE_KIND: dict[str, str] = {
    "STRATEGY_ERROR": "STRATEGY_ERROR",
    "INVALID_STRATEGY": "INVALID_STRATEGY",
    "MEMORY_LIMIT": "MEMORY_LIMIT",
    "CPU_LIMIT": "TIME_LIMIT",
    "TIME_LIMIT": "TIME_LIMIT",
    "KILLED": "WORKER_FAILED",
    "CRASHED": "WORKER_FAILED",
    "NO_RESULT": "WORKER_FAILED",
    "TOO_LARGE": "OUTPUT_LIMIT",
    "CANCELLED": "CANCELLED",
    "DATA_ERROR": "INVALID_CONFIG",
    "INTERNAL": "INTERNAL",
}
_LINE_KINDS = frozenset({"STRATEGY_ERROR", "INVALID_STRATEGY"})


def failure_of(error: engine_pb2.EngineError) -> tuple[str, int]:
    """(TaskFailure.Kind name, strategy line or 0) of an engine error event."""
    kind = FAILURE_KIND_BY_ENGINE_KIND.get(engine_pb2.EngineError.Kind.Name(error.kind)
                                           if error.kind in engine_pb2.EngineError.Kind.values() else "", "INTERNAL")
    return kind, (max(0, error.line) if kind in _LINE_KINDS else 0)


def engine_error_message(error: engine_pb2.EngineError) -> str:
    message = error.message.strip() or engine_pb2.EngineError.Kind.Name(error.kind)
    if error.line and f"line {error.line}" not in message:
        message += f" (strategy line {error.line})"
    return message


class Dispatcher:
    def __init__(self, sessions: sessionmaker[Session], engine: EngineClient, bus: EventBus,
                 publisher: Publisher, settings: TaskSettings) -> None:
        self.sessions = sessions
        self.engine = engine
        self.bus = bus
        self.publisher = publisher
        self.settings = settings
        self._runs: dict[int, _Run] = {}
        self._runs_lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._subscription = bus.subscribe()
        self._threads = [
            threading.Thread(target=self._loop, name="task-dispatch", daemon=True),
            threading.Thread(target=self._renew_loop, name="task-lease-renew", daemon=True),
            threading.Thread(target=self._hint_loop, name="task-dispatch-hints", daemon=True),
        ]

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self, grace: float) -> None:
        """Stop claiming; let running tasks finish within `grace`; release the rest."""
        self._stopping.set()
        self._wake.set()
        self._threads[0].join(timeout=10)
        deadline = time.monotonic() + grace
        while self.running_ids() and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._runs_lock:
            runs = list(self._runs.values())
        for run in runs:
            run.stop(SHUTDOWN)
        for worker in list(self._workers):
            worker.join(timeout=10)
        self._stopped.set()
        self._subscription.close()
        self._subscription.wake()
        for t in self._threads[1:]:
            t.join(timeout=5)

    def running_ids(self) -> set[int]:
        with self._runs_lock:
            return set(self._runs)

    def _lease_until(self) -> datetime:
        return utcnow() + timedelta(seconds=self.settings.lease_seconds)

    def _publish(self, changes: list[Changed] | list[TaskHint]) -> None:
        hints = [c if isinstance(c, TaskHint) else TaskHint(c.task_id, c.user_id, c.status, "status")
                 for c in changes]
        self.publisher.publish(hints)

    # ------------------------------------------------------------------ claim loop
    def _loop(self) -> None:
        while not self._stopping.is_set():
            # Cleared before the work, not after the wait: a wake-up that arrives while this
            # round runs makes the next wait return at once instead of being lost.
            self._wake.clear()
            wait = self.settings.poll_seconds
            try:
                with transaction(self.sessions) as session:
                    reaped = QueueRepository(session).reap_expired(utcnow(), self.settings.max_attempts)
                for change in reaped:
                    telemetry.LEASE_EXPIRIES.labels(
                        "failed" if change.status == TaskStatus.FAILED.value else "requeued").inc()
                if reaped:
                    log.warning("took over tasks with expired leases",
                                extra={"tasks": [(c.task_id, c.status) for c in reaped]})
                    self._publish(reaped)
                while not self._stopping.is_set() and len(self.running_ids()) < self.settings.workers:
                    if not self._claim_one():
                        break
                with self.sessions() as session:
                    due = QueueRepository(session).next_wakeup(utcnow())
                if due is not None:
                    wait = min(wait, max(0.01, (due - utcnow()).total_seconds()))
            except Exception:
                log.exception("dispatcher loop error; retrying")
            self._wake.wait(wait)

    def _claim_one(self) -> bool:
        owner = f"{self.settings.replica_id}:{uuid.uuid4().hex[:12]}"
        with transaction(self.sessions) as session:
            task = QueueRepository(session).claim_next(owner, self._lease_until(), utcnow())
            if task is None:
                return False
            session.expunge(task)
        if task.started_at is not None:
            telemetry.CLAIM_SECONDS.observe(max(0.0, (task.started_at - task.created_at).total_seconds()))
        run = _Run(task.id, task.user_id, owner, task.retries)
        with self._runs_lock:
            self._runs[task.id] = run
        self._publish([TaskHint(task.id, task.user_id, TaskStatus.RUNNING.value, "status")])
        log.info("task claimed", extra={"task_id": task.id, "attempt": task.attempts, "owner": owner})
        worker = threading.Thread(target=self._work, args=(run, task), name=f"task-run-{task.id}", daemon=True)
        self._workers = [w for w in self._workers if w.is_alive()] + [worker]
        worker.start()
        return True

    # ------------------------------------------------------------------ lease renewal, hints
    def _renew_loop(self) -> None:
        interval = max(0.05, self.settings.lease_seconds / 3)
        while not self._stopped.wait(interval):
            with self._runs_lock:
                owners = {tid: r.owner for tid, r in self._runs.items()}
            if not owners:
                continue
            try:
                with transaction(self.sessions) as session:
                    held = QueueRepository(session).renew(owners, self._lease_until())
            except Exception:
                log.exception("lease renewal failed")
                continue
            for tid in owners.keys() - held:
                self._stop_run(tid, LOST)

    def _hint_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                hint = self._subscription.get(timeout=1.0)
            except EOFError:
                return
            if hint is None:
                continue
            if hint.status == TaskStatus.PENDING.value:
                self._wake.set()  # new or requeued work
            elif hint.status in (TaskStatus.CANCELLED.value, DELETED) and hint.task_id in self.running_ids():
                try:
                    self._check_still_held(hint.task_id)
                except Exception:  # DB hiccup: the renewer will notice on its next round
                    log.warning("could not check a cancelled task", exc_info=True,
                                extra={"task_id": hint.task_id})

    def _check_still_held(self, task_id: int) -> None:
        with self._runs_lock:
            run = self._runs.get(task_id)
        if run is None:
            return
        with self.sessions() as session:
            held = QueueRepository(session).still_held(task_id, run.owner)
        if not held:
            self._stop_run(task_id, LOST)

    def _stop_run(self, task_id: int, reason: str) -> None:
        with self._runs_lock:
            run = self._runs.get(task_id)
        if run is not None:
            log.info("stopping run", extra={"task_id": task_id, "reason": reason})
            run.stop(reason)

    # ------------------------------------------------------------------ one run
    def _work(self, run: _Run, task: Task) -> None:
        try:
            # The submission's trace continues here (maybe on another replica, later): the
            # engine call below is its child, so one backtest is one trace.
            with continued_span("task.run", task.trace_context,
                                {"zquant.task_id": task.id, "zquant.attempt": task.attempts}):
                self._execute(run, task)
        except Exception as exc:
            log.exception("task run crashed", extra={"task_id": run.task_id})
            try:
                self._finish_failed(run, f"internal error while running the task: {type(exc).__name__}",
                                    "INTERNAL")
            except Exception:
                # Database unreachable: leave the task RUNNING; its lease expires and it is
                # re-run (or FAILED after max attempts) — never stuck.
                log.exception("could not record the failure", extra={"task_id": run.task_id})
        finally:
            if run.handle is not None:
                run.handle.cancel()  # no-op when the call already ended; kills an orphaned run
            with self._runs_lock:
                self._runs.pop(run.task_id, None)
            self._wake.set()

    def _execute(self, run: _Run, task: Task) -> None:
        request = engine_request(task)
        gate = ProgressGate(self.settings.progress_interval)  # each write is what watchers see
        try:
            run.attach(self.engine.run_backtest(request))
            assert run.handle is not None
            for event in run.handle.events():
                kind = event.WhichOneof("event")
                if kind == "progress":
                    if gate.admit(event.progress.fraction) and not self._write_progress(run, event.progress):
                        run.stop(LOST)
                        return
                elif kind == "result":
                    self._finish_completed(run, event.result)
                    run.handle.finish()
                    return
                elif kind == "error":
                    err = event.error
                    if err.kind == engine_pb2.EngineError.CANCELLED and not run.stop_reason:
                        # The engine gave up the run itself (e.g. it is shutting down): not the
                        # strategy's fault, so run it again elsewhere.
                        self._release(run, engine_retry=True)
                    elif not run.stop_reason:
                        self._finish_failed(run, engine_error_message(err), *failure_of(err))
                    else:
                        self._after_stop(run)
                    return
            if run.stop_reason:
                self._after_stop(run)
            else:
                self._finish_failed(run, "the engine ended the run without a result", "INTERNAL")
        except grpc.RpcError as exc:
            code = exc.code()  # type: ignore[attr-defined]
            if run.stop_reason:
                self._after_stop(run)
            elif code in TRANSIENT_CODES:
                log.warning("engine unavailable; task requeued",
                            extra={"task_id": run.task_id, "code": code.name})
                self._release(run, engine_retry=True)
            elif code in CONFIG_CODES:
                # Our service credentials are wrong: not the task's fault, so it must not FAIL.
                # It waits (with back-off) until an operator fixes ZQ_ENGINE_* credentials.
                log.error("engine refused task_svc's credentials; task requeued (check ZQ_ENGINE_TOKEN / "
                          "ZQ_ENGINE_API_KEY)", extra={"task_id": run.task_id, "code": code.name})
                self._release(run, engine_retry=True)
            else:
                details = exc.details() or code.name  # type: ignore[attr-defined]
                kind = "INVALID_CONFIG" if code == grpc.StatusCode.INVALID_ARGUMENT else "INTERNAL"
                self._finish_failed(run, f"the engine rejected the run ({code.name}): {details}", kind)

    def _after_stop(self, run: _Run) -> None:
        if run.stop_reason == SHUTDOWN:
            self._release(run, engine_retry=False)
        # LOST: someone else owns the outcome (CANCELLED, deleted, or another replica).

    def _write_progress(self, run: _Run, p: engine_pb2.Progress) -> bool:
        """False when the task is no longer ours. A failed write is skipped, not fatal: progress
        is advisory and the renewer keeps the lease."""
        try:
            with transaction(self.sessions) as session:
                ok = QueueRepository(session).update_progress(
                    run.task_id, run.owner, min(1.0, max(0.0, p.fraction)), p.current_date[:10], p.equity,
                    self._lease_until())
        except sqlalchemy.exc.OperationalError:
            log.warning("progress write failed", exc_info=True, extra={"task_id": run.task_id})
            return True
        if ok:
            self.publisher.publish([TaskHint(run.task_id, run.user_id, TaskStatus.RUNNING.value, "progress",
                                             p.fraction)])
        return ok

    def _finish_completed(self, run: _Run, result: engine_pb2.BacktestResult) -> None:
        row = build_result(run.task_id, run.user_id, result)
        with transaction(self.sessions) as session:
            final_equity = result.daily[-1].total_value if result.daily else result.initial_capital
            ok = QueueRepository(session).complete(run.task_id, run.owner, row, result.end_date, final_equity)
            if not ok:
                session.rollback()
        if ok:
            log.info("task completed", extra={"task_id": run.task_id})
            self._publish([TaskHint(run.task_id, run.user_id, TaskStatus.COMPLETED.value, "status", 1.0)])

    def _finish_failed(self, run: _Run, message: str, kind: str, line: int = 0) -> None:
        with transaction(self.sessions) as session:
            ok = QueueRepository(session).fail(run.task_id, run.owner, message[:20000], kind, line)
        if ok:
            log.info("task failed", extra={"task_id": run.task_id, "error": message[:200]})
            self._publish([TaskHint(run.task_id, run.user_id, TaskStatus.FAILED.value, "status")])

    def _release(self, run: _Run, *, engine_retry: bool) -> None:
        not_before = None
        if engine_retry:
            delay = min(self.settings.retry_base_seconds * (2 ** min(run.retries, 30)),
                        self.settings.retry_max_seconds)
            not_before = utcnow() + timedelta(seconds=delay)
        with transaction(self.sessions) as session:
            ok = QueueRepository(session).release(run.task_id, run.owner, not_before, engine_retry=engine_retry)
        if ok and engine_retry:
            telemetry.RETRIES.inc()
        if ok:
            self._publish([TaskHint(run.task_id, run.user_id, TaskStatus.PENDING.value, "status")])
