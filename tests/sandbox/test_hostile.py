"""Hostile strategies, each a real worker run: every one must end in the right SandboxError
(kind and message), leave nothing behind (see conftest.no_leftovers) and leave the parent intact.
Runs once per isolation mode usable here (plain, and inside bubblewrap when available)."""

from __future__ import annotations

import os
import resource
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine_svc.sandbox import launcher
from engine_svc.sandbox.api import run_in_sandbox
from engine_svc.sandbox.errors import KILLED_MESSAGE, NO_RESULT_MESSAGE, SandboxError
from engine_svc.sandbox.launcher import SandboxOutcome

from .helpers import config_for, limits_for, make_panel, strategy

Run = Callable[..., SandboxOutcome]


def fails(run: Run, body: str, **kwargs: object) -> SandboxError:
    with pytest.raises(SandboxError) as info:
        run(body, **kwargs)
    return info.value


# ---- secrets of the parent -----------------------------------------------------------------------


def test_env_secret_of_parent_is_not_visible(run_strategy: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZQ_SECRET", "hunter2-env-secret")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:hunter2@db/x")
    err = fails(run_strategy, "print(dict(os.environ))\nraise ValueError(sorted(os.environ))")
    assert err.kind == "strategy_error"
    assert err.message.startswith("ValueError: ['LANG', ")
    for leaked in ("hunter2", "ZQ_SECRET", "DATABASE_URL"):
        assert leaked not in err.message and leaked not in err.logs
    assert "PATH" in err.logs  # the print did run: the worker saw only its minimal environment


def test_config_file_readable_by_parent_is_not_readable(run_strategy: Run, tmp_path) -> None:
    secret = tmp_path / "service.ini"
    secret.write_text("db_password = hunter2-file-secret\n")
    secret.chmod(0o644)
    err = fails(run_strategy, "print(open(self.params['path']).read())", params={"path": str(secret)})
    assert err.kind == "strategy_error"
    # Landlock denies it (PermissionError); inside bwrap the file does not even exist.
    assert err.message.startswith(("PermissionError: [Errno 13]", "FileNotFoundError: [Errno 2]"))
    assert "hunter2" not in err.message + err.logs


def test_other_project_files_are_not_readable(run_strategy: Run) -> None:
    """Only the engine and sandbox code are readable, not the rest of the repository."""
    import engine_svc

    repo = Path(engine_svc.__file__).resolve().parents[1]
    code = "for p in self.params['paths']:\n    try:\n        open(p).read(1)\n        print('READ', p)\n" \
           "    except OSError as e:\n        print('DENIED', p, type(e).__name__)"
    paths = [str(repo / "pyproject.toml"), str(repo / "engine_svc" / "engine" / "runner.py")]
    outcome = run_strategy(code, params={"paths": paths})
    assert f"DENIED {paths[0]}" in outcome.logs
    assert f"READ {paths[1]}" in outcome.logs  # the control: engine code stays readable


def test_proc_environ_of_parent_is_not_readable(run_strategy: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZQ_SECRET", "hunter2-proc-secret")
    code = "print(open('/proc/%d/environ' % self.params['ppid'], 'rb').read())"
    err = fails(run_strategy, code, params={"ppid": os.getpid()})
    assert err.kind == "strategy_error"
    assert err.message.startswith(("PermissionError", "FileNotFoundError"))
    assert "hunter2" not in err.message + err.logs


def test_etc_passwd_is_not_readable(run_strategy: Run) -> None:
    err = fails(run_strategy, "print(open('/etc/passwd').read())")
    assert err.message.startswith(("PermissionError: [Errno 13]", "FileNotFoundError: [Errno 2]"))
    assert "root:" not in err.logs


def test_tcp_connection_to_a_local_listener_is_blocked(run_strategy: Run) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        code = "import socket\nsocket.create_connection(('127.0.0.1', self.params['port']), timeout=2)"
        err = fails(run_strategy, code, params={"port": port})
        assert err.kind == "strategy_error"
        assert err.message.startswith("PermissionError: [Errno 1] Operation not permitted")
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody ever connected


# ---- processes -----------------------------------------------------------------------------------


def test_fork_loop_is_blocked(run_strategy: Run) -> None:
    err = fails(run_strategy, "while True:\n    os.fork()")
    assert err.kind == "strategy_error"
    assert err.message.startswith("PermissionError: [Errno 1] Operation not permitted")
    assert "os.fork()" in err.message  # the strategy line is shown


def test_subprocess_is_blocked(run_strategy: Run) -> None:
    err = fails(run_strategy, "import subprocess\nsubprocess.run(['echo', 'hi'])")
    assert err.kind == "strategy_error"
    assert err.message.startswith("PermissionError: [Errno 1] Operation not permitted")


def test_killing_the_parent_is_blocked(run_strategy: Run) -> None:
    code = "os.kill(self.params['ppid'], 9)\nos.kill(os.getppid(), 9)"
    err = fails(run_strategy, code, params={"ppid": os.getpid()})
    assert err.kind == "strategy_error"
    assert err.message.startswith("PermissionError: [Errno 1] Operation not permitted")
    assert os.getpid() > 0  # and we are still here to assert it


def test_raising_its_own_limits_is_blocked(run_strategy: Run) -> None:
    code = "import resource\nresource.setrlimit(resource.RLIMIT_CPU, (10**6, 10**6))"
    err = fails(run_strategy, code)
    assert err.message.startswith(("PermissionError", "ValueError"))


def test_changing_file_modes_is_blocked(run_strategy: Run, tmp_path) -> None:
    """Landlock does not cover chmod/chown/xattr on readable paths; seccomp does."""
    target = tmp_path / "file.txt"
    target.write_text("x")
    target.chmod(0o644)
    err = fails(run_strategy, "os.chmod(self.params['path'], 0o777)", params={"path": str(target)})
    assert err.message.startswith("PermissionError: [Errno 1] Operation not permitted")
    assert target.stat().st_mode & 0o777 == 0o644


def test_ipc_objects_outliving_the_worker_are_blocked(run_strategy: Run) -> None:
    code = "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n" \
           "shm = libc.shmget(0, 4096, 0o1600)\nerrno = ctypes.get_errno()\n" \
           "try:\n    os.memfd_create('x')\nexcept OSError as e:\n    raise RuntimeError(shm, errno, e.errno)"
    err = fails(run_strategy, code)
    assert err.message.startswith("RuntimeError: (-1, 1, 1)")  # both EPERM


def test_clearing_the_parent_death_signal_is_blocked(run_strategy: Run) -> None:
    code = "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n" \
           "raise RuntimeError(libc.prctl(1, 0, 0, 0, 0), ctypes.get_errno())"
    err = fails(run_strategy, code)
    assert err.message.startswith("RuntimeError: (-1, 1)")  # PR_SET_PDEATHSIG → EPERM


# ---- resources -----------------------------------------------------------------------------------


def test_allocating_10_gb_hits_the_memory_limit(run_strategy: Run) -> None:
    err = fails(run_strategy, "x = bytearray(10**10)")
    assert (err.kind, err.message) == ("memory", "memory limit exceeded (512 MB)")


def test_growing_memory_hits_the_memory_limit(run_strategy: Run) -> None:
    err = fails(run_strategy, "hoard = []\nwhile True:\n    hoard.append(bytearray(2**20))")
    assert (err.kind, err.message) == ("memory", "memory limit exceeded (512 MB)")


def test_infinite_loop_hits_the_cpu_limit(run_strategy: Run) -> None:
    t0 = time.monotonic()
    err = fails(run_strategy, "while True:\n    pass", cpu_seconds=1, wall_seconds=60)
    assert (err.kind, err.message) == ("cpu_time", "CPU time limit exceeded (1 s)")
    assert time.monotonic() - t0 < 60


def test_a_worker_killed_after_some_days_reports_its_limit_not_an_internal_error(run_strategy: Run) -> None:
    """The worker dies (SIGKILL at the hard CPU limit, no error frame) after answering two days:
    the run's error is the limit. The trusted side's end-of-run step must not write to the closed
    pipe (its fd number may already belong to another file of the service): it used to raise
    EBADF there, which became "internal error in the engine service"."""
    code = "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nif len(self.seen) >= 2:\n" \
           "    while True:\n        pass\nself.seen.append(1)"
    code = strategy(code).replace("    def on_bar", "    seen = []\n\n    def on_bar", 1)
    err = fails(run_strategy, code, cpu_seconds=1, wall_seconds=60)
    assert (err.kind, err.message) == ("cpu_time", "CPU time limit exceeded (1 s)")


def test_ignoring_sigxcpu_still_hits_the_cpu_limit(run_strategy: Run) -> None:
    code = "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass"
    err = fails(run_strategy, code, cpu_seconds=1, wall_seconds=60)
    assert (err.kind, err.message) == ("cpu_time", "CPU time limit exceeded (1 s)")


def test_sleeping_forever_hits_the_wall_clock_limit(run_strategy: Run) -> None:
    t0 = time.monotonic()
    err = fails(run_strategy, "time.sleep(3600)", wall_seconds=2)
    elapsed = time.monotonic() - t0
    assert (err.kind, err.message) == ("wall_time", "time limit exceeded (2 s)")
    assert 2 <= elapsed < 3.5


def test_writing_a_1_gb_file_is_blocked(run_strategy: Run) -> None:
    code = "with open('/tmp/big.bin', 'wb') as fh:\n    fh.write(b'x' * 2**30)"
    err = fails(run_strategy, code)
    assert err.kind in ("strategy_error", "memory")
    assert err.message.startswith(("PermissionError", "OSError", "memory limit"))


def test_file_size_limit_holds_without_landlock(tmp_path) -> None:
    """RLIMIT_FSIZE alone (Landlock off, no bwrap): the write stops at file_size_mb."""
    target = tmp_path / "big.bin"
    code = strategy("with open(self.params['path'], 'wb') as fh:\n    for _ in range(1024):\n"
                    "        fh.write(b'x' * 2**20)")
    panel = make_panel()
    lim = limits_for("plain", landlock=False, file_size_mb=4)
    with pytest.raises(SandboxError) as info:
        run_in_sandbox(panel, code, config_for(panel, path=str(target)), limits=lim)
    assert info.value.kind == "strategy_error"
    assert "File too large" in info.value.message
    assert target.stat().st_size <= 4 * 2**20


def test_printing_100_mb_is_captured_capped(run_strategy: Run) -> None:
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    body = "if not getattr(self, 'done', False):\n    self.done = True\n    line = 'y' * 1023\n" \
           "    for _ in range(100 * 1024):\n        print(line)"
    outcome = run_strategy(body, log_max_kb=256)
    assert outcome.result["daily"]  # the backtest still completed
    assert len(outcome.logs) < 300 * 1024
    assert "bytes of output truncated" in outcome.logs
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    assert grown_kb < 64 * 1024, f"parent grew by {grown_kb} KB"


# ---- crashes and exits ---------------------------------------------------------------------------


def test_deep_recursion_ends_cleanly(run_strategy: Run) -> None:
    code = "sys.setrecursionlimit(10**6)\ndef down(n):\n    return down(n + 1)\ndown(0)"
    t0 = time.monotonic()
    err = fails(run_strategy, code, cpu_seconds=20, wall_seconds=30, memory_mb=1024)
    assert time.monotonic() - t0 < 30
    if err.kind == "strategy_error":
        assert err.message.startswith("RecursionError: maximum recursion depth exceeded")
        assert "repeated" in err.message and len(err.message) < 8000
    else:
        assert (err.kind, err.message) in {
            ("crashed", "strategy process crashed (SIGSEGV)"), ("memory", "memory limit exceeded (1024 MB)"),
        }


def test_null_pointer_read_is_a_crash(run_strategy: Run) -> None:
    err = fails(run_strategy, "import ctypes\nctypes.string_at(0)")
    assert (err.kind, err.message) == ("crashed", "strategy process crashed (SIGSEGV)")


def test_os_exit_is_no_result(run_strategy: Run) -> None:
    err = fails(run_strategy, "os._exit(0)")
    assert (err.kind, err.message) == ("no_result", NO_RESULT_MESSAGE)


def test_sys_exit_is_no_result(run_strategy: Run) -> None:
    err = fails(run_strategy, "sys.exit()")
    assert err.kind == "no_result"
    assert err.message.startswith(NO_RESULT_MESSAGE)


def test_killing_itself_looks_like_an_outside_kill(run_strategy: Run) -> None:
    err = fails(run_strategy, "os.kill(os.getpid(), 9)")
    assert (err.kind, err.message) == ("killed", KILLED_MESSAGE)


def test_killed_from_outside(mode: str) -> None:
    handles: list[launcher.WorkerHandle] = []
    killer = threading.Timer(1.0, lambda: os.kill(handles[0].pid, signal.SIGKILL))
    killer.start()
    try:
        with pytest.raises(SandboxError) as info:
            launcher.run_job("script", {"code": "import time\ndef main(args, progress):\n    time.sleep(60)\n"},
                             limits=limits_for(mode), on_start=handles.append)
    finally:
        killer.cancel()
    assert (info.value.kind, info.value.message) == ("killed", KILLED_MESSAGE)


# ---- strategy errors -----------------------------------------------------------------------------


def test_strategy_exception_shows_only_strategy_frames(run_strategy: Run) -> None:
    err = fails(run_strategy, "d = {}\nreturn d['x']")
    assert err.kind == "strategy_error"
    lines = err.message.splitlines()
    assert lines[0] == "KeyError: 'x'"
    assert lines[1] == '  File "<strategy>", line 7, in on_bar'
    assert lines[2] == "    return d['x']"
    assert "engine_svc" not in err.message and "/work" not in err.message


def test_syntax_error_reports_the_line(run_strategy: Run) -> None:
    err = fails(run_strategy, "from zquant.backtest.strategy import BaseStrategy\nclass Strategy(BaseStrategy):\n"
                "    def on_bar(self, context, bar_data)\n        pass\n")
    assert err.kind == "syntax_error"
    assert err.message == "SyntaxError: expected ':' (line 3)"


def test_missing_strategy_class(run_strategy: Run) -> None:
    err = fails(run_strategy, "# class Strategy is not defined here\nx = 1\n")
    assert (err.kind, err.message) == ("syntax_error", "strategy code must define class Strategy")


def test_what_a_strategy_legitimately_needs_still_works(run_strategy: Run) -> None:
    """The filters are not too tight: threads, own signals, numpy/pandas, stdlib imports."""
    code = """
import signal, threading, math, json, datetime, statistics, collections
import numpy as np
import pandas as pd
got = []
signal.signal(signal.SIGUSR1, lambda *a: got.append('signal'))
os.kill(os.getpid(), signal.SIGUSR1)
t = threading.Thread(target=lambda: got.append('thread'))
t.start(); t.join()
s = pd.Series(np.arange(10.0)).rolling(3).mean()
got.append(float(s.iloc[-1]) + float(np.linalg.inv(np.eye(2))[0, 0]))
print(json.dumps(got))
"""
    outcome = run_strategy(code, memory_mb=1024)
    assert '["signal", "thread", 9.0]' in outcome.logs


def test_normal_backtest_still_works_after_all_that(run_strategy: Run) -> None:
    progress: list[tuple[float, str, float]] = []
    outcome = run_strategy("for s in bar_data:\n    context.order_target_value(s, 100000)",
                           on_progress=lambda *a: progress.append(a))
    assert len(outcome.result["daily"]) == 5
    assert outcome.result["trades"]
    assert progress and all(0.0 <= f <= 1.0 for f, _, _ in progress)
    assert outcome.isolation["seccomp"] is True and outcome.isolation["rlimits"]
    assert outcome.timings["start_s"] > 0 and outcome.timings["total_s"] >= outcome.timings["start_s"]
