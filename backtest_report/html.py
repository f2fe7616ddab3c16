"""The self-contained HTML report of one backtest.

One file: the metric, order and configuration tables are HTML (readable and printable without
scripts, and searchable), the charts are drawn by the console's own chart code (``assets/report.js``,
built from ``web/src/report/main.ts`` with ECharts inlined) from the data embedded as JSON. No
URL outside the file is referenced, so the report opens from disk with no network.

Labels come from the console's message tables and the metric list from the console's metric
specs (``assets/report-meta.json``, emitted by the same build), so the report and the console
say the same thing in the same two languages.
"""

from __future__ import annotations

import html
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from zquant.engine.v1 import engine_pb2

from backtest_report.views import equity_arrays, log_tail, order_summary

ASSETS = Path(__file__).resolve().parent / "assets"
LANGS = ("en", "zh-CN")
CANDLE_SYMBOLS = 5  # candlestick charts for the most traded symbols
MAX_TABLE_ROWS = 500
REPORT_LOG_BYTES = 64 * 1024


class ReportAssetsMissing(RuntimeError):
    """The chart bundle has not been built (``make web``)."""


@cache
def _asset(name: str) -> str:
    path = ASSETS / name
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportAssetsMissing(f"{path} is missing: run `make web` to build the report's chart bundle") from None


def _meta() -> dict[str, Any]:
    return json.loads(_asset("report-meta.json"))


@dataclass(frozen=True)
class Bar:
    date: str
    open: float
    high: float
    low: float
    close: float


@dataclass
class ReportInput:
    """Everything a report shows besides the result itself."""

    title: str
    strategy_code: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    # Daily bars of traded symbols for the candlestick charts; symbols without bars get none.
    bars: Mapping[str, Sequence[Bar]] = field(default_factory=dict)
    annualization: int = 252
    risk_free_rate: float = 0.0
    lang: str = "en"
    generated_at: datetime | None = None


def candle_symbols(result: engine_pb2.BacktestResult, limit: int = CANDLE_SYMBOLS) -> list[str]:
    """The symbols the report draws candles for: the most traded ones."""
    counts = Counter(t.symbol for t in result.trades)
    return [s for s, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]


def _fmt(kind: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if kind == "pct":
        return f"{value * 100:.2f}%"
    if kind == "money":
        return f"{value:,.2f}"
    if kind == "int":
        return f"{round(value):,}"
    return f"{value:.3f}"


def _metric_value(metrics: Mapping[str, Any], spec: Mapping[str, Any]) -> float | None:
    if spec.get("difference"):
        a, b = (metrics.get(k) for k in spec["difference"])
        return None if a is None or b is None else a - b
    value = metrics.get(spec["key"])
    return None if value is None else float(value)


def _plain_metrics(m: engine_pb2.Metrics) -> dict[str, float | None]:
    return {f.name: (getattr(m, f.name) if m.HasField(f.name) else None) for f in m.DESCRIPTOR.fields}


def _json_for_script(value: Any) -> str:
    # Inside <script> only "</" can end the element early; "<\/" is the same JSON string.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "", data_table: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    attrs = (f' class="{cls}"' if cls else "") + (f' data-table="{data_table}"' if data_table else "")
    return f"<table{attrs}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_report(result: engine_pb2.BacktestResult, info: ReportInput) -> str:
    """The report as one HTML document (str)."""
    lang = info.lang if info.lang in LANGS else "en"
    meta = _meta()
    messages: dict[str, str] = meta["messages"][lang]
    script = _asset("report.js").replace("</script", "<\\/script")

    def t(key: str, **values: object) -> str:
        text = messages.get(key, key)
        for k, v in values.items():
            text = text.replace("{" + k + "}", str(v))
        return text

    metrics = _plain_metrics(result.metrics)
    eq = equity_arrays(result)
    summary = order_summary(result.orders)
    generated = (info.generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    final_value = eq.total_value[-1] if eq.total_value else result.initial_capital

    metric_rows = [
        (t(f"metric.{spec['key']}"), _fmt(spec["kind"], _metric_value(metrics, spec)))
        for spec in meta["metrics"]
    ]
    facts = [
        (t("tasks.period"), f"{result.start_date} – {result.end_date} ({len(eq.dates)})"),
        (t("new.symbols"), str(len(result.symbols))),
        (t("cfg.benchmark"), result.benchmark or t("detail.noBenchmark")),
        (t("cfg.initial_capital"), f"{result.initial_capital:,.2f}"),
        ("NAV", f"{final_value:,.2f}"),
        (t("cfg.adjust_type"), result.adjust_type),
    ]
    candles = [
        {"symbol": s,
         "bars": [{"date": b.date, "open": b.open, "high": b.high, "low": b.low, "close": b.close}
                  for b in info.bars.get(s, ())],
         "fills": [{"date": tr.date, "side": tr.side, "price": tr.price, "quantity": tr.quantity}
                   for tr in result.trades if tr.symbol == s]}
        for s in candle_symbols(result) if info.bars.get(s)
    ]
    data = {
        "lang": lang,
        "equity": {"dates": eq.dates, "total_value": eq.total_value, "benchmark_close": eq.benchmark_close,
                   "drawdown": eq.drawdown, "exposure": eq.exposure},
        "annualization": info.annualization,
        "risk_free_rate": info.risk_free_rate,
        "candles": candles,
    }
    refusals = [(t(f"refusal.{c}"), str(n)) for c, n in summary.refusals]
    outcomes = [("FILLED", str(summary.filled)), ("REJECTED", str(summary.rejected)),
                ("EXPIRED", str(summary.expired)), ("CANCELLED", str(summary.cancelled)), ("Σ", str(summary.total))]
    ex_rights = [(e.date, e.symbol, f"{e.ratio:.4f}", f"{e.ex_price:.3f}", str(e.quantity_before),
                  str(e.quantity_after), f"{e.cash:,.2f}") for e in result.ex_rights[:MAX_TABLE_ROWS]]
    trips = sorted(result.round_trips, key=lambda r: r.pnl)
    worst_best = [*trips[:10], *trips[-10:]] if len(trips) > 20 else trips
    trip_rows = [(r.symbol, r.open_date, r.close_date, str(r.quantity), f"{r.pnl:,.2f}", f"{r.return_pct * 100:.2f}%")
                 for r in worst_best]
    logs = log_tail(result.logs, REPORT_LOG_BYTES)
    config_json = json.dumps({"params": dict(info.params), "config": dict(info.config)}, ensure_ascii=False, indent=2,
                             default=str)

    def chart(name: str, caption: str, height: int) -> str:
        return (f'<figure><figcaption>{html.escape(caption)}</figcaption>'
                f'<div class="chart" data-chart="{name}" style="height:{height}px"></div></figure>')

    worst_table = _table(["#", t("col.open"), t("col.date"), t("col.close"), t("series.drawdown"), t("col.count")],
                         [], "compact", "worst")
    parts = [
        "<!doctype html>",
        f'<html lang="{lang}"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(info.title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f'<header><h1>{html.escape(info.title)}</h1><p class="muted">'
        f'{html.escape(t("detail.engine", version=result.engine_version, hash=result.data_hash[:16]))} · {generated}'
        "</p></header>",
        f'<div class="two"><section><h2>{html.escape(t("new.config"))}</h2>'
        + _table([t("compare.field"), ""], facts, "kv", "facts") + "</section>",
        f'<section><h2>{html.escape(t("detail.metrics"))}</h2>'
        + _table([t("compare.field"), ""], metric_rows, "kv", "metrics") + "</section></div>",
        f'<section><h2>{html.escape(t("detail.charts"))}</h2>',
        chart("equity", t("detail.equity"), 360),
        chart("underwater", t("detail.underwater"), 240),
        f'<h3>{html.escape(t("detail.worstDrawdowns"))}</h3>{worst_table}',
        '<div class="two">', chart("heatmap", t("detail.heatmap"), max(220, 36 * len({d[:4] for d in eq.dates}) + 90)),
        chart("yearly", t("detail.yearly"), 260), "</div>",
        chart("rolling", t("detail.rolling"), 260),
        chart("exposure", t("detail.exposure"), 200),
        *(chart(f"candles-{c['symbol']}", f"{t('detail.candles')} {c['symbol']}", 320) for c in candles),
        "</section>",
        f'<section><h2>{html.escape(t("detail.orders"))}</h2>'
        + _table([t("col.status"), t("col.count")], outcomes, "compact", "outcomes")
        + f'<h3>{html.escape(t("detail.refusals"))}</h3>'
        + _table([t("col.category"), t("col.count")], refusals, "compact", "refusals") + "</section>",
        f'<section><h2>{html.escape(t("detail.roundTrips"))} ({len(trips)})</h2>'
        + _table([t("col.symbol"), t("col.open"), t("col.close"), t("col.quantity"), t("col.pnl"), t("col.return")],
                 trip_rows, "", "round-trips") + "</section>",
        f'<section><h2>{html.escape(t("detail.exRights"))} ({len(result.ex_rights)})</h2>'
        + _table([t("col.date"), t("col.symbol"), t("col.ratio"), t("col.exPrice"), t("col.before"), t("col.after"),
                  t("col.cash")], ex_rights, "", "ex-rights") + "</section>",
        f'<section class="page-break"><h2>{html.escape(t("detail.codeConfig"))}</h2>'
        f"<pre>{html.escape(config_json)}</pre><pre class=\"code\">{html.escape(info.strategy_code)}</pre></section>",
        f'<section><h2>{html.escape(t("detail.logs"))}</h2>'
        + (f'<p class="muted">{html.escape(t("detail.logsTruncated", size=f"{logs.total_bytes:,} B"))}</p>'
           if logs.truncated else "")
        + f"<pre>{html.escape(logs.text) or '—'}</pre></section>",
        f'<script type="application/json" id="report-data">{_json_for_script(data)}</script>',
        f"<script>{script}</script>",
        "</body></html>",
    ]
    return "\n".join(parts)


_CSS = """
:root { font-family: system-ui, "PingFang SC", "Noto Sans CJK SC", "Microsoft YaHei", sans-serif; color: #1f2328; }
body { margin: 24px auto; max-width: 1100px; padding: 0 16px; font-size: 13px; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 20px 0 8px; } h3 { font-size: 14px; }
.muted { color: #656d76; }
table { border-collapse: collapse; width: 100%; margin: 6px 0; }
table.compact { width: auto; min-width: 320px; }
table.kv td:last-child { text-align: right; }
th, td { padding: 4px 8px; border-bottom: 1px solid #d0d7de; text-align: left; }
th { background: #f6f8fa; }
td:not(:first-child) { font-variant-numeric: tabular-nums; }
figure { margin: 10px 0; border: 1px solid #d0d7de; border-radius: 6px; padding: 8px; break-inside: avoid; }
figcaption { font-weight: 600; margin-bottom: 4px; }
.chart { width: 100%; }
.two { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
pre { background: #f6f8fa; padding: 8px; border-radius: 6px; white-space: pre-wrap; word-break: break-all;
      font-size: 11.5px; }
@media print {
  body { margin: 0; max-width: none; font-size: 11px; }
  .two { grid-template-columns: 1fr 1fr; }
  figure, table.kv, table.compact { break-inside: avoid-page; }
  h2, h3, figcaption { break-after: avoid-page; }
  .page-break { break-before: page; }
  pre { white-space: pre-wrap; }
  @page { size: A4; margin: 12mm; }
}
"""

