"""``python -m task_svc [serve|migrate]``.

- serve (default): migrate, start the dispatcher and serve on ZQ_TASK_ADDR until SIGTERM/SIGINT.
  Shutdown order (watch streams and running tasks wound down before the gRPC drain) is attached
  to the server by TaskApp.start_server as `before_stop` hooks.
- migrate: apply task_svc's pending migrations to ZQ_TASK_DATABASE_URL and exit (deployments
  run it as a Job before the replicas start; replicas migrate too, under the same lock).
"""

from __future__ import annotations

import argparse
import sys

from services import migrations
from services.config import ServerSettings
from services.logs import configure_logging
from services.tracing import configure_tracing

SERVICE = "task"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m task_svc", description="zquant task service")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "migrate"],
                        help="serve (default): the gRPC service; migrate: apply migrations and exit")
    args = parser.parse_args(argv)
    server_settings = ServerSettings.from_env(SERVICE)
    configure_logging("task_svc", server_settings.log_level)
    if args.command == "serve":
        configure_tracing("task")  # before the clients: their channels get the interceptors
    if args.command == "migrate":
        return migrations.migrate_command(SERVICE, server_settings.database_url)
    serve(server_settings)
    return 0


def serve(server_settings: ServerSettings) -> None:
    # Imported here: `--help` and `migrate` need none of the server's machinery.
    from services.auth_client import RemoteAuthenticator
    from services.config import service_addr
    from services.server import serve_until_signal
    from task_svc.app import TaskApp
    from task_svc.config import TaskSettings, engine_credentials
    from task_svc.engine_client import GrpcEngineClient

    settings = TaskSettings.from_env()
    engine_client = GrpcEngineClient(service_addr("engine"), metadata=engine_credentials,
                                     timeout=settings.engine_timeout, keepalive=settings.engine_keepalive)
    app = TaskApp(server_settings, settings, RemoteAuthenticator(service_addr("auth")), engine_client)
    serve_until_signal(app.start_server(), app.begin)


if __name__ == "__main__":
    sys.exit(main())
