"""How strategy failures are described (runs trusted test code in-process: no worker needed)."""

from __future__ import annotations

import pytest

from engine_svc.engine.errors import strategy_frames
from engine_svc.sandbox.usercode import JobError, compile_strategy, exec_module, first_strategy_line, user_error


def _raise_from(code: str) -> BaseException:
    module = exec_module(compile_strategy(code))
    try:
        module.main()
    except Exception as exc:
        return exc
    raise AssertionError("expected an exception")


def test_mutual_recursion_keeps_first_and_last_frames() -> None:
    code = "def a(n):\n    return b(n + 1)\ndef b(n):\n    return a(n + 1)\ndef main():\n    a(0)\n"
    exc = _raise_from(code)
    lines, innermost = strategy_frames(exc, code.splitlines())
    assert innermost in (2, 4) and first_strategy_line(exc) == innermost
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


def test_deep_recursion_is_one_collapsed_run() -> None:
    code = "def f(n):\n    return f(n + 1)\ndef main():\n    f(0)\n"
    err = user_error(_raise_from(code))
    lines = err.message.splitlines()
    assert lines[0].startswith("RecursionError: maximum recursion depth exceeded")
    assert lines[1:4] == ['  File "<strategy>", line 4, in main', "    f(0)", '  File "<strategy>", line 2, in f']
    assert lines[4] == "    return f(n + 1)" and lines[5].startswith("  [previous line repeated ")
    assert len(lines) == 6 and err.line == 2
