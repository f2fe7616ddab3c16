"""services.auth_client.RemoteAuthenticator against the real auth_svc, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator

import jwt
import pytest
from zquant.auth.v1 import auth_pb2

from services.auth_client import RemoteAuthenticator
from services.errors import PermissionDenied, Unauthenticated, Unavailable
from services.principal import Credentials, Principal
from tests.auth.helpers import AuthServer, bearer, start_auth_server

pb = auth_pb2
CACHE = 0.5


@pytest.fixture
def remote(server: AuthServer) -> Iterator[RemoteAuthenticator]:
    ra = RemoteAuthenticator(server.addr, cache_seconds=CACHE)
    yield ra
    ra.close()


def test_jwt_is_verified_and_user_confirmed(server: AuthServer, remote: RemoteAuthenticator) -> None:
    user, password = server.new_user()
    token = server.login(user.username, password).access_token
    assert remote.authenticate(Credentials(bearer_token=token)) == Principal(user.id, user.username, False, "jwt")
    with pytest.raises(Unauthenticated):
        remote.authenticate(Credentials(bearer_token=token[:-4] + "AAAA"))
    with pytest.raises(Unauthenticated):
        remote.authenticate(Credentials())


def test_disabled_user_denied_after_cache_expiry(server: AuthServer, remote: RemoteAuthenticator) -> None:
    user, password = server.new_user()
    creds = Credentials(bearer_token=server.login(user.username, password).access_token)
    assert remote.authenticate(creds).user_id == user.id
    server.stub.UpdateUser(pb.UpdateUserRequest(user_id=user.id, is_active=False), metadata=server.admin_md())
    assert remote.authenticate(creds).user_id == user.id  # documented delay: still cached
    time.sleep(CACHE + 0.1)
    with pytest.raises(PermissionDenied):
        remote.authenticate(creds)
    with pytest.raises(PermissionDenied):  # the denial is cached too
        remote.authenticate(creds)


def test_revoked_api_key_denied_after_cache_expiry(server: AuthServer, remote: RemoteAuthenticator) -> None:
    user, password = server.new_user()
    md = bearer(server.login(user.username, password).access_token)
    key = server.stub.CreateApiKey(pb.CreateApiKeyRequest(name="remote"), metadata=md)
    creds = Credentials(api_key=key.access_key, api_secret=key.secret_key)
    p = remote.authenticate(creds)
    assert (p.user_id, p.auth_method) == (user.id, "api_key")
    with pytest.raises(Unauthenticated):
        remote.authenticate(Credentials(api_key=key.access_key, api_secret=key.secret_key + "x"))
    server.stub.RevokeApiKey(pb.RevokeApiKeyRequest(key_id=key.id), metadata=md)
    assert remote.authenticate(creds).user_id == user.id  # cached
    time.sleep(CACHE + 0.1)
    with pytest.raises(Unauthenticated):
        remote.authenticate(creds)
    # The raw secret is never a cache key.
    assert all(key.secret_key.encode() not in k for k in remote._api_keys)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_key_rotation_is_followed_and_unknown_kids_are_rate_limited(server: AuthServer) -> None:
    clock = FakeClock()
    ra = RemoteAuthenticator(server.addr, cache_seconds=CACHE, clock=clock)
    fetches = []
    real = ra._stub.GetSigningKeys

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        fetches.append(1)
        return real(*args, **kwargs)

    ra._stub.GetSigningKeys = counting  # type: ignore[method-assign]
    try:
        user, password = server.new_user()
        assert ra.authenticate(Credentials(bearer_token=server.login(user.username, password).access_token))
        assert len(fetches) == 1
        key = server.app.service.keys.current()
        for i in range(20):  # tokens naming kids nobody knows: at most one refetch per window
            forged = jwt.encode({"sub": "1"}, key.private_key, algorithm="EdDSA", headers={"kid": f"nope-{i}"})
            with pytest.raises(Unauthenticated):
                ra.authenticate(Credentials(bearer_token=forged))
        assert len(fetches) == 1
        new_kid = server.app.service.keys.rotate()
        token = server.login(user.username, password).access_token
        assert jwt.get_unverified_header(token)["kid"] == new_kid
        clock.t += 6  # past KEY_REFETCH_SECONDS
        assert ra.authenticate(Credentials(bearer_token=token)).user_id == user.id  # refetched on unknown kid
        assert len(fetches) == 2
        assert ra.authenticate(Credentials(bearer_token=token)).user_id == user.id
        assert len(fetches) == 2
    finally:
        ra.close()


def test_auth_svc_down_is_unavailable_and_local_checks_still_apply(db_url: str) -> None:
    own = start_auth_server(db_url)  # a private server we can stop
    user, password = own.new_user()
    token = own.login(user.username, password).access_token
    other, other_pw = own.new_user()
    other_token = own.login(other.username, other_pw).access_token
    ra = RemoteAuthenticator(own.addr, cache_seconds=30, timeout_seconds=1.0)
    try:
        assert ra.authenticate(Credentials(bearer_token=token)).user_id == user.id
        own.channel.close()
        own.running.stop(grace=0)
        # Cached user + locally verified token: still fine while auth_svc is down.
        assert ra.authenticate(Credentials(bearer_token=token)).user_id == user.id
        # Forged tokens are refused locally (401), not 503: the signature check needs no RPC.
        with pytest.raises(Unauthenticated):
            ra.authenticate(Credentials(bearer_token=token[:-4] + "AAAA"))
        # Anything that needs auth_svc: 503.
        with pytest.raises(Unavailable):
            ra.authenticate(Credentials(bearer_token=other_token))
        with pytest.raises(Unavailable):
            ra.authenticate(Credentials(api_key="zqk_" + "a" * 24, api_secret="s" * 43))
    finally:
        ra.close()
    ra2 = RemoteAuthenticator(own.addr, cache_seconds=1, timeout_seconds=1.0)
    try:
        with pytest.raises(Unavailable):  # cannot even fetch the signing keys
            ra2.authenticate(Credentials(bearer_token=token))
    finally:
        ra2.close()


def test_cache_zero_asks_every_time(server: AuthServer) -> None:
    ra = RemoteAuthenticator(server.addr, cache_seconds=0)
    try:
        user, password = server.new_user()
        creds = Credentials(bearer_token=server.login(user.username, password).access_token)
        assert ra.authenticate(creds).user_id == user.id
        server.stub.UpdateUser(pb.UpdateUserRequest(user_id=user.id, is_active=False), metadata=server.admin_md())
        with pytest.raises(PermissionDenied):
            ra.authenticate(creds)
    finally:
        ra.close()


def test_token_from_before_a_password_reset_never_rides_a_newer_cached_answer(
        server: AuthServer, remote: RemoteAuthenticator) -> None:
    user, password = server.new_user()
    old = Credentials(bearer_token=server.login(user.username, password).access_token)
    assert remote.authenticate(old).user_id == user.id
    server.stub.ResetPassword(pb.ResetPasswordRequest(user_id=user.id, password="another-password"),
                              metadata=server.admin_md())
    new = Credentials(bearer_token=server.login(user.username, "another-password").access_token)
    assert remote.authenticate(new).user_id == user.id  # cached under the new epoch
    time.sleep(CACHE + 0.1)  # the old epoch's entry (from before the reset) expires
    assert remote.authenticate(new).user_id == user.id  # asked again and cached: a fresh positive answer
    with pytest.raises(Unauthenticated):
        remote.authenticate(old)


def test_service_flag_reaches_the_principal(server: AuthServer, remote: RemoteAuthenticator) -> None:
    user, password = server.new_user()
    md = bearer(server.login(user.username, password).access_token)
    key = server.stub.CreateApiKey(pb.CreateApiKeyRequest(name="svc"), metadata=md)
    creds = Credentials(api_key=key.access_key, api_secret=key.secret_key)
    assert remote.authenticate(creds).is_service is False
    server.stub.SetApiKeyService(pb.SetApiKeyServiceRequest(user_id=user.id, key_id=key.id, is_service=True),
                                 metadata=server.admin_md())
    time.sleep(CACHE + 0.1)
    assert remote.authenticate(creds).is_service is True


def _count_authenticate(ra: RemoteAuthenticator) -> list[int]:
    calls: list[int] = []
    real = ra._stub.Authenticate

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*args, **kwargs)

    ra._stub.Authenticate = counting  # type: ignore[method-assign]
    return calls


def _refreshed(ra: RemoteAuthenticator) -> None:
    """Waits for the background refresh in flight (its own thread) to finish."""
    assert ra._refresher is not None
    ra._refresher.submit(lambda: None).result(timeout=10)


def test_cached_answers_need_no_call_and_unknown_ones_say_so(server: AuthServer) -> None:
    clock = FakeClock()
    ra = RemoteAuthenticator(server.addr, cache_seconds=2.0, clock=clock)
    try:
        user, password = server.new_user()
        creds = Credentials(bearer_token=server.login(user.username, password).access_token)
        assert ra.authenticate_cached(creds) is None  # no signing keys yet: the blocking path fetches them
        calls = _count_authenticate(ra)
        principal = ra.authenticate(creds)
        assert ra.authenticate_cached(creds) == principal
        assert len(calls) == 1
        with pytest.raises(Unauthenticated):  # a forged signature is refused as it stands
            ra.authenticate_cached(Credentials(bearer_token=creds.bearer_token[:-4] + "AAAA"))
        other, other_pw = server.new_user()
        assert ra.authenticate_cached(Credentials(bearer_token=server.login(other.username, other_pw).access_token)) \
            is None  # valid token, user not confirmed yet
        key = server.stub.CreateApiKey(pb.CreateApiKeyRequest(name="k"), metadata=bearer(creds.bearer_token))
        key_creds = Credentials(api_key=key.access_key, api_secret=key.secret_key)
        assert ra.authenticate_cached(key_creds) is None
        assert ra.authenticate(key_creds).auth_method == "api_key"
        assert ra.authenticate_cached(key_creds).user_id == user.id  # type: ignore[union-attr]
        clock.t += 2.0  # expired: nothing cached any more
        assert ra.authenticate_cached(creds) is None
        assert ra.authenticate_cached(key_creds) is None
    finally:
        ra.close()


def test_answer_in_use_is_refreshed_ahead_and_revocation_still_lands_within_the_cache_time(
        server: AuthServer) -> None:
    clock = FakeClock()
    ra = RemoteAuthenticator(server.addr, cache_seconds=2.0, clock=clock)
    try:
        user, password = server.new_user()
        creds = Credentials(bearer_token=server.login(user.username, password).access_token)
        calls = _count_authenticate(ra)
        assert ra.authenticate(creds).user_id == user.id
        clock.t += 0.9  # first half of the answer's life: served, no refresh
        assert ra.authenticate_cached(creds).user_id == user.id  # type: ignore[union-attr]
        assert len(calls) == 1 and ra._refresher is None
        clock.t += 0.2  # second half: served at once, confirmed again in the background
        assert ra.authenticate_cached(creds).user_id == user.id  # type: ignore[union-attr]
        _refreshed(ra)
        assert len(calls) == 2
        clock.t += 1.5  # past the first answer's expiry (2.0 s), within the refreshed one's
        assert ra.authenticate_cached(creds).user_id == user.id  # type: ignore[union-attr]
        _refreshed(ra)  # 1.5 s into the refreshed answer: refreshed again
        assert len(calls) == 3
        # Disabled: the next refresh brings the refusal, which is then served from the cache.
        server.stub.UpdateUser(pb.UpdateUserRequest(user_id=user.id, is_active=False), metadata=server.admin_md())
        clock.t += 1.1
        assert ra.authenticate_cached(creds).user_id == user.id  # type: ignore[union-attr]
        _refreshed(ra)
        with pytest.raises(PermissionDenied):
            ra.authenticate_cached(creds)
        with pytest.raises(PermissionDenied):
            ra.authenticate(creds)
        assert len(calls) == 4
    finally:
        ra.close()


def test_a_refresh_that_fails_leaves_the_answer_to_expire_on_time(db_url: str) -> None:
    own = start_auth_server(db_url)
    user, password = own.new_user()
    creds = Credentials(bearer_token=own.login(user.username, password).access_token)
    clock = FakeClock()
    ra = RemoteAuthenticator(own.addr, cache_seconds=2.0, timeout_seconds=1.0, clock=clock)
    try:
        assert ra.authenticate(creds).user_id == user.id
        own.channel.close()
        own.running.stop(grace=0)
        clock.t += 1.5
        assert ra.authenticate_cached(creds).user_id == user.id  # type: ignore[union-attr]
        _refreshed(ra)  # auth_svc down: the refresh stores nothing
        clock.t += 0.6  # 2.1 s after the only answer auth_svc gave
        assert ra.authenticate_cached(creds) is None
        with pytest.raises(Unavailable):
            ra.authenticate(creds)
    finally:
        ra.close()
