"""What a worker can be asked to do. Runs inside the hardened worker only.

A job is a function ``(request header, request body, progress) -> JSON-serialisable value``;
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
from typing import Any

from engine_svc.sandbox.usercode import (
    STRATEGY_FILENAME,
    JobError,
    collapse_frame_lines,
    compile_strategy,
    exception_summary,
    exec_module,
    failure_message,
    first_strategy_line,
    syntax_message,
    user_error,
)

ProgressFn = Callable[[float, str, float], None]
JobFn = Callable[[dict[str, Any], bytearray, ProgressFn], Any]

# The engine's entry point (owned by the engine package). Checked at preload time.
ENGINE_RUNNER = "engine_svc.engine.runner"
ENGINE_ERRORS = "engine_svc.engine.errors"
ENGINE_LOADER = "engine_svc.engine.strategy_loader"
# Where BaseStrategy may live: the engine's module, or the zquant-compatible import path.
BASE_STRATEGY_MODULES = ("engine_svc.engine.strategy", "zquant.backtest.strategy")


@dataclass(frozen=True)
class Job:
    fn: JobFn
    preload: tuple[str, ...] = ()  # required modules
    optional_preload: tuple[str, ...] = ()  # imported if present
    setup: Callable[[], None] | None = None  # runs after the imports, before hardening


JOBS: dict[str, Job] = {}


def job(
    name: str,
    preload: tuple[str, ...] = (),
    optional_preload: tuple[str, ...] = (),
    setup: Callable[[], None] | None = None,
) -> Callable[[JobFn], JobFn]:
    def register(fn: JobFn) -> JobFn:
        JOBS[name] = Job(fn, preload, optional_preload, setup)
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


# ---- backtest ------------------------------------------------------------------------------------


@job("backtest", preload=(ENGINE_RUNNER, ENGINE_ERRORS), setup=install_zquant_aliases)
def backtest_job(request: dict[str, Any], body: bytearray, progress: ProgressFn) -> Any:
    """The engine's whole daily loop for one backtest, inside the worker."""
    from engine_svc.engine.config import BacktestConfig
    from engine_svc.sandbox.protocol import panel_from_wire

    return run_engine(
        panel_from_wire(request["panel"], body),
        request["code"],
        BacktestConfig.from_dict(request["config"]),
        progress,
    )


def run_engine(panel: Any, code: str, config: Any, progress: ProgressFn) -> Any:
    """Adapter to ``engine_svc.engine.runner.run_backtest`` and its StrategyError.

    The code is compiled here first so a syntax error is reported the same way for every job.
    """
    runner = importlib.import_module(ENGINE_RUNNER)
    errors = importlib.import_module(ENGINE_ERRORS)
    compile_strategy(code)
    try:
        return runner.run_backtest(panel, code, config, progress)
    except errors.StrategyError as exc:
        raise strategy_error_to_job_error(exc) from None
    except (MemoryError, SystemExit, JobError):
        raise
    except SyntaxError as exc:
        if exc.filename == STRATEGY_FILENAME:
            raise JobError("syntax_error", syntax_message(exc)) from None
        raise
    except RecursionError as exc:  # the engine's own frames may hit it while calling the strategy
        raise user_error(exc) from None


def strategy_error_to_job_error(exc: Any) -> JobError:
    """Map the engine's StrategyError (exc_type, message, traceback lines) to our message format."""
    exc_type = str(getattr(exc, "exc_type", "") or "Exception")
    text = str(getattr(exc, "message", "") or "")
    if exc_type == "MemoryError":
        raise MemoryError  # reported as the memory limit by the worker
    if exc_type == "SystemExit":
        raise SystemExit
    if exc_type == "StrategyDefinitionError":  # e.g. "strategy code must define class Strategy"
        return JobError("syntax_error", text[:2000])
    lines = getattr(exc, "traceback_lines", None) or []
    if isinstance(lines, str):
        lines = lines.splitlines()
    summary = f"{exc_type}: {text}" if text else exc_type
    kind = "syntax_error" if exc_type in ("SyntaxError", "IndentationError", "TabError") else "strategy_error"
    frames = collapse_frame_lines([str(line).rstrip("\n") for line in lines])
    return JobError(kind, failure_message(summary[:2000], frames))


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


@job("validate", optional_preload=(ENGINE_RUNNER,), setup=install_zquant_aliases)
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


@job("script", optional_preload=(ENGINE_RUNNER,), setup=install_zquant_aliases)
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
