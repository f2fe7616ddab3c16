"""Paging/sorting rules shared by every list RPC of every service: skip ≥ 0, limit 1..1000 with
0 meaning 100, order "asc"/"desc" (default desc), unknown order_by → created_at desc (the
original zquant behaviour; docs/rest-conventions.md)."""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, case, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from services.errors import InvalidArgument


@dataclass(frozen=True)
class Page:
    skip: int
    limit: int
    order_by: str
    descending: bool


DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def page_window(skip: int, limit: int) -> tuple[int, list[tuple[str, str]]]:
    """(the effective limit, field violations of skip and limit): 0 means DEFAULT_LIMIT."""
    violations: list[tuple[str, str]] = []
    if skip < 0:
        violations.append(("skip", "must be ≥ 0"))
    if limit == 0:
        limit = DEFAULT_LIMIT
    elif not 1 <= limit <= MAX_LIMIT:
        violations.append(("limit", f"must be between 1 and {MAX_LIMIT}"))
    return limit, violations


def parse_page(skip: int, limit: int, order_by: str, order: str, allowed: Container[str]) -> Page:
    limit, violations = page_window(skip, limit)
    if violations:
        raise InvalidArgument(violations)
    key = order_by.strip().lower()
    if key not in allowed:
        # The documented fallback (the original zquant behaviour): newest first.
        return Page(skip, limit, "created_at", True)
    return Page(skip, limit, key, order.strip().lower() != "asc")


def escape_like(term: str) -> str:
    """A user's search term for LIKE … ESCAPE '\\': its % and _ match themselves."""
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def ordered(stmt: Select, column: InstrumentedAttribute, id_column: InstrumentedAttribute,
            descending: bool, nulls_last: bool = False) -> Select:
    """ORDER BY column, id in one direction: ties are broken by id so paging is stable."""
    keys: list[ColumnElement] = []
    if nulls_last:  # portable NULLS LAST (SQLite and PostgreSQL disagree on the default)
        keys.append(case((column.is_(None), 1), else_=0))
    keys += [column.desc() if descending else column.asc(), id_column.desc() if descending else id_column.asc()]
    return stmt.order_by(*keys)


def count_rows(session: Session, stmt: Select) -> int:
    return int(session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0)
