"""Compiling and running untrusted code inside the worker (validation and script jobs).

Code is compiled under the pseudo file name ``<strategy>`` so its frames can be picked out of a
traceback: users see their own line numbers, never engine or sandbox internals. Failures are
described by the engine's formatter (``engine_svc.engine.errors``), the same as a backtest's.
"""

from __future__ import annotations

import linecache
import types

from engine_svc.engine.errors import (
    MAX_SUMMARY_CHARS,
    STRATEGY_FILENAME,
    StrategyError,
    clip,
    exception_summary,
    strategy_frames,
)

__all__ = ["STRATEGY_FILENAME", "JobError", "compile_strategy", "exception_summary", "exec_module",
           "first_strategy_line", "syntax_message", "user_error"]


class JobError(Exception):
    """A job failure already mapped to a SandboxError kind, a user-facing message and (for
    strategy failures) the strategy line it points at (0: none)."""

    def __init__(self, kind: str, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.line = line


def compile_strategy(code: str) -> types.CodeType:
    """Compile, registering the source with linecache so tracebacks can show strategy lines."""
    try:
        compiled = compile(code, STRATEGY_FILENAME, "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise JobError("syntax_error", syntax_message(exc), exc.lineno or 0) from None
    except (ValueError, OverflowError) as exc:  # e.g. "source code string cannot contain null bytes"
        raise JobError("syntax_error", f"SyntaxError: {exc}") from None
    lines = code.splitlines(keepends=True)
    linecache.cache[STRATEGY_FILENAME] = (len(code), None, lines, STRATEGY_FILENAME)
    return compiled


def syntax_message(exc: SyntaxError) -> str:
    where = f" (line {exc.lineno})" if exc.lineno else ""
    return clip(f"{type(exc).__name__}: {exc.msg}{where}", MAX_SUMMARY_CHARS)


def exec_module(compiled: types.CodeType, name: str = "strategy") -> types.ModuleType:
    """Run the module body of the strategy (user code) in a fresh module namespace."""
    module = types.ModuleType(name)
    module.__file__ = STRATEGY_FILENAME
    exec(compiled, module.__dict__)  # noqa: S102 - this is the sandboxed worker: running user code is its job
    return module


def user_error(exc: BaseException) -> JobError:
    """A JobError for an exception raised by strategy code (the engine's one formatter)."""
    err = StrategyError.from_exception(exc, "".join(linecache.getlines(STRATEGY_FILENAME)))
    return JobError(err.kind, err.text, err.lineno or 0)


def first_strategy_line(exc: BaseException) -> int:
    """Line of the innermost strategy frame (0 if none): where a validation issue points."""
    return strategy_frames(exc, [])[1] or 0
