"""Compiling and running untrusted strategy code inside the worker, and describing its failures.

Strategy code is compiled under the pseudo file name ``<strategy>`` so its frames can be picked out
of a traceback: users see their own line numbers, never engine or sandbox internals.
"""

from __future__ import annotations

import linecache
import types
from collections import deque
from typing import Any

STRATEGY_FILENAME = "<strategy>"
MAX_SUMMARY_CHARS = 2000
MAX_MESSAGE_CHARS = 8000
_HEAD_FRAMES = 3
_TAIL_FRAMES = 8


class JobError(Exception):
    """A job failure already mapped to a SandboxError kind and a user-facing message."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 15] + " … (truncated)"


def compile_strategy(code: str) -> types.CodeType:
    """Compile, registering the source with linecache so tracebacks can show strategy lines."""
    try:
        compiled = compile(code, STRATEGY_FILENAME, "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise JobError("syntax_error", syntax_message(exc)) from None
    except (ValueError, OverflowError) as exc:  # e.g. "source code string cannot contain null bytes"
        raise JobError("syntax_error", f"SyntaxError: {exc}") from None
    lines = code.splitlines(keepends=True)
    linecache.cache[STRATEGY_FILENAME] = (len(code), None, lines, STRATEGY_FILENAME)
    return compiled


def syntax_message(exc: SyntaxError) -> str:
    where = f" (line {exc.lineno})" if exc.lineno else ""
    return _clip(f"{type(exc).__name__}: {exc.msg}{where}", MAX_SUMMARY_CHARS)


def exec_module(compiled: types.CodeType, name: str = "strategy") -> types.ModuleType:
    """Run the module body of the strategy (user code) in a fresh module namespace."""
    module = types.ModuleType(name)
    module.__file__ = STRATEGY_FILENAME
    exec(compiled, module.__dict__)  # noqa: S102 - this is the sandboxed worker: running user code is its job
    return module


def exception_summary(exc: BaseException) -> str:
    """``KeyError: 'x'`` — what the user reads first."""
    try:
        text = str(exc)
    except Exception:  # a hostile __str__
        text = "<unprintable>"
    name = type(exc).__name__
    return _clip(f"{name}: {text}" if text else name, MAX_SUMMARY_CHARS)


def strategy_frames(exc: BaseException) -> list[str]:
    """Traceback lines from the strategy file only, innermost last, deep recursion collapsed.

    Walks the traceback chain itself rather than using traceback.extract_tb: a RecursionError can
    carry a million frames, and materialising them all would need more memory than the limit.
    Consecutive identical frames form one run; the first and the last few runs are kept.
    """
    head: list[list[Any]] = []  # [lineno, function, repeat count]
    tail: deque[list[Any]] = deque(maxlen=_TAIL_FRAMES)
    last: list[Any] | None = None
    skipped = 0
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename == STRATEGY_FILENAME:
            if last is not None and last[0] == tb.tb_lineno and last[1] == code.co_name:
                last[2] += 1
            else:
                last = [tb.tb_lineno, code.co_name, 1]
                if len(head) < _HEAD_FRAMES:
                    head.append(last)
                else:
                    skipped += len(tail) == tail.maxlen
                    tail.append(last)
        tb = tb.tb_next
    lines: list[str] = []
    for i, (lineno, func, count) in enumerate([*head, *tail]):
        if i == len(head) and skipped:
            lines.append(f"  … {skipped} more frames …")
        lines.append(f'  File "{STRATEGY_FILENAME}", line {lineno}, in {func}')
        source = linecache.getline(STRATEGY_FILENAME, lineno).strip()
        if source:
            lines.append(f"    {_clip(source, 200)}")
        if count > 1:
            lines.append(f"  [previous line repeated {count - 1} more times]")
    return lines


def failure_message(summary: str, frames: list[str]) -> str:
    return _clip("\n".join([summary, *frames]), MAX_MESSAGE_CHARS)


def user_error(exc: BaseException) -> JobError:
    """A JobError for an exception raised by strategy code."""
    if isinstance(exc, SyntaxError) and exc.filename == STRATEGY_FILENAME:
        return JobError("syntax_error", syntax_message(exc))
    return JobError("strategy_error", failure_message(exception_summary(exc), strategy_frames(exc)))


def first_strategy_line(exc: BaseException) -> int:
    """Line of the innermost strategy frame (0 if none): where a validation issue points."""
    line = 0
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == STRATEGY_FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def collapse_frame_lines(lines: list[str]) -> list[str]:
    """Shorten traceback lines formatted elsewhere (the engine's StrategyError): repeated frames
    become one "[previous frame repeated N more times]" line, and only the first and last frames
    are kept. Each frame is a 'File ...' line plus an optional indented source line."""
    frames: list[list[str]] = []
    for line in lines:
        if line.lstrip().startswith("File ") or not frames:
            frames.append([line])
        else:
            frames[-1].append(line)
    runs: list[tuple[list[str], int]] = []
    for frame in frames:
        if runs and runs[-1][0] == frame:
            runs[-1] = (frame, runs[-1][1] + 1)
        else:
            runs.append((frame, 1))
    if len(runs) > _HEAD_FRAMES + _TAIL_FRAMES:
        skipped = len(runs) - _HEAD_FRAMES - _TAIL_FRAMES
        runs = [*runs[:_HEAD_FRAMES], ([f"  … {skipped} more frames …"], 1), *runs[-_TAIL_FRAMES:]]
    out: list[str] = []
    for frame, count in runs:
        out += frame
        if count > 1:
            out.append(f"  [previous frame repeated {count - 1} more times]")
    return out
