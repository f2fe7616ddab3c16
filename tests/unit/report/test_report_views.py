"""backtest_report's rules: refusal categories of the engine's own reason texts, equity arrays,
log tails, and the HTML report's structure (offline, escaped, both languages)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from zquant.engine.v1 import engine_pb2

from backtest_report import html as report_html
from backtest_report.views import equity_arrays, log_tail, order_summary, refusal_category
from engine_svc.engine import orders as engine_orders


@pytest.mark.parametrize(("reason", "category"), [
    (engine_orders.REASON_LIMIT_UP, "limit_up"),
    (engine_orders.REASON_LIMIT_DOWN, "limit_down"),
    (engine_orders.REASON_SUSPENDED, "suspended"),
    (engine_orders.REASON_CASH, "insufficient_cash"),
    (engine_orders.REASON_NOT_REACHED, "limit_not_reached"),
    (engine_orders.REASON_ENDED, "ended"),
    ("no sellable shares (T+1)", "t_plus_1"),
    ("quantity below one lot", "lot_size"),
    ("no position to sell", "no_position"),
    ("rounded to 300 (lot size / position); insufficient cash: cut to 200", "insufficient_cash"),
    ("no price to value the order", "other"),
])
def test_refusal_category_of_engine_reasons(reason: str, category: str) -> None:
    assert refusal_category(reason) == category


def _result(benchmark: list[float | None] | None = None) -> engine_pb2.BacktestResult:
    r = engine_pb2.BacktestResult(start_date="2024-01-02", end_date="2024-01-05", initial_capital=100.0,
                                  benchmark="000300.SH" if benchmark else "", symbols=["600000.SH"])
    for i, (total, mv) in enumerate([(100.0, 0.0), (110.0, 55.0), (99.0, 99.0), (120.0, 60.0)]):
        d = r.daily.add(date=f"2024-01-0{i + 2}", cash=total - mv, market_value=mv, total_value=total)
        if benchmark and benchmark[i] is not None:
            d.benchmark_close = benchmark[i]
    return r


def test_equity_arrays() -> None:
    eq = equity_arrays(_result([None, 10.0, None, 12.0]))
    assert eq.dates == ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]
    assert eq.drawdown == pytest.approx([0.0, 0.0, 99 / 110 - 1, 0.0])
    assert eq.exposure == pytest.approx([0.0, 0.5, 1.0, 0.5])
    # Carried forward, and backward before the first known close.
    assert eq.benchmark_close == [10.0, 10.0, 10.0, 12.0]
    assert equity_arrays(_result()).benchmark_close == []
    assert equity_arrays(_result([None, None, None, None])).benchmark_close == []


def test_order_summary_counts() -> None:
    R, E, F, C = (engine_pb2.Order.REJECTED, engine_pb2.Order.EXPIRED, engine_pb2.Order.FILLED,
                  engine_pb2.Order.CANCELLED)
    orders = [engine_pb2.Order(symbol=s, status=st, reason=why) for s, st, why in [
        ("B", R, "limit up"), ("A", R, "limit up"), ("A", E, engine_orders.REASON_ENDED), ("A", F, ""),
        ("C", F, "rounded to 100 (lot size / position)"), ("C", C, engine_orders.REASON_CANCELLED)]]
    s = order_summary(orders)
    assert (s.total, s.filled, s.rejected, s.expired, s.cancelled) == (6, 2, 2, 1, 1)
    # Filled-but-cut orders and the strategy's own cancellations are not refusals.
    assert s.refusals == [("limit_up", 2), ("ended", 1)]
    assert s.symbols == ["A", "B", "C"]


def test_log_tail_cuts_at_a_line_start() -> None:
    text = "".join(f"line {i}\n" for i in range(1000))
    tail = log_tail(text, 100)
    assert tail.truncated and tail.total_bytes == len(text)
    assert tail.text.startswith("line ") and text.endswith(tail.text) and len(tail.text) <= 100
    assert log_tail("short", 100) == log_tail("short", 100)
    assert not log_tail("short", 100).truncated
    utf8 = "价" * 100
    assert log_tail(utf8, 10).text == "价" * 3  # never half a character


def test_report_is_offline_escaped_and_bilingual() -> None:
    r = _result([None, 10.0, None, 12.0])
    r.metrics.total_return = 0.2
    r.metrics.benchmark_total_return = 0.05
    r.metrics.sharpe_ratio = 1.5
    r.trades.add(order_id=1, date="2024-01-03", symbol="600000.SH", side="buy", quantity=100, price=1.0, value=100.0)
    r.logs = "</script><script>alert(1)</script>"
    info = report_html.ReportInput(
        title="<b>t</b>", strategy_code="x = '</script>'", params={"w": 1}, config={"symbols": ["600000.SH"]},
        bars={"600000.SH": [report_html.Bar("2024-01-03", 1.0, 1.1, 0.9, 1.05)]})
    page = report_html.render_report(r, info)
    cells: list[str] = []
    tags: list[str] = []

    class P(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            tags.append(tag)
            assert not [k for k, _ in attrs if k in ("src", "href")]

        def handle_data(self, data: str) -> None:
            cells.append(data.strip())

    P().feed(page)
    assert tags.count("script") == 2  # the data and the chart bundle, both inline
    assert "20.00%" in cells and "15.00%" in cells and "1.500" in cells  # total, excess, Sharpe
    assert "<b>t</b>" not in page and "&lt;b&gt;t&lt;/b&gt;" in page
    assert page.count("</script>") == 2  # no string in the page ends a script early
    assert 'data-chart="candles-600000.SH"' in page
    zh = report_html.render_report(r, report_html.ReportInput(title="t", lang="zh-CN"))
    assert "总收益" in zh and re.search(r'<html lang="zh-CN">', zh)


def test_missing_bundle_says_how_to_build_it(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(report_html, "ASSETS", tmp_path)
    report_html._asset.cache_clear()
    try:
        with pytest.raises(report_html.ReportAssetsMissing, match="make web"):
            report_html.render_report(_result(), report_html.ReportInput(title="t"))
    finally:
        report_html._asset.cache_clear()
