// The chart set of one completed run, from its equity arrays: used by the task detail page and
// by the HTML report, so both show the same charts.
import {
  cumulative, drawdownPeriods, type DrawdownPeriod, monthlyReturns, type PeriodReturn, rollingStats, yearlyReturns,
} from "../analytics/series";
import type { Option } from "./echarts";
import {
  equityOption, exposureOption, heatmapOption, type Label, rollingOption, underwaterOption, yearlyOption,
} from "./options";

export interface RunSeries {
  dates: readonly string[];
  total_value: readonly number[];
  benchmark_close: readonly number[];
  drawdown: readonly number[];
  exposure: readonly number[];
}

export interface RunCharts {
  equity: Option;
  underwater: Option;
  heatmap: Option;
  yearly: Option;
  rolling: Option;
  exposure: Option;
  worst: DrawdownPeriod[];
  monthly: PeriodReturn[];
}

export const ROLLING_WINDOW = 126; // ≈ 6 months of trading days

export function runCharts(s: RunSeries, L: Label, opts: { log: boolean; annualization?: number; riskFree?: number }): RunCharts {
  const bench = s.benchmark_close.length === s.dates.length ? s.benchmark_close : [];
  const worst = drawdownPeriods(s.dates, s.total_value).slice(0, 5);
  const monthly = monthlyReturns(s.dates, s.total_value, bench);
  return {
    equity: equityOption({
      dates: s.dates, strategy: cumulative(s.total_value), benchmark: bench.length ? cumulative(bench) : null, log: opts.log,
    }, L),
    underwater: underwaterOption(s.dates, s.drawdown, worst, L),
    heatmap: heatmapOption(monthly, L),
    yearly: yearlyOption(yearlyReturns(s.dates, s.total_value, bench), L),
    rolling: rollingOption(rollingStats(s.dates, s.total_value, bench, ROLLING_WINDOW, opts.annualization ?? 252, opts.riskFree ?? 0), L),
    exposure: exposureOption(s.dates, s.exposure, L),
    worst,
    monthly,
  };
}
