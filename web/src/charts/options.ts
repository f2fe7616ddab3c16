// Chart options as pure functions of the data: the console's pages and the HTML report build
// their charts here, so both draw the same thing.
import type { DrawdownPeriod, PeriodReturn, RollingStats } from "../analytics/series";
import type { Option } from "./echarts";

export type Label = (key: string) => string;

const UP = "#d9363e";   // A-share convention: red is up
const DOWN = "#1a9850"; // and green is down
const LINE = "#2f6fdb";
const BENCH = "#8c8c8c";
const EXCESS = "#e08a00";

const pctAxis = { axisLabel: { formatter: (v: number) => `${(v * 100).toFixed(0)}%` } };
const pctTip = (v: unknown) => (typeof v === "number" ? `${(v * 100).toFixed(2)}%` : "—");
const round = (x: number, d = 6) => Math.round(x * 10 ** d) / 10 ** d;
const base = {
  animation: false,
  grid: { left: 56, right: 56, top: 36, bottom: 56 },
  tooltip: { trigger: "axis", valueFormatter: pctTip },
};

export interface EquityInput {
  dates: readonly string[];
  /** Cumulative return of the strategy per day (0 = start). */
  strategy: readonly number[];
  benchmark: readonly number[] | null;
  log: boolean;
}

/** Cumulative return vs benchmark with the excess line; log scale shows growth of 1 on a log axis. */
export function equityOption(d: EquityInput, L: Label): Option {
  const toY = (c: number) => (d.log ? round(1 + c) : round(c));
  const series: object[] = [
    { name: L("series.strategy"), type: "line", showSymbol: false, data: d.strategy.map(toY), lineStyle: { width: 1.6, color: LINE }, itemStyle: { color: LINE } },
  ];
  if (d.benchmark) {
    const b = d.benchmark;
    series.push({ name: L("series.benchmark"), type: "line", showSymbol: false, data: b.map(toY), lineStyle: { width: 1.2, color: BENCH }, itemStyle: { color: BENCH } });
    series.push({
      name: L("series.excess"), type: "line", showSymbol: false, yAxisIndex: 1,
      data: d.strategy.map((s, i) => round((1 + s) / (1 + b[i]!) - 1)),
      lineStyle: { width: 1, color: EXCESS, type: "dashed" }, itemStyle: { color: EXCESS },
    });
  }
  return {
    ...base,
    tooltip: { trigger: "axis", valueFormatter: d.log ? (v: unknown) => (typeof v === "number" ? v.toFixed(4) : "—") : pctTip },
    legend: { top: 0 },
    xAxis: { type: "category", data: [...d.dates], boundaryGap: false },
    yAxis: [
      d.log ? { type: "log", scale: true, name: "×" } : { type: "value", scale: true, ...pctAxis },
      { type: "value", scale: true, splitLine: { show: false }, ...pctAxis },
    ],
    dataZoom: [{ type: "inside" }, { type: "slider", height: 18, bottom: 8, showDataShadow: false }],
    series,
  };
}

/** Drawdown curve with the worst periods shaded. */
export function underwaterOption(dates: readonly string[], dd: readonly number[], worst: readonly DrawdownPeriod[],
                                 L: Label): Option {
  const last = dates[dates.length - 1] ?? "";
  return {
    ...base,
    xAxis: { type: "category", data: [...dates], boundaryGap: false },
    yAxis: { type: "value", max: 0, ...pctAxis },
    dataZoom: [{ type: "inside" }, { type: "slider", height: 18, bottom: 8, showDataShadow: false }],
    series: [{
      name: L("series.drawdown"), type: "line", showSymbol: false, data: dd.map((x) => round(x)),
      lineStyle: { width: 1, color: DOWN }, areaStyle: { color: "rgba(26,152,80,0.25)" }, itemStyle: { color: DOWN },
      markArea: {
        silent: true, itemStyle: { color: "rgba(217,54,62,0.12)" },
        data: worst.map((p, i) => [{ name: `#${i + 1} ${pctTip(p.depth)}`, xAxis: p.peak }, { xAxis: p.recovery || last }]),
      },
    }],
  };
}

/** Calendar heatmap: one cell per month of the run (years down, months across). */
export function heatmapOption(monthly: readonly PeriodReturn[], L: Label): Option {
  const years = [...new Set(monthly.map((m) => m.period.slice(0, 4)))];
  const data = monthly.map((m) => [Number(m.period.slice(5, 7)) - 1, years.indexOf(m.period.slice(0, 4)), round(m.ret)]);
  const extent = Math.max(0.01, ...monthly.map((m) => Math.abs(m.ret)));
  return {
    animation: false,
    grid: { left: 56, right: 24, top: 16, bottom: 64 },
    tooltip: { position: "top", formatter: (p: { data: number[] }) => `${years[p.data[1]!]}-${String(p.data[0]! + 1).padStart(2, "0")}: ${pctTip(p.data[2])}` },
    xAxis: { type: "category", data: Array.from({ length: 12 }, (_, i) => String(i + 1)), splitArea: { show: true } },
    yAxis: { type: "category", data: years, inverse: true, splitArea: { show: true } },
    visualMap: {
      min: -extent, max: extent, calculable: true, orient: "horizontal", left: "center", bottom: 0,
      inRange: { color: [DOWN, "#f7f7f7", UP] }, formatter: (v: number) => pctTip(v),
    },
    series: [{
      name: L("detail.heatmap"), type: "heatmap", data,
      label: { show: true, formatter: (p: { data: number[] }) => (p.data[2]! * 100).toFixed(1), fontSize: 10 },
    }],
  };
}

export function yearlyOption(yearly: readonly PeriodReturn[], L: Label): Option {
  const hasBench = yearly.some((y) => y.benchmark !== null);
  const series: object[] = [{
    name: L("series.strategy"), type: "bar", data: yearly.map((y) => round(y.ret)), itemStyle: { color: LINE },
  }];
  if (hasBench) {
    series.push({ name: L("series.benchmark"), type: "bar", data: yearly.map((y) => (y.benchmark === null ? null : round(y.benchmark))), itemStyle: { color: BENCH } });
  }
  return {
    ...base,
    grid: { ...base.grid, bottom: 32 },
    legend: { top: 0 },
    xAxis: { type: "category", data: yearly.map((y) => y.period) },
    yAxis: { type: "value", ...pctAxis },
    series,
  };
}

export function rollingOption(r: RollingStats, L: Label): Option {
  const plain = (v: unknown) => (typeof v === "number" ? v.toFixed(2) : "—");
  const series: object[] = [
    { name: L("series.sharpe"), type: "line", showSymbol: false, data: r.sharpe.map((x) => (x === null ? null : round(x, 4))), lineStyle: { width: 1.2 } },
    { name: L("series.volatility"), type: "line", showSymbol: false, yAxisIndex: 1, data: r.volatility.map((x) => round(x, 4)), lineStyle: { width: 1.2 } },
  ];
  if (r.beta.some((b) => b !== null)) {
    series.push({ name: L("series.beta"), type: "line", showSymbol: false, data: r.beta.map((x) => (x === null ? null : round(x, 4))), lineStyle: { width: 1.2 } });
  }
  return {
    ...base,
    tooltip: { trigger: "axis", valueFormatter: plain },
    legend: { top: 0 },
    xAxis: { type: "category", data: r.dates, boundaryGap: false },
    yAxis: [{ type: "value", scale: true }, { type: "value", scale: true, splitLine: { show: false }, ...pctAxis }],
    dataZoom: [{ type: "inside" }, { type: "slider", height: 18, bottom: 8, showDataShadow: false }],
    series,
  };
}

export function exposureOption(dates: readonly string[], exposure: readonly number[], L: Label): Option {
  return {
    ...base,
    xAxis: { type: "category", data: [...dates], boundaryGap: false },
    yAxis: { type: "value", min: 0, ...pctAxis },
    dataZoom: [{ type: "inside" }, { type: "slider", height: 18, bottom: 8, showDataShadow: false }],
    series: [{
      name: L("series.exposure"), type: "line", showSymbol: false, step: "end", data: exposure.map((x) => round(x, 4)),
      lineStyle: { width: 1, color: LINE }, areaStyle: { color: "rgba(47,111,219,0.18)" }, itemStyle: { color: LINE },
    }],
  };
}

export interface CandleBar { date: string; open: number; high: number; low: number; close: number }
export interface Fill { date: string; side: string; price: number; quantity: number }

/** Daily candles (red up, green down) with every buy and sell marked at its fill price. */
export function candleOption(symbol: string, bars: readonly CandleBar[], fills: readonly Fill[], L: Label): Option {
  const marks = (side: string) => fills.filter((f) => f.side === side).map((f) => [f.date, f.price, f.quantity]);
  return {
    animation: false,
    grid: { left: 56, right: 24, top: 36, bottom: 56 },
    legend: { top: 0 },
    tooltip: { trigger: "axis", axisPointer: { type: "cross" } },
    xAxis: { type: "category", data: bars.map((b) => b.date), boundaryGap: true },
    yAxis: { type: "value", scale: true },
    dataZoom: [{ type: "inside" }, { type: "slider", height: 18, bottom: 8, showDataShadow: false }],
    series: [
      {
        name: symbol, type: "candlestick", data: bars.map((b) => [b.open, b.close, b.low, b.high]),
        itemStyle: { color: UP, color0: DOWN, borderColor: UP, borderColor0: DOWN },
      },
      { name: L("series.buy"), type: "scatter", symbol: "triangle", symbolSize: 10, data: marks("buy"), itemStyle: { color: "#b8001f" } },
      { name: L("series.sell"), type: "scatter", symbol: "triangle", symbolRotate: 180, symbolSize: 10, data: marks("sell"), itemStyle: { color: "#006d2c" } },
    ],
  };
}

export interface Run { name: string; dates: readonly string[]; values: readonly number[] }

/** Runs on one date axis (the union of their dates); each normalised to 1 at its first day. */
function aligned(runs: readonly Run[], f: (values: readonly number[]) => number[]): { dates: string[]; series: object[] } {
  const dates = [...new Set(runs.flatMap((r) => r.dates))].sort();
  const series = runs.map((r) => {
    const ys = f(r.values);
    const at = new Map(r.dates.map((d, i) => [d, ys[i]!]));
    return { name: r.name, type: "line", showSymbol: false, connectNulls: true, data: dates.map((d) => (at.has(d) ? round(at.get(d)!) : null)) };
  });
  return { dates, series };
}

export function compareEquityOption(runs: readonly Run[]): Option {
  const { dates, series } = aligned(runs, (v) => v.map((x) => x / (v[0] || 1)));
  return {
    ...base, tooltip: { trigger: "axis", valueFormatter: (v: unknown) => (typeof v === "number" ? v.toFixed(4) : "—") },
    legend: { top: 0 }, xAxis: { type: "category", data: dates, boundaryGap: false },
    yAxis: { type: "value", scale: true }, dataZoom: [{ type: "inside" }, { type: "slider", height: 18, bottom: 8, showDataShadow: false }], series,
  };
}

export function compareDrawdownOption(runs: readonly Run[]): Option {
  const { dates, series } = aligned(runs, (v) => {
    let peak = -Infinity;
    return v.map((x) => { peak = Math.max(peak, x); return x / peak - 1; });
  });
  return {
    ...base, legend: { top: 0 }, xAxis: { type: "category", data: dates, boundaryGap: false },
    yAxis: { type: "value", max: 0, ...pctAxis }, dataZoom: [{ type: "inside" }, { type: "slider", height: 18, bottom: 8, showDataShadow: false }], series,
  };
}
