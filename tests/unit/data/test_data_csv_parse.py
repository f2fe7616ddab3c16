"""CSV parsing and validation without a database: what is accepted, what is reported where."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine_svc.data.csv_import import expand_paths, parse_dates, parse_file

DAILY_HEADER = "ts_code,trade_date,open,high,low,close,pre_close,change,pct_chg,vol,amount\n"


def _write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def test_good_daily_file_converts_units_and_accepts_iso_dates(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "d.csv",
        DAILY_HEADER
        + "600000.SH,20240102,10.00,10.50,9.90,10.20,10.00,0.2,2.0,12345.5,12598.1\n"
        + "600000.sh,2024-01-03,10.20,10.40,10.00,10.10,10.20,-0.1,-1,1000,1010\n",
    )
    parsed = parse_file(path, "daily")
    assert parsed.report.errors == []
    assert parsed.report.read == 2 and parsed.report.skipped == 0
    f = parsed.frame
    assert list(f["symbol"]) == ["600000.SH", "600000.SH"]
    assert [str(d.date()) for d in f["trade_date"]] == ["2024-01-02", "2024-01-03"]
    assert f["volume"].tolist() == [1234550.0, 100000.0]  # lots -> shares
    assert f["amount"].tolist() == pytest.approx([12598100.0, 1010000.0])  # thousand CNY -> CNY
    assert "change" not in f.columns and "pct_chg" not in f.columns


def test_bad_rows_are_reported_with_file_line_and_reason(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "bad.csv",
        DAILY_HEADER
        + "600000.SH,20240102,10,10.5,9.9,10.2,10,,,100,100\n"  # line 2 ok
        + "600000.SH,20240103,10.1,10.0,10.2,10.1,10.1,,,100,100\n"  # line 3 high < low
        + "600000.SH,20240104,abc,10.5,9.9,10.2,10,,,100,100\n"  # line 4 non-numeric
        + "600000.SH,2024013,10,10.5,9.9,10.2,10,,,100,100\n"  # line 5 bad date
        + "600000.SH,20240108,10,10.5,9.9,10.2,10,,,-5,100\n"  # line 6 negative volume
        + "60000.SH,20240109,10,10.5,9.9,10.2,10,,,5,100\n"  # line 7 bad code
        + "600000.SH,20240102,10,10.5,9.9,10.2,10,,,100,100\n"  # line 8 duplicate of line 2
        + "600000.SH,20240110,10,10.5,9.9,,10,,,100,100\n",  # line 9 close empty
    )
    parsed = parse_file(path, "daily")
    by_line = {}
    for e in parsed.report.errors:
        assert e.file == str(path)
        by_line.setdefault(e.line, []).append(e.reason)
    assert set(by_line) == {3, 4, 5, 6, 7, 8, 9}
    assert "high < low" in by_line[3]
    assert by_line[4] == ["non-numeric open='abc'"]
    assert by_line[5] == ["bad date trade_date='2024013'"]
    assert by_line[6] == ["negative vol"]
    assert by_line[7] == ["bad ts_code '60000.SH'"]
    assert by_line[8] == ["duplicate key ('ts_code', 'trade_date'), first on line 2"]
    assert by_line[9] == ["close is empty"]
    assert str(parsed.report.errors[0]).startswith(f"{path}:3: ")
    assert parsed.report.read == 8 and parsed.report.skipped == 7
    assert len(parsed.frame) == 1  # only line 2 survives


def test_blank_lines_keep_line_numbers_right(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "blank.csv",
        DAILY_HEADER
        + "\n600000.SH,20240102,10,10.5,9.9,10.2,10,,,100,100\n\n600000.SH,20240103,10,9,9.9,10.2,10,,,1,1\n",
    )
    parsed = parse_file(path, "daily")
    assert [(e.line, e.reason) for e in parsed.report.errors] == [
        (5, "high < low"),
        (5, "open/close outside [low, high]"),
    ]
    assert parsed.report.read == 2


def test_unknown_and_missing_columns_are_a_header_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "cols.csv", "ts_code,trade_date,open,high,low,foo\n600000.SH,20240102,1,1,1,1\n")
    parsed = parse_file(path, "daily")
    assert parsed.fatal
    (err,) = parsed.report.errors
    assert err.line == 1
    assert "missing columns ['close']" in err.reason and "unknown columns ['foo'] for kind daily" in err.reason
    assert parsed.report.skipped == 1


def test_pre_close_is_filled_from_previous_bar(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "nopc.csv",
        "ts_code,trade_date,open,high,low,close,vol\n"
        "000001.SZ,20240103,9.1,9.3,9.0,9.2,10\n"
        "000001.SZ,20240102,9.0,9.1,8.9,9.05,10\n"
        "600000.SH,20240102,5,5,5,5,10\n",
    )
    parsed = parse_file(path, "daily")
    f = parsed.frame.set_index(["symbol", parsed.frame["trade_date"].dt.strftime("%Y%m%d")])
    assert f.loc[("000001.SZ", "20240103"), "pre_close"] == 9.05
    assert np.isnan(f.loc[("000001.SZ", "20240102"), "pre_close"])
    assert np.isnan(f.loc[("600000.SH", "20240102"), "pre_close"])
    assert parsed.report.notes == ["pre_close filled from the previous bar on 1 rows"]


def test_other_kinds(tmp_path: Path) -> None:
    cal = parse_file(
        _write(
            tmp_path,
            "cal.csv",
            "exchange,cal_date,is_open,pretrade_date\nSSE,20240101,0,20231229\n"
            "SSE,20240102,1,20231229\nSSE,20240103,2,20240102\n",
        ),
        "trade_cal",
    )
    assert [(e.line, e.reason) for e in cal.report.errors] == [(4, "is_open must be 0 or 1, got '2'")]
    assert cal.frame["is_open"].tolist() == [False, True]

    adj = parse_file(
        _write(tmp_path, "adj.csv", "ts_code,trade_date,adj_factor\n600000.SH,20240102,1.5\n600000.SH,20240103,-1\n"),
        "adj_factor",
    )
    assert [(e.line, e.reason) for e in adj.report.errors] == [(3, "adj_factor must be positive")]
    assert list(adj.frame.columns) == ["symbol", "trade_date", "adj_factor"]

    basic = parse_file(
        _write(tmp_path, "b.csv", "ts_code,trade_date,close,pe,pb,total_mv\n600000.SH,20240102,10,5.5,,1e6\n"),
        "daily_basic",
    )
    assert basic.report.errors == []
    assert list(basic.frame.columns) == ["symbol", "trade_date", "pe", "pb", "total_mv"]
    assert np.isnan(basic.frame["pb"].iloc[0])

    sb = parse_file(
        _write(
            tmp_path,
            "sb.csv",
            "ts_code,symbol,name,area,industry,market,list_date\n"
            "300059.SZ,300059,东方财富,上海,互联网,创业板,20100319\n",
        ),
        "stock_basic",
    )
    row = sb.frame.iloc[0]
    assert (row["symbol"], row["name"], row["board"], row["exchange"], str(row["list_date"])) == (
        "300059.SZ",
        "东方财富",
        "chinext",
        "SZ",
        "2010-03-19",
    )


def test_parse_dates_accepts_both_forms_only() -> None:
    import pandas as pd

    out = parse_dates(pd.Series(["20240102", "2024-01-03", "2024/01/04", "20241340", ""]))
    assert [None if pd.isna(x) else str(x.date()) for x in out] == ["2024-01-02", "2024-01-03", None, None, None]


def test_expand_paths(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_text("x")
    (tmp_path / "a.csv").write_text("x")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in expand_paths([tmp_path])] == ["a.csv", "b.csv"]
    with pytest.raises(FileNotFoundError):
        expand_paths([tmp_path / "missing.csv"])
