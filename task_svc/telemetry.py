"""task_svc's own Prometheus metrics (the per-RPC ones, and the open watch streams as
``grpc_server_streams_open``, come from services/metrics.py).

Tasks by status and the queue depth are read from the database when scraped: they are the
same numbers on every replica (aggregate them with ``max``, not ``sum``). Claims, lease
expiries and retries are counted by the replica that does them (dispatcher.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from services.metrics import register_source
from task_svc.models import Task, TaskStatus, utcnow

CLAIM_SECONDS = Histogram(
    "zq_task_claim_latency_seconds", "Time from a task's submission to a dispatcher claiming it (queue wait).",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600))
LEASE_EXPIRIES = Counter(
    "zq_task_lease_expiries", "Running tasks whose lease expired (their runner died), by what became of them "
    "(requeued, or failed after ZQ_TASK_MAX_ATTEMPTS).", ["outcome"])
RETRIES = Counter("zq_task_engine_retries", "Runs handed back to the queue because no engine could take them "
                  "(retried with backoff, attempt not charged).")


def _task_metrics(sessions: sessionmaker[Session]) -> Iterable[Metric]:
    with sessions() as session:
        counts = dict(session.execute(select(Task.status, func.count()).group_by(Task.status)).all())
        runnable = session.scalar(select(func.count()).select_from(Task).where(
            Task.status == TaskStatus.PENDING.value, or_(Task.not_before.is_(None), Task.not_before <= utcnow())))
    by_status = GaugeMetricFamily("zq_tasks", "Tasks in the database by status (all replicas see the same).",
                                  labels=["status"])
    for status in TaskStatus:
        by_status.add_metric([status.value.lower()], counts.get(status.value, 0))
    yield by_status
    yield GaugeMetricFamily("zq_task_queue_depth", "Pending tasks a dispatcher may claim now (backed-off "
                            "retries not included).", value=runnable or 0)


class _Owner:
    """What the source is tied to: reports while the app holding it lives."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions


def watch_tasks(sessions: sessionmaker[Session]) -> object:
    """Reports tasks by status and the queue depth while the returned object is referenced."""
    owner = _Owner(sessions)
    register_source(owner, lambda o: _task_metrics(o.sessions))
    return owner
