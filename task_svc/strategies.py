"""The strategy library: validation, visibility and ownership rules.

- Everyone sees their own strategies and all templates; anything else is NOT_FOUND.
- Only the owner edits or deletes (PERMISSION_DENIED for a visible strategy one does not own).
- Only admins publish templates. Seeded templates belong to the system user (id 0): any admin
  may edit or delete those; a template an admin published is edited only by that admin.
- Code is validated by engine_svc's ValidateStrategy before anything is saved: problems →
  INVALID_ARGUMENT ("code", "line N: message"); engine unreachable → UNAVAILABLE (unvalidated
  code is never stored).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from services.db import transaction
from services.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable
from services.paging import Page
from services.principal import Principal
from services.user_json import parse_json_text
from task_svc import templates
from task_svc.engine_client import EngineClient, EngineRejected, EngineUnavailable
from task_svc.models import SYSTEM_USER_ID, Strategy, utcnow
from task_svc.repository import STRATEGY_ORDER, StrategyRepository

MAX_CODE_BYTES = 1024 * 1024
MAX_NAME = 200
MAX_DESCRIPTION = 10_000
MAX_CATEGORY = 50
MAX_SCHEMA = 100_000

ALLOWED_ORDER = STRATEGY_ORDER.keys()


@dataclass(frozen=True)
class StrategyInput:
    name: str
    code: str
    description: str = ""
    category: str = ""
    params_schema: str = ""
    is_template: bool = False


@dataclass(frozen=True)
class StrategyPatch:
    """Unset (None) fields stay as they are."""

    name: str | None = None
    code: str | None = None
    description: str | None = None
    category: str | None = None
    params_schema: str | None = None


def _check_fields(name: str | None, description: str | None, category: str | None,
                  params_schema: str | None) -> list[tuple[str, str]]:
    v: list[tuple[str, str]] = []
    if name is not None and not 1 <= len(name.strip()) <= MAX_NAME:
        v.append(("name", f"must be 1–{MAX_NAME} characters"))
    if description is not None and len(description) > MAX_DESCRIPTION:
        v.append(("description", f"must be at most {MAX_DESCRIPTION} characters"))
    if category is not None and len(category) > MAX_CATEGORY:
        v.append(("category", f"must be at most {MAX_CATEGORY} characters"))
    if params_schema:
        if len(params_schema) > MAX_SCHEMA:
            v.append(("params_schema", f"must be at most {MAX_SCHEMA} characters"))
        else:
            try:
                schema = parse_json_text(params_schema, "params_schema")
            except InvalidArgument as exc:
                v += exc.violations
            else:
                if not isinstance(schema, dict):
                    v.append(("params_schema", "must be a JSON object (a JSON Schema)"))
    return v


def check_code_locally(code: str) -> list[tuple[str, str]]:
    if not code.strip():
        return [("code", "is required")]
    if len(code.encode("utf-8")) > MAX_CODE_BYTES:
        return [("code", "must be at most 1 MB")]
    return []


def validate_code_on_engine(engine: EngineClient, code: str, field: str = "code") -> None:
    """Raises INVALID_ARGUMENT listing the engine's problems, UNAVAILABLE if it can't be asked."""
    try:
        problems = engine.validate_strategy(code)
    except EngineUnavailable as exc:
        raise Unavailable(f"strategy code cannot be validated now (engine unavailable), try again later: {exc}") \
            from None
    except EngineRejected as exc:
        raise Unavailable(f"strategy code cannot be validated now: {exc}") from None
    if problems:
        raise InvalidArgument(
            [(field, f"line {p.line}: {p.message}" if p.line else p.message) for p in problems])


class Strategies:
    def __init__(self, session_factory: sessionmaker[Session], engine: EngineClient) -> None:
        self.sessions = session_factory
        self.engine = engine

    @staticmethod
    def framework() -> tuple[str, str]:
        return templates.framework_code(), templates.FRAMEWORK_DESCRIPTION

    def create(self, who: Principal, data: StrategyInput) -> Strategy:
        if data.is_template and not who.is_admin:
            raise PermissionDenied("only administrators may publish templates")
        violations = _check_fields(data.name, data.description, data.category, data.params_schema)
        violations += check_code_locally(data.code)
        if violations:
            raise InvalidArgument(violations)
        validate_code_on_engine(self.engine, data.code)
        now = utcnow()
        with transaction(self.sessions) as session:
            return StrategyRepository(session, who.user_id).add(Strategy(
                user_id=who.user_id, name=data.name.strip(), code=data.code, description=data.description,
                category=data.category.strip(), params_schema=data.params_schema,
                is_template=data.is_template, created_at=now, updated_at=now))

    def list_strategies(self, who: Principal, page: Page, *, category: str = "", search: str = "",
                        is_template: bool | None = None) -> tuple[list[Strategy], int]:
        with self.sessions() as session:
            return StrategyRepository(session, who.user_id).list_visible(
                page, category=category.strip(), search=search.strip(), is_template=is_template)

    def list_templates(self, who: Principal, page: Page, category: str = "") -> tuple[list[Strategy], int]:
        with self.sessions() as session:
            return StrategyRepository(session, who.user_id).list_templates(page, category.strip())

    def get(self, who: Principal, strategy_id: int) -> Strategy:
        with self.sessions() as session:
            strategy = StrategyRepository(session, who.user_id).get_visible(strategy_id)
        if strategy is None:
            raise NotFound(f"strategy {strategy_id} not found")
        return strategy

    @staticmethod
    def may_change(who: Principal, strategy: Strategy) -> bool:
        """The owner changes (updates, deletes) a strategy; a template only the administrator who
        published it, or any administrator for the built-in ones."""
        if strategy.is_template:
            return who.is_admin and (strategy.user_id in (SYSTEM_USER_ID, who.user_id))
        return strategy.user_id == who.user_id

    @classmethod
    def _check_owner(cls, who: Principal, strategy: Strategy) -> None:
        if cls.may_change(who, strategy):
            return
        if strategy.is_template:
            raise PermissionDenied("only the administrator who published this template may change it")
        raise PermissionDenied("only the owner may change this strategy")  # not visible today: a guard

    def update(self, who: Principal, strategy_id: int, patch: StrategyPatch) -> Strategy:
        violations = _check_fields(patch.name, patch.description, patch.category, patch.params_schema)
        if patch.code is not None:
            violations += check_code_locally(patch.code)
        if violations:
            raise InvalidArgument(violations)
        # Ownership first (cheap, and a non-owner must not learn whether their code is valid).
        self._check_owner(who, self.get(who, strategy_id))
        if patch.code is not None:
            validate_code_on_engine(self.engine, patch.code)
        with transaction(self.sessions) as session:
            repo = StrategyRepository(session, who.user_id)
            strategy = repo.get_visible(strategy_id)
            if strategy is None:
                raise NotFound(f"strategy {strategy_id} not found")
            self._check_owner(who, strategy)
            if patch.name is not None:
                strategy.name = patch.name.strip()
            if patch.code is not None:
                strategy.code = patch.code
            if patch.description is not None:
                strategy.description = patch.description
            if patch.category is not None:
                strategy.category = patch.category.strip()
            if patch.params_schema is not None:
                strategy.params_schema = patch.params_schema
            strategy.updated_at = utcnow()
            session.flush()
            return strategy

    def delete(self, who: Principal, strategy_id: int) -> None:
        with transaction(self.sessions) as session:
            repo = StrategyRepository(session, who.user_id)
            strategy = repo.get_visible(strategy_id)
            if strategy is None:
                raise NotFound(f"strategy {strategy_id} not found")
            self._check_owner(who, strategy)
            repo.delete(strategy)
