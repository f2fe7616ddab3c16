"""`python -m auth_svc` as a real subprocess: create-admin, rotate-keys, serve, SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from zquant.auth.v1 import auth_pb2, auth_pb2_grpc

from tests.auth.helpers import REPO_ROOT, bearer

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "auth_svc", *args], env=env, cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60, check=False)


def test_cli_and_server_lifecycle(db_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        # The editable install may predate auth_svc; make the package importable regardless.
        "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "ZQ_DATA_DIR": str(tmp_path), "ZQ_AUTH_DATABASE_URL": db_url, "ZQ_AUTH_ADDR": f"127.0.0.1:{port}",
        "ZQ_ARGON2_TIME_COST": "1", "ZQ_ARGON2_MEMORY_KIB": "1024", "ZQ_ADMIN_USERNAME": "root_admin",
        "ZQ_SHUTDOWN_GRACE_SECONDS": "2",
    }
    env.pop("ZQ_ADMIN_PASSWORD", None)

    first = run_cli(env, "create-admin")
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == "ZQ_ADMIN_USERNAME=root_admin" and lines[1].startswith("ZQ_ADMIN_PASSWORD=")
    password = lines[1].split("=", 1)[1]
    assert len(password) >= 20 and password not in first.stderr  # printed once, never logged

    again = run_cli(env, "create-admin")
    assert again.returncode == 0 and again.stdout == ""  # exists, no password: nothing printed or changed

    rotated = run_cli(env, "rotate-keys")
    assert rotated.returncode == 0, rotated.stderr
    kid = rotated.stdout.strip().removeprefix("new signing key: ")

    proc = subprocess.Popen([sys.executable, "-m", "auth_svc"], env=env, cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        health = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + 30
        while True:
            try:
                status = health.Check(health_pb2.HealthCheckRequest(service="zquant.auth.v1.AuthService"), timeout=1)
                if status.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.RpcError:
                pass
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "auth_svc did not become SERVING"
            time.sleep(0.1)

        stub = auth_pb2_grpc.AuthServiceStub(channel)
        pair = stub.Login(auth_pb2.LoginRequest(username="root_admin", password=password))
        me = stub.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(pair.access_token))
        assert me.username == "root_admin" and me.is_admin
        assert stub.GetSigningKeys(auth_pb2.GetSigningKeysRequest()).keys[0].kid == kid

        # ZQ_ADMIN_PASSWORD (re)applies the password, even while the server runs.
        reset = run_cli({**env, "ZQ_ADMIN_PASSWORD": "operator-chosen-pw"}, "create-admin")
        assert reset.returncode == 0 and reset.stdout == ""
        assert stub.Login(auth_pb2.LoginRequest(username="root_admin", password="operator-chosen-pw")).access_token

        # A second server on the same address must fail instead of sharing the port.
        clash = subprocess.run([sys.executable, "-m", "auth_svc"], env=env, cwd=REPO_ROOT, capture_output=True,
                               text=True, timeout=60, check=False)
        assert clash.returncode != 0

        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
        assert proc.returncode == 0, stderr
        assert time.monotonic() - started < 10
        assert '"shutdown requested"' in stderr and '"stopped"' in stderr
        assert password not in stderr and "operator-chosen-pw" not in stderr
        with pytest.raises(grpc.RpcError) as exc:
            health.Check(health_pb2.HealthCheckRequest(), timeout=1)
        assert exc.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    finally:
        channel.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
