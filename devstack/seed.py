"""What a fresh local stack needs before its services start: the first admin, task_svc's service
key for the engine, and the sample market data."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path

from devstack.config import ROOT, SERVICES, env_get
from devstack.processes import StartError

TASK_SERVICE_ACCOUNT = "svc-task"


def service_credentials(env: Mapping[str, str]) -> dict[str, str]:
    """task_svc calls engine_svc for users who are not online, so it needs credentials of its
    own: an API key of the service account `svc-task`, kept in $ZQ_DATA_DIR/secrets (0600) and
    created by `python -m auth_svc service-key` when missing or no longer valid. Returns the
    variables task_svc reads (ZQ_ENGINE_API_KEY / ZQ_ENGINE_API_SECRET). An operator who sets
    those variables himself keeps his own."""
    if env_get(env, "ZQ_ENGINE_API_KEY", "") or env_get(env, "ZQ_ENGINE_TOKEN", ""):
        return {}
    path = Path(env["ZQ_DATA_DIR"]) / "secrets" / "task_engine_credentials.json"
    subprocess.run([*SERVICES["auth"].argv(), "service-key", TASK_SERVICE_ACCOUNT, str(path)], cwd=ROOT,
                   env=dict(env), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    pair = json.loads(path.read_text())
    return {"ZQ_ENGINE_API_KEY": pair["api_key"], "ZQ_ENGINE_API_SECRET": pair["api_secret"]}


def engine_has_market_data(env: Mapping[str, str]) -> bool:
    """True when the engine database has daily bars (the sample import is then skipped)."""
    import sqlalchemy as sa

    directory = Path(env["ZQ_DATA_DIR"])
    url = env_get(env, "ZQ_ENGINE_DATABASE_URL", f"sqlite:///{directory / 'engine.db'}")
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return False  # don't create an empty file just to look
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("daily_bars"):
                return False
            return conn.execute(sa.text("SELECT 1 FROM daily_bars LIMIT 1")).first() is not None
    finally:
        engine.dispose()




def ensure_admin(env: Mapping[str, str]) -> str:
    """`python -m auth_svc create-admin` (which also runs auth's migrations); its output is shown.

    A generated password is printed by create-admin exactly once, as `ZQ_ADMIN_PASSWORD=...`;
    it is returned (for the curl example), else "".
    """
    result = subprocess.run(
        [*SERVICES["auth"].argv(), "create-admin"], cwd=ROOT, env=dict(env), stdout=subprocess.PIPE, text=True,
        check=False,
    )
    print(result.stdout, end="", flush=True)
    if result.returncode != 0:
        raise StartError(f"`python -m auth_svc create-admin` failed (exit {result.returncode})")
    password = ""
    for line in result.stdout.splitlines():
        if line.startswith("ZQ_ADMIN_PASSWORD="):
            password = line.removeprefix("ZQ_ADMIN_PASSWORD=")
    return password
