"""The shipped templates run on the real backtest engine (engine_svc's in-process runner, on its
deterministic synthetic market) and trade — with and without daily_basic indicators.

The code is our own trusted template text, so running it in-process here is fine; task_svc
itself never executes strategy code."""

from __future__ import annotations

import pytest

from task_svc.templates import TEMPLATES, framework_code

runner = pytest.importorskip("engine_svc.engine.runner")
synthetic = pytest.importorskip("engine_svc.data.synthetic")
engine_config = pytest.importorskip("engine_svc.engine.config")


@pytest.fixture(scope="module", params=[False, True], ids=["no_daily_basic", "daily_basic"])
def market(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    return request.param, synthetic.generate_panel(6, 300, seed=7, with_daily_basic=request.param)


def _run(market, code: str, params: dict | None = None) -> dict:  # type: ignore[type-arg]
    use_daily_basic, panel = market
    dates = [str(d) for d in panel.dates]
    cfg = engine_config.BacktestConfig(start_date=dates[0], end_date=dates[-1], symbols=panel.symbols,
                                       use_daily_basic=use_daily_basic, params=params or {})
    return runner.run_backtest(panel, code, cfg)


@pytest.mark.parametrize("template", TEMPLATES, ids=[t.filename for t in TEMPLATES])
def test_template_runs_and_trades(market, template) -> None:  # type: ignore[no-untyped-def]
    result = _run(market, template.code())
    assert len(result["daily"]) == 300
    if template.filename == "value_pe_pb.py" and not market[0]:
        assert result["trades"] == []  # no indicators: skips every symbol instead of failing
    else:
        assert result["trades"], f"{template.name} never traded"


def test_template_defaults_match_schema(market) -> None:  # type: ignore[no-untyped-def]
    """Passing every schema default explicitly gives the same run as passing nothing."""
    template = next(t for t in TEMPLATES if t.filename == "dual_ma_trend.py")
    defaults = {k: v["default"] for k, v in template.params.items()}
    assert _run(market, template.code(), defaults)["trades"] == _run(market, template.code())["trades"]


def test_framework_runs(market) -> None:  # type: ignore[no-untyped-def]
    result = _run(market, framework_code(), {"weight": 0.1})
    assert len({t["symbol"] for t in result["trades"]}) == 6  # bought every symbol once
