"""How strategy failures are described (runs trusted test code in-process: no worker needed)."""

from __future__ import annotations

import pytest

from engine_svc.sandbox.usercode import (
    JobError,
    collapse_frame_lines,
    compile_strategy,
    exec_module,
    strategy_frames,
    user_error,
)


def _raise_from(code: str) -> BaseException:
    module = exec_module(compile_strategy(code))
    try:
        module.main()
    except Exception as exc:
        return exc
    raise AssertionError("expected an exception")


def test_mutual_recursion_keeps_first_and_last_frames() -> None:
    code = "def a(n):\n    return b(n + 1)\ndef b(n):\n    return a(n + 1)\ndef main():\n    a(0)\n"
    lines = strategy_frames(_raise_from(code))
    assert lines[:2] == ['  File "<strategy>", line 6, in main', "    a(0)"]
    assert any(line.startswith("  … ") and line.endswith(" more frames …") for line in lines)
    assert len(lines) < 40
    assert lines[-1] in ("    return a(n + 1)", "    return b(n + 1)")


def test_syntax_error_and_user_error_kinds() -> None:
    with pytest.raises(JobError) as info:
        compile_strategy("x = (\n")
    assert info.value.kind == "syntax_error" and info.value.message.endswith("(line 1)")
    err = user_error(_raise_from("def main():\n    raise ValueError('x' * 10**6)\n"))
    assert err.kind == "strategy_error" and len(err.message) < 8000
    assert err.message.startswith("ValueError: xxx")


def test_engine_traceback_lines_are_collapsed() -> None:
    frame = ['  File "<strategy>", line 6, in f', "    return f(n+1)"]
    lines = ['  File "<strategy>", line 9, in on_bar', "    f(0)", *frame * 100_000]
    assert collapse_frame_lines(lines) == [
        '  File "<strategy>", line 9, in on_bar', "    f(0)", *frame,
        "  [previous frame repeated 99999 more times]",
    ]
