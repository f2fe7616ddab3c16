"""Paging/sorting rules shared by every list RPC (rest-api.md): skip ≥ 0, limit 1..1000 with
0 meaning 100, order "asc"/"desc" (default desc), unknown order_by → created_at desc."""

from __future__ import annotations

from collections.abc import Container

from services.errors import InvalidArgument
from task_svc.repository import Page

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def parse_page(skip: int, limit: int, order_by: str, order: str, allowed: Container[str]) -> Page:
    violations: list[tuple[str, str]] = []
    if skip < 0:
        violations.append(("skip", "must be ≥ 0"))
    if limit == 0:
        limit = DEFAULT_LIMIT
    elif not 1 <= limit <= MAX_LIMIT:
        violations.append(("limit", f"must be between 1 and {MAX_LIMIT}"))
    if violations:
        raise InvalidArgument(violations)
    key = order_by.strip().lower()
    if key not in allowed:
        # The documented fallback (the original zquant behaviour): newest first.
        return Page(skip, limit, "created_at", True)
    return Page(skip, limit, key, order.strip().lower() != "asc")
