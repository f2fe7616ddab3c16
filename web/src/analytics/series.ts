// Derived series of a run, computed from the daily NAV (and benchmark) arrays. Pure functions:
// the console and the HTML report draw from the same numbers.

export interface DrawdownPeriod {
  /** Last peak before the fall. */
  peak: string;
  trough: string;
  /** First day back at the peak; "" while still under water at the end of the run. */
  recovery: string;
  /** Fall from peak to trough, negative fraction. */
  depth: number;
  /** Trading days from peak to recovery (or to the end of the run). */
  days: number;
}

export function dailyReturns(values: readonly number[]): number[] {
  const out: number[] = [];
  for (let i = 1; i < values.length; i++) {
    const prev = values[i - 1]!;
    out.push(prev > 0 ? values[i]! / prev - 1 : 0);
  }
  return out;
}

/** values / values[0] − 1 for every day. */
export function cumulative(values: readonly number[]): number[] {
  const base = values[0] ?? 0;
  return values.map((v) => (base > 0 ? v / base - 1 : 0));
}

export function drawdowns(values: readonly number[]): number[] {
  let peak = -Infinity;
  return values.map((v) => {
    peak = Math.max(peak, v);
    return peak > 0 ? v / peak - 1 : 0;
  });
}

/** Every fall below a previous peak, worst first. */
export function drawdownPeriods(dates: readonly string[], values: readonly number[]): DrawdownPeriod[] {
  const out: DrawdownPeriod[] = [];
  let peakIdx = 0;
  let troughIdx = -1;
  for (let i = 1; i < values.length; i++) {
    const v = values[i]!;
    if (v >= values[peakIdx]!) {
      if (troughIdx >= 0) {
        out.push({
          peak: dates[peakIdx]!, trough: dates[troughIdx]!, recovery: dates[i]!,
          depth: values[troughIdx]! / values[peakIdx]! - 1, days: i - peakIdx,
        });
        troughIdx = -1;
      }
      peakIdx = i;
    } else if (troughIdx < 0 || v < values[troughIdx]!) {
      troughIdx = i;
    }
  }
  if (troughIdx >= 0) {
    out.push({
      peak: dates[peakIdx]!, trough: dates[troughIdx]!, recovery: "",
      depth: values[troughIdx]! / values[peakIdx]! - 1, days: values.length - 1 - peakIdx,
    });
  }
  return out.sort((a, b) => a.depth - b.depth);
}

export interface PeriodReturn {
  /** "YYYY" or "YYYY-MM". */
  period: string;
  ret: number;
  benchmark: number | null;
}

/** Compounded return per calendar period; the first period starts from the first day's value. */
function periodReturns(dates: readonly string[], values: readonly number[], bench: readonly number[],
                       keyLen: number): PeriodReturn[] {
  const out: PeriodReturn[] = [];
  if (values.length === 0) return out;
  let startV = values[0]!;
  let startB = bench[0] ?? NaN;
  for (let i = 0; i < values.length; i++) {
    const key = dates[i]!.slice(0, keyLen);
    const last = i === values.length - 1 || dates[i + 1]!.slice(0, keyLen) !== key;
    if (!last) continue;
    const b = bench.length ? bench[i]! / startB - 1 : null;
    out.push({ period: key, ret: startV > 0 ? values[i]! / startV - 1 : 0, benchmark: b !== null && Number.isFinite(b) ? b : null });
    startV = values[i]!;
    startB = bench[i] ?? NaN;
  }
  return out;
}

export const monthlyReturns = (d: readonly string[], v: readonly number[], b: readonly number[] = []) =>
  periodReturns(d, v, b, 7);
export const yearlyReturns = (d: readonly string[], v: readonly number[], b: readonly number[] = []) =>
  periodReturns(d, v, b, 4);

function mean(xs: readonly number[], from: number, to: number): number {
  let s = 0;
  for (let i = from; i < to; i++) s += xs[i]!;
  return s / (to - from);
}

export interface RollingStats {
  /** Dates of the window ends (one per day from the window-th return on). */
  dates: string[];
  sharpe: Array<number | null>;
  volatility: number[];
  beta: Array<number | null>;
}

/** Rolling annualised Sharpe, volatility and beta over `window` daily returns (126 ≈ 6 months). */
export function rollingStats(dates: readonly string[], values: readonly number[], bench: readonly number[],
                             window = 126, annualization = 252, riskFree = 0): RollingStats {
  const r = dailyReturns(values);
  const b = bench.length === values.length ? dailyReturns(bench) : [];
  const rf = riskFree / annualization;
  const out: RollingStats = { dates: [], sharpe: [], volatility: [], beta: [] };
  for (let end = window; end <= r.length; end++) {
    const from = end - window;
    const m = mean(r, from, end);
    let ss = 0;
    for (let i = from; i < end; i++) ss += (r[i]! - m) ** 2;
    const sd = Math.sqrt(ss / (window - 1));
    out.dates.push(dates[end]!);
    out.volatility.push(sd * Math.sqrt(annualization));
    out.sharpe.push(sd > 0 ? ((m - rf) / sd) * Math.sqrt(annualization) : null);
    if (b.length) {
      const mb = mean(b, from, end);
      let cov = 0;
      let vb = 0;
      for (let i = from; i < end; i++) {
        cov += (r[i]! - m) * (b[i]! - mb);
        vb += (b[i]! - mb) ** 2;
      }
      out.beta.push(vb > 0 ? cov / vb : null);
    } else {
      out.beta.push(null);
    }
  }
  return out;
}
