"""Database access for sweeps (SQLAlchemy 2), in the two kinds ``repository.py`` has:

- ``SweepRepository`` serves user requests: every query is scoped to the caller's ``user_id``
  (another user's sweep is indistinguishable from a missing one);
- ``TrialQueue`` is the sweep runner's: it works across users by design (claiming batches of
  trials, leases, expiry), and every write it makes to a trial is conditional on the trial still
  being RUNNING under the same batch token — so a trial is counted once, whichever replica or
  engine finished it, and a cancelled sweep's trials are never overwritten.

Nothing here commits: callers own the transaction (``services.db.transaction``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, delete, func, or_, select, update
from sqlalchemy.orm import Session, defer

from services.paging import Page, count_rows, ordered
from task_svc.models import SWEEP_ACTIVE, Sweep, SweepStatus, SweepTrial, TrialStatus, utcnow

SWEEP_ORDER = {"id": Sweep.id, "status": Sweep.status, "created_at": Sweep.created_at}
_ACTIVE = [s.value for s in SWEEP_ACTIVE]


class SweepRepository:
    def __init__(self, session: Session, user_id: int) -> None:
        self.session = session
        self.user_id = user_id

    def add(self, sweep: Sweep) -> Sweep:
        sweep.user_id = self.user_id
        self.session.add(sweep)
        self.session.flush()
        return sweep

    def get(self, sweep_id: int) -> Sweep | None:
        return self.session.scalar(select(Sweep).where(Sweep.id == sweep_id, Sweep.user_id == self.user_id))

    def list_page(self, page: Page) -> tuple[list[Sweep], int]:
        stmt = select(Sweep).where(Sweep.user_id == self.user_id)
        total = count_rows(self.session, stmt)
        stmt = ordered(stmt, SWEEP_ORDER[page.order_by], Sweep.id, page.descending)
        return list(self.session.scalars(stmt.offset(page.skip).limit(page.limit))), total

    def count_active(self) -> int:
        return int(self.session.scalar(select(func.count()).select_from(Sweep).where(
            Sweep.user_id == self.user_id, Sweep.status.in_(_ACTIVE))) or 0)

    def trials(self, sweep_id: int, *, with_nav: bool = False) -> list[SweepTrial]:
        """The sweep's trials in number order; the NAV series (the bulk of a row) only on request."""
        stmt = select(SweepTrial).where(SweepTrial.sweep_id == sweep_id, SweepTrial.user_id == self.user_id)
        if not with_nav:
            stmt = stmt.options(defer(SweepTrial.nav_json, raiseload=True))
        return list(self.session.scalars(stmt.order_by(SweepTrial.number)))

    def nav(self, trial_id: int) -> str:
        return self.session.scalar(select(SweepTrial.nav_json).where(
            SweepTrial.id == trial_id, SweepTrial.user_id == self.user_id)) or ""

    def status_counts(self, sweep: Sweep) -> dict[str, int]:
        """Trials per status of a sweep ``get`` returned (so the caller's: its trials are its
        owner's), from the (sweep_id, status, number) index alone — the rows, long with their NAV,
        are not read."""
        return {status: int(n) for status, n in self.session.execute(
            select(SweepTrial.status, func.count()).where(SweepTrial.sweep_id == sweep.id)
            .group_by(SweepTrial.status))}

    def ids_with_status(self, sweep: Sweep, statuses: list[str]) -> list[int]:
        """The ids of a sweep's trials in these statuses, from the index alone (as status_counts)."""
        return list(self.session.scalars(select(SweepTrial.id).where(
            SweepTrial.sweep_id == sweep.id, SweepTrial.status.in_(statuses))))

    def trials_by_id(self, sweep_id: int, ids: list[int]) -> list[SweepTrial]:
        """These trials of the sweep in number order, without their NAV."""
        if not ids:
            return []
        return list(self.session.scalars(select(SweepTrial).where(
            SweepTrial.sweep_id == sweep_id, SweepTrial.user_id == self.user_id, SweepTrial.id.in_(ids))
            .options(defer(SweepTrial.nav_json, raiseload=True)).order_by(SweepTrial.number)))

    def trial_states(self, sweep: Sweep) -> list[Any]:
        """Every trial of a sweep as (id, number, fold, phase, status) rows: what planning reads
        after each batch (the rows themselves, long with their NAV, are not read)."""
        return list(self.session.execute(
            select(SweepTrial.id, SweepTrial.number, SweepTrial.fold, SweepTrial.phase, SweepTrial.status)
            .where(SweepTrial.sweep_id == sweep.id)).all())

    def search_rows(self, sweep: Sweep, fold: int, phase: str) -> list[Any]:
        """One search's trials with their params and results (not their NAV), in number order."""
        return list(self.session.execute(
            select(SweepTrial.id, SweepTrial.number, SweepTrial.seq, SweepTrial.status, SweepTrial.params_json,
                   SweepTrial.metrics_json)
            .where(SweepTrial.sweep_id == sweep.id, SweepTrial.fold == fold, SweepTrial.phase == phase)
            .order_by(SweepTrial.number)).all())

    def trial(self, sweep_id: int, number: int) -> SweepTrial | None:
        return self.session.scalar(select(SweepTrial).where(
            SweepTrial.sweep_id == sweep_id, SweepTrial.number == number, SweepTrial.user_id == self.user_id))

    def cached_results(self, keys: list[str]) -> dict[str, SweepTrial]:
        """The caller's finished trials (any sweep) with these cache keys: key → one of them."""
        if not keys:
            return {}
        found: dict[str, SweepTrial] = {}
        for chunk in range(0, len(keys), 500):
            rows = self.session.scalars(select(SweepTrial).where(
                SweepTrial.user_id == self.user_id, SweepTrial.cache_key.in_(keys[chunk:chunk + 500]),
                SweepTrial.status == TrialStatus.DONE.value).order_by(SweepTrial.id))
            for row in rows:
                found.setdefault(row.cache_key, row)
        return found

    def recent_trial_seconds(self, limit: int = 200) -> list[float]:
        return [float(s) for s in self.session.scalars(
            select(SweepTrial.seconds).where(SweepTrial.user_id == self.user_id,
                                             SweepTrial.status == TrialStatus.DONE.value, SweepTrial.seconds > 0)
            .order_by(SweepTrial.id.desc()).limit(limit))]

    def cancel(self, sweep_id: int, message: str) -> bool:
        """PENDING|RUNNING → CANCELLED and every unfinished trial → SKIPPED, in the caller's
        transaction; False when the sweep is not active. Runners holding trials see their
        conditional writes fail and kill their engine calls."""
        now = utcnow()
        res = self.session.execute(
            update(Sweep).where(Sweep.id == sweep_id, Sweep.user_id == self.user_id, Sweep.status.in_(_ACTIVE))
            .values(status=SweepStatus.CANCELLED.value, error_message=message, updated_at=now, completed_at=now)
            .execution_options(synchronize_session=False))
        if res.rowcount != 1:  # type: ignore[attr-defined]
            return False
        skip_unfinished(self.session, sweep_id, now)
        return True

    def delete(self, sweep: Sweep) -> None:
        self.session.execute(delete(SweepTrial).where(SweepTrial.sweep_id == sweep.id))
        self.session.delete(sweep)
        self.session.flush()


def skip_unfinished(session: Session, sweep_id: int, now: datetime) -> None:
    session.execute(
        update(SweepTrial).where(SweepTrial.sweep_id == sweep_id,
                                 SweepTrial.status.in_([TrialStatus.QUEUED.value, TrialStatus.RUNNING.value]))
        .values(status=TrialStatus.SKIPPED.value, lease_owner=None, lease_expires_at=None, finished_at=now)
        .execution_options(synchronize_session=False))


# ---------------------------------------------------------------------------- the runner's queries

@dataclass(frozen=True)
class Batch:
    sweep_id: int
    user_id: int
    owner: str
    trial_ids: list[int]


class TrialQueue:
    """The sweep runner's queries. ``owner`` is the batch token "<replica>:<uuid>" of one claim."""

    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def _pg(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    def _running_batches(self, sweep_id: int) -> int:
        return int(self.session.scalar(
            select(func.count(func.distinct(SweepTrial.lease_owner))).where(
                SweepTrial.sweep_id == sweep_id, SweepTrial.status == TrialStatus.RUNNING.value)) or 0)

    def claim_batch(self, owner: str, lease_until: datetime, now: datetime,
                    size_of: Callable[[Sweep, str, str], int]) -> Batch | None:
        """Up to ``max_trials`` QUEUED trials of one sweep, one fold and phase (they share dates, so
        they share one engine call): QUEUED → RUNNING under ``owner``.

        The sweep with the fewest batches running goes first (then the oldest), so concurrent
        sweeps share the deployment; a sweep at its ``max_parallel`` is passed over. PostgreSQL:
        the sweep row is locked (SKIP LOCKED) while its running batches are counted and its trials
        taken, so two replicas cannot both exceed max_parallel or take the same trial. SQLite has a
        single writer: the whole transaction is serial.
        """
        queued = (select(SweepTrial.sweep_id, func.count().label("n")).where(
            SweepTrial.status == TrialStatus.QUEUED.value).group_by(SweepTrial.sweep_id).subquery())
        running = (select(SweepTrial.sweep_id, func.count(func.distinct(SweepTrial.lease_owner)).label("b")).where(
            SweepTrial.status == TrialStatus.RUNNING.value).group_by(SweepTrial.sweep_id).subquery())
        candidates = self.session.execute(
            select(Sweep.id, Sweep.max_parallel, queued.c.n, func.coalesce(running.c.b, 0))
            .join(queued, queued.c.sweep_id == Sweep.id)
            .outerjoin(running, running.c.sweep_id == Sweep.id)
            .where(Sweep.status.in_(_ACTIVE), or_(Sweep.not_before.is_(None), Sweep.not_before <= now))
            .order_by(func.coalesce(running.c.b, 0), Sweep.created_at, Sweep.id).limit(20)).all()
        for sweep_id, max_parallel, n_queued, _ in candidates:
            if self._pg:
                locked = self.session.scalar(select(Sweep.id).where(Sweep.id == sweep_id, Sweep.status.in_(_ACTIVE))
                                             .with_for_update(skip_locked=True))
                if locked is None:
                    continue
            if max_parallel and self._running_batches(sweep_id) >= max_parallel:
                continue
            head = self.session.execute(
                select(SweepTrial.fold, SweepTrial.phase, SweepTrial.start_date, SweepTrial.end_date).where(
                    SweepTrial.sweep_id == sweep_id, SweepTrial.status == TrialStatus.QUEUED.value)
                .order_by(SweepTrial.number).limit(1)).first()
            if head is None:
                continue
            sweep = self.session.get(Sweep, sweep_id)
            assert sweep is not None
            size = max(1, min(size_of(sweep, head[2], head[3]), int(n_queued)))
            ids_stmt = (select(SweepTrial.id).where(
                SweepTrial.sweep_id == sweep_id, SweepTrial.status == TrialStatus.QUEUED.value,
                SweepTrial.fold == head[0], SweepTrial.phase == head[1]).order_by(SweepTrial.number).limit(size))
            if self._pg:
                ids_stmt = ids_stmt.with_for_update(skip_locked=True)
            ids = list(self.session.scalars(ids_stmt))
            if not ids:
                continue
            claimed = list(self.session.scalars(
                update(SweepTrial).where(SweepTrial.id.in_(ids), SweepTrial.status == TrialStatus.QUEUED.value)
                .values(status=TrialStatus.RUNNING.value, lease_owner=owner, lease_expires_at=lease_until,
                        attempts=SweepTrial.attempts + 1)
                .returning(SweepTrial.id).execution_options(synchronize_session=False)))
            if not claimed:
                continue
            if sweep.status == SweepStatus.PENDING.value:
                sweep.status = SweepStatus.RUNNING.value
                sweep.started_at = now
                sweep.updated_at = now
            self.session.flush()
            return Batch(sweep_id, sweep.user_id, owner, sorted(claimed))
        return None

    def batch_trials(self, batch: Batch) -> list[SweepTrial]:
        return list(self.session.scalars(select(SweepTrial).where(SweepTrial.id.in_(batch.trial_ids))
                                         .order_by(SweepTrial.number)))

    def _held(self, owner: str) -> ColumnElement[bool]:
        return and_(SweepTrial.status == TrialStatus.RUNNING.value, SweepTrial.lease_owner == owner)

    def renew(self, owner: str, lease_until: datetime) -> int:
        """Extends the batch's lease; returns how many of its trials it still holds."""
        res = self.session.execute(update(SweepTrial).where(self._held(owner)).values(lease_expires_at=lease_until)
                                   .execution_options(synchronize_session=False))
        return int(res.rowcount)  # type: ignore[attr-defined]

    def finish(self, owner: str, results: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """RUNNING (under ``owner``) → DONE | FAILED with their results; a trial no longer held is
        left alone. One executemany per set of columns written (a batch's results share one or
        two), not one ORM statement per trial."""
        table = SweepTrial.__table__
        now = utcnow()
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for trial_id, values in results:
            by_columns.setdefault(tuple(sorted(values)), []).append(
                {"p_id": trial_id, **{f"p_{k}": v for k, v in values.items()}})
        for columns, params in by_columns.items():
            stmt = (update(table)
                    .where(table.c.id == bindparam("p_id"), table.c.status == TrialStatus.RUNNING.value,
                           table.c.lease_owner == owner)
                    .values({**{k: bindparam(f"p_{k}") for k in columns}, "lease_owner": None,
                             "lease_expires_at": None, "finished_at": now}))
            self.session.execute(stmt, params)

    def release(self, owner: str, sweep_id: int, not_before: datetime | None) -> int:
        """The batch back to QUEUED, its attempt not charged (engine busy or going away)."""
        res = self.session.execute(
            update(SweepTrial).where(self._held(owner))
            .values(status=TrialStatus.QUEUED.value, lease_owner=None, lease_expires_at=None,
                    attempts=SweepTrial.attempts - 1)
            .execution_options(synchronize_session=False))
        if not_before is not None:
            self.session.execute(update(Sweep).where(Sweep.id == sweep_id).values(not_before=not_before)
                                 .execution_options(synchronize_session=False))
        return int(res.rowcount)  # type: ignore[attr-defined]

    def reap_expired(self, now: datetime, max_attempts: int) -> list[int]:
        """RUNNING trials whose batch's runner died: back to QUEUED (run again, by any replica), or
        FAILED after ``max_attempts`` attempts. Returns the sweeps touched."""
        expired = and_(SweepTrial.status == TrialStatus.RUNNING.value, SweepTrial.lease_expires_at < now)
        failed = self.session.execute(
            update(SweepTrial).where(expired, SweepTrial.attempts >= max_attempts)
            .values(status=TrialStatus.FAILED.value, lease_owner=None, lease_expires_at=None, finished_at=now,
                    error_message=f"trial failed after {max_attempts} attempts: the runner stopped responding")
            .returning(SweepTrial.sweep_id).execution_options(synchronize_session=False)).all()
        requeued = self.session.execute(
            update(SweepTrial).where(expired, SweepTrial.attempts < max_attempts)
            .values(status=TrialStatus.QUEUED.value, lease_owner=None, lease_expires_at=None)
            .returning(SweepTrial.sweep_id).execution_options(synchronize_session=False)).all()
        return sorted({r[0] for r in failed + requeued})

    def idle_active_sweeps(self) -> list[int]:
        """Active sweeps with no trial QUEUED or RUNNING: their next step was not planned (the
        planner that should have failed, or its replica died); the runner plans them."""
        busy = select(SweepTrial.sweep_id).where(
            SweepTrial.status.in_([TrialStatus.QUEUED.value, TrialStatus.RUNNING.value]))
        return list(self.session.scalars(select(Sweep.id).where(Sweep.status.in_(_ACTIVE), Sweep.id.not_in(busy))
                                         .limit(50)))

    def sweep_status(self, sweep_id: int) -> str | None:
        return self.session.scalar(select(Sweep.status).where(Sweep.id == sweep_id))

    def next_wakeup(self, now: datetime) -> datetime | None:
        return self.session.scalar(select(func.min(Sweep.not_before)).where(
            Sweep.status.in_(_ACTIVE), Sweep.not_before > now))
