from __future__ import annotations

import pytest

from engine_svc.data.codes import board_of, exchange_of, is_ts_code, to_ts_code


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("sz300059", "300059.SZ"),
        ("sh600036", "600036.SH"),
        ("SH000001", "000001.SH"),
        ("600000.sh", "600000.SH"),
        (" 000002.SZ ", "000002.SZ"),
        ("bj830799", "830799.BJ"),
    ],
)
def test_to_ts_code(raw: str, expected: str) -> None:
    assert to_ts_code(raw) == expected
    assert is_ts_code(expected)


@pytest.mark.parametrize("raw", ["usAAPL", "hk00700", "sh60003", "600000", "600000.HK", ""])
def test_to_ts_code_rejects_non_a_share(raw: str) -> None:
    with pytest.raises(ValueError, match="not an A-share code"):
        to_ts_code(raw)


@pytest.mark.parametrize(
    ("code", "board"),
    [
        ("600036.SH", "main"),
        ("000002.SZ", "main"),
        ("002594.SZ", "main"),
        ("300059.SZ", "chinext"),
        ("301001.SZ", "chinext"),
        ("688001.SH", "star"),
        ("830799.BJ", "bse"),
        ("430047.BJ", "bse"),
    ],
)
def test_board_of(code: str, board: str) -> None:
    assert board_of(code) == board


def test_index_board_and_exchange() -> None:
    assert board_of("000001.SH", is_index=True) == "index"
    assert exchange_of("000300.SH") == "SH"
