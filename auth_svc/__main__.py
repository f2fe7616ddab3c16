"""`python -m auth_svc [serve|migrate|create-admin|rotate-keys|service-key]`.

- serve (default): migrate, make sure a signing key exists, serve on ZQ_AUTH_ADDR until
  SIGTERM/SIGINT (graceful shutdown).
- migrate: apply auth_svc's pending migrations to ZQ_AUTH_DATABASE_URL and exit (deployments
  run it as a Job before the replicas start; replicas migrate too, under the same lock).
- create-admin: migrate, then create the admin ZQ_ADMIN_USERNAME (default "admin"). With
  ZQ_ADMIN_PASSWORD set, that password is (re)applied (and the account re-enabled as admin);
  unset and the admin missing: a strong password is generated and printed ONCE on stdout as
  `ZQ_ADMIN_PASSWORD=<password>`; unset and the admin exists: nothing changes.
- rotate-keys: migrate, add a new signing key (it signs from now on), keep the previous one for
  verification, drop older ones; prints the new kid.
- service-key NAME FILE: make sure the service account NAME has an API key whose pair is in
  FILE (JSON {"api_key", "api_secret"}, mode 0600). Keeps a pair that still works; otherwise
  creates the account (non-admin, no usable password) and a new key. Used by `make up` to
  give task_svc its credentials for engine_svc.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from auth_svc.app import SERVICE, create_app, start_server
from services import migrations
from services.config import ServerSettings, env_str
from services.errors import InvalidArgument, PermissionDenied
from services.logs import configure_logging
from services.server import serve_until_signal
from services.tracing import configure_tracing

log = logging.getLogger("zquant.auth")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m auth_svc", description="zquant auth service")
    parser.add_argument("command", nargs="?", default="serve",
                        choices=["serve", "migrate", "create-admin", "rotate-keys", "service-key"])
    parser.add_argument("args", nargs="*", help="service-key: NAME FILE")
    args = parser.parse_args(argv)
    if args.command == "service-key" and len(args.args) != 2:
        parser.error("service-key needs NAME FILE")
    settings = ServerSettings.from_env(SERVICE)
    configure_logging(SERVICE, settings.log_level)
    if args.command == "serve":
        configure_tracing(SERVICE)
    if args.command == "migrate":
        return migrations.migrate_command(SERVICE, settings.database_url)
    app = create_app(settings.database_url)
    try:
        if args.command == "create-admin":
            return _create_admin(app)
        if args.command == "service-key":
            return _service_key(app, args.args[0], Path(args.args[1]))
        if args.command == "rotate-keys":
            kid = app.service.keys.rotate()
            print(f"new signing key: {kid}")
            return 0
        running = start_server(settings, app)
        serve_until_signal(running, app.ready)
        return 0
    finally:
        app.engine.dispose()


def _create_admin(app) -> int:  # type: ignore[no-untyped-def]
    username = env_str("ZQ_ADMIN_USERNAME", "admin")
    password = os.environ.get("ZQ_ADMIN_PASSWORD") or None
    try:
        generated = app.service.ensure_admin(username, password)
    except InvalidArgument as exc:
        print(f"create-admin: {exc.message}", file=sys.stderr)
        return 2
    if generated is not None:
        # The only place the password ever appears; it is not logged.
        print(f"ZQ_ADMIN_USERNAME={username}")
        print(f"ZQ_ADMIN_PASSWORD={generated}")
        print(f"created admin {username!r}; the password above is shown only once", file=sys.stderr)
    elif password is not None:
        print(f"admin {username!r}: password applied", file=sys.stderr)
    else:
        print(f"admin {username!r} exists; nothing changed (set ZQ_ADMIN_PASSWORD to reset it)", file=sys.stderr)
    return 0


def _service_key(app, username: str, path: Path) -> int:  # type: ignore[no-untyped-def]
    current: dict[str, str] = {}
    if path.is_file():
        try:
            current = json.loads(path.read_text())
        except (OSError, ValueError):
            current = {}
    try:
        new = app.service.ensure_service_key(username, str(current.get("api_key", "")),
                                             str(current.get("api_secret", "")))
    except (InvalidArgument, PermissionDenied) as exc:
        print(f"service-key: {exc.message}", file=sys.stderr)
        return 2
    if new is None:
        print(f"service account {username!r}: credentials in {path} still valid", file=sys.stderr)
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"api_key": new.key.key, "api_secret": new.secret}, fh)
    print(f"service account {username!r}: new API key written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
