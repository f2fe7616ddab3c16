"""CSV import against real databases: atomic fail, skip, idempotent re-import, partial columns."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from data_helpers import count, empty_db, write_csv
from sqlalchemy import text

from engine_svc.data.__main__ import main
from engine_svc.data.csv_import import import_csv
from engine_svc.data.db import dispose_all, get_engine
from engine_svc.data.loader import load_panel

GOOD = """
ts_code,trade_date,open,high,low,close,pre_close,change,pct_chg,vol,amount
600000.SH,20240102,10.00,10.50,9.90,10.20,10.00,0.2,2.0,1000,1020
600000.SH,20240103,10.20,10.40,10.00,10.10,10.20,-0.1,-1,2000,2020
000001.SZ,20240102,9.00,9.10,8.90,9.05,9.00,0.05,0.5,3000,2715
"""
BAD = """
ts_code,trade_date,open,high,low,close,pre_close,change,pct_chg,vol,amount
300059.SZ,20240102,20.0,21.0,19.5,20.5,20.0,0.5,2.5,100,205
300059.SZ,20240103,20.5,20.0,21.0,20.6,20.5,0.1,0.5,100,205
"""


@pytest.fixture(scope="module", autouse=True)
def _dispose() -> Iterator[None]:
    yield
    dispose_all()


@pytest.fixture
def url(db_url: str) -> str:
    return empty_db(db_url)


def _bars(url: str) -> list[tuple]:
    with get_engine(url).connect() as conn:
        rows = conn.execute(
            text(
                "SELECT symbol, trade_date, close, volume, amount, adj_factor FROM daily_bars "
                "ORDER BY symbol, trade_date"
            )
        )
        return [(r[0], str(r[1]), r[2], r[3], r[4], r[5]) for r in rows]


def test_fail_mode_writes_nothing_from_the_whole_invocation(url: str, tmp_path: Path) -> None:
    good = write_csv(tmp_path / "good.csv", GOOD)
    bad = write_csv(tmp_path / "bad.csv", BAD)
    report = import_csv(url, [good, bad], "daily", on_error="fail", progress=False)
    assert not report.committed
    assert [str(e) for e in report.errors] == [f"{bad}:3: high < low", f"{bad}:3: open/close outside [low, high]"]
    assert count(url, "daily_bars") == 0 and count(url, "instruments") == 0
    assert report.totals() == {"read": 5, "inserted": 0, "replaced": 0, "skipped": 1}


def test_fail_mode_rolls_back_files_written_before_the_bad_one(url: str, tmp_path: Path) -> None:
    def version() -> int:
        with get_engine(url).connect() as conn:
            return int(conn.execute(text("SELECT version FROM data_version")).scalar_one())

    # sorted directory order: a_good.csv is written first, then z_bad.csv fails
    write_csv(tmp_path / "a_good.csv", GOOD)
    write_csv(tmp_path / "z_bad.csv", BAD)
    before = version()
    report = import_csv(url, [tmp_path], "daily", on_error="fail", progress=False)
    assert not report.committed and len(report.errors) == 2
    assert count(url, "daily_bars") == 0 and count(url, "instruments") == 0
    assert report.data_version is None and version() == before  # caches stay valid


def test_skip_mode_writes_good_rows_and_reports_bad(url: str, tmp_path: Path) -> None:
    good = write_csv(tmp_path / "good.csv", GOOD)
    bad = write_csv(tmp_path / "bad.csv", BAD)
    report = import_csv(url, [tmp_path], "daily", on_error="skip", progress=False)  # a directory
    assert report.committed
    per_file = {Path(f.file).name: (f.read, f.inserted, f.replaced, f.skipped) for f in report.files}
    assert per_file == {"bad.csv": (2, 1, 0, 1), "good.csv": (3, 3, 0, 0)}
    assert [e.line for e in report.errors] == [3, 3]
    assert count(url, "daily_bars") == 4
    assert good.exists() and bad.exists()
    with get_engine(url).connect() as conn:
        boards = dict(conn.execute(text("SELECT symbol, board FROM instruments")).all())
    assert boards == {"600000.SH": "main", "000001.SZ": "main", "300059.SZ": "chinext"}


def test_reimport_replaces_never_duplicates(url: str, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "good.csv", GOOD)
    first = import_csv(url, [path], "daily", progress=False)
    assert first.totals() == {"read": 3, "inserted": 3, "replaced": 0, "skipped": 0}
    before = _bars(url)
    again = import_csv(url, [path], "daily", progress=False)
    assert again.totals() == {"read": 3, "inserted": 0, "replaced": 3, "skipped": 0}
    assert _bars(url) == before
    changed = write_csv(tmp_path / "changed.csv", GOOD.replace("10.10,10.20,-0.1", "10.15,10.20,-0.05"))
    third = import_csv(url, [changed], "daily", progress=False)
    assert third.totals()["replaced"] == 3 and count(url, "daily_bars") == 3
    closes = {(s, d): c for s, d, c, *_ in _bars(url)}
    assert closes[("600000.SH", "2024-01-03")] == 10.15
    assert ("600000.SH", "2024-01-02", 10.2, 100000.0, 1020000.0, None) in _bars(url)


def test_adj_factor_import_only_touches_adj_factor(url: str, tmp_path: Path) -> None:
    import_csv(url, [write_csv(tmp_path / "d.csv", GOOD)], "daily", progress=False)
    adj = write_csv(
        tmp_path / "adj.csv", "ts_code,trade_date,adj_factor\n600000.SH,20240102,1.5\n600000.SH,20240103,1.6\n"
    )
    report = import_csv(url, [adj], "adj_factor", progress=False)
    assert report.totals()["replaced"] == 2
    rows = {(s, d): (c, a) for s, d, c, _v, _m, a in _bars(url)}
    assert rows[("600000.SH", "2024-01-02")] == (10.2, 1.5)
    assert rows[("600000.SH", "2024-01-03")] == (10.1, 1.6)
    # re-importing prices keeps the factor
    import_csv(url, [write_csv(tmp_path / "d.csv", GOOD)], "daily", progress=False)
    assert {(s, d): a for s, d, *_r, a in _bars(url)}[("600000.SH", "2024-01-02")] == 1.5


def test_calendar_basic_index_and_stock_basic_kinds(url: str, tmp_path: Path) -> None:
    cal = write_csv(
        tmp_path / "cal.csv",
        "exchange,cal_date,is_open,pretrade_date\n"
        "SSE,20240101,0,20231229\nSSE,20240102,1,20231229\nSSE,2024-01-03,1,20240102\n",
    )
    assert import_csv(url, [cal], "trade_cal", progress=False).committed
    import_csv(url, [write_csv(tmp_path / "d.csv", GOOD)], "daily", progress=False)
    basic = write_csv(
        tmp_path / "b.csv", "ts_code,trade_date,close,pe,pb,total_mv\n600000.SH,20240102,10.2,5.5,0.6,3e7\n"
    )
    assert import_csv(url, [basic], "daily_basic", progress=False).totals()["inserted"] == 1
    idx = write_csv(
        tmp_path / "i.csv",
        "ts_code,trade_date,close,open,high,low,pre_close,change,pct_chg,vol,amount\n"
        "000300.SH,20240102,3400.5,3390,3410,3380,3395,5.5,0.16,100000,2000000\n",
    )
    assert import_csv(url, [idx], "index_daily", progress=False).totals()["inserted"] == 1
    sb = write_csv(
        tmp_path / "sb.csv",
        "ts_code,symbol,name,area,industry,market,list_date\n600000.SH,600000,浦发银行,上海,银行,主板,19991110\n",
    )
    assert import_csv(url, [sb], "stock_basic", progress=False).totals()["replaced"] == 1

    p = load_panel(
        url, ["600000.SH", "000001.SZ"], "2024-01-01", "2024-01-05", benchmark="000300.SH", use_daily_basic=True
    )
    assert [str(d) for d in p.dates] == ["2024-01-02", "2024-01-03"]  # the calendar's open days
    assert p.names == ("浦发银行", "")
    assert p.benchmark is not None and p.benchmark.close.tolist()[0] == 3400.5
    assert np.isnan(p.benchmark.close[1])
    assert p.daily_basic is not None and p.daily_basic["pe"][0, 0] == 5.5
    assert np.isnan(p.daily_basic["pe"][1, 0]) and np.isnan(p.daily_basic["pe_ttm"][0, 0])
    with get_engine(url).connect() as conn:
        assert conn.execute(text("SELECT is_index, board FROM instruments WHERE symbol='000300.SH'")).one() == (
            True,
            "index",
        )
        assert str(conn.execute(text("SELECT list_date FROM instruments WHERE symbol='600000.SH'")).scalar_one()) == (
            "1999-11-10"
        )


def test_stock_basic_without_list_date_keeps_the_stored_one(url: str, tmp_path: Path) -> None:
    first = write_csv(tmp_path / "sb1.csv", "ts_code,name,list_date\n600000.SH,浦发银行,19991110\n")
    second = write_csv(tmp_path / "sb2.csv", "ts_code,name\n600000.SH,浦发银行(新)\n")
    assert import_csv(url, [first], "stock_basic", progress=False).committed
    assert import_csv(url, [second], "stock_basic", progress=False).totals()["replaced"] == 1
    with get_engine(url).connect() as conn:
        name, listed = conn.execute(text("SELECT name, list_date FROM instruments")).one()
    assert (name, str(listed)) == ("浦发银行(新)", "1999-11-10")


def test_cli_exit_codes_and_summary(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write_csv(tmp_path / "bad.csv", BAD)
    assert main(["--url", url, "--quiet", "import-csv", str(bad), "--kind", "daily"]) == 1
    out = capsys.readouterr().out
    assert f"error: {bad}:3: high < low" in out and "NOTHING WRITTEN" in out
    assert count(url, "daily_bars") == 0
    assert main(["--url", url, "--quiet", "import-csv", str(bad), "--kind", "daily", "--on-error", "skip"]) == 0
    out = capsys.readouterr().out
    assert "committed" in out and count(url, "daily_bars") == 1
    assert main(["--url", url, "info", "--json"]) == 0
    assert '"daily_bars": {\n      "rows": 1' in capsys.readouterr().out
