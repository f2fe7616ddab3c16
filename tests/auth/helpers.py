"""Shared test helpers for auth tests: settings, a real in-process auth_svc server, metadata."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from zquant.auth.v1 import auth_pb2, auth_pb2_grpc

from auth_svc.app import AuthApp, create_app, start_server
from auth_svc.settings import AuthSettings
from services.config import ServerSettings
from services.server import RunningServer

DEFAULT_PASSWORD = "password-123"
REPO_ROOT = Path(__file__).resolve().parents[2]

# Cheap argon2 and throttling tuned so tests are fast; the per-IP limit is high because every
# test connects from 127.0.0.1 (IP throttling is covered by the domain tests).
FAST = AuthSettings(argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1,
                    max_failures_per_user=3, max_failures_per_ip=100_000, lock_base_seconds=1.0,
                    lock_max_seconds=2.0, failure_window_seconds=60.0)


@dataclass
class AuthServer:
    app: AuthApp
    running: RunningServer
    addr: str
    channel: grpc.Channel
    stub: auth_pb2_grpc.AuthServiceStub
    admin_username: str
    admin_password: str
    _counter: list[int] = field(default_factory=lambda: [0])

    def login(self, username: str, password: str) -> auth_pb2.TokenPair:
        return self.stub.Login(auth_pb2.LoginRequest(username=username, password=password))

    def admin_md(self) -> list[tuple[str, str]]:
        return bearer(self.login(self.admin_username, self.admin_password).access_token)

    def new_user(self, *, is_admin: bool = False, password: str = DEFAULT_PASSWORD) -> tuple[auth_pb2.User, str]:
        """Creates a fresh user through the API; returns it and its password."""
        self._counter[0] += 1
        name = f"user{self._counter[0]}_{secrets.token_hex(3)}"
        user = self.stub.CreateUser(auth_pb2.CreateUserRequest(username=name, password=password,
                                                               email=f"{name}@example.com", is_admin=is_admin),
                                    metadata=self.admin_md())
        return user, password


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def start_auth_server(url: str, settings: AuthSettings = FAST) -> AuthServer:
    app = create_app(url, settings)
    running = start_server(ServerSettings(service="auth", addr="127.0.0.1:0", database_url=url,
                                          max_workers=8, grace_seconds=0.5), app)
    app.ready()
    running.set_serving(True)
    admin_password = secrets.token_urlsafe(12)
    admin_name = f"admin_{secrets.token_hex(3)}"
    app.service.ensure_admin(admin_name, admin_password)
    addr = f"127.0.0.1:{running.port}"
    channel = grpc.insecure_channel(addr)
    return AuthServer(app, running, addr, channel, auth_pb2_grpc.AuthServiceStub(channel), admin_name,
                      admin_password)


