"""Who is calling: set by the auth interceptor, read by servicers with `current_principal()`."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from services.errors import PermissionDenied, Unauthenticated


@dataclass(frozen=True)
class Principal:
    user_id: int
    username: str
    is_admin: bool
    auth_method: str  # "jwt" or "api_key"
    # Authenticated with a service key (task_svc's own, or an API key an admin marked): may call
    # engine_svc's run and validate RPCs. Never true for a user's JWT.
    is_service: bool = False


@dataclass(frozen=True)
class Credentials:
    """What the client presented; at most one of the two forms is used."""

    bearer_token: str = ""
    api_key: str = ""
    api_secret: str = ""

    @classmethod
    def from_metadata(cls, metadata: tuple[tuple[str, str | bytes], ...] | None) -> Credentials:
        values: dict[str, str] = {}
        for key, value in metadata or ():
            if key in ("authorization", "x-api-key", "x-api-secret") and isinstance(value, str):
                values[key] = value.strip()
        auth = values.get("authorization", "")
        token = ""
        if auth:
            scheme, _, rest = auth.partition(" ")
            if scheme.lower() != "bearer" or not rest.strip():
                raise Unauthenticated("authorization header must be 'Bearer <token>'")
            token = rest.strip()
        key, secret = values.get("x-api-key", ""), values.get("x-api-secret", "")
        if not token and bool(key) != bool(secret):
            raise Unauthenticated("x-api-key and x-api-secret must be given together")
        return cls(bearer_token=token, api_key=key if not token else "", api_secret=secret if not token else "")

    @property
    def present(self) -> bool:
        return bool(self.bearer_token or self.api_key)


_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)


def set_principal(principal: Principal | None) -> contextvars.Token[Principal | None]:
    return _principal.set(principal)


def reset_principal(token: contextvars.Token[Principal | None]) -> None:
    _principal.reset(token)


def current_principal() -> Principal:
    principal = _principal.get()
    if principal is None:
        raise Unauthenticated("credentials required")
    return principal


def require_service() -> Principal:
    """For RPCs that only other services may call (engine_svc's run and validate RPCs)."""
    principal = current_principal()
    if not principal.is_service:
        raise PermissionDenied("this RPC is for service principals only: call it with a service key "
                               "(an API key an administrator marked as a service key)")
    return principal
