// Entry of the HTML report's chart bundle (built as one IIFE file, inlined by backtest_report).
// The report embeds its data as JSON in <script type="application/json" id="report-data">; this
// draws the same charts as the console's task page into the report's [data-chart] elements.
import { pct } from "../analytics/format";
import { draw } from "../charts/echarts";
import { candleOption, type CandleBar, type Fill } from "../charts/options";
import { runCharts, type RunSeries } from "../charts/run";
import { type Lang, type MessageKey, setLang, t } from "../i18n";

interface ReportData {
  lang: Lang;
  equity: RunSeries;
  annualization: number;
  risk_free_rate: number;
  candles: Array<{ symbol: string; bars: CandleBar[]; fills: Fill[] }>;
}

function main(): void {
  const el = document.getElementById("report-data");
  if (!el?.textContent) return;
  const data = JSON.parse(el.textContent) as ReportData;
  setLang(data.lang);
  const L = (k: string) => t(k as MessageKey);
  const charts = runCharts(data.equity, L, { log: false, annualization: data.annualization, riskFree: data.risk_free_rate });
  const place = (name: string, option: Parameters<typeof draw>[1]) => {
    const target = document.querySelector<HTMLElement>(`[data-chart="${name}"]`);
    if (target) draw(target, option);
  };
  place("equity", charts.equity);
  place("underwater", charts.underwater);
  place("heatmap", charts.heatmap);
  place("yearly", charts.yearly);
  place("rolling", charts.rolling);
  place("exposure", charts.exposure);
  for (const c of data.candles) place(`candles-${c.symbol}`, candleOption(c.symbol, c.bars, c.fills, L));
  const worst = document.querySelector("[data-table=worst] tbody");
  if (worst) {
    worst.innerHTML = "";
    charts.worst.forEach((w, i) => {
      const tr = document.createElement("tr");
      for (const v of [String(i + 1), w.peak, w.trough, w.recovery || "—", pct(w.depth), String(w.days)]) {
        const td = document.createElement("td");
        td.textContent = v;
        tr.appendChild(td);
      }
      worst.appendChild(tr);
    });
  }
  document.documentElement.dataset.chartsReady = "1";
}

main();
