"""Per-deployment resource limits for sandboxed workers, and the rlimits the worker applies to itself.

The parent turns a ``SandboxLimits`` into concrete numbers for one job (CPU and wall seconds scale
with the backtest's symbol-days); the worker calls ``apply_rlimits`` before any user code runs.
"""

from __future__ import annotations

import math
import os
import resource
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

_MB = 1024 * 1024


@dataclass(frozen=True)
class SandboxLimits:
    memory_mb: int = 1024  # RLIMIT_AS for the strategy itself; numpy+pandas import fine under 512 MB
    data_memory_factor: float = 3.0  # plus this × the market data size (the engine copies/adjusts it)
    max_memory_mb: int = 16384  # upper bound of the scaled address-space limit
    base_seconds: float = 10.0  # CPU allowance of any job, before scaling
    seconds_per_symbol_day: float = 2e-4  # ~0.2 ms of Python per symbol per day is generous
    max_seconds: float = 600.0  # upper bound for both CPU and wall time of one job
    wall_factor: float = 1.5  # wall = cpu * factor + startup: a busy host may not give us a full core
    startup_seconds: float = 5.0  # interpreter + numpy/pandas import on a loaded host
    file_size_mb: int = 16  # RLIMIT_FSIZE (the worker writes no files; Landlock denies writes anyway)
    open_files: int = 64  # RLIMIT_NOFILE
    result_max_mb: int = 256  # cap on the result frame the parent accepts
    log_max_kb: int = 1024  # stdout/stderr kept from the worker; the rest is counted and dropped
    bwrap: str = "auto"  # "auto" (use when usable), "on" (required), "off"
    landlock: bool = True
    seccomp: bool = True
    rlimits: bool = True
    require: tuple[str, ...] = ("rlimits", "seccomp")  # layers whose absence fails the job
    # Imported before hardening, for start-up speed only: anything under the interpreter prefix stays
    # importable afterwards (pandas imports lazily in ~0.3 s, so only numpy, which every job uses).
    preload: tuple[str, ...] = ("numpy",)
    # Backtest workers the engine service keeps started ahead of time (imports done, hardened
    # only when a run takes one): each saves a run the ~0.15 s start-up. 0: start per run.
    spares: int = 1
    # µs each side of a backtest polls for the other's next frame before sleeping (spin.py); only
    # with two or more usable CPUs, and each side stops when its spins keep running out. 0: off.
    spin_us: int = 100
    cpu_seconds: int | None = None  # fixed CPU limit instead of the scaled one (tests, tools)
    wall_seconds: float | None = None  # fixed wall limit instead of the scaled one

    def __post_init__(self) -> None:
        if self.bwrap not in ("auto", "on", "off"):
            raise ValueError("bwrap must be 'auto', 'on' or 'off'")
        if self.memory_mb < 64:
            raise ValueError("memory_mb must be at least 64")
        object.__setattr__(self, "require", tuple(self.require))
        object.__setattr__(self, "preload", tuple(self.preload))

    def cpu_limit(self, symbol_days: int = 0) -> int:
        """Whole CPU seconds for a job over ``symbol_days`` (dates × symbols) of data."""
        if self.cpu_seconds is not None:
            return max(1, int(self.cpu_seconds))
        scaled = self.base_seconds + self.seconds_per_symbol_day * max(0, symbol_days)
        return max(1, math.ceil(min(self.max_seconds, scaled)))

    def wall_limit(self, symbol_days: int = 0) -> float:
        """Wall-clock seconds from worker start to result, enforced by the parent."""
        if self.wall_seconds is not None:
            return float(self.wall_seconds)
        return min(self.max_seconds, self.cpu_limit(symbol_days) * self.wall_factor + self.startup_seconds)

    def memory_limit(self, data_bytes: int = 0) -> int:
        """RLIMIT_AS in MB for a job carrying ``data_bytes`` of market data: the strategy's own
        budget does not shrink as the panel grows (10 years × 5000 symbols is ~1 GB of bars)."""
        scaled = self.memory_mb + math.ceil(self.data_memory_factor * max(0, data_bytes) / _MB)
        return max(self.memory_mb, min(self.max_memory_mb, scaled))

    def with_(self, **changes: Any) -> SandboxLimits:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SandboxLimits:
        """Read ZQ_SANDBOX_<FIELD> (e.g. ZQ_SANDBOX_MEMORY_MB=2048, ZQ_SANDBOX_BWRAP=off)."""
        env = os.environ if env is None else env
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"ZQ_SANDBOX_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            default = getattr(cls, f.name)
            try:
                if isinstance(default, bool):
                    kwargs[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
                elif isinstance(default, tuple):
                    kwargs[f.name] = tuple(p.strip() for p in raw.split(",") if p.strip())
                elif isinstance(default, int) or f.name == "cpu_seconds":
                    kwargs[f.name] = int(raw)
                elif isinstance(default, float) or f.name == "wall_seconds":
                    kwargs[f.name] = float(raw)
                else:
                    kwargs[f.name] = raw.strip()
            except ValueError:
                raise ValueError(f"ZQ_SANDBOX_{f.name.upper()}={raw!r} is not a valid value") from None
        return cls(**kwargs)


def apply_rlimits(*, memory_mb: int, cpu_seconds: int, file_size_mb: int, open_files: int) -> dict[str, int]:
    """Worker side: set hard limits on itself. Called after the preloads, before any user code.

    RLIMIT_CPU counts from process start, so the limit is added to what the imports already used.
    The hard CPU limit is soft+1: SIGXCPU at soft (a clean "CPU time" death), SIGKILL at hard if
    the strategy ignores SIGXCPU. RLIMIT_NPROC is deliberately not used: it counts threads, is
    shared by every process of the uid and is ignored for root (fork is blocked by seccomp).
    """
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu_soft = math.ceil(used.ru_utime + used.ru_stime) + cpu_seconds
    mem = memory_mb * _MB
    fsize = file_size_mb * _MB
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_soft, cpu_soft + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return {"as_mb": memory_mb, "cpu_s": cpu_soft, "fsize_mb": file_size_mb, "nofile": open_files}
