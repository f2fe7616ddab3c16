"""zquant's role ids, for its clients: the original's seed data made 1 admin, 2 researcher (runs
backtests, manages strategies and API keys) and 3 read-only user. Here a user is an
administrator or not, which are zquant's roles 1 and 2; a read-only user does not exist."""

from __future__ import annotations

from services.errors import InvalidArgument

ADMIN, RESEARCHER = 1, 2


def role_id(is_admin: bool) -> int:
    return ADMIN if is_admin else RESEARCHER


def admin_from_role(role: int | None, is_admin: bool | None) -> bool | None:
    """Whether the user is an administrator, from `role` (zquant clients) or `is_admin`; None
    when neither is given. Both given must agree."""
    if role is None:
        return is_admin
    if role not in (ADMIN, RESEARCHER):
        raise InvalidArgument.field("role_id", f"must be {ADMIN} (admin) or {RESEARCHER} (researcher); got {role}")
    if is_admin is not None and is_admin != (role == ADMIN):
        raise InvalidArgument.field("is_admin", f"contradicts role_id {role}")
    return role == ADMIN


def check_password_confirm(password: str, confirm: str) -> None:
    """zquant's forms send the password twice; when the copy is there it must match."""
    if confirm and confirm != password:
        raise InvalidArgument.field("password_confirm", "does not match password")
