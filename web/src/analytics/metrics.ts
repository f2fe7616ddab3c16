// The metric cards of a run, in display order: key (a Metrics field, or a derived value), how
// to format it. The console's cards, the compare table and the HTML report's metric table all
// read this list (the report gets it as JSON from the build), so they cannot drift apart.
import type { Metrics, MetricName } from "../api/types";

export type Kind = "pct" | "ratio" | "money" | "int";

export interface MetricSpec {
  key: string;
  kind: Kind;
  /** Derived as metrics[a] − metrics[b] (null when either is undefined). */
  difference?: [MetricName, MetricName];
  /** Smaller is better (compare marks the best of each row). */
  lowerIsBetter?: boolean;
  /** No better or worse (beta). */
  neutral?: boolean;
  /** A gain or loss: coloured red when positive, green when negative (A-share convention). */
  signed?: boolean;
}

export const METRICS: MetricSpec[] = [
  { key: "total_return", kind: "pct", signed: true },
  { key: "annual_return", kind: "pct", signed: true },
  { key: "excess_return", kind: "pct", signed: true, difference: ["total_return", "benchmark_total_return"] },
  { key: "benchmark_total_return", kind: "pct", neutral: true },
  { key: "max_drawdown", kind: "pct", lowerIsBetter: true },
  { key: "volatility", kind: "pct", lowerIsBetter: true },
  { key: "sharpe_ratio", kind: "ratio" },
  { key: "sortino_ratio", kind: "ratio" },
  { key: "calmar_ratio", kind: "ratio" },
  { key: "alpha", kind: "pct", signed: true },
  { key: "beta", kind: "ratio", neutral: true },
  { key: "information_ratio", kind: "ratio" },
  { key: "tracking_error", kind: "pct", lowerIsBetter: true },
  { key: "win_rate", kind: "pct" },
  { key: "profit_loss_ratio", kind: "ratio" },
  { key: "turnover", kind: "ratio", neutral: true },
  { key: "total_fees", kind: "money", lowerIsBetter: true },
  { key: "total_trades", kind: "int", neutral: true },
  { key: "closed_trades", kind: "int", neutral: true },
];

export function metricValue(m: Metrics, spec: MetricSpec): number | null {
  if (spec.difference) {
    const [a, b] = spec.difference.map((k) => m[k]);
    return a === null || a === undefined || b === null || b === undefined ? null : a - b;
  }
  const v = m[spec.key as MetricName];
  return v === undefined ? null : v;
}

/** Index of the best value of a row, or −1 (neutral metric, nothing defined). */
export function bestIndex(spec: MetricSpec, values: Array<number | null>): number {
  if (spec.neutral) return -1;
  let best = -1;
  values.forEach((v, i) => {
    if (v === null) return;
    const b = best < 0 ? null : values[best]!;
    if (b === null || (spec.lowerIsBetter ? v < b : v > b)) best = i;
  });
  return best;
}
