"""The start_stack fixture with the real auth_svc: login and GetMe through Envoy."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from services import devstack

pytestmark = [pytest.mark.envoy, pytest.mark.slow]


@pytest.mark.skipif(not devstack.SERVICES["auth"].available(), reason="auth_svc not built yet")
def test_real_auth_login_and_me_through_the_gateway(start_stack, stack_env):
    stack_env["ZQ_ADMIN_PASSWORD"] = "a long enough password"
    subprocess.run(
        [sys.executable, "-m", "auth_svc", "create-admin"],
        cwd=devstack.ROOT,
        env=devstack.child_env(base=stack_env),
        check=True,
        capture_output=True,
    )
    stack = start_stack("auth")
    with httpx.Client(base_url=stack.gateway.url, timeout=10) as http:
        login = http.post("/api/v1/auth/login", json={"username": "admin", "password": "a long enough password"})
        assert login.status_code == 200, login.text
        tokens = login.json()
        assert tokens["token_type"] == "bearer" and tokens["expires_in"] > 0
        me = http.get("/api/v1/users/me", headers={"authorization": f"Bearer {tokens['access_token']}"})
        assert me.status_code == 200, me.text
        assert me.json()["username"] == "admin" and me.json()["is_admin"] is True
        assert http.get("/api/v1/users/me").status_code == 401
        # task_svc is not started: its routes answer 503, the gateway stays healthy.
        assert http.get("/api/v1/backtest/tasks/1").status_code == 503
        assert http.get("/healthz").status_code == 200
