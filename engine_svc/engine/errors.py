"""``StrategyError``: how a failing strategy is reported — the one formatter of strategy failures.

The strategy is compiled under the pseudo file name ``STRATEGY_FILENAME``, so its frames can be
picked out of a traceback: engine internals are none of the user's business (and, in the
service, nothing to show). The sandbox's jobs use the same formatter (``engine_svc.sandbox``
reports a StrategyError's kind, message and line as fields).
"""

from __future__ import annotations

from collections import deque
from typing import Any

STRATEGY_FILENAME = "<strategy>"
MAX_SUMMARY_CHARS = 2000
MAX_MESSAGE_CHARS = 8000
HEAD_FRAMES = 3  # outermost strategy frames kept
TAIL_FRAMES = 8  # innermost strategy frames kept (a RecursionError has ~1000)
SYNTAX_ERRORS = ("SyntaxError", "IndentationError", "TabError")
DEFINITION_ERROR = "StrategyDefinitionError"


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 15] + " … (truncated)"


def exception_summary(exc: BaseException) -> str:
    """``KeyError: 'x'`` — what the user reads first."""
    try:
        text = str(exc)
    except Exception:  # a hostile __str__
        text = "<unprintable>"
    name = type(exc).__name__
    return clip(f"{name}: {text}" if text else name, MAX_SUMMARY_CHARS)


def strategy_frames(exc: BaseException, source_lines: list[str]) -> tuple[list[str], int | None]:
    """(traceback lines from the strategy file only, innermost strategy line or None).

    Walks the traceback chain itself rather than materialising it: a RecursionError can carry a
    million frames. Consecutive identical frames form one run; the first HEAD_FRAMES and the last
    TAIL_FRAMES runs are kept, with a note of how many were left out.
    """
    head: list[list[Any]] = []  # [lineno, function, repeat count]
    tail: deque[list[Any]] = deque(maxlen=TAIL_FRAMES)
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
                if len(head) < HEAD_FRAMES:
                    head.append(last)
                else:
                    skipped += len(tail) == tail.maxlen
                    tail.append(last)
        tb = tb.tb_next
    lines: list[str] = []
    for k, (lineno, func, count) in enumerate([*head, *tail]):
        if k == len(head) and skipped:
            lines.append(f"  … {skipped} more frames …")
        lines.append(f'  File "{STRATEGY_FILENAME}", line {lineno}, in {func}')
        if 0 < lineno <= len(source_lines) and source_lines[lineno - 1].strip():
            lines.append(f"    {clip(source_lines[lineno - 1].strip(), 200)}")
        if count > 1:
            lines.append(f"  [previous line repeated {count - 1} more times]")
    return lines, (last[0] if last is not None else None)


class StrategyError(Exception):
    """The strategy failed: it raised, did not compile, or defines no ``Strategy`` class.

    ``kind``: "strategy_error" (it raised) or "syntax_error" (it cannot be loaded: does not
    compile, no Strategy class). ``exc_type``/``message`` describe the original exception;
    ``traceback_lines`` hold only the strategy's own frames; ``lineno`` is the strategy line the
    failure points at (None when unknown). ``text`` is what the user reads.
    """

    def __init__(self, exc_type: str, message: str, traceback_lines: list[str] | None = None,
                 lineno: int | None = None, *, kind: str | None = None) -> None:
        self.exc_type = exc_type
        self.message = message
        self.traceback_lines = list(traceback_lines or [])
        self.lineno = lineno
        self.kind = kind or ("syntax_error" if exc_type in SYNTAX_ERRORS else "strategy_error")
        super().__init__(self.summary)

    @property
    def summary(self) -> str:
        if self.exc_type == DEFINITION_ERROR:  # not an exception the user raised: just say what is wrong
            return self.message
        return clip(f"{self.exc_type}: {self.message}" if self.message else self.exc_type, MAX_SUMMARY_CHARS)

    @property
    def text(self) -> str:
        """``Type: message`` followed by the strategy's frames, innermost last."""
        return clip("\n".join([self.summary, *self.traceback_lines]), MAX_MESSAGE_CHARS)

    @classmethod
    def from_exception(cls, exc: BaseException, source: str) -> StrategyError:
        lines, lineno = strategy_frames(exc, source.splitlines())
        if isinstance(exc, SyntaxError) and exc.filename == STRATEGY_FILENAME:
            message = f"{exc.msg} (line {exc.lineno})"
            return cls(type(exc).__name__, message, lines, exc.lineno, kind="syntax_error")
        summary = exception_summary(exc)
        name = type(exc).__name__
        return cls(name, summary[len(name) + 2:] if summary.startswith(f"{name}: ") else "", lines, lineno)

    @classmethod
    def definition(cls, message: str, lineno: int | None = None) -> StrategyError:
        """The code loads but is not a strategy (e.g. no ``Strategy`` class)."""
        return cls(DEFINITION_ERROR, message, [], lineno, kind="syntax_error")
