"""Issue 2's slice end to end: real auth_svc (as `make up` starts it) behind real Envoy, on
SQLite and on PostgreSQL. REST through the gateway, and the same through the generated stubs."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import jwt
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from zquant.auth.v1 import auth_pb2, auth_pb2_grpc

import devstack
from auth_svc.keys import KeyRing
from services.db import make_engine, make_session_factory
from tests.pgtools import temporary_database

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

ADMIN_PASSWORD = "admin-password-e2e"


@dataclass
class AuthStack:
    http: httpx.Client
    grpc_addr: str
    db_url: str

    def login(self, username: str, password: str) -> dict:
        resp = self.http.post("/api/v1/auth/login", json={"username": username, "password": password})
        assert resp.status_code == 200, resp.text
        return resp.json()

    def bearer(self, username: str, password: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.login(username, password)['access_token']}"}


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          module_gateway_factory) -> Iterator[AuthStack]:
    data_dir: Path = tmp_path_factory.mktemp("e2e_auth")
    with _database(request.param, data_dir) as db_url:
        env = devstack.child_env(extra={
            "ZQ_DATA_DIR": str(data_dir),
            "ZQ_AUTH_ADDR": f"127.0.0.1:{devstack.free_port()}",
            "ZQ_AUTH_DATABASE_URL": db_url,
            "ZQ_ADMIN_USERNAME": "admin",
            "ZQ_ADMIN_PASSWORD": ADMIN_PASSWORD,
            # Cheap hashing keeps the suite fast; the production cost is exercised in tests/auth.
            "ZQ_ARGON2_TIME_COST": "1", "ZQ_ARGON2_MEMORY_KIB": "1024",
            "ZQ_LOGIN_MAX_FAILURES_PER_IP": "100000",
        })
        subprocess.run([sys.executable, "-m", "auth_svc", "create-admin"], env=env, check=True,
                       capture_output=True, cwd=devstack.ROOT, timeout=120)
        handle = devstack.start_service("auth", env)
        try:
            gateway = module_gateway_factory(auth_addr=env["ZQ_AUTH_ADDR"])
            gateway.wait_healthy("auth")
            with httpx.Client(base_url=gateway.url, timeout=15) as http:
                yield AuthStack(http, env["ZQ_AUTH_ADDR"], db_url)
        finally:
            handle.stop(grace=5)


def _database(kind: str, data_dir: Path):
    if kind == "postgres":
        return temporary_database("zq_e2e_auth")

    class _Sqlite:
        def __enter__(self) -> str:
            return f"sqlite:///{data_dir / 'auth.db'}"

        def __exit__(self, *exc: object) -> None:
            return None

    return _Sqlite()


def _new_user(stack: AuthStack, admin: dict[str, str], **extra: object) -> tuple[str, str, int]:
    username, password = f"u{uuid.uuid4().hex[:10]}", "user-password-1"
    resp = stack.http.post("/api/v1/users", headers=admin,
                           json={"username": username, "password": password, "email": f"{username}@example.com",
                                 **extra})
    assert resp.status_code == 201, resp.text
    return username, password, resp.json()["id"]


def _assert_json_error(resp: httpx.Response, status: int, code: int) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert body["code"] == code and body["message"]
    assert "Traceback" not in resp.text
    return body


def test_login_and_me_with_bearer_token(stack: AuthStack) -> None:
    tokens = stack.login("admin", ADMIN_PASSWORD)
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 1800 and tokens["refresh_expires_in"] > tokens["expires_in"]
    assert tokens["access_token"].count(".") == 2 and tokens["refresh_token"]
    me = stack.http.get("/api/v1/users/me", headers={"authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["username"] == "admin" and body["is_admin"] is True and body["is_active"] is True
    assert isinstance(body["id"], int) and body["created_at"].endswith("Z")
    assert set(body) >= {"id", "username", "email", "is_active", "is_admin", "created_at"}


def test_api_key_pair_authenticates_and_revocation_is_immediate(stack: AuthStack) -> None:
    admin = stack.bearer("admin", ADMIN_PASSWORD)
    username, password, _ = _new_user(stack, admin)
    user = stack.bearer(username, password)
    created = stack.http.post("/api/v1/users/me/apikeys", headers=user, json={"name": "ci"})
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["access_key"].startswith("zqk_") and len(key["secret_key"]) >= 40
    assert key["is_active"] is True and key["expires_at"] is None and key["message"]
    pair = {"x-api-key": key["access_key"], "x-api-secret": key["secret_key"]}
    me = stack.http.get("/api/v1/users/me", headers=pair)
    assert me.status_code == 200 and me.json()["username"] == username

    listing = stack.http.get("/api/v1/users/me/apikeys", headers=user)
    listed = listing.json()
    assert [k["access_key"] for k in listed] == [key["access_key"]] and listing.headers["x-total-count"] == "1"
    assert "secret" not in json.dumps(listed)

    secret = key["secret_key"]
    wrong = {"x-api-key": key["access_key"], "x-api-secret": secret[:-1] + ("A" if secret[-1] != "A" else "B")}
    _assert_json_error(stack.http.get("/api/v1/users/me", headers=wrong), 401, 16)

    revoked = stack.http.delete(f"/api/v1/users/me/apikeys/{key['id']}", headers=user)
    assert revoked.status_code == 200 and revoked.json() == {"message": "API key revoked"}
    _assert_json_error(stack.http.get("/api/v1/users/me", headers=pair), 401, 16)


def _forge(token: str, *, header: dict | None = None, claims: dict | None = None, keep_signature: bool = True) -> str:
    head_b64, payload_b64, sig = token.split(".")

    def decode(part: str) -> dict:
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))

    def encode(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    new_head = encode({**decode(head_b64), **(header or {})}) if header else head_b64
    new_payload = encode({**decode(payload_b64), **(claims or {})}) if claims else payload_b64
    return f"{new_head}.{new_payload}.{sig if keep_signature else ''}"


def test_missing_bad_tampered_none_and_expired_tokens_are_401_json(stack: AuthStack) -> None:
    token = stack.login("admin", ADMIN_PASSWORD)["access_token"]
    unverified = jwt.decode(token, options={"verify_signature": False})
    ring = KeyRing(make_session_factory(make_engine(stack.db_url)))
    expired = jwt.encode({**unverified, "iat": int(time.time()) - 7200, "nbf": int(time.time()) - 7200,
                          "exp": int(time.time()) - 3600},
                         ring.current().private_key, algorithm="EdDSA", headers={"kid": ring.current().kid})
    cases = {
        "none": {},
        "garbage": {"authorization": "Bearer not.a.jwt"},
        "tampered": {"authorization": f"Bearer {_forge(token, claims={'sub': '999', 'adm': True})}"},
        "alg none": {"authorization": f"Bearer {_forge(token, header={'alg': 'none'}, keep_signature=False)}"},
        "expired": {"authorization": f"Bearer {expired}"},
        "basic scheme": {"authorization": "Basic YWRtaW46eA=="},
    }
    for name, headers in cases.items():
        body = _assert_json_error(stack.http.get("/api/v1/users/me", headers=headers), 401, 16)
        assert "expired" in body["message"] if name == "expired" else True, (name, body)


def test_disabled_user_is_403_even_with_a_valid_token(stack: AuthStack) -> None:
    admin = stack.bearer("admin", ADMIN_PASSWORD)
    username, password, user_id = _new_user(stack, admin)
    user = stack.bearer(username, password)
    assert stack.http.get("/api/v1/users/me", headers=user).status_code == 200
    resp = stack.http.patch(f"/api/v1/users/{user_id}", headers=admin, json={"is_active": False})
    assert resp.status_code == 200 and resp.json()["is_active"] is False
    _assert_json_error(stack.http.get("/api/v1/users/me", headers=user), 403, 7)
    _assert_json_error(stack.http.post("/api/v1/auth/login", json={"username": username, "password": password}),
                       403, 7)
    # Non-admins cannot use admin RPCs.
    stack.http.patch(f"/api/v1/users/{user_id}", headers=admin, json={"is_active": True})
    user = stack.bearer(username, password)
    _assert_json_error(stack.http.post("/api/v1/users", headers=user,
                                       json={"username": "x" + username, "password": "long enough pw"}), 403, 7)


def test_a_string_for_is_admin_creates_and_changes_nobody(stack: AuthStack) -> None:
    """The transcoder's converter read "yes" as true; the gateway's request check refuses it."""
    admin = stack.bearer("admin", ADMIN_PASSWORD)
    username = f"u{uuid.uuid4().hex[:10]}"
    for value in ("yes", "true", "1", 1):
        resp = stack.http.post("/api/v1/users", headers=admin,
                               json={"username": username, "password": "user-password-1", "is_admin": value})
        body = _assert_json_error(resp, 400, 3)
        assert body["details"][0]["field_violations"][0]["field"] == "is_admin"
    listed = stack.http.get("/api/v1/users", headers=admin, params={"username": username}).json()
    assert listed["total"] == 0 and listed["items"] == []
    _assert_json_error(stack.http.post("/api/v1/auth/login", json={"username": username,
                                                                   "password": "user-password-1"}), 401, 16)

    name, _, user_id = _new_user(stack, admin)
    for change in ({"is_admin": "yes"}, {"is_admin": "yes", "email": "changed@example.com"},
                   {"role_id": "1", "is_active": "no"}):
        resp = stack.http.patch(f"/api/v1/users/{user_id}", headers=admin, json=change)
        body = _assert_json_error(resp, 400, 3)
        assert body["details"][0]["field_violations"][0]["field"] in ("is_admin", "is_active")
    user = stack.http.get(f"/api/v1/users/{user_id}", headers=admin).json()
    assert (user["is_admin"], user["role_id"], user["is_active"], user["email"]) == \
        (False, 2, True, f"{name}@example.com")
    # The same change spelled as proto3 JSON goes through (role_id as a numeric string too).
    resp = stack.http.patch(f"/api/v1/users/{user_id}", headers=admin, json={"is_admin": True, "role_id": "1"})
    assert resp.status_code == 200 and resp.json()["is_admin"] is True, resp.text


def test_unknown_query_parameter_is_400(stack: AuthStack) -> None:
    admin = stack.bearer("admin", ADMIN_PASSWORD)
    _assert_json_error(stack.http.get("/api/v1/users/me?debug=1", headers=admin), 400, 3)


def test_refresh_rotates_and_reuse_revokes_the_family(stack: AuthStack) -> None:
    first = stack.login("admin", ADMIN_PASSWORD)
    second = stack.http.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200, second.text
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert stack.http.get("/api/v1/users/me",
                          headers={"authorization": f"Bearer {rotated['access_token']}"}).status_code == 200
    # Reusing the first token is theft: 401, and the rotated one is dead too.
    _assert_json_error(stack.http.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}),
                       401, 16)
    _assert_json_error(stack.http.post("/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}),
                       401, 16)
    # Logout revokes.
    fresh = stack.login("admin", ADMIN_PASSWORD)
    assert stack.http.post("/api/v1/auth/logout", json={"refresh_token": fresh["refresh_token"]}).status_code == 200
    _assert_json_error(stack.http.post("/api/v1/auth/refresh", json={"refresh_token": fresh["refresh_token"]}),
                       401, 16)


def test_bad_input_is_400_or_401_never_500(stack: AuthStack) -> None:
    attempts = [
        {"username": "", "password": "x"},
        {"username": "a" * 300, "password": "x"},
        {"username": "admin' OR '1'='1", "password": "' OR 1=1; --"},
        {"username": "admin\u0000", "password": "x"},
        {"username": "admin", "password": "p" * (2 * 1024 * 1024)},
    ]
    for body in attempts:
        resp = stack.http.post("/api/v1/auth/login", json=body)
        assert resp.status_code in (400, 401, 413), (body["username"][:20], resp.status_code, resp.text[:200])
    # 10 MB password: refused at the gateway's body limit, not by a crash.
    huge = b'{"username":"admin","password":"' + b"p" * 10_000_000 + b'"}'
    resp = stack.http.post("/api/v1/auth/login", content=huge, headers={"content-type": "application/json"})
    assert resp.status_code in (400, 413)
    # Invalid UTF-8 in the JSON body.
    resp = stack.http.post("/api/v1/auth/login", content=b'{"username":"\xff\xfe","password":"x"}',
                           headers={"content-type": "application/json"})
    assert resp.status_code == 400, resp.text


def test_same_slice_over_grpc_stubs_with_health_and_reflection(stack: AuthStack) -> None:
    with grpc.insecure_channel(stack.grpc_addr) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", "zquant.auth.v1.AuthService"):
            assert health.Check(health_pb2.HealthCheckRequest(service=name)).status == \
                health_pb2.HealthCheckResponse.SERVING
        refl = reflection_pb2_grpc.ServerReflectionStub(channel)
        listed = refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name for r in listed for s in r.list_services_response.service}
        assert {"zquant.auth.v1.AuthService", "grpc.health.v1.Health"} <= names

        stub = auth_pb2_grpc.AuthServiceStub(channel)
        pair = stub.Login(auth_pb2.LoginRequest(username="admin", password=ADMIN_PASSWORD))
        me = stub.GetMe(auth_pb2.GetMeRequest(), metadata=[("authorization", f"Bearer {pair.access_token}")])
        assert me.username == "admin" and me.is_admin
        key = stub.CreateApiKey(auth_pb2.CreateApiKeyRequest(name="grpc"),
                                metadata=[("authorization", f"Bearer {pair.access_token}")])
        principal = stub.Authenticate(auth_pb2.AuthenticateRequest(api_key=key.access_key, api_secret=key.secret_key))
        assert (principal.username, principal.auth_method) == ("admin", "api_key")
        me = stub.GetMe(auth_pb2.GetMeRequest(),
            metadata=[("x-api-key", key.access_key), ("x-api-secret", key.secret_key)])
        assert me.id == principal.user_id
        with pytest.raises(grpc.RpcError) as err:
            stub.GetMe(auth_pb2.GetMeRequest(), metadata=[("authorization", "Bearer x.y.z")])
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # Internal RPCs are not reachable through the REST gateway.
        resp = stack.http.post("/zquant.auth.v1.AuthService/Authenticate", json={})
        assert resp.status_code in (403, 404, 415)
