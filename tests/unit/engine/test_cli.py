"""``python -m engine_svc run``: argument handling, exit codes, output, with a patched loader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import engine_svc.__main__ as cli
from engine_svc.data import loader

DATES = ["2020-01-02", "2020-01-03", "2020-01-06", "2020-01-07"]

GOOD = '''
from zquant.backtest.context import Context
from zquant.backtest.strategy import BaseStrategy

class Strategy(BaseStrategy):
    def initialize(self):
        self.qty = self.params.get("qty", 100)
    def on_bar(self, context: Context, bar_data):
        if context.current_date_str == "2020-01-02":
            context.order("600000.SH", self.qty)
'''

BAD = '''
from zquant.backtest.strategy import BaseStrategy

class Strategy(BaseStrategy):
    def on_bar(self, context, bar_data):
        return 1 / 0
'''


@pytest.fixture(autouse=True)
def _isolated_data_dir(monkeypatch, tmp_path):
    # the default database URL lives in ZQ_DATA_DIR, which services.config creates on demand
    monkeypatch.setenv("ZQ_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("ZQ_ENGINE_DATABASE_URL", raising=False)


@pytest.fixture
def patched_loader(monkeypatch, make_panel):
    calls: list[tuple] = []

    def fake_load_panel(url, symbols, start, end, benchmark=None, use_daily_basic=False):
        calls.append((url, list(symbols), start, end, benchmark, use_daily_basic))
        if "999999.SH" in symbols:
            raise loader.UnknownSymbolsError(["999999.SH"])
        return make_panel(["600000.SH"], DATES, open=[[10.0], [10.0], [11.0], [12.0]])

    monkeypatch.setattr(loader, "load_panel", fake_load_panel)
    return calls


def write(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


def test_run_prints_metrics_and_writes_json(tmp_path, patched_loader, capsys):
    out = tmp_path / "result.json"
    rc = cli.main([
        "run", write(tmp_path, "s.py", GOOD), "--start", "2020-01-02", "--end", "2020-01-07",
        "--symbols", "600000.SH", "--capital", "50000", "--params", '{"qty": 300}', "--json", str(out),
        "--database-url", "sqlite:///nowhere.db", "--quiet",
    ])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert patched_loader == [("sqlite:///nowhere.db", ["600000.SH"], "2020-01-02", "2020-01-07", None, False)]
    result = json.loads(out.read_text())
    assert result["orders"][0]["filled_quantity"] == 300
    assert result["initial_capital"] == 50_000.0
    assert "metrics" in result and result["metrics"]["total_trades"] == 1
    # 300 bought at 10 (01-03 open), valued at 12 on 01-07 → +600 on 50 000 (default costs)
    assert "final value" in captured.out and "total_return" in captured.out


def test_config_file_and_flag_override(tmp_path, patched_loader, capsys):
    cfg = write(tmp_path, "c.json", json.dumps({
        "start_date": "2020-01-02", "end_date": "2020-01-07", "symbols": ["600000.SH"],
        "commission_rate": 0.0, "min_commission": 0.0, "slippage_rate": 0.0, "initial_capital": 1.0,
    }))
    out = tmp_path / "r.json"
    rc = cli.main(["run", write(tmp_path, "s.py", GOOD), "--config", cfg, "--capital", "10000",
                   "--json", str(out), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    assert patched_loader[0][0] == f"sqlite:///{tmp_path / 'var' / 'engine.db'}"  # services.config default
    result = json.loads(out.read_text())
    assert result["initial_capital"] == 10_000.0
    assert result["daily"][1]["cash"] == 9_000.0  # 100 @ 10, no costs from the config file


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--start", "2020-01-02", "--end", "2020-01-07", "--symbols", "999999.SH"], "unknown symbols: 999999.SH"),
        (["--start", "2020-13-02", "--end", "2020-01-07", "--symbols", "600000.SH"], "start_date"),
        (["--end", "2020-01-07", "--symbols", "600000.SH"], "--start is required"),
        (["--start", "2020-01-02", "--end", "2020-01-07", "--symbols", "600000.SH", "--params", "{x"],
         "--params is not valid JSON"),
        (["--start", "2020-01-02", "--end", "2020-01-07", "--symbols", "600000.SH", "--capital", "-5"],
         "initial_capital"),
        (["--bogus"], "unrecognized arguments"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, patched_loader, capsys, extra, message):
    rc = cli.main(["run", write(tmp_path, "s.py", GOOD), "--quiet", *extra])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_strategy_file_exit_2(tmp_path, capsys):
    rc = cli.main(["run", str(tmp_path / "nope.py"), "--start", "2020-01-02", "--end", "2020-01-07",
                   "--symbols", "600000.SH"])
    assert rc == 2 and "cannot read strategy" in capsys.readouterr().err


def test_strategy_error_prints_strategy_traceback_exit_1(tmp_path, patched_loader, capsys):
    rc = cli.main(["run", write(tmp_path, "s.py", BAD), "--start", "2020-01-02", "--end", "2020-01-07",
                   "--symbols", "600000.SH", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1
    assert 'File "<strategy>", line 6, in on_bar' in err
    assert "return 1 / 0" in err and err.strip().startswith("ZeroDivisionError: division by zero")
    assert "engine_svc" not in err


def test_end_to_end_against_a_synthetic_sqlite_database(tmp_path, capsys):
    synthetic_db = pytest.importorskip("engine_svc.data.synthetic_db")
    url = f"sqlite:///{tmp_path / 'engine.db'}"
    synthetic_db.write_synthetic(url, n_symbols=3, n_days=40, seed=1, progress=False)
    from engine_svc.data.synthetic import generate_panel

    panel = generate_panel(3, 40, seed=1)
    syms = ",".join(panel.symbols)
    start, end = str(panel.dates[0]), str(panel.dates[-1])
    strategy = GOOD.replace('"600000.SH"', f'"{panel.symbols[0]}"').replace("2020-01-02", start)
    out = tmp_path / "r.json"
    rc = cli.main(["run", write(tmp_path, "s.py", strategy), "--start", start, "--end", end, "--symbols", syms,
                   "--database-url", url, "--json", str(out), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    result = json.loads(out.read_text())
    assert len(result["daily"]) == 40 and result["symbols"] == list(panel.symbols)


def test_serve_hands_over_to_the_service(monkeypatch):
    import sys
    import types

    calls: list[str] = []
    fake = types.ModuleType("engine_svc.serve")
    fake.main = lambda: calls.append("served") or 0
    monkeypatch.setitem(sys.modules, "engine_svc.serve", fake)
    assert cli.main(["serve"]) == 0
    assert calls == ["served"]
