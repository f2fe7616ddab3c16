"""Symbol codes: the Tushare form ``600000.SH``, and the board stored with each instrument."""

from __future__ import annotations

import re

from engine_svc.engine import rules

_TS_CODE = re.compile(r"^(\d{6})\.(SH|SZ|BJ)$")
_PREFIXED = re.compile(r"^(sh|sz|bj)(\d{6})$", re.IGNORECASE)


def is_ts_code(code: str) -> bool:
    return bool(_TS_CODE.match(code))


def to_ts_code(code: str) -> str:
    """``sz300059`` / ``SH600036`` / ``600036.sh`` → ``300059.SZ`` / ``600036.SH``."""
    code = code.strip()
    m = _PREFIXED.match(code)
    if m:
        return f"{m.group(2)}.{m.group(1).upper()}"
    upper = code.upper()
    if _TS_CODE.match(upper):
        return upper
    raise ValueError(f"not an A-share code: {code!r}")


def exchange_of(ts_code: str) -> str:
    return ts_code.rsplit(".", 1)[1]


def board_of(ts_code: str, is_index: bool = False) -> str:
    """main / chinext / star / bse from the trading rules (``engine_svc.engine.rules``, the one
    definition the engine trades by), or index."""
    return "index" if is_index else rules.board_of(ts_code)
