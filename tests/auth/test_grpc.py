"""The real auth_svc gRPC server (in process, free loopback port) called through the generated
stubs, on SQLite and PostgreSQL. Nothing here may ever come back INTERNAL."""

from __future__ import annotations

import base64
import json
import secrets
import time

import grpc
import jwt
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from zquant.auth.v1 import auth_pb2

from services.errors import field_violations
from tests.auth.helpers import AuthServer, bearer

pb = auth_pb2


def code_of(fn, *args, **kwargs) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as exc:
        fn(*args, **kwargs)
    return exc.value.code()  # type: ignore[no-any-return, attr-defined]


def test_health_and_reflection(server: AuthServer) -> None:
    health = health_pb2_grpc.HealthStub(server.channel)
    for name in ("", "zquant.auth.v1.AuthService"):
        assert health.Check(health_pb2.HealthCheckRequest(service=name)).status == \
            health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(server.channel)
    responses = refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert "zquant.auth.v1.AuthService" in names


def test_login_and_get_me(server: AuthServer) -> None:
    user, password = server.new_user()
    pair = server.login(user.username, password)
    assert pair.token_type == "bearer" and pair.expires_in == 1800 and pair.refresh_expires_in == 1209600
    me = server.stub.GetMe(pb.GetMeRequest(), metadata=bearer(pair.access_token))
    assert (me.id, me.username, me.email, me.is_active, me.is_admin) == \
        (user.id, user.username, user.email, True, False)
    assert me.created_at.seconds > 0 and me.updated_at.seconds > 0


def test_get_me_with_api_key(server: AuthServer) -> None:
    user, password = server.new_user()
    md = bearer(server.login(user.username, password).access_token)
    created = server.stub.CreateApiKey(pb.CreateApiKeyRequest(name="ci", expires_in_days=30), metadata=md)
    assert created.access_key.startswith("zqk_") and len(created.secret_key) >= 43 and created.expires_at.seconds > 0
    me = server.stub.GetMe(pb.GetMeRequest(),
        metadata=[("x-api-key", created.access_key), ("x-api-secret", created.secret_key)])
    assert me.id == user.id
    assert code_of(server.stub.GetMe, pb.GetMeRequest(),
                   metadata=[("x-api-key", created.access_key), ("x-api-secret", "wrong")]) \
        == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(server.stub.GetMe, pb.GetMeRequest(),
                   metadata=[("x-api-key", created.access_key)]) == grpc.StatusCode.UNAUTHENTICATED


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_bad_credentials_are_unauthenticated(server: AuthServer) -> None:
    user, password = server.new_user()
    token = server.login(user.username, password).access_token
    header, body, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    key = server.app.service.keys.current()
    now = int(time.time())
    expired = jwt.encode({**claims, "iat": now - 4000, "nbf": now - 4000, "exp": now - 100}, key.private_key,
                         algorithm="EdDSA", headers={"kid": key.kid})
    cases = {
        "none": [],
        "garbage bearer": bearer("garbage"),
        "basic scheme": [("authorization", "Basic YWRtaW46YWRtaW4=")],
        "tampered": bearer(f"{header}.{_b64(json.dumps({**claims, 'adm': True}).encode())}.{sig}"),
        "alg none": bearer(f"{_b64(json.dumps({'alg': 'none', 'kid': key.kid}).encode())}.{body}."),
        "expired": bearer(expired),
        "bad api key": [("x-api-key", "zqk_nope"), ("x-api-secret", "nope")],
    }
    for name, md in cases.items():
        assert code_of(server.stub.GetMe, pb.GetMeRequest(), metadata=md) == grpc.StatusCode.UNAUTHENTICATED, name


def test_disabled_user_is_denied_everywhere(server: AuthServer) -> None:
    user, password = server.new_user()
    pair = server.login(user.username, password)
    key = server.stub.CreateApiKey(pb.CreateApiKeyRequest(name="k"), metadata=bearer(pair.access_token))
    updated = server.stub.UpdateUser(pb.UpdateUserRequest(user_id=user.id, is_active=False),
                                     metadata=server.admin_md())
    assert not updated.is_active
    denied = grpc.StatusCode.PERMISSION_DENIED
    assert code_of(server.stub.GetMe, pb.GetMeRequest(), metadata=bearer(pair.access_token)) == denied
    assert code_of(server.stub.GetMe, pb.GetMeRequest(),
                   metadata=[("x-api-key", key.access_key), ("x-api-secret", key.secret_key)]) == denied
    assert code_of(server.login, user.username, password) == denied
    assert code_of(server.login, user.username, "wrong-password") == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(server.stub.Authenticate, pb.AuthenticateRequest(access_token=pair.access_token)) == denied
    # Disabling revoked the refresh tokens; re-enabling does not bring them back.
    server.stub.UpdateUser(pb.UpdateUserRequest(user_id=user.id, is_active=True), metadata=server.admin_md())
    assert code_of(server.stub.Refresh, pb.RefreshRequest(refresh_token=pair.refresh_token)) == \
        grpc.StatusCode.UNAUTHENTICATED
    # Access tokens issued before the disable stay refused after re-enabling; a new login works.
    assert code_of(server.stub.GetMe, pb.GetMeRequest(), metadata=bearer(pair.access_token)) == \
        grpc.StatusCode.UNAUTHENTICATED
    fresh = server.login(user.username, password)
    assert server.stub.GetMe(pb.GetMeRequest(), metadata=bearer(fresh.access_token)).id == user.id


def test_password_reset_ends_earlier_access_tokens_at_once(server: AuthServer) -> None:
    user, password = server.new_user()
    old = server.login(user.username, password)
    assert server.stub.GetMe(pb.GetMeRequest(), metadata=bearer(old.access_token)).id == user.id
    server.stub.ResetPassword(pb.ResetPasswordRequest(user_id=user.id, password="a-new-password-1"),
                              metadata=server.admin_md())
    unauth = grpc.StatusCode.UNAUTHENTICATED
    assert code_of(server.stub.GetMe, pb.GetMeRequest(), metadata=bearer(old.access_token)) == unauth
    assert code_of(server.stub.Authenticate, pb.AuthenticateRequest(access_token=old.access_token)) == unauth
    new = server.login(user.username, "a-new-password-1")  # same second as the reset: still accepted
    assert server.stub.GetMe(pb.GetMeRequest(), metadata=bearer(new.access_token)).id == user.id
    # An e-mail change is no reason to end sessions.
    server.stub.UpdateUser(pb.UpdateUserRequest(user_id=user.id, email="x@example.com"), metadata=server.admin_md())
    assert server.stub.GetMe(pb.GetMeRequest(), metadata=bearer(new.access_token)).id == user.id


def test_admin_marks_and_unmarks_a_service_key(server: AuthServer) -> None:
    user, password = server.new_user()
    pair = server.login(user.username, password)
    key = server.stub.CreateApiKey(pb.CreateApiKeyRequest(name="batch"), metadata=bearer(pair.access_token))
    creds = pb.AuthenticateRequest(api_key=key.access_key, api_secret=key.secret_key)
    assert server.stub.Authenticate(creds).is_service is False
    # Only administrators mark keys; a user cannot mark their own.
    assert code_of(server.stub.SetApiKeyService, pb.SetApiKeyServiceRequest(
        user_id=user.id, key_id=key.id, is_service=True), metadata=bearer(pair.access_token)) == \
        grpc.StatusCode.PERMISSION_DENIED
    marked = server.stub.SetApiKeyService(pb.SetApiKeyServiceRequest(user_id=user.id, key_id=key.id, is_service=True),
                                          metadata=server.admin_md())
    assert marked.is_service and marked.id == key.id
    assert server.stub.Authenticate(creds).is_service is True
    listed = server.stub.ListApiKeys(pb.ListApiKeysRequest(), metadata=bearer(pair.access_token))
    assert [(k.id, k.is_service) for k in listed.api_keys] == [(key.id, True)]
    server.stub.SetApiKeyService(pb.SetApiKeyServiceRequest(user_id=user.id, key_id=key.id, is_service=False),
                                 metadata=server.admin_md())
    assert server.stub.Authenticate(creds).is_service is False
    # A JWT is never a service principal; a key of another user is NOT_FOUND.
    assert server.stub.Authenticate(pb.AuthenticateRequest(access_token=pair.access_token)).is_service is False
    assert code_of(server.stub.SetApiKeyService, pb.SetApiKeyServiceRequest(
        user_id=user.id + 1000, key_id=key.id, is_service=True), metadata=server.admin_md()) == \
        grpc.StatusCode.NOT_FOUND


def test_refresh_rotation_reuse_and_logout(server: AuthServer) -> None:
    user, password = server.new_user()
    first = server.login(user.username, password)
    second = server.stub.Refresh(pb.RefreshRequest(refresh_token=first.refresh_token))
    assert second.refresh_token != first.refresh_token and second.token_type == "bearer"
    assert server.stub.GetMe(pb.GetMeRequest(), metadata=bearer(second.access_token)).id == user.id
    third = server.stub.Refresh(pb.RefreshRequest(refresh_token=second.refresh_token))
    unauth = grpc.StatusCode.UNAUTHENTICATED
    assert code_of(server.stub.Refresh, pb.RefreshRequest(refresh_token=second.refresh_token)) == unauth  # reuse
    assert code_of(server.stub.Refresh, pb.RefreshRequest(refresh_token=third.refresh_token)) == unauth  # family
    session = server.login(user.username, password)
    server.stub.Logout(pb.LogoutRequest(refresh_token=session.refresh_token))
    server.stub.Logout(pb.LogoutRequest(refresh_token=session.refresh_token))  # idempotent
    server.stub.Logout(pb.LogoutRequest(refresh_token=""))
    assert code_of(server.stub.Refresh, pb.RefreshRequest(refresh_token=session.refresh_token)) == unauth


def test_api_keys_list_and_revoke(server: AuthServer) -> None:
    owner, pw = server.new_user()
    other, other_pw = server.new_user()
    md, other_md = bearer(server.login(owner.username, pw).access_token), \
        bearer(server.login(other.username, other_pw).access_token)
    a = server.stub.CreateApiKey(pb.CreateApiKeyRequest(name="a"), metadata=md)
    b = server.stub.CreateApiKey(pb.CreateApiKeyRequest(name="b"), metadata=md)
    listed = server.stub.ListApiKeys(pb.ListApiKeysRequest(), metadata=md).api_keys
    assert [k.id for k in listed] == [b.id, a.id]
    assert a.secret_key not in str(listed) and b.secret_key not in str(listed)
    assert server.stub.ListApiKeys(pb.ListApiKeysRequest(), metadata=other_md).api_keys == []
    assert code_of(server.stub.RevokeApiKey, pb.RevokeApiKeyRequest(key_id=a.id), metadata=other_md) == \
        grpc.StatusCode.NOT_FOUND
    server.stub.RevokeApiKey(pb.RevokeApiKeyRequest(key_id=a.id), metadata=md)
    assert code_of(server.stub.GetMe, pb.GetMeRequest(),
        metadata=[("x-api-key", a.access_key), ("x-api-secret", a.secret_key)]) \
        == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(server.stub.RevokeApiKey, pb.RevokeApiKeyRequest(key_id=a.id), metadata=md) == \
        grpc.StatusCode.NOT_FOUND
    assert [k.id for k in server.stub.ListApiKeys(pb.ListApiKeysRequest(), metadata=md).api_keys] == [b.id]
    assert code_of(server.stub.CreateApiKey, pb.CreateApiKeyRequest(name=" "), metadata=md) == \
        grpc.StatusCode.INVALID_ARGUMENT
    err = code_of(server.stub.CreateApiKey, pb.CreateApiKeyRequest(name="x", expires_in_days=5000), metadata=md)
    assert err == grpc.StatusCode.INVALID_ARGUMENT


def test_admin_only_rpcs(server: AuthServer) -> None:
    user, password = server.new_user()
    md = bearer(server.login(user.username, password).access_token)
    denied = grpc.StatusCode.PERMISSION_DENIED
    assert code_of(server.stub.CreateUser, pb.CreateUserRequest(username="x_" + secrets.token_hex(3),
                                                                password="password-123"), metadata=md) == denied
    assert code_of(server.stub.UpdateUser, pb.UpdateUserRequest(user_id=user.id, is_admin=True), metadata=md) == denied
    admin = server.admin_md()
    assert code_of(server.stub.CreateUser, pb.CreateUserRequest(username=user.username, password="password-123"),
                   metadata=admin) == grpc.StatusCode.ALREADY_EXISTS
    assert code_of(server.stub.UpdateUser, pb.UpdateUserRequest(user_id=987_654, email="a@b.co"), metadata=admin) \
        == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as exc:
        server.stub.CreateUser(pb.CreateUserRequest(username="bad name", password="short", email="nope"),
                               metadata=admin)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert [f for f, _ in field_violations(exc.value)] == ["username", "password", "email"]
    # Promote, then the same access token carries admin rights (read from the DB per call).
    server.stub.UpdateUser(pb.UpdateUserRequest(user_id=user.id, is_admin=True), metadata=admin)
    assert server.stub.GetMe(pb.GetMeRequest(), metadata=md).is_admin
    # Password reset: the old password and old refresh tokens stop working.
    pair = server.login(user.username, password)
    server.stub.UpdateUser(pb.UpdateUserRequest(user_id=user.id, password="brand-new-password"), metadata=admin)
    assert code_of(server.login, user.username, password) == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(server.stub.Refresh, pb.RefreshRequest(refresh_token=pair.refresh_token)) == \
        grpc.StatusCode.UNAUTHENTICATED
    assert server.login(user.username, "brand-new-password").access_token
    # Email: set and clear; optional fields left unset stay as they are.
    u = server.stub.UpdateUser(pb.UpdateUserRequest(user_id=user.id, email=""), metadata=admin)
    assert u.email == "" and u.is_admin and u.is_active


NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.OK}


@pytest.mark.parametrize(("username", "password"), [
    ("", "password-123"),
    ("u" * 65, "password-123"),
    ("u" * 100_000, "password-123"),
    ("admin", ""),
    ("admin", "p" * (10 * 1024 * 1024)),  # 10 MB: rejected before hashing
    ("admin'; DROP TABLE users; --", "x"),
    ("admin", "' OR '1'='1"),
    ("admin\x00", "password-123"),
    ("admin", "pass\x00word"),
    ("ユーザー", "password-123"),
    ("admin", "🔑" * 300),
])
def test_login_bad_input_is_never_internal(server: AuthServer, username: str, password: str) -> None:
    code = code_of(server.login, username, password)
    assert code in {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAUTHENTICATED}, code


def test_ten_megabyte_password_is_invalid_argument_quickly(server: AuthServer) -> None:
    started = time.perf_counter()
    assert code_of(server.login, server.admin_username, "p" * (10 * 1024 * 1024)) == grpc.StatusCode.INVALID_ARGUMENT
    assert time.perf_counter() - started < 5


def _field(number: int, data: bytes) -> bytes:
    """A length-delimited protobuf field (for hand-built messages; lengths < 2**14)."""
    length = len(data)
    varint = bytes([length]) if length < 128 else bytes([(length & 0x7F) | 0x80, length >> 7])
    return bytes([(number << 3) | 2]) + varint + data


@pytest.mark.parametrize(("method", "payload", "metadata_kind", "expected"), [
    ("Login", _field(1, b"\xff\xfeadmin") + _field(2, b"password-123"), "none", "INVALID_ARGUMENT"),
    ("Login", _field(1, b"admin") + _field(2, b"\xc3\x28pass"), "none", "INVALID_ARGUMENT"),
    ("Refresh", _field(1, b"\xed\xa0\x80"), "none", "INVALID_ARGUMENT"),  # encoded surrogate
    ("Authenticate", _field(1, b"\x80\x81"), "none", "INVALID_ARGUMENT"),
    ("Login", b"\x0a\xff\xff\xff\xff\x0f", "none", "INVALID_ARGUMENT"),  # truncated / absurd length
    ("CreateUser", _field(1, b"\xffroot") + _field(2, b"password-123"), "admin", "INVALID_ARGUMENT"),
    ("CreateUser", _field(1, b"\xffroot"), "none", "UNAUTHENTICATED"),  # authentication comes first
])
def test_invalid_utf8_and_malformed_protobuf(server: AuthServer, method: str, payload: bytes, metadata_kind: str,
                                             expected: str) -> None:
    call = server.channel.unary_unary(f"/zquant.auth.v1.AuthService/{method}")
    md = server.admin_md() if metadata_kind == "admin" else []
    with pytest.raises(grpc.RpcError) as exc:
        call(payload, metadata=md)
    assert exc.value.code().name == expected, exc.value.details()  # type: ignore[attr-defined]


def test_sql_looking_strings_everywhere(server: AuthServer) -> None:
    admin = server.admin_md()
    sqlish = "1; DROP TABLE users; --"
    calls = [
        lambda: server.stub.Refresh(pb.RefreshRequest(refresh_token=sqlish)),
        lambda: server.stub.Authenticate(pb.AuthenticateRequest(access_token=sqlish)),
        lambda: server.stub.Authenticate(pb.AuthenticateRequest(api_key="zqk_' OR 1=1 --", api_secret=sqlish)),
        lambda: server.stub.Authenticate(pb.AuthenticateRequest()),
        lambda: server.stub.CreateUser(pb.CreateUserRequest(username="x' OR '1'='1", password="password-123"),
                                       metadata=admin),
        lambda: server.stub.UpdateUser(pb.UpdateUserRequest(user_id=-1, email=sqlish), metadata=admin),
        lambda: server.stub.GetMe(pb.GetMeRequest(), metadata=[("x-api-key", sqlish), ("x-api-secret", sqlish)]),
    ]
    for i, call in enumerate(calls):
        code = code_of(call)
        assert code in {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAUTHENTICATED}, (i, code)
    # A SQL-looking API key name or email is just data.
    created = server.stub.CreateApiKey(pb.CreateApiKeyRequest(name="'); DELETE FROM api_keys; --"), metadata=admin)
    assert created.name == "'); DELETE FROM api_keys; --"
    user, _ = server.new_user()
    u = server.stub.UpdateUser(pb.UpdateUserRequest(user_id=user.id, email="o'brien+x@example.com"), metadata=admin)
    assert u.email == "o'brien+x@example.com"


def test_login_throttling_over_grpc(server: AuthServer) -> None:
    user, password = server.new_user()
    ghost = "ghost_" + secrets.token_hex(3)
    for name in (user.username, ghost):
        for _ in range(3):  # FAST: 3 failures per username
            assert code_of(server.login, name, "wrong-password") == grpc.StatusCode.UNAUTHENTICATED
    for name, pw in ((user.username, password), (ghost, "wrong-password")):
        with pytest.raises(grpc.RpcError) as exc:
            server.login(name, pw)
        assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        assert exc.value.details().startswith("too many failed logins, retry in ")  # type: ignore[attr-defined]
    time.sleep(1.1)
    assert server.login(user.username, password).access_token


def test_authenticate_and_signing_keys_are_public(server: AuthServer) -> None:
    user, password = server.new_user()
    pair = server.login(user.username, password)
    p = server.stub.Authenticate(pb.AuthenticateRequest(access_token=pair.access_token))
    assert (p.user_id, p.username, p.is_admin, p.auth_method) == (user.id, user.username, False, "jwt")
    key = server.stub.CreateApiKey(pb.CreateApiKeyRequest(name="svc"), metadata=bearer(pair.access_token))
    p = server.stub.Authenticate(pb.AuthenticateRequest(api_key=key.access_key, api_secret=key.secret_key))
    assert (p.user_id, p.auth_method) == (user.id, "api_key")
    for req in (pb.AuthenticateRequest(), pb.AuthenticateRequest(access_token="x.y.z"),
                pb.AuthenticateRequest(api_key=key.access_key, api_secret="nope")):
        assert code_of(server.stub.Authenticate, req) == grpc.StatusCode.UNAUTHENTICATED
    keys = server.stub.GetSigningKeys(pb.GetSigningKeysRequest())
    assert keys.issuer == "zquant-auth" and keys.audience == "zquant"
    assert keys.keys[0].kid == jwt.get_unverified_header(pair.access_token)["kid"]
    assert keys.keys[0].alg == "EdDSA" and keys.keys[0].public_key_pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert "PRIVATE" not in str(keys)


def test_x_forwarded_for_only_last_hop_counts(server: AuthServer) -> None:
    """The IP counter uses Envoy's appended (last) XFF entry; a spoofed first entry is ignored."""
    from auth_svc.models import LoginThrottle

    ghost = "ghost_" + secrets.token_hex(3)
    md = [("x-forwarded-for", "203.0.113.9, 198.51.100.77")]
    assert code_of(server.stub.Login, pb.LoginRequest(username=ghost, password="wrong-password"), metadata=md) == \
        grpc.StatusCode.UNAUTHENTICATED
    with server.app.service._sf() as session:
        assert session.get(LoginThrottle, "ip:198.51.100.77") is not None
        assert session.get(LoginThrottle, "ip:203.0.113.9") is None


def test_user_management_as_zquant_has_it(server: AuthServer) -> None:
    """ListUsers / GetUser / ResetPassword / DeleteUser and zquant's role_id + password_confirm."""
    user, password = server.new_user()
    md = bearer(server.login(user.username, password).access_token)
    denied = grpc.StatusCode.PERMISSION_DENIED
    assert code_of(server.stub.ListUsers, pb.ListUsersRequest(), metadata=md) == denied
    assert code_of(server.stub.GetUser, pb.GetUserRequest(user_id=user.id), metadata=md) == denied
    assert code_of(server.stub.DeleteUser, pb.DeleteUserRequest(user_id=user.id), metadata=md) == denied
    admin = server.admin_md()
    assert user.role_id == 2 and server.stub.GetMe(pb.GetMeRequest(), metadata=admin).role_id == 1

    name = "zq_" + secrets.token_hex(3)
    created = server.stub.CreateUser(pb.CreateUserRequest(username=name, password="password-123",
                                                          password_confirm="password-123", role_id=1),
                                     metadata=admin)
    assert created.is_admin and created.role_id == 1
    for bad, field in ((pb.CreateUserRequest(username=name + "x", password="password-123",
                                             password_confirm="password-124"), "password_confirm"),
                       (pb.CreateUserRequest(username=name + "y", password="password-123", role_id=3), "role_id"),
                       (pb.CreateUserRequest(username=name + "z", password="password-123", role_id=2,
                                             is_admin=True), "is_admin")):
        with pytest.raises(grpc.RpcError) as exc:
            server.stub.CreateUser(bad, metadata=admin)
        assert [f for f, _ in field_violations(exc.value)] == [field]

    page = server.stub.ListUsers(pb.ListUsersRequest(username=name[:5].upper(), role_id=1), metadata=admin)
    assert [u.username for u in page.items] == [name] and page.total == 1
    assert (page.skip, page.limit) == (0, 100)
    everyone = server.stub.ListUsers(pb.ListUsersRequest(order_by="id", order="asc", limit=1000), metadata=admin)
    ids = [u.id for u in everyone.items]
    assert ids == sorted(ids) and everyone.total == len(ids) >= 3 and user.id in ids
    second = server.stub.ListUsers(pb.ListUsersRequest(order_by="id", order="asc", skip=1, limit=1), metadata=admin)
    assert [u.id for u in second.items] == ids[1:2]
    assert server.stub.GetUser(pb.GetUserRequest(user_id=user.id), metadata=admin).username == user.username
    assert code_of(server.stub.GetUser, pb.GetUserRequest(user_id=987_654), metadata=admin) == grpc.StatusCode.NOT_FOUND

    demoted = server.stub.UpdateUser(pb.UpdateUserRequest(user_id=created.id, role_id=2), metadata=admin)
    assert not demoted.is_admin and demoted.role_id == 2

    reset = server.stub.ResetPassword(pb.ResetPasswordRequest(user_id=user.id, password="reset-password-1",
                                                              password_confirm="reset-password-1"), metadata=admin)
    assert reset.message
    assert code_of(server.login, user.username, password) == grpc.StatusCode.UNAUTHENTICATED
    assert server.login(user.username, "reset-password-1").access_token

    me = server.stub.GetMe(pb.GetMeRequest(), metadata=admin)
    assert code_of(server.stub.DeleteUser, pb.DeleteUserRequest(user_id=me.id), metadata=admin) == \
        grpc.StatusCode.FAILED_PRECONDITION
    key = server.stub.CreateApiKey(pb.CreateApiKeyRequest(name="gone"),
                                   metadata=bearer(server.login(user.username, "reset-password-1").access_token))
    assert server.stub.DeleteUser(pb.DeleteUserRequest(user_id=user.id), metadata=admin).message
    assert code_of(server.stub.GetUser, pb.GetUserRequest(user_id=user.id), metadata=admin) == grpc.StatusCode.NOT_FOUND
    assert code_of(server.login, user.username, "reset-password-1") == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(server.stub.GetMe, pb.GetMeRequest(),
                   metadata=[("x-api-key", key.access_key), ("x-api-secret", key.secret_key)]) == \
        grpc.StatusCode.UNAUTHENTICATED
    assert code_of(server.stub.DeleteUser, pb.DeleteUserRequest(user_id=user.id), metadata=admin) == \
        grpc.StatusCode.NOT_FOUND
