"""Failed-login throttling, per username and per client IP.

Store decision: a DB table (`login_throttle`), not process memory, so the limit holds across
every auth_svc replica behind the load balancer (in-memory counters would multiply the allowed
guesses by the replica count and reset on restart). The cost is one small read per login and
one write per *failed* login, which is negligible next to an argon2 verification.

Rule: failures on a scope count up while each one comes within `failure_window` of the previous
one (or of the end of the current lock); a quiet window resets the count. From the `limit`-th
failure on, the scope is locked for `base * 2**(failures - limit)` seconds, capped at `max`:
1 s, 2 s, 4 s … 5 min by default. While locked, Login answers RESOURCE_EXHAUSTED for that
scope before looking at the password — for existing and unknown usernames alike, so the lock
does not reveal which usernames exist. A
success resets the username's counter but not the IP's (otherwise one valid account would let
an attacker reset its IP counter between guesses at others).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from auth_svc import repository as repo
from auth_svc.models import LoginThrottle
from auth_svc.settings import AuthSettings
from auth_svc.telemetry import THROTTLED
from services.db import transaction
from services.errors import ResourceExhausted


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Throttle:
    def __init__(self, session_factory: sessionmaker[Session], settings: AuthSettings,
                 now: Callable[[], datetime] = _utcnow) -> None:
        self._sf = session_factory
        self._settings = settings
        self._now = now

    def _scopes(self, username: str, client_ip: str) -> dict[str, int]:
        scopes = {f"user:{username}": self._settings.max_failures_per_user}
        if client_ip:
            scopes[f"ip:{client_ip[:100]}"] = self._settings.max_failures_per_ip
        return scopes

    def check(self, username: str, client_ip: str) -> None:
        """Raises ResourceExhausted while the username or the IP is locked."""
        now = self._now()
        with self._sf() as session:
            rows = repo.get_throttles(session, list(self._scopes(username, client_ip)))
        wait = max((r.locked_until - now).total_seconds() for r in rows.values() if r.locked_until is not None) \
            if any(r.locked_until is not None for r in rows.values()) else 0.0
        if wait > 0:
            THROTTLED.inc()
            raise ResourceExhausted(f"too many failed logins, retry in {math.ceil(wait)} s")

    def record_failure(self, username: str, client_ip: str) -> None:
        scopes = self._scopes(username, client_ip)
        for attempt in range(2):  # a concurrent first failure may insert the same scope: retry once
            try:
                with transaction(self._sf) as session:
                    self._record(session, scopes)
                return
            except IntegrityError:
                if attempt:
                    raise

    def _record(self, session: Session, scopes: dict[str, int]) -> None:
        now = self._now()
        window = timedelta(seconds=self._settings.failure_window_seconds)
        rows = repo.get_throttles(session, list(scopes), for_update=True)
        for scope, limit in scopes.items():
            row = rows.get(scope)
            if row is None:
                row = LoginThrottle(scope=scope, failures=0, last_failure_at=now, locked_until=None)
                repo.add_throttle(session, row)
            else:
                # The quiet window starts when the lock ends, so a persistent guesser keeps
                # the maximum lock instead of getting a fresh allowance every few minutes.
                quiet_since = max(row.last_failure_at, row.locked_until or row.last_failure_at)
                if now - quiet_since > window:
                    row.failures = 0
            row.failures += 1
            row.last_failure_at = now
            if row.failures >= limit:
                seconds = min(self._settings.lock_base_seconds * 2 ** min(row.failures - limit, 30),
                              self._settings.lock_max_seconds)
                row.locked_until = now + timedelta(seconds=seconds)

    def record_success(self, username: str) -> None:
        with transaction(self._sf) as session:
            repo.delete_throttle(session, f"user:{username}")

    def purge(self) -> int:
        """Drops counters that are neither locked nor inside a window any more."""
        before = self._now() - timedelta(seconds=self._settings.failure_window_seconds)
        with transaction(self._sf) as session:
            return repo.delete_stale_throttles(session, before)
