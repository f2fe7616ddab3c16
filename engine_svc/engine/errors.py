"""``StrategyError``: how a failing strategy is reported by the engine.

The strategy is compiled under the pseudo file name ``STRATEGY_FILENAME``, so its frames can be
picked out of a traceback: engine internals are none of the user's business (and, in the
service, nothing to show).
"""

from __future__ import annotations

import traceback
from typing import Any

STRATEGY_FILENAME = "<strategy>"
MAX_FRAMES = 30  # innermost strategy frames kept (a RecursionError has ~1000)


class StrategyError(Exception):
    """The strategy failed: it raised, did not compile, or defines no ``Strategy`` class.

    ``exc_type``/``message`` describe the original exception; ``traceback_lines`` hold only the
    strategy's own frames ("line N, in func" followed by the source line); ``lineno`` is the
    innermost strategy line (None when unknown).
    """

    def __init__(self, exc_type: str, message: str, traceback_lines: list[str] | None = None,
                 lineno: int | None = None) -> None:
        self.exc_type = exc_type
        self.message = message
        self.traceback_lines = list(traceback_lines or [])
        self.lineno = lineno
        super().__init__(self.summary)

    @property
    def summary(self) -> str:
        return f"{self.exc_type}: {self.message}" if self.message else self.exc_type

    def format(self) -> str:
        """Human-readable text: strategy traceback then ``Type: message``."""
        if not self.traceback_lines:
            return self.summary
        return "Traceback (strategy code):\n" + "\n".join(self.traceback_lines) + "\n" + self.summary

    def to_dict(self) -> dict[str, Any]:
        return {"exc_type": self.exc_type, "message": self.message,
                "traceback": self.traceback_lines, "lineno": self.lineno}

    @classmethod
    def from_exception(cls, exc: BaseException, source: str) -> StrategyError:
        lines = source.splitlines()
        out: list[str] = []
        # walk_tb reads frames directly: no linecache, so no file reads for engine frames and
        # a deep RecursionError costs microseconds per frame.
        frames = [
            (frame.f_code.co_name, n)
            for frame, n in traceback.walk_tb(exc.__traceback__)
            if frame.f_code.co_filename == STRATEGY_FILENAME and n is not None
        ]
        lineno: int | None = frames[-1][1] if frames else None
        if len(frames) > MAX_FRAMES:
            out.append(f"  ... {len(frames) - MAX_FRAMES} earlier strategy frames omitted")
            frames = frames[-MAX_FRAMES:]
        for name, n in frames:
            out.append(f'  File "{STRATEGY_FILENAME}", line {n}, in {name}')
            if 0 < n <= len(lines):
                out.append(f"    {lines[n - 1].strip()}")
        if isinstance(exc, SyntaxError) and exc.filename == STRATEGY_FILENAME:
            lineno = exc.lineno
            message = f"{exc.msg} (line {exc.lineno})"
            if exc.text:
                out.append(f'  File "{STRATEGY_FILENAME}", line {exc.lineno}')
                out.append(f"    {exc.text.strip()}")
        else:
            message = str(exc)
        return cls(type(exc).__name__, message, out, lineno)
