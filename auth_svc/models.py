"""auth_svc's tables (SQLAlchemy 2 typed ORM on auth_svc's own DeclarativeBase).

Every timestamp is UTC. `UTCDateTime` stores it as TIMESTAMPTZ on PostgreSQL and as naive UTC
text on SQLite (which has no time zone type), and always hands back an aware datetime, so
domain code compares aware datetimes only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Dialect, ForeignKey, Integer, String, Text, TypeDecorator
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        # SQLite keeps text: store naive UTC so string comparison orders correctly.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class AuthBase(DeclarativeBase):
    """auth_svc's own declarative base: its metadata is exactly the auth tables."""


Base = AuthBase  # the name migrations/env.py imports


class User(AuthBase):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    email: Mapped[str] = mapped_column(String(254), nullable=False, default="")
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # Bumped by a password change or a disable: access tokens carry the epoch they were issued
    # in ("ep") and older ones are refused, so a reset ends sessions at once, not at token expiry.
    token_epoch: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class RefreshToken(AuthBase):
    """One refresh token. Only its sha256 is stored: the token is 256 random bits, so a plain
    hash is irreversible and a DB leak yields nothing usable. `family_id` ties every token
    rotated from one login together, so reuse of any of them can revoke the whole chain."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False)
    family_id: Mapped[str] = mapped_column(String(32), index=True, nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiKey(AuthBase):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False)
    key: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A service key (a service's own credential, or marked by an administrator): its principal
    # may call engine_svc's run and validate RPCs.
    is_service: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


class SigningKey(AuthBase):
    """An Ed25519 key pair that signs access tokens. Kept in the DB so every replica signs and
    publishes the same keys; the private half is PKCS#8 PEM, encrypted when
    ZQ_AUTH_KEYS_PASSPHRASE is set."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    private_key_pem: Mapped[str] = mapped_column(Text, nullable=False)
    public_key_pem: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)


class LoginThrottle(AuthBase):
    """Failed-login counter for one scope: "user:<username>" or "ip:<address>"."""

    __tablename__ = "login_throttle"

    scope: Mapped[str] = mapped_column(String(128), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_failure_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
