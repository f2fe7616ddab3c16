"""The console's sweep pages in real headless Chromium against the real stack behind Envoy: a
sweep started from the form runs live to completion and every view shows the API's values.
Screenshots go to $ZQ_SCREENSHOT_DIR (default build/screenshots/)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.test_console_browser import (  # noqa: F401 (browser, stack: fixtures)
    CONFIG,
    SCREENSHOTS,
    Console,
    Stack,
    browser,
    stack,
)

pytestmark = [pytest.mark.envoy, pytest.mark.slow, pytest.mark.browser]

PERIOD = {**CONFIG, "start_date": "2013-01-04", "end_date": "2014-12-31", "symbols": ["600036.SH", "000002.SZ"]}


@pytest.fixture
def console(browser: object, stack: Stack) -> Iterator[Console]:  # noqa: F811
    c = Console(browser, stack.url)
    yield c
    c.close()


def _sweep(stack: Stack, sweep_id: int) -> dict[str, Any]:  # noqa: F811
    resp = stack.get(f"/api/v1/backtest/sweeps/{sweep_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


def _wait(stack: Stack, sweep_id: int, timeout: float = 180) -> dict[str, Any]:  # noqa: F811
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = _sweep(stack, sweep_id)
        if s["status"].lower() in ("completed", "failed", "cancelled"):
            return s
        time.sleep(0.3)
    raise AssertionError(f"sweep {sweep_id} not terminal after {timeout}s")


def _eventually(read: Any, expected: Any, timeout: float = 15) -> Any:
    """The page's value once it equals ``expected`` (a table may still be reloading after the
    terminal event), else the last value read, for the assertion to show."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if value == expected or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def _points(console: Console, test_id: str, timeout: float = 15) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        series = console.series(test_id)
        if series and series[0]["points"] > 0:
            return series
        if time.monotonic() > deadline:
            raise AssertionError(f"{test_id} not drawn: {series}")
        time.sleep(0.1)


def test_sweep_form_runs_live_and_the_views_match_the_api(console: Console, stack: Stack) -> None:  # noqa: F811
    console.login()
    page = console.page
    console.open("/sweeps/new")
    page.wait_for_selector("[data-testid=sweep-space] tr[data-param=short_window]")
    page.select_option("#strategy", "2")  # the dual MA template
    page.select_option("#kind-short_window", "range")
    page.fill("#min-short_window", "3")
    page.fill("#max-short_window", "7")
    page.fill("#step-short_window", "2")
    page.select_option("#kind-long_window", "values")
    page.fill("#values-long_window", "20, 40")
    page.fill("#constraints", "short_window < long_window")
    page.fill("#cfg-start_date", PERIOD["start_date"])
    page.fill("#cfg-end_date", PERIOD["end_date"])
    for symbol in PERIOD["symbols"]:
        page.check(f"input[data-symbol='{symbol}']")
    assert page.text_content("[data-testid=grid-size]").strip().startswith("6 ")
    page.click("[data-testid=estimate-button]")
    page.wait_for_selector("[data-testid=estimate]")
    assert page.text_content("[data-testid=estimate]").startswith("6 trials")
    page.click("[data-testid=submit]")
    page.wait_for_url(re.compile(r"#/sweeps/\d+$"))
    sweep_id = int(page.url.rsplit("/", 1)[1])
    page.wait_for_selector("[data-testid=sweep-detail][data-status=completed]", timeout=180_000)

    api = _wait(stack, sweep_id)
    assert api["status"] == "completed" and api["trials_total"] == 6
    assert api["space"]["long_window"]["values"] == [20, 40]
    best = api["best"]
    assert page.get_attribute("[data-testid=sweep-best]", "data-trial") == str(best["number"])
    assert float(page.get_attribute("[data-testid=sweep-best]", "data-objective")) == pytest.approx(best["objective"])
    if api["deflated_sharpe"] is not None:
        assert float(page.get_attribute("[data-testid=sweep-dsr]", "data-dsr")) == pytest.approx(api["deflated_sharpe"])
    assert page.get_attribute("[data-testid=sweep-progress]", "data-finished") == "6"

    # Leaderboard: the API's order, best first.
    trials = stack.get(f"/api/v1/backtest/sweeps/{sweep_id}/trials").json()
    page.wait_for_selector("[data-testid=leaderboard] tbody tr [data-trial]")
    shown = _eventually(lambda: [int(x) for x in page.eval_on_selector_all(
        "[data-testid=leaderboard] tbody [data-trial]", "els => els.map(e => e.dataset.trial)")],
        [t["number"] for t in trials])
    assert shown == [t["number"] for t in trials]
    assert shown[0] == best["number"]

    # Heatmap: one cell per (long, short) pair with a value.
    heat = stack.get(f"/api/v1/backtest/sweeps/{sweep_id}/heatmap", x="long_window", y="short_window",
                     metric="sharpe_ratio").json()
    cells = sum(1 for v in heat["values"] if v is not None)
    assert _points(console, "chart-heatmap")[0]["points"] == cells > 0
    # Parallel coordinates: a line per trial with a Sharpe ratio.
    with_sharpe = sum(1 for t in trials if (t["metrics"] or {}).get("sharpe_ratio") is not None)
    assert _points(console, "chart-parallel")[0]["points"] == with_sharpe
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "console-sweep.png"), full_page=True)

    # The list shows it.
    console.open("/sweeps")
    page.wait_for_selector(f"[data-sweep-id='{sweep_id}']")


def test_walk_forward_sweep_shows_folds_and_the_stitched_equity(console: Console, stack: Stack) -> None:  # noqa: F811
    body = {"strategy_id": 2, "config": PERIOD, "params": {"trend_window": 20},
            "space": {"short_window": {"min": 3, "max": 5, "step": 2}, "long_window": {"values": [20, 30]}},
            "method": "GRID", "objective": {"metric": "sharpe_ratio", "direction": "maximize"},
            "validation": {"kind": "WALK_FORWARD", "train_days": 120, "test_days": 120}}
    resp = stack.http.post("/api/v1/backtest/sweeps", headers=stack.headers, json=body)
    assert resp.status_code == 201, resp.text
    sweep_id = resp.json()["id"]
    console.login()
    console.open(f"/sweeps/{sweep_id}")
    page = console.page
    page.wait_for_selector("[data-testid=sweep-detail][data-status=completed]", timeout=240_000)
    folds = stack.get(f"/api/v1/backtest/sweeps/{sweep_id}/folds").json()
    assert len(folds["folds"]) >= 2
    # The leaderboard says which fold and phase each trial ran (ranks are per fold and phase).
    trials = stack.get(f"/api/v1/backtest/sweeps/{sweep_id}/trials").json()
    page.wait_for_selector("[data-testid=leaderboard] tbody [data-phase]")
    phases = _eventually(lambda: page.eval_on_selector_all("[data-testid=leaderboard] tbody [data-phase]",
                                                           "els => els.map(e => e.dataset.phase)"),
                         [t["phase"] for t in trials])
    assert phases == [t["phase"] for t in trials]
    assert {"in_sample", "out_of_sample"} <= set(phases)
    page.wait_for_selector("[data-testid=folds] tbody tr")
    assert page.locator("[data-testid=folds] tbody tr").count() == len(folds["folds"])
    both = [f for f in folds["folds"] if f["in_sample_sharpe"] is not None and f["out_of_sample_sharpe"] is not None]
    if both:
        assert _points(console, "chart-folds")[0]["points"] == len(both)
    stitched = _points(console, "chart-stitched")[0]
    assert stitched["points"] == len(folds["stitched_dates"]) == len(folds["stitched_nav"])
    initial = PERIOD.get("initial_capital", 1_000_000)
    assert stitched["last"] == pytest.approx(folds["stitched_nav"][-1] / initial - 1, abs=1e-6)
    page.screenshot(path=str(SCREENSHOTS / "console-sweep-walk-forward.png"), full_page=True)


def test_bad_sweep_input_is_shown_at_its_field(console: Console) -> None:
    console.expected = ("400 (Bad Request)",)  # the rejected create, on purpose
    console.login()
    page = console.page
    console.open("/sweeps/new")
    page.wait_for_selector("[data-testid=sweep-space] tr[data-param=short_window]")
    page.select_option("#strategy", "2")
    page.fill("#constraints", "__import__('os').system('id') < 1")
    page.check("input[data-symbol='600036.SH']")
    page.click("[data-testid=submit]")
    page.wait_for_selector("[data-testid=form-error]")
    text = page.text_content("small[data-field='constraints[0]']") or ""
    assert "call" in text, text
    assert page.url.endswith("#/sweeps/new")  # nothing created
