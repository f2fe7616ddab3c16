"""auth_svc's own Prometheus metrics (the per-RPC ones come from services/metrics.py)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from prometheus_client import Counter

from services.errors import InvalidArgument, PermissionDenied, ResourceExhausted, Unauthenticated

LOGINS = Counter("zq_auth_logins", "Password logins by outcome: success, bad_credentials, disabled, "
                 "throttled, invalid, error.", ["outcome"])
THROTTLED = Counter("zq_auth_throttled_attempts", "Login attempts refused because the username or "
                    "the client address is locked after repeated failures.")

_OUTCOMES: tuple[tuple[type[Exception], str], ...] = (
    (ResourceExhausted, "throttled"),
    (Unauthenticated, "bad_credentials"),
    (PermissionDenied, "disabled"),
    (InvalidArgument, "invalid"),
)

F = TypeVar("F", bound=Callable[..., Any])


def count_logins(login: F) -> F:
    """Counts each call of ``login`` under the outcome its result or exception stands for."""

    @functools.wraps(login)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            result = login(*args, **kwargs)
        except Exception as exc:
            LOGINS.labels(next((name for kind, name in _OUTCOMES if isinstance(exc, kind)), "error")).inc()
            raise
        LOGINS.labels("success").inc()
        return result

    return run  # type: ignore[return-value]
