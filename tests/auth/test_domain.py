"""Domain rules of auth_svc (service, throttle, passwords) on SQLite and PostgreSQL, no gRPC."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from auth_svc.app import AuthApp, create_app
from auth_svc.passwords import Passwords
from auth_svc.service import UserChanges, UserView
from services.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)
from services.principal import Credentials, Principal
from tests.auth.helpers import DEFAULT_PASSWORD, FAST


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def app(db_url: str, clock: Clock) -> Iterator[AuthApp]:
    settings = dataclasses.replace(FAST, max_failures_per_ip=6, max_failures_per_user=3, lock_base_seconds=1.0,
                                   lock_max_seconds=8.0, failure_window_seconds=60.0)
    app = create_app(db_url, settings, now=clock)
    app.service.keys.ensure_key()
    yield app
    app.engine.dispose()


ADMIN = Principal(user_id=0, username="root", is_admin=True, auth_method="jwt")  # an acting admin


def make_user(app: AuthApp, password: str = DEFAULT_PASSWORD, **kw: object) -> UserView:
    return app.service.create_user(ADMIN, f"u_{secrets.token_hex(4)}", password, **kw)  # type: ignore[arg-type]


def as_principal(user: UserView) -> Principal:
    return Principal(user.id, user.username, user.is_admin, "jwt")


# --- login -------------------------------------------------------------------------------------


def test_login_returns_working_access_token(app: AuthApp) -> None:
    user = make_user(app)
    pair = app.service.login(user.username, "password-123", "10.0.0.1")
    principal = app.service.authenticate(Credentials(bearer_token=pair.access_token))
    assert principal == Principal(user.id, user.username, False, "jwt")
    assert pair.expires_in == 1800 and pair.refresh_expires_in == 14 * 24 * 3600
    assert len(pair.refresh_token) >= 43  # 256 bits, base64url


def test_wrong_password_and_unknown_user_give_the_same_answer(app: AuthApp) -> None:
    user = make_user(app)
    with pytest.raises(Unauthenticated) as wrong:
        app.service.login(user.username, "not-the-password", "10.0.0.2")
    with pytest.raises(Unauthenticated) as unknown:
        app.service.login("nobody_" + secrets.token_hex(3), "not-the-password", "10.0.0.2")
    assert wrong.value.message == unknown.value.message == "invalid username or password"


@pytest.mark.parametrize(("username", "password", "field"), [
    ("", "x", "username"), ("a" * 65, "x", "username"), ("bad name", "x", "username"),
    ("x' OR '1'='1", "x", "username"), ("ok", "", "password"), ("ok", "x" * 1025, "password"),
    ("ok", "é" * 513, "password"),  # 1026 bytes in UTF-8: the limit is in bytes
    ("ok", "pass\x00word", "password"),
])
def test_login_input_rules(app: AuthApp, username: str, password: str, field: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        app.service.login(username, password, "")
    assert [f for f, _ in exc.value.violations] == [field]


def test_disabled_user_cannot_log_in_but_wrong_password_does_not_reveal_it(app: AuthApp) -> None:
    user = make_user(app)
    app.service.update_user(ADMIN, user.id, UserChanges(is_active=False))
    with pytest.raises(PermissionDenied):
        app.service.login(user.username, "password-123", "")
    with pytest.raises(Unauthenticated):
        app.service.login(user.username, "wrong-password", "")


# --- refresh tokens ----------------------------------------------------------------------------


def test_refresh_rotates_and_old_token_is_single_use(app: AuthApp) -> None:
    user = make_user(app)
    first = app.service.login(user.username, "password-123", "")
    second = app.service.refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    third = app.service.refresh(second.refresh_token)
    assert app.service.authenticate_access_token(third.access_token).user_id == user.id


def test_reuse_of_a_used_refresh_token_revokes_the_whole_family(app: AuthApp) -> None:
    user = make_user(app)
    first = app.service.login(user.username, "password-123", "")
    other_session = app.service.login(user.username, "password-123", "")  # a different family
    second = app.service.refresh(first.refresh_token)
    with pytest.raises(Unauthenticated):
        app.service.refresh(first.refresh_token)  # theft detected
    with pytest.raises(Unauthenticated):
        app.service.refresh(second.refresh_token)  # the legitimate successor died with it
    assert app.service.refresh(other_session.refresh_token).refresh_token  # other logins unaffected


def test_logout_revokes_the_family_and_is_idempotent(app: AuthApp) -> None:
    user = make_user(app)
    first = app.service.login(user.username, "password-123", "")
    second = app.service.refresh(first.refresh_token)
    app.service.logout(first.refresh_token)  # an already-used member still ends the session
    app.service.logout(first.refresh_token)
    app.service.logout("garbage")
    with pytest.raises(Unauthenticated):
        app.service.refresh(second.refresh_token)


def test_refresh_token_expiry(app: AuthApp, clock: Clock) -> None:
    user = make_user(app)
    pair = app.service.login(user.username, "password-123", "")
    clock.advance(FAST.refresh_ttl_seconds + 1)
    try:
        with pytest.raises(Unauthenticated, match="expired"):
            app.service.refresh(pair.refresh_token)
    finally:
        clock.advance(-(FAST.refresh_ttl_seconds + 1))


def test_refresh_for_disabled_user_is_denied_and_password_reset_revokes(app: AuthApp) -> None:
    user = make_user(app)
    pair = app.service.login(user.username, "password-123", "")
    app.service.update_user(ADMIN, user.id, UserChanges(password="a-new-password"))
    with pytest.raises(Unauthenticated):
        app.service.refresh(pair.refresh_token)
    pair = app.service.login(user.username, "a-new-password", "")
    app.service.update_user(ADMIN, user.id, UserChanges(is_active=False))
    with pytest.raises(Unauthenticated):  # disabling revoked the refresh tokens too
        app.service.refresh(pair.refresh_token)
    with pytest.raises(PermissionDenied):
        app.service.authenticate_access_token(pair.access_token)  # still unexpired, still refused


def test_garbage_refresh_tokens(app: AuthApp) -> None:
    for token in ["", "x" * 10_000, "' OR 1=1 --", "\x00"]:
        with pytest.raises(Unauthenticated):
            app.service.refresh(token)


# --- throttling --------------------------------------------------------------------------------


def test_username_lock_applies_to_existing_and_unknown_users_alike(app: AuthApp, clock: Clock) -> None:
    user = make_user(app)
    ghost = "ghost_" + secrets.token_hex(3)
    for name in (user.username, ghost):
        for i in range(3):  # limit 3
            with pytest.raises(Unauthenticated):
                app.service.login(name, "wrong-password", f"10.1.{i}.1")
    for name, password in ((user.username, "password-123"), (ghost, "whatever-1")):
        with pytest.raises(ResourceExhausted, match=r"too many failed logins, retry in 1 s"):
            app.service.login(name, password, "10.9.9.9")  # even the right password is refused
    clock.advance(1.5)
    assert app.service.login(user.username, "password-123", "10.9.9.9").access_token
    # Success reset the username counter: one more failure does not lock again.
    with pytest.raises(Unauthenticated):
        app.service.login(user.username, "wrong-password", "10.9.9.9")
    assert app.service.login(user.username, "password-123", "10.9.9.9").access_token


def test_lock_grows_exponentially_and_is_capped(app: AuthApp, clock: Clock) -> None:
    name = "ghost_" + secrets.token_hex(3)
    waits = []
    for _ in range(8):
        try:
            app.service.login(name, "wrong-password", "")
        except ResourceExhausted as exc:
            waits.append(int(exc.message.split("retry in ")[1].split(" ")[0]))
            clock.advance(waits[-1])  # wait the lock out, then fail once more
            with pytest.raises(Unauthenticated):
                app.service.login(name, "wrong-password", "")
        except Unauthenticated:
            pass
    assert waits[:4] == [1, 2, 4, 8] and max(waits) == 8  # base 1 s, cap 8 s in this fixture


def test_ip_lock_spans_usernames(app: AuthApp, clock: Clock) -> None:
    ip = f"192.0.2.{secrets.randbelow(250) + 1}"
    for i in range(6):  # per-IP limit 6, each username below its own limit
        with pytest.raises(Unauthenticated):
            app.service.login(f"spray{i}_{secrets.token_hex(2)}", "wrong-password", ip)
    with pytest.raises(ResourceExhausted):
        app.service.login("another_" + secrets.token_hex(2), "wrong-password", ip)
    user = make_user(app)
    assert app.service.login(user.username, "password-123", "198.51.100.7").access_token  # other IPs fine
    clock.advance(2)


def test_quiet_window_resets_the_count(app: AuthApp, clock: Clock) -> None:
    name = "ghost_" + secrets.token_hex(3)
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            app.service.login(name, "wrong-password", "")
    clock.advance(61)  # window 60 s
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            app.service.login(name, "wrong-password", "")  # counts 1, 2: not locked


# --- users -------------------------------------------------------------------------------------


def test_admin_rules(app: AuthApp) -> None:
    user = make_user(app)
    plain = as_principal(user)
    with pytest.raises(PermissionDenied):
        app.service.create_user(plain, "someone_" + secrets.token_hex(2), "password-123")
    with pytest.raises(PermissionDenied):
        app.service.update_user(plain, user.id, UserChanges(is_admin=True))
    with pytest.raises(AlreadyExists):
        app.service.create_user(ADMIN, user.username, "password-123")
    with pytest.raises(NotFound):
        app.service.update_user(ADMIN, 999_999, UserChanges(email="a@b.co"))
    admin = as_principal(make_user(app, is_admin=True))
    with pytest.raises(FailedPrecondition):  # an admin cannot lock themselves out
        app.service.update_user(admin, admin.user_id, UserChanges(is_active=False))
    with pytest.raises(FailedPrecondition):
        app.service.update_user(admin, admin.user_id, UserChanges(is_admin=False))
    updated = app.service.update_user(ADMIN, user.id, UserChanges(email="", is_admin=True))
    assert updated.email == "" and updated.is_admin and updated.updated_at >= user.updated_at


@pytest.mark.parametrize(("kwargs", "fields"), [
    ({"username": "", "password": "password-123"}, ["username"]),
    ({"username": "ok_name", "password": "short"}, ["password"]),
    ({"username": "ok_name", "password": "p" * 1025}, ["password"]),
    ({"username": "bad/name", "password": "short", "email": "nope"}, ["username", "password", "email"]),
    ({"username": "ok_name", "password": "password-123", "email": "a@b.c" + "o" * 250}, ["email"]),
])
def test_create_user_validation(app: AuthApp, kwargs: dict, fields: list[str]) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidArgument) as exc:
        app.service.create_user(ADMIN, **kwargs)
    assert [f for f, _ in exc.value.violations] == fields


def test_ensure_admin(app: AuthApp) -> None:
    name = "boss_" + secrets.token_hex(3)
    generated = app.service.ensure_admin(name, None)
    assert generated and len(generated) >= 20
    assert app.service.login(name, generated, "").access_token
    assert app.service.ensure_admin(name, None) is None  # exists: nothing changes
    assert app.service.login(name, generated, "").access_token
    assert app.service.ensure_admin(name, "explicit-password") is None  # (re)applied
    with pytest.raises(Unauthenticated):
        app.service.login(name, generated, "")
    assert app.service.authenticate_access_token(
        app.service.login(name, "explicit-password", "").access_token).is_admin


# --- API keys ----------------------------------------------------------------------------------


def test_api_key_lifecycle(app: AuthApp, clock: Clock) -> None:
    owner, other = as_principal(make_user(app)), as_principal(make_user(app))
    created = app.service.create_api_key(owner, "research", 0)
    assert created.key.key.startswith("zqk_") and len(created.secret) >= 43
    p = app.service.authenticate(Credentials(api_key=created.key.key, api_secret=created.secret))
    assert (p.user_id, p.auth_method) == (owner.user_id, "api_key")
    with pytest.raises(Unauthenticated):
        app.service.authenticate_api_key(created.key.key, created.secret + "x")
    with pytest.raises(Unauthenticated):
        app.service.authenticate_api_key("zqk_" + "A" * 24, created.secret)
    with pytest.raises(NotFound):
        app.service.revoke_api_key(other, created.key.id)  # someone else's key
    assert app.service.authenticate_api_key(created.key.key, created.secret).user_id == owner.user_id
    app.service.revoke_api_key(owner, created.key.id)
    with pytest.raises(Unauthenticated, match="revoked"):
        app.service.authenticate_api_key(created.key.key, created.secret)
    assert app.service.list_api_keys(owner) == []


def test_api_key_listing_expiry_and_last_used(app: AuthApp, clock: Clock) -> None:
    owner = as_principal(make_user(app))
    short = app.service.create_api_key(owner, "short", 1)
    clock.advance(1)
    forever = app.service.create_api_key(owner, "forever", 0)
    listed = app.service.list_api_keys(owner)
    assert [k.name for k in listed] == ["forever", "short"]  # newest first
    assert listed[1].expires_at == short.key.created_at + timedelta(days=1)
    assert listed[0].last_used_at is None
    app.service.authenticate_api_key(forever.key.key, forever.secret)
    first_use = app.service.list_api_keys(owner)[0].last_used_at
    assert first_use == clock.now
    clock.advance(30)
    app.service.authenticate_api_key(forever.key.key, forever.secret)
    assert app.service.list_api_keys(owner)[0].last_used_at == first_use  # < 1 min: not rewritten
    clock.advance(31)
    app.service.authenticate_api_key(forever.key.key, forever.secret)
    assert app.service.list_api_keys(owner)[0].last_used_at == clock.now
    clock.advance(24 * 3600)
    with pytest.raises(Unauthenticated, match="expired"):
        app.service.authenticate_api_key(short.key.key, short.secret)
    assert [k.name for k in app.service.list_api_keys(owner)] == ["forever"]
    clock.advance(-(24 * 3600 + 62))


def test_api_key_of_disabled_user(app: AuthApp) -> None:
    user = make_user(app)
    created = app.service.create_api_key(as_principal(user), "ci", 0)
    app.service.update_user(ADMIN, user.id, UserChanges(is_active=False))
    with pytest.raises(PermissionDenied):
        app.service.authenticate_api_key(created.key.key, created.secret)


@pytest.mark.parametrize(("name", "days", "field"), [
    ("", 0, "name"), ("n" * 101, 0, "name"), ("tab\there", 0, "name"),
    ("ok", -1, "expires_in_days"), ("ok", 3651, "expires_in_days"),
])
def test_api_key_validation(app: AuthApp, name: str, days: int, field: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        app.service.create_api_key(as_principal(make_user(app)), name, days)
    assert [f for f, _ in exc.value.violations] == [field]


def test_api_key_quota(app: AuthApp) -> None:
    owner = as_principal(make_user(app))
    limited = dataclasses.replace(app.service.settings, max_api_keys_per_user=2)
    original, app.service.settings = app.service.settings, limited
    try:
        app.service.create_api_key(owner, "a", 0)
        app.service.create_api_key(owner, "b", 0)
        with pytest.raises(ResourceExhausted):
            app.service.create_api_key(owner, "c", 0)
    finally:
        app.service.settings = original


# --- passwords ---------------------------------------------------------------------------------


def test_password_hash_is_argon2id_and_rehashes_weaker_hashes() -> None:
    weak = Passwords(time_cost=1, memory_kib=1024)
    strong = Passwords(time_cost=2, memory_kib=2048)
    h = weak.hash("correct horse")
    assert h.startswith("$argon2id$") and "correct" not in h
    assert not strong.verify(h, "wrong horse").ok
    result = strong.verify(h, "correct horse")
    assert result.ok and result.new_hash is not None and "m=2048" in result.new_hash
    assert strong.verify(result.new_hash, "correct horse") == type(result)(True, None)
    assert not strong.verify("not a hash", "x").ok
    strong.dummy_verify("anything")  # must not raise


def test_login_upgrades_a_weak_stored_hash(app: AuthApp) -> None:
    user = make_user(app)
    weak = Passwords(time_cost=1, memory_kib=512)
    with app.service._sf.begin() as session:  # plant an old-parameter hash
        from auth_svc.models import User
        row = session.get(User, user.id)
        assert row is not None
        row.password_hash = weak.hash("password-123")
    app.service.login(user.username, "password-123", "")
    with app.service._sf() as session:
        from auth_svc.models import User
        row = session.get(User, user.id)
        assert row is not None and "m=1024" in row.password_hash


def test_concurrent_refresh_with_one_token_has_exactly_one_winner(app: AuthApp) -> None:
    from concurrent.futures import ThreadPoolExecutor

    user = make_user(app)
    pair = app.service.login(user.username, DEFAULT_PASSWORD, "")

    def attempt(_: int) -> str:
        try:
            app.service.refresh(pair.refresh_token)
            return "ok"
        except Unauthenticated:
            return "denied"

    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(attempt, range(6)))
    assert outcomes.count("ok") <= 1 and outcomes.count("ok") + outcomes.count("denied") == 6, outcomes
    assert outcomes.count("ok") == 1  # the first claim always succeeds


def test_a_services_own_key_is_a_service_key_and_an_older_one_is_marked(app: AuthApp) -> None:
    name = f"svc_{secrets.token_hex(4)}"
    created = app.service.ensure_service_key(name)
    assert created is not None and created.key.is_service
    principal = app.service.authenticate(Credentials(api_key=created.key.key, api_secret=created.secret))
    assert principal.is_service and principal.username == name
    # A key made for the account before service keys existed is marked when the service starts.
    owner = app.service.authenticate(Credentials(api_key=created.key.key, api_secret=created.secret))
    plain = app.service.create_api_key(Principal(owner.user_id, name, False, "service"), "old credential")
    assert not app.service.authenticate(Credentials(api_key=plain.key.key, api_secret=plain.secret)).is_service
    assert app.service.ensure_service_key(name, plain.key.key, plain.secret) is None
    assert app.service.authenticate(Credentials(api_key=plain.key.key, api_secret=plain.secret)).is_service
