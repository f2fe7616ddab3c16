"""`python -m auth_svc [serve|create-admin|rotate-keys]`.

- serve (default): migrate, make sure a signing key exists, serve on ZQ_AUTH_ADDR until
  SIGTERM/SIGINT (graceful shutdown).
- create-admin: migrate, then create the admin ZQ_ADMIN_USERNAME (default "admin"). With
  ZQ_ADMIN_PASSWORD set, that password is (re)applied (and the account re-enabled as admin);
  unset and the admin missing: a strong password is generated and printed ONCE on stdout as
  `ZQ_ADMIN_PASSWORD=<password>`; unset and the admin exists: nothing changes.
- rotate-keys: migrate, add a new signing key (it signs from now on), keep the previous one for
  verification, drop older ones; prints the new kid.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from auth_svc.app import SERVICE, create_app, start_server
from services.config import ServerSettings, env_str
from services.errors import InvalidArgument
from services.logs import configure_logging
from services.server import serve_until_signal

log = logging.getLogger("zquant.auth")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m auth_svc", description="zquant auth service")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "create-admin", "rotate-keys"])
    args = parser.parse_args(argv)
    settings = ServerSettings.from_env(SERVICE)
    configure_logging(SERVICE, settings.log_level)
    app = create_app(settings.database_url)
    try:
        if args.command == "create-admin":
            return _create_admin(app)
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


if __name__ == "__main__":
    sys.exit(main())
