"""Symbol codes: Tushare form ``600000.SH`` and the boards the price-limit rules depend on."""

from __future__ import annotations

import re

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
    """main / chinext / star / bse / index, from the code prefix (exchange rules, not data)."""
    if is_index:
        return "index"
    num, exch = ts_code.split(".")
    if exch == "BJ" or num[0] in "48":
        return "bse"
    if num.startswith(("300", "301")):
        return "chinext"
    if num.startswith(("688", "689")):
        return "star"
    return "main"
