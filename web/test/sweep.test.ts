import { describe, expect, it } from "vitest";
import { sweepEvent } from "../src/api/stream";
import type { Heatmap, SweepFold, Trial } from "../src/api/types";
import {
  axisSize, buildSpace, foldPoints, gridSize, heatmapCells, lines, parallelData, type ParamRow, progressOf, rowsFromSchema,
  stitchedReturns, sweptParams,
} from "../src/analytics/sweep";
import { parallelOption } from "../src/charts/sweep";
import { match } from "../src/router";

const row = (over: Partial<ParamRow>): ParamRow => ({
  name: "x", kind: "range", fixed: "", min: "", max: "", step: "", log: false, values: "", integer: true, ...over,
});

describe("sweep form", () => {
  it("starts the first two numeric parameters as ranges around their defaults", () => {
    const rows = rowsFromSchema({
      short_window: { type: "integer", default: 5, minimum: 1, maximum: 120 },
      long_window: { type: "integer", default: 20, minimum: 2 },
      trend_window: { type: "integer", default: 60 },
      position_pct: { type: ["number", "null"], default: null },
    });
    expect(rows.map((r) => [r.name, r.kind])).toEqual([
      ["short_window", "range"], ["long_window", "range"], ["trend_window", "fixed"], ["position_pct", "fixed"]]);
    expect([rows[0]!.min, rows[0]!.max, rows[0]!.step]).toEqual(["3", "10", "1"]);
    expect([rows[1]!.min, rows[1]!.max, rows[1]!.step]).toEqual(["10", "40", "4"]);
    expect(rows[2]!.fixed).toBe("60");
    expect(rows[3]!.fixed).toBe("");
  });

  it("builds the space and the base params, typed", () => {
    const built = buildSpace([
      row({ name: "short_window", min: "3", max: "12", step: "1" }),
      row({ name: "long_window", kind: "values", values: "20, 40,60" }),
      row({ name: "trend_window", kind: "fixed", fixed: "60" }),
      row({ name: "mode", kind: "fixed", fixed: "fast" }),
      row({ name: "flag", kind: "fixed", fixed: "true" }),
      row({ name: "unset", kind: "fixed", fixed: "" }),
    ], "grid");
    expect(built.errors).toEqual({});
    expect(built.space).toEqual({
      short_window: { min: 3, max: 12, step: 1, type: "int" },
      long_window: { values: [20, 40, 60] },
    });
    expect(built.fixed).toEqual({ trend_window: 60, mode: "fast", flag: true });
    expect(gridSize(built.space)).toBe(30);
  });

  it("names the server's field paths for bad rows", () => {
    expect(buildSpace([row({ min: "5", max: "1", step: "1" })], "grid").errors).toEqual({ "space.x.min": "sweep.err.minMax" });
    expect(buildSpace([row({ min: "1", max: "5", step: "" })], "grid").errors).toEqual({ "space.x.step": "sweep.err.step" });
    expect(buildSpace([row({ min: "a", max: "5", step: "1" })], "grid").errors).toEqual({ "space.x.min": "sweep.err.number" });
    expect(buildSpace([row({ kind: "values", values: " , " })], "grid").errors).toEqual({ "space.x.values": "sweep.err.values" });
    expect(buildSpace([row({ kind: "fixed", fixed: "1" })], "grid").errors).toEqual({ space: "sweep.err.empty" });
    expect(buildSpace([row({ min: "0", max: "1", log: true, integer: false })], "tpe").errors).toEqual({ "space.x.min": "sweep.err.logMin" });
    // log only for random/TPE; without a step a range is continuous there
    expect(buildSpace([row({ min: "0.001", max: "0.1", log: true, integer: false })], "tpe").space)
      .toEqual({ x: { min: 0.001, max: 0.1, log: true, type: "float" } });
    expect(buildSpace([row({ min: "0", max: "1", integer: false })], "random").space).toEqual({ x: { min: 0, max: 1, type: "float" } });
  });

  it("counts grid points exactly for decimal steps", () => {
    expect(axisSize({ min: 0.1, max: 0.5, step: 0.1 })).toBe(5);
    expect(axisSize({ min: 20, max: 63, step: 5 })).toBe(9);
    expect(axisSize({ min: 0, max: 1 })).toBeNull();
    expect(gridSize({ a: { values: [1, 2] }, b: { min: 0, max: 1, log: true } })).toBeNull();
    expect(lines("a < b\n\n  c > 1 \n")).toEqual(["a < b", "c > 1"]);
  });
});

describe("sweep views", () => {
  it("progress counts finished trials of the larger of created and max_trials", () => {
    const base = { trials_total: 40, max_trials: 100, done: 30, failed: 5, cached: 10, skipped: 5, status: "running" as const };
    expect(progressOf(base)).toBe(0.5);
    expect(progressOf({ ...base, status: "completed" })).toBe(1);
  });

  it("turns a row-major heatmap into cells with its range", () => {
    const h: Heatmap = { sweep_id: 1, x: "a", y: "b", metric: "sharpe_ratio", agg: "max", x_values: [1, 2, 3], y_values: [10, 20],
      values: [0.5, null, 1.5, -0.25, 2, null] };
    expect(heatmapCells(h)).toEqual({ cells: [[0, 0, 0.5], [2, 0, 1.5], [0, 1, -0.25], [1, 1, 2]], min: -0.25, max: 2 });
  });

  it("builds parallel coordinates from trials with a value", () => {
    const trial = (n: number, params: Record<string, unknown>, s: number | null): Trial => ({
      number: n, sweep_id: 1, params, status: "done", metrics: { sharpe_ratio: s }, objective: s, ranked: s !== null, rank: 0,
      fold: 0, phase: "full", start_date: "", end_date: "", error_message: "", seconds: 0, trades: 0,
    });
    const d = parallelData([trial(1, { a: 3, m: "x" }, 1.2), trial(2, { a: 5, m: "y" }, null), trial(3, { a: 7, m: "x" }, -0.3)],
      ["a", "m"], "sharpe_ratio");
    expect(d.axes).toEqual(["a", "m", "sharpe_ratio"]);
    expect(d.categories).toEqual([null, ["x"], null]);
    expect(d.rows).toEqual([[3, "x", 1.2], [7, "x", -0.3]]);
    const opt = parallelOption(d) as { parallelAxis: Array<{ type: string }>; visualMap: { min: number; max: number; dimension: number } };
    expect(opt.parallelAxis.map((a) => a.type)).toEqual(["value", "category", "value"]);
    expect([opt.visualMap.min, opt.visualMap.max, opt.visualMap.dimension]).toEqual([-0.3, 1.2, 2]);
    expect(sweptParams(trial(1, { a: 3, m: "x", other: 1 }, 1), ["a", "m"])).toBe("a=3, m=x");
  });

  it("folds and the stitched equity", () => {
    const fold = (index: number, is: number | null, oos: number | null): SweepFold => ({
      index, train_start: "", train_end: "", test_start: "", test_end: "", best_trial: 1, best_params: null,
      in_sample_sharpe: is, out_of_sample_sharpe: oos, out_of_sample_trial: 2, out_of_sample_return: null,
    });
    expect(foldPoints([fold(0, 1.5, 0.4), fold(1, 1.1, null), fold(2, 0.9, -0.2)])).toEqual([[1.5, 0.4, 0], [0.9, -0.2, 2]]);
    expect(stitchedReturns([1_100_000, 990_000], 1_000_000).map((x) => Math.round(x * 1e9) / 1e9)).toEqual([0.1, -0.01]);
  });

  it("normalises watch events and routes the sweep pages", () => {
    const ev = sweepEvent({ kind: "TRIAL", terminal: false, sweep: { id: 3, status: "RUNNING", method: "TPE", space: {}, best: null, validation: { kind: "WALK_FORWARD" } },
      trial: { number: 4, status: "DONE", phase: "IN_SAMPLE", params: { a: 1 } } });
    expect(ev?.kind).toBe("trial");
    expect([ev?.sweep.status, ev?.sweep.method, ev?.sweep.validation?.kind]).toEqual(["running", "tpe", "walk_forward"]);
    expect([ev?.trial?.status, ev?.trial?.phase]).toEqual(["done", "in_sample"]);
    expect(sweepEvent({ error: { code: 14 } })).toBeNull();
    expect(match("/sweeps/new")?.route.pattern).toBe("/sweeps/new");
    expect(match("/sweeps/12")?.params).toEqual({ id: "12" });
  });
});
