"""What a worker can be asked to do. Runs inside the hardened worker only.

A job is a function ``(request header, request body, progress) -> JSON-serialisable value``
(an interactive job gets a ``Pipe`` instead of ``progress`` and exchanges frames until done);
``preload`` names modules imported before hardening (so they need not be readable afterwards and
their import time is not charged to the user). Failures caused by user code are raised as
``JobError`` with the user-facing message; anything else is an internal error.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from engine_svc.engine.session import ProgressFn
from engine_svc.sandbox.usercode import (
    STRATEGY_FILENAME,
    JobError,
    compile_strategy,
    exception_summary,
    exec_module,
    first_strategy_line,
    syntax_message,
    user_error,
)

JobFn = Callable[[dict[str, Any], bytearray, Any], Any]  # third argument: ProgressFn, or a Pipe


class Pipe(Protocol):
    """An interactive job's frames to and from the trusted parent (worker.py implements it)."""

    def read(self) -> tuple[dict[str, Any], bytearray]: ...
    def write_binary(self, parts: list[bytes | memoryview]) -> None: ...

# The engine modules a strategy job needs (owned by the engine package). Imported before hardening.
ENGINE_SESSION = "engine_svc.engine.session"
ENGINE_ERRORS = "engine_svc.engine.errors"
ENGINE_DAYWIRE = "engine_svc.engine.daywire"
ENGINE_TRIALS = "engine_svc.engine.trials"
ENGINE_LOADER = "engine_svc.engine.strategy_loader"
# Where BaseStrategy may live: the engine's module, or the zquant-compatible import path.
BASE_STRATEGY_MODULES = ("engine_svc.engine.strategy", "zquant.backtest.strategy")


@dataclass(frozen=True)
class Job:
    fn: JobFn
    preload: tuple[str, ...] = ()  # required modules
    optional_preload: tuple[str, ...] = ()  # imported if present
    setup: Callable[[], None] | None = None  # runs after the imports, before hardening
    interactive: bool = False  # gets a Pipe (frames both ways) instead of a progress callback


JOBS: dict[str, Job] = {}


def job(
    name: str,
    preload: tuple[str, ...] = (),
    optional_preload: tuple[str, ...] = (),
    setup: Callable[[], None] | None = None,
    interactive: bool = False,
) -> Callable[[JobFn], JobFn]:
    def register(fn: JobFn) -> JobFn:
        JOBS[name] = Job(fn, preload, optional_preload, setup, interactive)
        return fn

    return register


def preload(name: str) -> Job:
    """Import what job ``name`` needs; raises KeyError / ImportError (→ internal error)."""
    spec = JOBS[name]
    for module in spec.preload:
        importlib.import_module(module)
    for module in spec.optional_preload:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    if spec.setup is not None:
        spec.setup()
    return spec


def install_zquant_aliases() -> None:
    """Make ``from zquant.backtest.strategy import BaseStrategy`` work in strategy code. Done
    before hardening: the engine's helper probes sys.path, which Landlock then hides."""
    try:
        loader = importlib.import_module(ENGINE_LOADER)
    except ImportError:
        return
    loader.install_zquant_aliases()


def _call_user(fn: Callable[..., Any], *args: Any) -> Any:
    """Call into user code; its exceptions become JobErrors. MemoryError and SystemExit pass
    through: the worker reports them as the memory limit / an exit without result."""
    try:
        return fn(*args)
    except (MemoryError, SystemExit):
        raise
    except BaseException as exc:
        raise user_error(exc) from None


# ---- strategy (one backtest's strategy side) -----------------------------------------------------


@job("strategy", preload=(ENGINE_SESSION, ENGINE_TRIALS), setup=install_zquant_aliases, interactive=True)
def strategy_job(request: dict[str, Any], body: bytearray, pipe: Pipe) -> Any:
    """The strategy's side of one backtest (``engine_svc.engine.session.StrategyHost``): read
    each day's data, run the strategy, answer with its order intents; until the trusted side
    says "end". The ledger, matching and valuation stay with the trusted side."""
    session = importlib.import_module(ENGINE_SESSION)
    errors = importlib.import_module(ENGINE_ERRORS)
    daywire = importlib.import_module(ENGINE_DAYWIRE)
    trials = importlib.import_module(ENGINE_TRIALS)
    try:
        init = request["init"]
        host = trials.TrialsHost(init) if "trials" in init else session.StrategyHost(init)
        with session.paced_gc():
            while True:
                header, data = pipe.read()
                if header["type"] == "end":
                    return None
                if header["type"] != "bin":
                    raise JobError("internal", f"unexpected {header['type']!r} frame")
                reply = host.handle(data)
                if reply is not None:
                    pipe.write_binary(reply)
    except errors.StrategyError as exc:
        if exc.exc_type == "MemoryError":
            raise MemoryError from None  # reported as the memory limit by the worker
        if exc.exc_type == "SystemExit":
            raise SystemExit from None
        raise JobError(exc.kind, exc.text, exc.lineno or 0) from None
    except daywire.WireError as exc:
        raise JobError("internal", f"invalid day message: {exc}") from None
    except RecursionError as exc:  # the engine's own frames may hit it while calling the strategy
        raise user_error(exc) from None


# ---- validation ----------------------------------------------------------------------------------


def _issue(line: int | None, column: int | None, message: str) -> dict[str, Any]:
    return {"line": int(line or 0), "column": int(column or 0), "message": message}


def _base_strategy() -> type | None:
    for name in BASE_STRATEGY_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        base = getattr(module, "BaseStrategy", None)
        if isinstance(base, type):
            return base
    return None


@job("validate", optional_preload=(ENGINE_LOADER,), setup=install_zquant_aliases)
def validate_job(request: dict[str, Any], body: bytearray, progress: ProgressFn) -> list[dict[str, Any]]:
    """Issues (line, column, message) with the strategy code; [] when it looks runnable."""
    code = request["code"]
    try:
        tree = ast.parse(code, STRATEGY_FILENAME)
    except SyntaxError as exc:
        return [_issue(exc.lineno, exc.offset, syntax_message(exc))]
    except (ValueError, OverflowError) as exc:
        return [_issue(1, 0, f"SyntaxError: {exc}")]
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Strategy"]
    if not classes:
        return [_issue(1, 0, "strategy code must define class Strategy")]
    node = classes[-1]
    try:
        compiled = compile_strategy(code)
    except JobError as exc:  # compile-time errors ast.parse does not catch (e.g. 'return' outside function)
        return [_issue(node.lineno, 0, exc.message)]
    try:
        module = exec_module(compiled)
    except (MemoryError, SystemExit):
        raise
    except BaseException as exc:
        return [_issue(first_strategy_line(exc) or 1, 0, f"module code failed: {exception_summary(exc)}")]
    cls = module.__dict__.get("Strategy")
    if not isinstance(cls, type):
        return [_issue(node.lineno, node.col_offset, "Strategy must be a class")]
    issues: list[dict[str, Any]] = []
    base = _base_strategy()
    if base is not None and not issubclass(cls, base):
        issues.append(_issue(node.lineno, node.col_offset, "class Strategy must subclass BaseStrategy"))
    on_bar = getattr(cls, "on_bar", None)
    base_on_bar = getattr(base, "on_bar", None) if base is not None else None
    if not callable(on_bar) or on_bar is base_on_bar:
        issues.append(
            _issue(node.lineno, node.col_offset, "class Strategy must define on_bar(self, context, bar_data)")
        )
    else:
        try:
            inspect.signature(on_bar).bind(None, None, None)
        except TypeError:
            line = getattr(getattr(on_bar, "__code__", None), "co_firstlineno", node.lineno)
            issues.append(_issue(line, 0, "on_bar must accept (self, context, bar_data)"))
        except ValueError:
            pass  # no signature available (builtin): let the run decide
    return issues


# ---- generic script (tests, tools) --------------------------------------------------------------


@job("script", optional_preload=(ENGINE_SESSION,), setup=install_zquant_aliases)
def script_job(request: dict[str, Any], body: bytearray, progress: ProgressFn) -> Any:
    """Run ``code`` as a module; if it defines ``main(args, progress)``, return its result."""
    module = _call_user(exec_module, compile_strategy(request["code"]))
    main = module.__dict__.get("main")
    if main is None:
        return None
    return _call_user(main, request.get("args"), progress)


# ---- self check ----------------------------------------------------------------------------------


def _probe(action: Callable[[], object]) -> str:
    try:
        action()
    except OSError as exc:
        return f"blocked ({type(exc).__name__})"
    return "allowed"


def _try_fork() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


def _try_socket() -> None:
    import socket

    socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()


def _try_read(path: str) -> None:
    with open(path, "rb") as fh:
        fh.read(1)


def _try_write() -> None:
    path = f"/tmp/.zq-sandbox-probe-{os.getpid()}"  # noqa: S108 - the probe checks writes are denied
    with open(path, "wb"):
        pass
    os.unlink(path)


@job("selfcheck", optional_preload=("socket",))
def selfcheck_job(request: dict[str, Any], body: bytearray, progress: ProgressFn) -> dict[str, Any]:
    """Prove the layers from inside: what a strategy could and could not do here."""
    import numpy as np

    progress(0.5, "", float(np.arange(4).sum()))
    return {
        "numpy": np.__version__,
        "fork": _probe(_try_fork),
        "socket": _probe(_try_socket),
        "read_etc_passwd": _probe(lambda: _try_read("/etc/passwd")),
        "write_tmp": _probe(_try_write),
        "kill_parent": _probe(lambda: os.kill(os.getppid(), 0)),
    }
