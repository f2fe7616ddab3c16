// Chart options of the sweep pages, pure functions of the data (analytics/sweep.ts prepares it).
import type { ParallelData } from "../analytics/sweep";
import type { Option } from "./echarts";
import type { Label } from "./options";

const LINE = "#2f6fdb";
const fmt = (v: unknown) => (typeof v === "number" ? v.toFixed(4) : "—");

/** A metric over two parameters; x values across, y values up. */
export function heatmapOption(x: { name: string; values: string[] }, y: { name: string; values: string[] },
                              cells: Array<[number, number, number]>, range: { min: number; max: number },
                              metric: string): Option {
  return {
    animation: false,
    tooltip: { position: "top", valueFormatter: fmt },
    grid: { left: 64, right: 24, top: 28, bottom: 84 },
    xAxis: { type: "category", name: x.name, nameLocation: "middle", nameGap: 24, data: x.values, splitArea: { show: true } },
    yAxis: { type: "category", name: y.name, data: y.values, splitArea: { show: true } },
    visualMap: {
      min: range.min, max: range.max === range.min ? range.min + 1e-9 : range.max, calculable: true,
      orient: "horizontal", left: "center", bottom: 0, itemHeight: 120, text: [metric, ""], precision: 2,
      inRange: { color: ["#1a9850", "#ffffbf", "#d9363e"] },
    },
    series: [{ name: metric, type: "heatmap", data: cells, label: { show: cells.length <= 120, formatter: (p: { value: [number, number, number] }) => p.value[2].toFixed(2), fontSize: 9 } }],
  };
}

/** Parallel coordinates: one line per trial, coloured by the metric (the last axis). */
export function parallelOption(d: ParallelData): Option {
  const metricAxis = d.axes.length - 1;
  const values = d.rows.map((r) => r[metricAxis] as number);
  const min = values.length ? Math.min(...values) : 0;
  const max = values.length ? Math.max(...values) : 1;
  return {
    animation: false,
    parallelAxis: d.axes.map((name, dim) => (d.categories[dim]
      ? { dim, name, type: "category", data: d.categories[dim] }
      : { dim, name, type: "value", scale: true })),
    parallel: { left: 48, right: 96, top: 40, bottom: 48 },
    visualMap: {
      show: true, min, max: max === min ? min + 1e-9 : max, dimension: metricAxis, right: 0, top: "middle", precision: 2,
      calculable: true, itemHeight: 120, inRange: { color: ["#1a9850", "#ffffbf", "#d9363e"] },
    },
    series: [{ name: d.axes[metricAxis], type: "parallel", lineStyle: { width: 1, opacity: 0.55 }, data: d.rows }],
  };
}

/** In-sample vs out-of-sample Sharpe per fold, with the y = x diagonal (no decay). */
export function foldScatterOption(points: Array<[number, number, number]>, L: Label): Option {
  const all = points.flatMap(([a, b]) => [a, b]);
  // Whole-number bounds: a square plot with readable ends, the diagonal corner to corner.
  const lo = Math.floor(all.length ? Math.min(0, ...all) : -1);
  const hi = Math.ceil(all.length ? Math.max(0, ...all) : 1);
  return {
    animation: false,
    grid: { left: 56, right: 24, top: 24, bottom: 48 },
    tooltip: { trigger: "item", formatter: (p: { value: [number, number, number] }) => `#${p.value[2]}: IS ${p.value[0].toFixed(2)} / OOS ${p.value[1].toFixed(2)}` },
    xAxis: { type: "value", name: L("sweep.inSample"), nameLocation: "middle", nameGap: 28, min: lo, max: hi },
    yAxis: { type: "value", name: L("sweep.outOfSample"), nameLocation: "middle", nameGap: 36, min: lo, max: hi },
    series: [
      { name: L("sweep.folds"), type: "scatter", symbolSize: 10, data: points, itemStyle: { color: LINE } },
      { name: "y = x", type: "line", showSymbol: false, data: [[lo, lo], [hi, hi]], lineStyle: { type: "dashed", color: "#8c8c8c" } },
    ],
  };
}

/** The stitched out-of-sample equity as a cumulative return. */
export function stitchedOption(dates: string[], returns: number[], L: Label): Option {
  return {
    animation: false,
    grid: { left: 56, right: 24, top: 24, bottom: 56 },
    tooltip: { trigger: "axis", valueFormatter: (v: unknown) => (typeof v === "number" ? `${(v * 100).toFixed(2)}%` : "—") },
    xAxis: { type: "category", data: dates, boundaryGap: false },
    yAxis: { type: "value", scale: true, axisLabel: { formatter: (v: number) => `${(v * 100).toFixed(0)}%` } },
    dataZoom: [{ type: "inside" }, { type: "slider", height: 18, bottom: 8, showDataShadow: false }],
    series: [{ name: L("sweep.stitched"), type: "line", showSymbol: false, data: returns.map((r) => Math.round(r * 1e6) / 1e6), lineStyle: { width: 1.6, color: LINE } }],
  };
}
