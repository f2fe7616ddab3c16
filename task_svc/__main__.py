"""``python -m task_svc``: migrate, start the dispatcher and serve until SIGTERM/SIGINT.

Shutdown order matters (see TaskApp.stop): watch streams and running tasks are wound down
*before* the gRPC server drains, so open streams do not hold the drain for the whole grace
period. That is why this does not use ``services.server.serve_until_signal`` (it has no
pre-drain hook); the signal handling is the same.
"""

from __future__ import annotations

import logging
import signal
import threading

from services.auth_client import RemoteAuthenticator
from services.config import ServerSettings, service_addr
from services.logs import configure_logging
from task_svc.app import TaskApp
from task_svc.config import TaskSettings, engine_credentials
from task_svc.engine_client import GrpcEngineClient

log = logging.getLogger("zquant.task")


def main() -> None:
    server_settings = ServerSettings.from_env("task")
    configure_logging("task_svc", server_settings.log_level)
    settings = TaskSettings.from_env()
    engine = GrpcEngineClient(service_addr("engine"), metadata=engine_credentials, timeout=settings.engine_timeout)
    app = TaskApp(server_settings, settings, RemoteAuthenticator(service_addr("auth")), engine)

    stop_requested = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("shutdown requested", extra={"signal": signal.Signals(signum).name})
        stop_requested.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        app.start()
    except Exception:
        log.exception("readiness check failed; shutting down")
        app.stop(grace=0)
        raise SystemExit(1) from None
    log.info("serving", extra={"port": app.port})
    stop_requested.wait()
    app.stop()
    log.info("stopped")


if __name__ == "__main__":
    main()
