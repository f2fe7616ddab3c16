import { describe, expect, it } from "vitest";
import { bestIndex, METRICS, metricValue } from "../src/analytics/metrics";
import {
  cumulative, dailyReturns, drawdownPeriods, drawdowns, monthlyReturns, rollingStats, yearlyReturns,
} from "../src/analytics/series";

const spec = (key: string) => METRICS.find((m) => m.key === key)!;

describe("series", () => {
  it("daily and cumulative returns", () => {
    expect(dailyReturns([100, 110, 99])).toEqual([0.10000000000000009, -0.09999999999999998]);
    expect(cumulative([100, 110, 99])).toEqual([0, 0.10000000000000009, -0.010000000000000009]);
  });

  it("drawdowns and their periods, worst first, with recovery and length", () => {
    const dates = ["d0", "d1", "d2", "d3", "d4", "d5", "d6"];
    const v = [100, 120, 90, 130, 117, 104, 110];
    expect(drawdowns(v).map((x) => +x.toFixed(4))).toEqual([0, 0, -0.25, 0, -0.1, -0.2, -0.1538]);
    const periods = drawdownPeriods(dates, v);
    expect(periods).toEqual([
      { peak: "d1", trough: "d2", recovery: "d3", depth: -0.25, days: 2 },
      { peak: "d3", trough: "d5", recovery: "", depth: 104 / 130 - 1, days: 3 },
    ]);
  });

  it("monthly and yearly returns compound from the previous period's close", () => {
    const dates = ["2020-01-02", "2020-01-31", "2020-02-03", "2020-02-28", "2021-01-04"];
    const v = [100, 110, 99, 121, 121];
    const b = [10, 10, 10, 11, 12.1];
    const m = monthlyReturns(dates, v, b);
    expect(m.map((x) => x.period)).toEqual(["2020-01", "2020-02", "2021-01"]);
    expect(m[0]!.ret).toBeCloseTo(0.1);
    expect(m[1]!.ret).toBeCloseTo(0.1);
    expect(m[2]!.ret).toBeCloseTo(0);
    expect(m[1]!.benchmark).toBeCloseTo(0.1);
    const y = yearlyReturns(dates, v, b);
    expect(y.map((x) => [x.period, +x.ret.toFixed(4), +(x.benchmark ?? NaN).toFixed(4)])).toEqual([
      ["2020", 0.21, 0.1], ["2021", 0, 0.1]]);
    expect(yearlyReturns(dates, v)[0]!.benchmark).toBeNull();
  });

  it("rolling statistics over a window of daily returns", () => {
    const n = 10;
    const dates = Array.from({ length: n }, (_, i) => `d${i}`);
    const v = [100, 101, 100, 102, 101, 103, 102, 104, 103, 105];
    const bench = v.map((x) => x * 2); // same returns: beta 1
    const r = rollingStats(dates, v, bench, 4, 252, 0);
    expect(r.dates).toEqual(dates.slice(4));
    expect(r.beta.every((b) => b !== null && Math.abs(b - 1) < 1e-12)).toBe(true);
    const rets = dailyReturns(v).slice(0, 4);
    const mean = rets.reduce((a, b) => a + b) / 4;
    const sd = Math.sqrt(rets.reduce((a, b) => a + (b - mean) ** 2, 0) / 3);
    expect(r.volatility[0]).toBeCloseTo(sd * Math.sqrt(252), 12);
    expect(r.sharpe[0]).toBeCloseTo((mean / sd) * Math.sqrt(252), 12);
    expect(rollingStats(dates, v, [], 4).beta.every((b) => b === null)).toBe(true);
  });
});

describe("metrics", () => {
  it("derives the excess return and marks the best value of a row", () => {
    expect(metricValue({ total_return: 0.3, benchmark_total_return: 0.1 }, spec("excess_return"))).toBeCloseTo(0.2);
    expect(metricValue({ total_return: 0.3 }, spec("excess_return"))).toBeNull();
    expect(bestIndex(spec("sharpe_ratio"), [0.5, 1.2, null])).toBe(1);
    expect(bestIndex(spec("max_drawdown"), [0.3, 0.1, 0.2])).toBe(1);
    expect(bestIndex(spec("beta"), [0.9, 1.1])).toBe(-1);
    expect(bestIndex(spec("sharpe_ratio"), [null, null])).toBe(-1);
  });
});
