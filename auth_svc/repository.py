"""Every SQL statement auth_svc runs (SQLAlchemy 2 typed ORM). No rules here: the domain
module decides, this module only reads and writes. Queries on user-owned rows always take the
owner's id, so a caller can never reach another user's keys or tokens by id alone."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from auth_svc.models import ApiKey, LoginThrottle, RefreshToken, SigningKey, User
from services.paging import Page, count_rows, escape_like, ordered

# --- users -------------------------------------------------------------------------------


def get_user(session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def get_user_by_username(session: Session, username: str) -> User | None:
    return session.scalars(select(User).where(User.username == username)).one_or_none()


def add_user(session: Session, user: User) -> User:
    session.add(user)
    session.flush()  # assigns the id; raises IntegrityError on a duplicate username
    return user


USER_ORDER = {"id": User.id, "username": User.username, "email": User.email, "is_active": User.is_active,
              "created_at": User.created_at, "updated_at": User.updated_at}


def list_users(session: Session, page: Page, *, is_active: bool | None = None, is_admin: bool | None = None,
               username: str = "") -> tuple[list[User], int]:
    stmt = select(User)
    if is_active is not None:
        stmt = stmt.where(User.is_active.is_(is_active))
    if is_admin is not None:
        stmt = stmt.where(User.is_admin.is_(is_admin))
    if username:
        stmt = stmt.where(User.username.ilike(f"%{escape_like(username)}%", escape="\\"))
    total = count_rows(session, stmt)
    stmt = ordered(stmt, USER_ORDER[page.order_by], User.id, page.descending)
    return list(session.scalars(stmt.offset(page.skip).limit(page.limit))), total


def delete_user(session: Session, user: User) -> None:
    # Their keys and refresh tokens go too (ON DELETE CASCADE in PostgreSQL; explicit for
    # SQLite connections where foreign keys might be off).
    session.execute(delete(ApiKey).where(ApiKey.user_id == user.id))
    session.execute(delete(RefreshToken).where(RefreshToken.user_id == user.id))
    session.delete(user)
    session.flush()


# --- refresh tokens ----------------------------------------------------------------------


def add_refresh_token(session: Session, token: RefreshToken) -> None:
    session.add(token)
    session.flush()


def get_refresh_token_by_hash(session: Session, token_hash: str) -> RefreshToken | None:
    return session.scalars(select(RefreshToken).where(RefreshToken.token_hash == token_hash)).one_or_none()


def mark_refresh_token_used(session: Session, token_id: int, now: datetime) -> bool:
    """Atomically claims a fresh token: True only for the one caller that flipped it, so two
    concurrent refreshes with the same token cannot both succeed (the loser is a reuse)."""
    result = session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == token_id, RefreshToken.used_at.is_(None), RefreshToken.revoked_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def revoke_refresh_family(session: Session, user_id: int, family_id: str, now: datetime) -> int:
    result = session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.family_id == family_id,
               RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def revoke_user_refresh_tokens(session: Session, user_id: int, now: datetime) -> int:
    result = session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def delete_expired_refresh_tokens(session: Session, before: datetime) -> int:
    result = session.execute(delete(RefreshToken).where(RefreshToken.expires_at < before))
    return int(result.rowcount)  # type: ignore[attr-defined]


# --- API keys ----------------------------------------------------------------------------


def add_api_key(session: Session, api_key: ApiKey) -> ApiKey:
    session.add(api_key)
    session.flush()
    return api_key


def get_api_key_by_key(session: Session, key: str) -> ApiKey | None:
    return session.scalars(select(ApiKey).where(ApiKey.key == key)).one_or_none()


def get_user_api_key(session: Session, user_id: int, key_id: int) -> ApiKey | None:
    return session.scalars(select(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == user_id)).one_or_none()


def _active_keys_filter(user_id: int, now: datetime):  # type: ignore[no-untyped-def]
    return (ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None),
            or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now))


def list_active_api_keys(session: Session, user_id: int, now: datetime) -> Sequence[ApiKey]:
    return session.scalars(
        select(ApiKey).where(*_active_keys_filter(user_id, now)).order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
    ).all()


def count_active_api_keys(session: Session, user_id: int, now: datetime) -> int:
    return int(session.scalar(select(func.count()).select_from(ApiKey).where(*_active_keys_filter(user_id, now)))
               or 0)


def touch_api_key(session: Session, key_id: int, now: datetime, stale_before: datetime) -> None:
    """Sets last_used_at unless another request already did within the staleness window."""
    session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < stale_before))
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )


# --- signing keys ------------------------------------------------------------------------


def list_signing_keys(session: Session) -> Sequence[SigningKey]:
    """Newest first (the first one signs)."""
    return session.scalars(select(SigningKey).order_by(SigningKey.created_at.desc(), SigningKey.kid.desc())).all()


def add_signing_key(session: Session, key: SigningKey) -> None:
    session.add(key)
    session.flush()


def delete_signing_keys(session: Session, kids: Sequence[str]) -> None:
    if kids:
        session.execute(delete(SigningKey).where(SigningKey.kid.in_(kids)))


# --- login throttling --------------------------------------------------------------------


def get_throttles(session: Session, scopes: Sequence[str], *, for_update: bool = False) -> dict[str, LoginThrottle]:
    stmt = select(LoginThrottle).where(LoginThrottle.scope.in_(scopes))
    if for_update:  # PostgreSQL: serialise concurrent failures on the same scope (SQLite ignores it)
        stmt = stmt.with_for_update()
    return {row.scope: row for row in session.scalars(stmt)}


def add_throttle(session: Session, row: LoginThrottle) -> None:
    session.add(row)
    session.flush()


def delete_throttle(session: Session, scope: str) -> None:
    session.execute(delete(LoginThrottle).where(LoginThrottle.scope == scope))


def delete_stale_throttles(session: Session, before: datetime) -> int:
    result = session.execute(
        delete(LoginThrottle).where(
            LoginThrottle.last_failure_at < before,
            or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until < before),
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def delete_expired_refresh_tokens_of(session: Session, user_id: int, before: datetime) -> int:
    result = session.execute(
        delete(RefreshToken).where(RefreshToken.user_id == user_id, RefreshToken.expires_at < before))
    return int(result.rowcount)  # type: ignore[attr-defined]
