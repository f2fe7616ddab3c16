"""validate_in_sandbox: issues with line numbers, computed in a worker (never in the parent)."""

from __future__ import annotations

import pytest

from engine_svc.sandbox.api import validate_in_sandbox

from .helpers import limits_for, strategy

LIMITS = limits_for("plain", cpu_seconds=1, wall_seconds=30)

GOOD = strategy("for s in bar_data:\n    context.order_target_value(s, 1000)")


def test_good_strategy_has_no_issues() -> None:
    assert validate_in_sandbox(GOOD, limits=LIMITS) == []


def test_syntax_error_has_line_and_column() -> None:
    code = ("from zquant.backtest.strategy import BaseStrategy\n\nclass Strategy(BaseStrategy):\n"
            "    def on_bar(self x):\n")
    [issue] = validate_in_sandbox(code, limits=LIMITS)
    assert issue["line"] == 4 and issue["column"] > 0
    assert issue["message"].startswith("SyntaxError:") and issue["message"].endswith("(line 4)")


def test_missing_strategy_class() -> None:
    assert validate_in_sandbox("x = 1\n", limits=LIMITS) == [
        {"line": 1, "column": 0, "message": "strategy code must define class Strategy"}
    ]


def test_strategy_must_subclass_base_and_define_on_bar() -> None:
    messages = {i["message"] for i in validate_in_sandbox("class Strategy:\n    pass\n", limits=LIMITS)}
    assert messages == {"class Strategy must subclass BaseStrategy",
                        "class Strategy must define on_bar(self, context, bar_data)"}


def test_on_bar_signature_is_checked() -> None:
    code = ("from zquant.backtest.strategy import BaseStrategy\nclass Strategy(BaseStrategy):\n"
            "    def on_bar(self):\n        pass\n")
    assert validate_in_sandbox(code, limits=LIMITS) == [
        {"line": 3, "column": 0, "message": "on_bar must accept (self, context, bar_data)"}
    ]


def test_module_level_error_points_at_its_line() -> None:
    code = "import os\n\nclass Strategy:\n    pass\nos.fork()\n"
    [issue] = validate_in_sandbox(code, limits=LIMITS)
    assert issue["line"] == 5
    assert issue["message"] == "module code failed: PermissionError: [Errno 1] Operation not permitted"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        # compile() of hostile source can itself be expensive: it only ever runs in the worker
        ("x = " + "(" * 300 + ")" * 300 + "\nclass Strategy: pass", "SyntaxError: too many nested parentheses"),
        ("while True:\n    pass\nclass Strategy: pass", "CPU time limit exceeded (1 s)"),
        ("x = bytearray(10**10)\nclass Strategy: pass", "memory limit exceeded (512 MB)"),
    ],
    ids=["nested", "loop", "memory"],
)
def test_hostile_code_is_reported_not_run_in_the_parent(code: str, expected: str) -> None:
    [issue] = validate_in_sandbox(code, limits=LIMITS)
    assert issue["message"].startswith(expected)
