"""``python -m engine_svc sweep``: the dual-MA template swept in-process on a synthetic market; the
leaderboard agrees with single runs, walk-forward stitches its out-of-sample runs, bad input exits 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import engine_svc.__main__ as cli
from engine_svc.data import loader
from engine_svc.data.synthetic import generate_panel
from engine_svc.engine.config import BacktestConfig
from engine_svc.engine.runner import run_backtest
from engine_svc.metrics import compute_metrics
from sweeplib.overfit import nav_returns

TEMPLATE = Path(__file__).resolve().parents[3] / "task_svc" / "templates" / "dual_ma_trend.py"
PANEL = generate_panel(5, 330, seed=11)
START, END = str(PANEL.dates[70]), str(PANEL.dates[-1])
SYMBOLS = ",".join(PANEL.symbols)


@pytest.fixture(autouse=True)
def _market(monkeypatch, tmp_path):
    monkeypatch.setenv("ZQ_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setattr(loader, "load_panel", lambda *a, **k: PANEL)


def _sweep(tmp_path, *extra: str) -> tuple[int, dict]:
    out = tmp_path / "sweep.json"
    rc = cli.main(["sweep", str(TEMPLATE), "--start", START, "--end", END, "--symbols", SYMBOLS, "--quiet",
                   "--param", "short_window=3:7:2", "--param", "long_window=20:40:10",
                   "--constraint", "short_window * 5 < long_window", "--json", str(out), *extra])
    return rc, (json.loads(out.read_text()) if out.exists() else {})


def _single(params: dict, start: str = START, end: str = END) -> dict:
    cfg = BacktestConfig(start_date=start, end_date=end, symbols=tuple(PANEL.symbols), params=params)
    return run_backtest(PANEL, TEMPLATE.read_text(), cfg)


def test_grid_sweep_leaderboard_matches_single_runs(tmp_path, capsys):
    rc, report = _sweep(tmp_path, "--top", "3")
    assert rc == 0
    board = report["leaderboard"]
    # short 3, 5, 7 × long 20, 30, 40 with short·5 < long: (3,20) (3,30) (5,30) (3,40) (5,40) (7,40)
    assert sorted((t["params"]["short_window"], t["params"]["long_window"]) for t in board) == [
        (3, 20), (3, 30), (3, 40), (5, 30), (5, 40), (7, 40)]
    assert report["trials"] == 6
    for t in board:
        single = compute_metrics(_single(t["params"]))
        assert t["metrics"]["sharpe_ratio"] == pytest.approx(single["sharpe_ratio"], rel=1e-12)
        assert t["metrics"]["total_trades"] == single["total_trades"]
    ranked = [t for t in board if t["status"] == "ranked"]
    assert [t["rank"] for t in ranked] == list(range(1, len(ranked) + 1))
    sharpes = [t["value"] for t in ranked]
    assert sharpes == sorted(sharpes, reverse=True)
    assert report["best"]["number"] == ranked[0]["number"]
    assert report["overfitting"]["trials"] == 6
    assert 0.0 <= report["overfitting"]["deflated_sharpe"] <= 1.0
    printed = capsys.readouterr().out
    assert "rank  trial  long_window  short_window  sharpe_ratio" in printed
    assert len([line for line in printed.splitlines() if line.strip().endswith("ranked")]) == 3  # --top 3


def test_tpe_is_reproducible_and_result_constraints_unrank(tmp_path):
    args = ("--method", "tpe", "--trials", "5", "--seed", "3", "--max-parallel", "2",
            "--result-constraint", "total_trades >= 1000000")
    rc, a = _sweep(tmp_path, *args)
    assert rc == 0
    _, b = _sweep(tmp_path, *args)
    key = [(t["number"], t["params"]) for t in a["leaderboard"]]
    assert key == [(t["number"], t["params"]) for t in b["leaderboard"]]
    assert {t["status"] for t in a["leaderboard"]} == {"constrained"} and a["best"] is None
    assert len(a["leaderboard"]) == 5


def test_walk_forward_stitches_the_out_of_sample_runs(tmp_path):
    rc, report = _sweep(tmp_path, "--validation", "walk-forward", "--train-days", "120", "--test-days", "60")
    assert rc == 0
    folds = report["folds"]
    days = [str(d) for d in PANEL.dates[70:]]
    assert len(folds) == (len(days) - 120) // 60 == 2
    chained: list[float] = []
    for k, f in enumerate(folds):
        assert (f["train_start"], f["train_end"]) == (days[60 * k], days[60 * k + 119])
        assert (f["test_start"], f["test_end"]) == (days[60 * k + 120], days[60 * k + 179])
        oos = _single(f["best"]["params"], f["test_start"], f["test_end"])
        assert f["out_of_sample"] == pytest.approx(compute_metrics(oos)["sharpe_ratio"], rel=1e-12)
        chained += nav_returns([d["total_value"] for d in oos["daily"]], oos["initial_capital"])
    stitched = report["stitched"]
    assert stitched["dates"] == days[120:240]
    level, expected = 1_000_000.0, []
    for r in chained:
        level *= 1 + r
        expected.append(level)
    assert stitched["equity"] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("extra", "needle"), [
    (("--param", "x"), "--param 'x'"),
    (("--constraint", "__import__('os') < 1"), "--constraint #2: a function call is not allowed"),
    (("--objective", "sharp"), "--objective: unknown metric 'sharp'"),
    (("--param", "long_window=1:2:0"), "given twice"),
    (("--param", "fast=5:1:1"), "--param fast: is greater than max"),
    (("--trials", "2"), "more than max_trials=2 points"),
    (("--validation", "walk-forward", "--train-days", "500", "--test-days", "60"), "--train-days"),
])
def test_bad_input_exits_2_naming_the_flag(tmp_path, capsys, extra, needle):
    rc, _ = _sweep(tmp_path, *extra)
    assert rc == 2
    assert needle in capsys.readouterr().err
