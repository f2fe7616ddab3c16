"""The PostgreSQL COPY BINARY parser, on a payload built by hand from the wire format."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from engine_svc.data.reader import _parse_pg_packed

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8


def _field(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def _row(symbol: str, days: list[int], cols: list[list[float]]) -> bytes:
    out = struct.pack(">h", 2 + len(cols)) + _field(symbol.encode())
    out += _field(np.asarray(days, dtype=">i4").tobytes())
    for values in cols:
        out += _field(np.asarray(values, dtype=">f8").tobytes())
    return out


def test_parses_rows_per_symbol_into_flat_columns() -> None:
    data = (
        HEADER
        + _row("600000.SH", [19724, 19725], [[10.5, 10.25], [1e6, np.nan]])
        + _row("000001.SZ", [19725], [[9.0], [2.0]])
        + struct.pack(">h", -1)
    )
    rows = _parse_pg_packed(data, ("close", "volume"), {"000001.SZ": 0, "600000.SH": 1})
    assert rows.col.tolist() == [1, 1, 0]
    assert rows.day.tolist() == [19724, 19725, 19725]
    assert rows.values["close"].tolist() == [10.5, 10.25, 9.0]
    assert np.array_equal(rows.values["volume"], [1e6, np.nan, 2.0], equal_nan=True)
    assert rows.values["close"].dtype == np.float64 and rows.values["close"].flags.writeable


def test_empty_result_and_misaligned_payload() -> None:
    empty = _parse_pg_packed(HEADER + struct.pack(">h", -1), ("close",), {})
    assert len(empty) == 0 and empty.values["close"].dtype == np.float64
    bad = HEADER + _row("600000.SH", [1, 2], [[1.0]]) + struct.pack(">h", -1)
    with pytest.raises(RuntimeError, match="misaligned"):
        _parse_pg_packed(bad, ("close",), {"600000.SH": 0})
