"""Wiring: database, migrations, keys, domain, gRPC server. Used by __main__ and by tests."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from auth_svc.authn import LocalAuthenticator
from auth_svc.keys import KeyRing
from auth_svc.service import AuthService
from auth_svc.servicer import PUBLIC_METHODS, AuthServicer, register
from auth_svc.settings import AuthSettings
from services import migrations
from services.config import ServerSettings
from services.db import make_engine, make_session_factory
from services.server import RunningServer, build_server

log = logging.getLogger("zquant.auth")
SERVICE = "auth"
PURGE_INTERVAL_SECONDS = 3600.0


@dataclass
class AuthApp:
    engine: Engine
    service: AuthService

    def ready(self) -> None:
        """Readiness: DB reachable, migrations at head, a signing key present. Raises if not."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            current = MigrationContext.configure(
                conn, opts={"version_table": f"alembic_version_{SERVICE}"}).get_current_heads()
        # Only script_location is read from this config; the (password-masked) URL is unused.
        script = ScriptDirectory.from_config(migrations.alembic_config(SERVICE, str(self.engine.url)))
        if set(current) != set(script.get_heads()):
            raise RuntimeError(f"auth migrations not applied: at {current}, head {script.get_heads()}")
        self.service.keys.current()  # raises NoSigningKey


def create_app(database_url: str, settings: AuthSettings | None = None, *, migrate: bool = True,
               now: Callable[[], datetime] | None = None) -> AuthApp:
    """`now` replaces the wall clock of the domain (tests of expiry and throttling)."""
    settings = settings or AuthSettings.from_env()
    engine = make_engine(database_url)
    if migrate:
        migrations.upgrade(SERVICE, engine)
    factory = make_session_factory(engine)
    keys = KeyRing(factory, passphrase=settings.keys_passphrase, reload_seconds=settings.keys_reload_seconds)
    service = AuthService(factory, settings, keys) if now is None else AuthService(factory, settings, keys, now=now)
    return AuthApp(engine, service)


def start_server(server_settings: ServerSettings, app: AuthApp) -> RunningServer:
    """Makes sure a signing key exists, then starts the gRPC server (health NOT_SERVING)."""
    app.service.keys.ensure_key()
    running = build_server(
        server_settings,
        register=lambda server: register(server, AuthServicer(app.service)),
        authenticator=LocalAuthenticator(app.service),
        public_methods=PUBLIC_METHODS,
    )
    stop = threading.Event()

    def purge_loop() -> None:  # expired refresh tokens and stale throttle rows
        while not stop.wait(PURGE_INTERVAL_SECONDS):
            try:
                app.service.purge_expired()
            except Exception:
                log.exception("purge failed")

    threading.Thread(target=purge_loop, name="auth-purge", daemon=True).start()
    running.on_shutdown.append(stop.set)
    running.on_shutdown.append(app.engine.dispose)
    return running
