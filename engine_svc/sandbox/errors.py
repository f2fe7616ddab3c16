"""Every way a sandboxed run can end badly, as one exception with a machine kind and a user message.

The messages are what a user reads in a task's ``error_message`` (docs/sandbox.md, "Limits and
failures"), so they name the limit that was hit and never leak parent-side details (paths, pids,
env).
"""

from __future__ import annotations

import signal

KINDS: frozenset[str] = frozenset(
    {
        "strategy_error",  # the strategy raised; message = "KeyError: 'x'" + strategy-only traceback
        "syntax_error",  # the code does not compile
        "memory",  # RLIMIT_AS hit (MemoryError inside the worker)
        "cpu_time",  # RLIMIT_CPU hit (SIGXCPU, or SIGKILL at the hard limit)
        "wall_time",  # the parent's wall-clock deadline passed; the worker was killed
        "killed",  # SIGKILL from outside (kernel OOM killer, operator)
        "crashed",  # any other fatal signal (SIGSEGV from ctypes, C stack overflow, ...)
        "no_result",  # the worker exited cleanly but never sent a result (os._exit, sys.exit)
        "too_large",  # a frame from the worker exceeded its cap
        "protocol",  # the worker sent something that is not a valid frame / JSON
        "cancelled",  # the caller cancelled the run
        "internal",  # the sandbox itself failed (could not start, engine bug, missing layer)
    }
)

NO_RESULT_MESSAGE = "strategy process exited without a result"
KILLED_MESSAGE = "strategy process was killed (out of memory?)"
CANCELLED_MESSAGE = "backtest was cancelled"


class SandboxError(Exception):
    """A sandboxed job failed. ``kind`` is one of KINDS; ``message`` is safe to show to the user."""

    def __init__(self, kind: str, message: str, *, logs: str = "", line: int = 0) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown SandboxError kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.logs = logs  # captured stdout/stderr of the worker (capped), for the task's log
        self.line = line  # the strategy line a strategy/syntax error points at (0: none)

    def __repr__(self) -> str:
        return f"SandboxError({self.kind!r}, {self.message!r})"

    def to_dict(self) -> dict[str, str | int]:
        return {"kind": self.kind, "message": self.message, "line": self.line}


def memory_message(memory_mb: int) -> str:
    return f"memory limit exceeded ({memory_mb} MB)"


def cpu_message(cpu_seconds: int) -> str:
    return f"CPU time limit exceeded ({cpu_seconds} s)"


def wall_message(wall_seconds: float) -> str:
    return f"time limit exceeded ({wall_seconds:g} s)"


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def crashed_message(signum: int) -> str:
    return f"strategy process crashed ({signal_name(signum)})"


def classify_exit(
    returncode: int,
    *,
    cpu_used: float,
    cpu_limit: int,
    memory_mb: int,
    log_tail: str,
) -> SandboxError:
    """Map how a worker died (without sending a result or an error) to the user-facing error.

    ``returncode`` is Popen-style: negative = killed by that signal (the bwrap 128+N convention
    must already be translated by the caller). ``cpu_used`` comes from wait4()'s rusage, which is
    how a SIGKILL at the RLIMIT_CPU hard limit is told apart from a SIGKILL sent from outside.
    """
    if returncode < 0:
        sig = -returncode
        if sig == signal.SIGXCPU:
            return SandboxError("cpu_time", cpu_message(cpu_limit))
        if sig == signal.SIGKILL:
            # RLIMIT_CPU's hard limit is soft+1 s: a worker that ignored SIGXCPU is SIGKILLed there.
            if cpu_used >= cpu_limit - 0.05:
                return SandboxError("cpu_time", cpu_message(cpu_limit))
            return SandboxError("killed", KILLED_MESSAGE)
        return SandboxError("crashed", crashed_message(sig))
    if returncode != 0 and "MemoryError" in log_tail:
        # Python died with an unhandled MemoryError (e.g. while reporting one): exit status 1.
        return SandboxError("memory", memory_message(memory_mb))
    if returncode == 0:
        return SandboxError("no_result", NO_RESULT_MESSAGE)
    return SandboxError("no_result", f"{NO_RESULT_MESSAGE} (exit status {returncode})")
