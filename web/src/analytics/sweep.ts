// Pure logic of the sweep pages: the form's space from its rows, grid size, progress, and the
// data the sweep charts draw. No DOM, no fetch: unit-tested by Vitest (test/sweep.test.ts).
import type { Heatmap, ParamSpace, ParamValue, Sweep, SweepFold, Trial } from "../api/types";

export type RowKind = "fixed" | "range" | "values";

/** One parameter of the sweep form. Text fields hold what the user typed. */
export interface ParamRow {
  name: string;
  kind: RowKind;
  /** The base value (kind fixed) as typed. */
  fixed: string;
  min: string;
  max: string;
  step: string;
  /** Range without a step, sampled on a log scale (random/TPE). */
  log: boolean;
  /** Comma-separated values (kind values). */
  values: string;
  integer: boolean;
}

export interface SchemaProp {
  type?: string | string[];
  default?: unknown;
  minimum?: number;
  maximum?: number;
}

const isNumType = (p: SchemaProp) => {
  const ty = Array.isArray(p.type) ? p.type : [p.type ?? "string"];
  return { num: ty.includes("integer") || ty.includes("number"), int: ty.includes("integer") };
};

/** Rows for a template's params_schema: numbers start as a range around their default (the
 *  first two numeric parameters) or fixed at it; other types fixed. */
export function rowsFromSchema(props: Record<string, SchemaProp>): ParamRow[] {
  let ranged = 0;
  return Object.entries(props).map(([name, p]) => {
    const { num, int } = isNumType(p);
    const d = typeof p.default === "number" ? p.default : null;
    const row: ParamRow = {
      name, kind: "fixed", fixed: p.default === null || p.default === undefined ? "" : String(p.default),
      min: "", max: "", step: int ? "1" : "", log: false, values: "", integer: int,
    };
    if (num && d !== null && ranged < 2) {
      ranged += 1;
      const lo = Math.max(p.minimum ?? -Infinity, int ? Math.max(1, Math.round(d / 2)) : d / 2);
      const hi = Math.min(p.maximum ?? Infinity, int ? Math.round(d * 2) : d * 2);
      row.kind = "range";
      row.min = String(lo);
      row.max = String(hi);
      row.step = int ? String(Math.max(1, Math.round((hi - lo) / 8))) : String(+((hi - lo) / 8).toPrecision(3));
    }
    return row;
  });
}

function parseScalar(text: string): ParamValue {
  const t = text.trim();
  if (t === "true" || t === "false") return t === "true";
  if (t !== "" && Number.isFinite(Number(t))) return Number(t);
  return t;
}

function parseNum(text: string): number | null {
  const t = text.trim();
  if (t === "") return null;
  const x = Number(t);
  return Number.isFinite(x) ? x : null;
}

export interface BuiltSpace {
  space: Record<string, ParamSpace>;
  /** Parameters not swept: the trials' base params. */
  fixed: Record<string, unknown>;
  /** Field path (as the server names them: space.<name>.<key>) → message key. */
  errors: Record<string, string>;
}

/** The request's space and base params from the form's rows; errors name the server's field
 *  paths so they show at the same inputs a 400 would. */
export function buildSpace(rows: readonly ParamRow[], method: "grid" | "random" | "tpe"): BuiltSpace {
  const space: Record<string, ParamSpace> = {};
  const fixed: Record<string, unknown> = {};
  const errors: Record<string, string> = {};
  for (const r of rows) {
    const at = `space.${r.name}`;
    if (r.kind === "fixed") {
      if (r.fixed.trim() !== "") fixed[r.name] = parseScalar(r.fixed);
      continue;
    }
    if (r.kind === "values") {
      const vals = r.values.split(",").map((v) => v.trim()).filter((v) => v !== "").map(parseScalar);
      if (!vals.length) errors[`${at}.values`] = "sweep.err.values";
      else space[r.name] = { values: vals };
      continue;
    }
    const lo = parseNum(r.min), hi = parseNum(r.max), step = parseNum(r.step);
    if (lo === null) errors[`${at}.min`] = "sweep.err.number";
    if (hi === null) errors[`${at}.max`] = "sweep.err.number";
    if (lo !== null && hi !== null && lo > hi) errors[`${at}.min`] = "sweep.err.minMax";
    const useStep = method === "grid" || !r.log;
    if (useStep && r.step.trim() !== "" && (step === null || step <= 0)) errors[`${at}.step`] = "sweep.err.step";
    if (method === "grid" && r.step.trim() === "") errors[`${at}.step`] = "sweep.err.step";
    if (r.log && method !== "grid" && lo !== null && lo <= 0) errors[`${at}.min`] = "sweep.err.logMin";
    if (lo === null || hi === null) continue;
    const entry: ParamSpace = { min: lo, max: hi, type: r.integer ? "int" : "float" };
    if (method !== "grid" && r.log) entry.log = true;
    else if (step !== null && step > 0) entry.step = step;
    space[r.name] = entry;
  }
  if (!Object.keys(space).length && !Object.keys(errors).length) errors.space = "sweep.err.empty";
  return { space, fixed, errors };
}

/** Points of one parameter in a grid (null when it has no step). Decimal-safe for steps like 0.1. */
export function axisSize(p: ParamSpace): number | null {
  if (p.values) return p.values.length;
  if (p.min === null || p.min === undefined || p.max === null || p.max === undefined || !p.step) return null;
  return Math.floor((p.max - p.min) / p.step + 1e-9) + 1;
}

/** Points of the full grid before constraints (null when a parameter has no step). */
export function gridSize(space: Record<string, ParamSpace>): number | null {
  let n = 1;
  for (const p of Object.values(space)) {
    const k = axisSize(p);
    if (k === null) return null;
    n *= k;
  }
  return n;
}

/** Constraint lines of a textarea, blanks dropped. */
export function lines(text: string): string[] {
  return text.split("\n").map((l) => l.trim()).filter(Boolean);
}

/** Finished trials (done, failed, cached, skipped) over all: 0..1. */
export function progressOf(s: Pick<Sweep, "trials_total" | "done" | "failed" | "cached" | "skipped" | "max_trials" | "status">): number {
  if (s.status === "completed") return 1;
  const total = Math.max(s.trials_total, s.max_trials, 1);
  return Math.min(1, (s.done + s.failed + s.cached + s.skipped) / total);
}

/** ECharts heatmap cells [ix, iy, value] of a Heatmap (cells without a value left out), and the
 *  value range for the colour scale. */
export function heatmapCells(h: Heatmap): { cells: Array<[number, number, number]>; min: number; max: number } {
  const nx = h.x_values.length;
  const cells: Array<[number, number, number]> = [];
  let min = Infinity, max = -Infinity;
  h.values.forEach((v, k) => {
    if (v === null || v === undefined || !Number.isFinite(v)) return;
    cells.push([k % nx, Math.floor(k / nx), v]);
    if (v < min) min = v;
    if (v > max) max = v;
  });
  return { cells, min: Number.isFinite(min) ? min : 0, max: Number.isFinite(max) ? max : 0 };
}

export interface ParallelData {
  /** Axis names: the swept parameters, then the metric. */
  axes: string[];
  /** Per axis: the category values for a non-numeric parameter, else null (a value axis). */
  categories: Array<string[] | null>;
  rows: Array<Array<number | string>>;
}

/** Parallel coordinates: one line per trial with a value of `metric`; swept parameters first. */
export function parallelData(trials: readonly Trial[], params: readonly string[], metric: string): ParallelData {
  const withValue = trials.filter((t) => typeof t.metrics?.[metric] === "number");
  const categories = params.map((p) => {
    const vals = withValue.map((t) => t.params[p]);
    return vals.every((v) => typeof v === "number") ? null : [...new Set(vals.map(String))].sort();
  });
  const rows = withValue.map((t) => [
    ...params.map((p, i) => (categories[i] ? String(t.params[p]) : (t.params[p] as number))),
    t.metrics![metric] as number,
  ]);
  return { axes: [...params, metric], categories: [...categories, null], rows };
}

/** In-sample vs out-of-sample Sharpe per fold, folds with both values only: [is, oos, index]. */
export function foldPoints(folds: readonly SweepFold[]): Array<[number, number, number]> {
  return folds
    .filter((f) => typeof f.in_sample_sharpe === "number" && typeof f.out_of_sample_sharpe === "number")
    .map((f) => [f.in_sample_sharpe as number, f.out_of_sample_sharpe as number, f.index]);
}

/** The stitched equity as a return from its start (0 = flat), for the same axis as the task page. */
export function stitchedReturns(nav: readonly number[], initial: number): number[] {
  return nav.map((v) => v / initial - 1);
}

/** Trial params shown in a table cell: only the swept ones, in the space's order. */
export function sweptParams(t: Pick<Trial, "params">, names: readonly string[]): string {
  return names.map((n) => `${n}=${String(t.params[n] ?? "—")}`).join(", ");
}
