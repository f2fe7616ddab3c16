"""Access-token signing, verification and key rotation: every forgery must be rejected."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auth_svc.app import AuthApp, create_app
from auth_svc.keys import new_signing_key
from services.errors import Unauthenticated
from services.principal import Principal
from tests.auth.helpers import FAST

ADMIN = Principal(user_id=0, username="root", is_admin=True, auth_method="jwt")


@pytest.fixture(scope="module")
def app(db_url: str) -> Iterator[AuthApp]:
    app = create_app(db_url, FAST)
    app.service.keys.ensure_key()
    yield app
    app.engine.dispose()


@pytest.fixture(scope="module")
def user_id(app: AuthApp) -> int:
    return app.service.create_user(ADMIN, f"tok_{secrets.token_hex(3)}", "password-123").id


def claims(user_id: int, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": "zquant-auth", "aud": "zquant", "sub": str(user_id), "name": "x", "adm": False,
            "typ": "access", "jti": secrets.token_hex(8), "iat": now, "nbf": now, "exp": now + 600}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(app: AuthApp, payload: dict[str, Any], *, kid: str | None = None) -> str:
    key = app.service.keys.current()
    return jwt.encode(payload, key.private_key, algorithm="EdDSA", headers={"kid": kid or key.kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_issued_token_has_the_contract_claims(app: AuthApp, user_id: int) -> None:
    token = app.service.issue_access_token(user_id, "alice", True)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA" and header["kid"] == app.service.keys.current().kid
    body = jwt.decode(token, options={"verify_signature": False})
    assert {k: body[k] for k in ("iss", "aud", "sub", "name", "adm", "typ")} == {
        "iss": "zquant-auth", "aud": "zquant", "sub": str(user_id), "name": "alice", "adm": True, "typ": "access"}
    assert body["exp"] - body["iat"] == 1800 and body["nbf"] == body["iat"] and len(body["jti"]) >= 16


def test_well_formed_token_is_accepted(app: AuthApp, user_id: int) -> None:
    assert app.service.authenticate_access_token(sign(app, claims(user_id))).user_id == user_id


def _forgeries(app: AuthApp, user_id: int) -> dict[str, str]:
    key = app.service.keys.current()
    good = sign(app, claims(user_id))
    h, _payload, s = good.split(".")
    public_pem = key.public_key_pem.encode()
    hs_header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    hs_body = b64(json.dumps(claims(user_id)).encode())
    hs_sig = b64(hmac.new(public_pem, f"{hs_header}.{hs_body}".encode(), hashlib.sha256).digest())
    none_header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": key.kid}).encode())
    tampered_body = b64(json.dumps({**jwt.decode(good, options={"verify_signature": False}), "adm": True}).encode())
    stranger = Ed25519PrivateKey.generate()
    return {
        "alg none": f"{none_header}.{hs_body}.",
        "HS256 with public key bytes": f"{hs_header}.{hs_body}.{hs_sig}",
        "wrong iss": sign(app, claims(user_id, iss="evil")),
        "wrong aud": sign(app, claims(user_id, aud="other")),
        "expired": sign(app, claims(user_id, iat=int(time.time()) - 4000, nbf=int(time.time()) - 4000,
                                     exp=int(time.time()) - 60)),
        "nbf in future": sign(app, claims(user_id, nbf=int(time.time()) + 600)),
        "tampered payload": f"{h}.{tampered_body}.{s}",
        "unknown kid": sign(app, claims(user_id), kid="no-such-kid"),
        "right kid, other key": jwt.encode(claims(user_id), stranger, algorithm="EdDSA", headers={"kid": key.kid}),
        "typ refresh": sign(app, claims(user_id, typ="refresh")),
        "no jti": sign(app, claims(user_id, jti=None)),
        "no exp": sign(app, claims(user_id, exp=None)),
        "sub not a number": sign(app, claims(user_id, sub="admin")),
        "sub of no user": sign(app, claims(999_999)),
        "garbage": "not.a.jwt",
        "huge": "a" * 100_000,
    }


FORGERY_NAMES = ["alg none", "HS256 with public key bytes", "wrong iss", "wrong aud", "expired", "nbf in future",
                 "tampered payload", "unknown kid", "right kid, other key", "typ refresh", "no jti", "no exp",
                 "sub not a number", "sub of no user", "garbage", "huge"]


@pytest.mark.parametrize("case", FORGERY_NAMES)
def test_forged_or_invalid_tokens_are_rejected(app: AuthApp, user_id: int, case: str) -> None:
    token = _forgeries(app, user_id)[case]
    with pytest.raises(Unauthenticated):
        app.service.authenticate_access_token(token)


def test_key_rotation_keeps_the_previous_key_for_verification(app: AuthApp, user_id: int) -> None:
    old_kid = app.service.keys.current().kid
    old_token = app.service.issue_access_token(user_id, "x", False)
    new_kid = app.service.keys.rotate()
    assert new_kid != old_kid and app.service.keys.current().kid == new_kid
    new_token = app.service.issue_access_token(user_id, "x", False)
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    assert [k.kid for k in app.service.signing_keys()] == [new_kid, old_kid]  # current first
    assert app.service.authenticate_access_token(old_token).user_id == user_id
    assert app.service.authenticate_access_token(new_token).user_id == user_id
    app.service.keys.rotate()  # two rotations later the oldest key is gone
    assert old_kid not in [k.kid for k in app.service.signing_keys()]
    with pytest.raises(Unauthenticated):
        app.service.authenticate_access_token(old_token)
    assert app.service.authenticate_access_token(new_token).user_id == user_id


def test_a_rotation_by_another_process_is_picked_up_on_unknown_kid(db_url: str, app: AuthApp, user_id: int) -> None:
    other = create_app(db_url, FAST, migrate=False)  # another replica sharing the DB
    try:
        other.service.keys.reload()
        time.sleep(1.1)  # unknown-kid reloads are rate limited to one a second
        kid = app.service.keys.rotate()
        token = app.service.issue_access_token(user_id, "x", False)
        assert other.service.authenticate_access_token(token).user_id == user_id
        assert other.service.keys.current().kid == kid
    finally:
        other.engine.dispose()


def test_encrypted_private_keys(db_url: str) -> None:
    row = new_signing_key("s3cret-passphrase")
    assert "ENCRYPTED" in row.private_key_pem
    with pytest.raises(TypeError):  # unusable without the passphrase
        serialization.load_pem_private_key(row.private_key_pem.encode(), None)
    loaded = serialization.load_pem_private_key(row.private_key_pem.encode(), b"s3cret-passphrase")
    assert isinstance(loaded, Ed25519PrivateKey)
