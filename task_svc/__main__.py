"""``python -m task_svc``: migrate, start the dispatcher and serve until SIGTERM/SIGINT.

Shutdown order (watch streams and running tasks wound down before the gRPC drain) is attached
to the server by TaskApp.start_server as `before_stop` hooks.
"""

from __future__ import annotations

from services.auth_client import RemoteAuthenticator
from services.config import ServerSettings, service_addr
from services.logs import configure_logging
from services.server import serve_until_signal
from task_svc.app import TaskApp
from task_svc.config import TaskSettings, engine_credentials
from task_svc.engine_client import GrpcEngineClient


def main() -> None:
    server_settings = ServerSettings.from_env("task")
    configure_logging("task_svc", server_settings.log_level)
    settings = TaskSettings.from_env()
    engine_client = GrpcEngineClient(service_addr("engine"), metadata=engine_credentials,
                                     timeout=settings.engine_timeout)
    app = TaskApp(server_settings, settings, RemoteAuthenticator(service_addr("auth")), engine_client)
    serve_until_signal(app.start_server(), app.begin)


if __name__ == "__main__":
    main()
