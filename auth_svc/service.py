"""The auth domain: every decision auth_svc makes, in plain Python (no gRPC).

Errors are the shared `services.errors` exceptions; the server's interceptor maps them to
status codes. Failures of credentials never say whether a username exists.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from auth_svc import repository as repo
from auth_svc.keys import KeyRing
from auth_svc.models import ApiKey, RefreshToken, User
from auth_svc.passwords import Passwords
from auth_svc.settings import AuthSettings
from auth_svc.telemetry import count_logins
from auth_svc.throttle import Throttle
from services.db import transaction
from services.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)
from services.paging import Page, parse_page
from services.principal import Credentials, Principal
from services.tokens import ALGORITHM, verify_access_token

log = logging.getLogger("zquant.auth")

USERNAME_RE = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
# Light e-mail check: one @, no whitespace/control characters, a dot in the domain.
EMAIL_RE = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+")
API_KEY_RE = re.compile(r"zqk_[A-Za-z0-9_-]{16,60}")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
MAX_PASSWORD_BYTES = 1024
MIN_NEW_PASSWORD_BYTES = 8
MAX_TOKEN_CHARS = 256  # our refresh tokens and API secrets are 43 characters
MAX_API_KEY_DAYS = 3650
API_KEY_TOUCH_SECONDS = 60  # last_used_at is written at most once a minute per key
BAD_LOGIN = "invalid username or password"
_DUMMY_SECRET_HASH = hashlib.sha256(b"no such key").hexdigest()


@dataclass(frozen=True)
class UserView:
    id: int
    username: str
    email: str
    is_active: bool
    is_admin: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, u: User) -> UserView:
        return cls(u.id, u.username, u.email, u.is_active, u.is_admin, u.created_at, u.updated_at)


@dataclass(frozen=True)
class UserChanges:
    """UpdateUser: None means "leave as is"."""

    is_active: bool | None = None
    email: str | None = None
    password: str | None = None
    is_admin: bool | None = None


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int


@dataclass(frozen=True)
class ApiKeyView:
    id: int
    key: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    is_service: bool = False

    @classmethod
    def of(cls, k: ApiKey) -> ApiKeyView:
        return cls(k.id, k.key, k.name, k.created_at, k.last_used_at, k.expires_at, bool(k.is_service))


@dataclass(frozen=True)
class NewApiKey:
    key: ApiKeyView
    secret: str  # shown once, never stored


@dataclass(frozen=True)
class PublicKey:
    kid: str
    alg: str
    public_key_pem: str


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --- input rules ---------------------------------------------------------------------------


def username_violation(username: str) -> str | None:
    if not username:
        return "required"
    if len(username) > 64:
        return "at most 64 characters"
    if not USERNAME_RE.fullmatch(username):
        return "only letters, digits, '_', '-', '.', '@'"
    return None


def password_violation(password: str, *, new: bool) -> str | None:
    # Length is checked in bytes BEFORE any hashing: argon2 over megabytes is a DoS lever.
    size = len(password.encode("utf-8", "surrogatepass"))
    if size == 0:
        return "required"
    if size > MAX_PASSWORD_BYTES:
        return f"at most {MAX_PASSWORD_BYTES} bytes"
    if new and size < MIN_NEW_PASSWORD_BYTES:
        return f"at least {MIN_NEW_PASSWORD_BYTES} bytes"
    if "\x00" in password:
        return "must not contain NUL characters"
    return None


def email_violation(email: str) -> str | None:
    if not email:
        return None
    if len(email) > 254:
        return "at most 254 characters"
    if not EMAIL_RE.fullmatch(email):
        return "not an e-mail address"
    return None


class AuthService:
    def __init__(self, session_factory: sessionmaker[Session], settings: AuthSettings, keys: KeyRing,
                 passwords: Passwords | None = None, *, now: Callable[[], datetime] = _utcnow) -> None:
        self._sf = session_factory
        self.settings = settings
        self.keys = keys
        self.passwords = passwords or Passwords(
            time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism)
        self._now = now
        self.throttle = Throttle(session_factory, settings, now)

    # === tokens ===============================================================================

    @count_logins
    def login(self, username: str, password: str, client_ip: str = "") -> TokenPair:
        violations = [(f, v) for f, v in (("username", username_violation(username)),
                                          ("password", password_violation(password, new=False))) if v]
        if violations:
            raise InvalidArgument(violations)
        self.throttle.check(username, client_ip)
        with self._sf() as session:
            user = repo.get_user_by_username(session, username)
        if user is None:
            self.passwords.dummy_verify(password)  # same cost as a real check: timing says nothing
            self.throttle.record_failure(username, client_ip)
            raise Unauthenticated(BAD_LOGIN)
        result = self.passwords.verify(user.password_hash, password)
        if not result.ok:
            self.throttle.record_failure(username, client_ip)
            raise Unauthenticated(BAD_LOGIN)
        self.throttle.record_success(username)
        # Only after the password matched: a guesser must not learn the account is disabled.
        if not user.is_active:
            raise PermissionDenied("account disabled")
        with transaction(self._sf) as session:
            if result.new_hash:
                fresh = repo.get_user(session, user.id)
                if fresh is not None:
                    fresh.password_hash = result.new_hash
            now = self._now()
            repo.delete_expired_refresh_tokens_of(session, user.id, now)
            refresh = self._new_refresh_token(session, user.id, uuid.uuid4().hex, now)
        log.info("login", extra={"user_id": user.id})
        return self._pair(user, refresh)

    def refresh(self, refresh_token: str) -> TokenPair:
        if not refresh_token or len(refresh_token) > MAX_TOKEN_CHARS:
            raise Unauthenticated("invalid refresh token")
        token_hash = sha256_hex(refresh_token)
        now = self._now()
        outcome, user, new_token = "invalid", None, ""
        # Decide and write inside the transaction; raise after it committed, so a family
        # revocation on reuse is persisted even though the call fails.
        with transaction(self._sf) as session:
            row = repo.get_refresh_token_by_hash(session, token_hash)
            if row is not None:
                user = repo.get_user(session, row.user_id)
                if row.used_at is not None or row.revoked_at is not None:
                    outcome = "reuse"
                elif row.expires_at <= now:
                    outcome = "expired"
                elif user is None:
                    outcome = "invalid"
                elif not user.is_active:
                    outcome = "disabled"
                elif not repo.mark_refresh_token_used(session, row.id, now):
                    outcome = "reuse"  # a concurrent refresh won the race with the same token
                else:
                    new_token = self._new_refresh_token(session, row.user_id, row.family_id, now)
                    outcome = "ok"
                if outcome == "reuse":
                    revoked = repo.revoke_refresh_family(session, row.user_id, row.family_id, now)
                    log.warning("refresh token reuse: family revoked",
                                extra={"user_id": row.user_id, "family_id": row.family_id, "revoked": revoked})
        if outcome == "ok" and user is not None:
            return self._pair(user, new_token)
        if outcome == "disabled":
            raise PermissionDenied("account disabled")
        if outcome == "expired":
            raise Unauthenticated("refresh token expired")
        raise Unauthenticated("invalid refresh token")

    def logout(self, refresh_token: str) -> None:
        """Revokes the token's family. Idempotent, and silent about unknown tokens."""
        if not refresh_token or len(refresh_token) > MAX_TOKEN_CHARS:
            return
        with transaction(self._sf) as session:
            row = repo.get_refresh_token_by_hash(session, sha256_hex(refresh_token))
            if row is not None:
                repo.revoke_refresh_family(session, row.user_id, row.family_id, self._now())

    def _new_refresh_token(self, session: Session, user_id: int, family_id: str, now: datetime) -> str:
        token = secrets.token_urlsafe(32)  # 256 bits
        repo.add_refresh_token(session, RefreshToken(
            user_id=user_id, family_id=family_id, token_hash=sha256_hex(token), created_at=now,
            expires_at=now + timedelta(seconds=self.settings.refresh_ttl_seconds)))
        return token

    def _pair(self, user: User, refresh_token: str) -> TokenPair:
        return TokenPair(self.issue_access_token(user.id, user.username, user.is_admin, user.token_epoch),
                         refresh_token,
                         self.settings.access_ttl_seconds, self.settings.refresh_ttl_seconds)

    def issue_access_token(self, user_id: int, username: str, is_admin: bool, epoch: int = 0) -> str:
        key = self.keys.current()
        now = int(time.time())
        claims = {
            "iss": self.settings.issuer, "aud": self.settings.audience, "sub": str(user_id),
            "name": username, "adm": is_admin, "typ": "access", "jti": uuid.uuid4().hex,
            "iat": now, "nbf": now, "exp": now + self.settings.access_ttl_seconds, "ep": epoch,
        }
        return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})

    def signing_keys(self) -> list[PublicKey]:
        return [PublicKey(k.kid, ALGORITHM, k.public_key_pem) for k in self.keys.published()]

    # === authentication =======================================================================

    def authenticate(self, credentials: Credentials) -> Principal:
        if credentials.bearer_token:
            return self.authenticate_access_token(credentials.bearer_token)
        if credentials.api_key or credentials.api_secret:
            return self.authenticate_api_key(credentials.api_key, credentials.api_secret)
        raise Unauthenticated("credentials required")

    def authenticate_access_token(self, token: str) -> Principal:
        claims = verify_access_token(token, self.keys.public_key, issuer=self.settings.issuer,
                                     audience=self.settings.audience)
        with self._sf() as session:
            user = repo.get_user(session, claims.user_id)
        if user is None:
            raise Unauthenticated("invalid access token")
        if not user.is_active:
            raise PermissionDenied("account disabled")
        if claims.epoch < user.token_epoch:
            raise Unauthenticated("access token revoked (password changed or account disabled): log in again")
        # Name and admin flag from the database, not the token: a demotion applies at once.
        return Principal(user.id, user.username, user.is_admin, "jwt")

    def authenticate_api_key(self, key: str, secret: str) -> Principal:
        if not API_KEY_RE.fullmatch(key) or not secret or len(secret) > MAX_TOKEN_CHARS:
            raise Unauthenticated("invalid API key")
        now = self._now()
        with self._sf() as session:
            row = repo.get_api_key_by_key(session, key)
            user = repo.get_user(session, row.user_id) if row is not None else None
        # The secret is 256 random bits, so a fast hash is enough: nobody can brute-force
        # 2**256, and argon2 here would cost ~20 ms of CPU and 19 MiB per API request.
        # compare_digest (and a dummy comparison for unknown keys) keeps timing flat.
        matches = hmac.compare_digest(sha256_hex(secret), row.secret_hash if row else _DUMMY_SECRET_HASH)
        if row is None or user is None or not matches:
            raise Unauthenticated("invalid API key")
        if row.revoked_at is not None:
            raise Unauthenticated("API key revoked")
        if row.expires_at is not None and row.expires_at <= now:
            raise Unauthenticated("API key expired")
        if not user.is_active:
            raise PermissionDenied("account disabled")
        stale_before = now - timedelta(seconds=API_KEY_TOUCH_SECONDS)
        if row.last_used_at is None or row.last_used_at < stale_before:
            with transaction(self._sf) as session:
                repo.touch_api_key(session, row.id, now, stale_before)
        return Principal(user.id, user.username, user.is_admin, "api_key", is_service=row.is_service)

    # === users ================================================================================

    def get_user(self, actor: Principal) -> UserView:
        with self._sf() as session:
            user = repo.get_user(session, actor.user_id)
        if user is None:
            raise Unauthenticated("user no longer exists")
        return UserView.of(user)

    def create_user(self, actor: Principal, username: str, password: str, email: str = "",
                    is_admin: bool = False) -> UserView:
        _require_admin(actor)
        violations = [(f, v) for f, v in (("username", username_violation(username)),
                                          ("password", password_violation(password, new=True)),
                                          ("email", email_violation(email))) if v]
        if violations:
            raise InvalidArgument(violations)
        return self._insert_user(username, password, email, is_admin)

    def _insert_user(self, username: str, password: str, email: str, is_admin: bool) -> UserView:
        password_hash = self.passwords.hash(password)
        now = self._now()
        try:
            with transaction(self._sf) as session:
                if repo.get_user_by_username(session, username) is not None:
                    raise AlreadyExists(f"username {username!r} is taken")
                user = repo.add_user(session, User(
                    username=username, email=email, password_hash=password_hash, is_active=True,
                    is_admin=is_admin, created_at=now, updated_at=now))
        except IntegrityError:  # a concurrent create with the same name won
            raise AlreadyExists(f"username {username!r} is taken") from None
        log.info("user created", extra={"user_id": user.id, "is_admin": is_admin})
        return UserView.of(user)

    def list_users(self, actor: Principal, skip: int, limit: int, order_by: str, order: str, *,
                   is_active: bool | None = None, is_admin: bool | None = None,
                   username: str = "") -> tuple[list[UserView], int, Page]:
        """A page of users and the page applied (defaults filled in)."""
        _require_admin(actor)
        page = parse_page(skip, limit, order_by, order, repo.USER_ORDER.keys())
        with self._sf() as session:
            rows, total = repo.list_users(session, page, is_active=is_active, is_admin=is_admin,
                                          username=username.strip())
            return [UserView.of(u) for u in rows], total, page

    def get_user_by_id(self, actor: Principal, user_id: int) -> UserView:
        _require_admin(actor)
        with self._sf() as session:
            user = repo.get_user(session, user_id) if user_id > 0 else None
        if user is None:
            raise NotFound(f"user {user_id} not found")
        return UserView.of(user)

    def delete_user(self, actor: Principal, user_id: int) -> None:
        _require_admin(actor)
        if user_id == actor.user_id:
            raise FailedPrecondition("administrators cannot delete themselves")
        with transaction(self._sf) as session:
            user = repo.get_user(session, user_id) if user_id > 0 else None
            if user is None:
                raise NotFound(f"user {user_id} not found")
            repo.delete_user(session, user)
        log.info("user deleted", extra={"user_id": user_id, "by": actor.user_id})

    def update_user(self, actor: Principal, user_id: int, changes: UserChanges) -> UserView:
        _require_admin(actor)
        violations: list[tuple[str, str]] = []
        if user_id <= 0:
            violations.append(("user_id", "must be > 0"))
        if changes.email is not None and (v := email_violation(changes.email)):
            violations.append(("email", v))
        if changes.password is not None and (v := password_violation(changes.password, new=True)):
            violations.append(("password", v))
        if violations:
            raise InvalidArgument(violations)
        if user_id == actor.user_id and (changes.is_active is False or changes.is_admin is False):
            # Guard against the last admin locking everyone out by accident.
            raise FailedPrecondition("administrators cannot disable or demote themselves")
        password_hash = self.passwords.hash(changes.password) if changes.password is not None else None
        now = self._now()
        with transaction(self._sf) as session:
            user = repo.get_user(session, user_id)
            if user is None:
                raise NotFound(f"user {user_id} not found")
            if changes.email is not None:
                user.email = changes.email
            if changes.is_admin is not None:
                user.is_admin = changes.is_admin
            if changes.is_active is not None:
                user.is_active = changes.is_active
            if password_hash is not None:
                user.password_hash = password_hash
            if password_hash is not None or changes.is_active is False:
                # A new password or a disabled account ends every session at once: refresh
                # tokens are revoked, and access tokens of an earlier epoch are refused.
                repo.revoke_user_refresh_tokens(session, user_id, now)
                user.token_epoch += 1
            user.updated_at = now
        log.info("user updated", extra={"user_id": user_id, "by": actor.user_id,
                                        "fields": [k for k, v in vars(changes).items() if v is not None]})
        return UserView.of(user)

    def ensure_admin(self, username: str, password: str | None) -> str | None:
        """create-admin: creates the admin, or (re)applies `password` to it. Returns the
        generated password when one was made (the caller prints it once), else None."""
        if v := username_violation(username):
            raise InvalidArgument([("ZQ_ADMIN_USERNAME", v)])
        if password is not None and (v := password_violation(password, new=True)):
            raise InvalidArgument([("ZQ_ADMIN_PASSWORD", v)])
        with self._sf() as session:
            existing = repo.get_user_by_username(session, username)
        if existing is None:
            generated = None
            if password is None:
                generated = password = secrets.token_urlsafe(18)  # 144 bits
            self._insert_user(username, password, "", True)
            return generated
        if password is not None:
            new_hash = self.passwords.hash(password)
            with transaction(self._sf) as session:
                user = repo.get_user(session, existing.id)
                assert user is not None
                user.password_hash, user.is_admin, user.is_active = new_hash, True, True
                user.updated_at = self._now()
                repo.revoke_user_refresh_tokens(session, user.id, self._now())
                user.token_epoch += 1
        return None

    def ensure_service_key(self, username: str, current_key: str = "", current_secret: str = "") -> NewApiKey | None:
        """Credentials one service presents to another (task_svc → engine_svc), which runs
        work for users who are not online. `username` is a non-admin account whose password
        nobody knows; it authenticates only with API keys. Returns a new key, or None when the
        current pair still authenticates as that account (re-running is safe)."""
        if v := username_violation(username):
            raise InvalidArgument([("username", v)])
        if current_key and current_secret:
            try:
                current = self.authenticate_api_key(current_key, current_secret)
            except (Unauthenticated, PermissionDenied):
                current = None  # revoked, expired or from another database: issue a new one
            if current is not None and current.username == username:
                if not current.is_service:  # made before service keys existed: it is one
                    with transaction(self._sf) as session:
                        row = repo.get_api_key_by_key(session, current_key)
                        if row is not None:
                            row.is_service = True
                return None
        with self._sf() as session:
            existing = repo.get_user_by_username(session, username)
        if existing is None:
            view = self._insert_user(username, secrets.token_urlsafe(32), "", False)
            user_id, is_admin = view.id, view.is_admin
        else:
            if not existing.is_active:
                raise PermissionDenied(f"service account {username!r} is disabled")
            user_id, is_admin = existing.id, existing.is_admin
        return self.create_api_key(Principal(user_id, username, is_admin, "service"), "service credential",
                                   is_service=True)

    # === API keys =============================================================================

    def list_api_keys(self, actor: Principal) -> list[ApiKeyView]:
        with self._sf() as session:
            return [ApiKeyView.of(k) for k in repo.list_active_api_keys(session, actor.user_id, self._now())]

    def create_api_key(self, actor: Principal, name: str, expires_in_days: int = 0, *,
                       is_service: bool = False) -> NewApiKey:
        violations: list[tuple[str, str]] = []
        if not name.strip():
            # {"name": null} arrives as "" (proto3 strings have no null): a key needs a label.
            violations.append(("name", "is required (1–100 characters)"))
        elif len(name) > 100:
            violations.append(("name", "at most 100 characters"))
        elif CONTROL_RE.search(name):
            violations.append(("name", "must not contain control characters"))
        if not 0 <= expires_in_days <= MAX_API_KEY_DAYS:
            violations.append(("expires_in_days", f"between 0 and {MAX_API_KEY_DAYS}"))
        if violations:
            raise InvalidArgument(violations)
        now = self._now()
        secret = secrets.token_urlsafe(32)  # 256 bits
        with transaction(self._sf) as session:
            if repo.count_active_api_keys(session, actor.user_id, now) >= self.settings.max_api_keys_per_user:
                raise ResourceExhausted(
                    f"at most {self.settings.max_api_keys_per_user} active API keys; revoke one first")
            row = repo.add_api_key(session, ApiKey(
                user_id=actor.user_id, key="zqk_" + secrets.token_urlsafe(18), secret_hash=sha256_hex(secret),
                name=name, created_at=now, is_service=is_service,
                expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None))
        log.info("api key created", extra={"user_id": actor.user_id, "key_id": row.id})
        return NewApiKey(ApiKeyView.of(row), secret)

    def revoke_api_key(self, actor: Principal, key_id: int) -> None:
        with transaction(self._sf) as session:
            row = repo.get_user_api_key(session, actor.user_id, key_id)  # scoped to the caller
            if row is None or row.revoked_at is not None:
                raise NotFound(f"API key {key_id} not found")
            row.revoked_at = self._now()
        log.info("api key revoked", extra={"user_id": actor.user_id, "key_id": key_id})

    def set_api_key_service(self, actor: Principal, user_id: int, key_id: int, is_service: bool) -> ApiKeyView:
        """Admin: mark a user's key as a service key (it may then call engine_svc's run and
        validate RPCs directly), or unmark it. Takes effect within ZQ_AUTH_CACHE_SECONDS."""
        _require_admin(actor)
        with transaction(self._sf) as session:
            row = repo.get_user_api_key(session, user_id, key_id)
            if row is None or row.revoked_at is not None:
                raise NotFound(f"API key {key_id} of user {user_id} not found")
            row.is_service = is_service
            view = ApiKeyView.of(row)
        log.info("api key service flag set", extra={"user_id": user_id, "key_id": key_id,
                                                    "is_service": is_service, "by": actor.user_id})
        return view

    # === housekeeping =========================================================================

    def purge_expired(self) -> None:
        with transaction(self._sf) as session:
            repo.delete_expired_refresh_tokens(session, self._now())
        self.throttle.purge()


def _require_admin(actor: Principal) -> None:
    if not actor.is_admin:
        raise PermissionDenied("administrator rights required")
