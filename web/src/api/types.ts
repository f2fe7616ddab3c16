// REST shapes of the gateway (proto3 JSON with proto field names, see protos/). Only this folder
// knows them; pages use these types and the functions in client.ts.

export type TaskStatus = "pending" | "running" | "completed" | "failed" | "cancelled";
export const TASK_STATUSES: readonly TaskStatus[] = ["pending", "running", "completed", "failed", "cancelled"];
export const TERMINAL: ReadonlySet<TaskStatus> = new Set(["completed", "failed", "cancelled"]);

export interface BacktestConfig {
  start_date: string;
  end_date: string;
  initial_capital?: number;
  symbols: string[];
  frequency?: string;
  adjust_type?: string;
  commission_rate?: number;
  min_commission?: number;
  tax_rate?: number;
  slippage_rate?: number;
  benchmark?: string;
  use_daily_basic?: boolean;
  annualization?: number;
  risk_free_rate?: number;
}

export interface Task {
  id: number;
  user_id: number;
  strategy_id: number;
  strategy_name: string;
  status: TaskStatus;
  error_message: string;
  /** Failure class (strategy_error, time_limit …) when the service reports one. */
  failure_kind?: string | null;
  /** Strategy line the failure points at; 0, null or absent when none. */
  failure_line?: number | null;
  progress: number;
  created_at?: string;
  updated_at?: string;
  started_at?: string;
  completed_at?: string;
  start_date: string;
  end_date: string;
  config: BacktestConfig;
  params: Record<string, unknown>;
  equity: number;
  current_date: string;
  attempts: number;
  /** The code that ran; only GetTask returns it. */
  strategy_code?: string;
}

export interface Page<T> {
  items: T[];
  total: number;
}

export interface TaskEvent {
  kind: "snapshot" | "status" | "progress" | "deleted";
  task: Task;
  terminal: boolean;
}

export type MetricName =
  | "total_return" | "annual_return" | "volatility" | "sharpe_ratio" | "sortino_ratio" | "max_drawdown"
  | "calmar_ratio" | "alpha" | "beta" | "tracking_error" | "information_ratio" | "win_rate"
  | "profit_loss_ratio" | "benchmark_total_return" | "benchmark_annual_return" | "daily_win_rate"
  | "total_trades" | "total_fees" | "turnover" | "var_95" | "closed_trades";
export type Metrics = Partial<Record<MetricName, number | null>>;

/** Parallel arrays, one entry per trading day of the run. */
export interface EquitySeries {
  task_id: number;
  initial_capital: number;
  benchmark: string;
  dates: string[];
  total_value: number[];
  cash: number[];
  market_value: number[];
  /** Benchmark close, carried forward over days without a bar; empty without a benchmark. */
  benchmark_close: number[];
  /** total_value / running peak − 1 (≤ 0). */
  drawdown: number[];
  /** market_value / total_value. */
  exposure: number[];
  metrics: Metrics;
  engine_version: string;
  data_hash: string;
}

export type OrderStatus = "filled" | "rejected" | "expired" | "cancelled";
export const ORDER_STATUSES: readonly OrderStatus[] = ["filled", "rejected", "expired", "cancelled"];
export interface Order {
  order_id: number;
  created_date: string;
  symbol: string;
  side: "buy" | "sell";
  quantity: number;
  limit_price?: number;
  status: OrderStatus;
  reason: string;
  filled_quantity: number;
  fill_date: string;
  fill_price?: number;
  commission: number;
  tax: number;
  slippage_cost: number;
}

export interface Trade {
  order_id: number;
  date: string;
  symbol: string;
  side: "buy" | "sell";
  quantity: number;
  price: number;
  value: number;
  commission: number;
  tax: number;
  slippage_cost: number;
}

export interface Position {
  symbol: string;
  quantity: number;
  sellable: number;
  avg_cost: number;
  close: number;
  market_value: number;
}

export interface DailyPortfolio {
  date: string;
  cash: number;
  market_value: number;
  total_value: number;
  benchmark_close?: number;
  positions: Position[];
}

export interface RoundTrip {
  symbol: string;
  open_date: string;
  close_date: string;
  quantity: number;
  pnl: number;
  return_pct: number;
}

export interface ExRights {
  date: string;
  symbol: string;
  ratio: number;
  ex_price: number;
  quantity_before: number;
  quantity_after: number;
  cash: number;
}

export interface RefusalCount {
  /** limit_up, limit_down, suspended, t_plus_1, insufficient_cash, lot_size, no_position, … */
  category: string;
  count: number;
}

export interface OrderSummary {
  task_id: number;
  total: number;
  filled: number;
  rejected: number;
  expired: number;
  /** Cancelled by the strategy (not refusals). */
  cancelled: number;
  refusals: RefusalCount[];
  /** Every symbol with at least one order, sorted. */
  symbols: string[];
}

export interface Bar {
  date: string;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
}

export interface BarSeries {
  symbol: string;
  bars: Bar[];
}

export interface Strategy {
  id: number;
  user_id: number;
  name: string;
  description: string;
  category: string;
  code: string;
  params_schema: string;
  is_template: boolean;
  created_at?: string;
  updated_at?: string;
  /** Whether the caller may change or delete it (own strategy, or a template for an admin). */
  can_edit?: boolean;
  can_delete?: boolean;
}

export interface SymbolInfo {
  symbol: string;
  name: string;
  first_date: string;
  last_date: string;
  bars: number;
  is_index: boolean;
  board: string;
}

export interface User {
  id: number;
  username: string;
  email: string;
  is_admin: boolean;
}

export interface TokenPair {
  access_token: string;
  refresh_token: string;
  expires_in: number;
}

export interface ApiKey {
  id: number;
  /** Sent as X-API-Key. */
  access_key: string;
  name: string;
  created_at?: string;
  last_used_at?: string;
  expires_at?: string;
}

export interface NewApiKey extends ApiKey {
  /** Sent as X-API-Secret; shown only in the answer that creates the key. */
  secret_key: string;
}

export interface RunRequest {
  strategy_id?: number;
  strategy_code?: string;
  strategy_name?: string;
  params?: Record<string, unknown>;
  config: BacktestConfig;
}

export interface FieldViolation {
  field: string;
  description: string;
}

export interface ListQuery {
  skip: number;
  limit: number;
  order_by?: string;
  order?: "asc" | "desc";
}

// ---- parameter sweeps (SweepService, protos/zquant/backtest/v1/sweep.proto) ------------------------

export type SweepMethod = "grid" | "random" | "tpe";
export type SweepStatus = "pending" | "running" | "completed" | "failed" | "cancelled";
export const SWEEP_TERMINAL: ReadonlySet<SweepStatus> = new Set(["completed", "failed", "cancelled"]);
export type TrialStatus = "queued" | "running" | "done" | "failed" | "cached" | "skipped";
export type TrialPhase = "full" | "in_sample" | "out_of_sample";
export type ValidationKind = "none" | "holdout" | "walk_forward";
export type ParamValue = number | string | boolean;

/** One parameter's range: values, or min/max with a step (grid) or log (random/TPE). */
export interface ParamSpace {
  values?: ParamValue[];
  min?: number | null;
  max?: number | null;
  step?: number | null;
  log?: boolean;
  type?: string;
}

export interface SweepObjective {
  metric: string;
  direction: "maximize" | "minimize" | string;
}

export interface SweepValidation {
  kind: ValidationKind;
  in_sample_end?: string;
  train_days?: number;
  test_days?: number;
  step_days?: number;
  anchored?: boolean;
}

export interface SweepRequest {
  strategy_id?: number;
  strategy_code?: string;
  strategy_name?: string;
  config: BacktestConfig;
  params: Record<string, unknown>;
  space: Record<string, ParamSpace>;
  method: SweepMethod;
  max_trials?: number;
  seed?: number;
  constraints: string[];
  objective: SweepObjective;
  result_constraints: string[];
  validation: SweepValidation;
  max_parallel?: number;
  target?: number | null;
}

export interface Trial {
  number: number;
  sweep_id: number;
  params: Record<string, unknown>;
  status: TrialStatus;
  metrics: Record<string, number | null> | null;
  objective: number | null;
  ranked: boolean;
  rank: number;
  fold: number;
  phase: TrialPhase;
  start_date: string;
  end_date: string;
  error_message: string;
  seconds: number;
  trades: number;
}

export interface Sweep {
  id: number;
  status: SweepStatus;
  strategy_id: number;
  strategy_name: string;
  method: SweepMethod;
  config: BacktestConfig;
  params: Record<string, unknown>;
  space: Record<string, ParamSpace>;
  constraints: string[];
  objective: SweepObjective | null;
  result_constraints: string[];
  validation: SweepValidation | null;
  max_trials: number;
  max_parallel: number;
  seed: number | string;
  target: number | null;
  trials_total: number;
  queued: number;
  running: number;
  done: number;
  failed: number;
  cached: number;
  skipped: number;
  best: Trial | null;
  trials_evaluated: number;
  deflated_sharpe: number | null;
  elapsed_seconds: number;
  eta_seconds: number | null;
  error_message: string;
  created_at?: string | null;
  completed_at?: string | null;
}

export interface SweepEstimate {
  trials: number;
  cached: number;
  seconds: number;
  basis: string;
}

export interface Heatmap {
  sweep_id: number;
  x: string;
  y: string;
  metric: string;
  agg: string;
  x_values: ParamValue[];
  y_values: ParamValue[];
  /** Row-major: values[iy * x_values.length + ix]; null where no trial has a value. */
  values: Array<number | null>;
}

export interface SweepFold {
  index: number;
  train_start: string;
  train_end: string;
  test_start: string;
  test_end: string;
  best_trial: number;
  best_params: Record<string, unknown> | null;
  in_sample_sharpe: number | null;
  out_of_sample_sharpe: number | null;
  out_of_sample_trial: number;
  out_of_sample_return: number | null;
}

export interface SweepFolds {
  sweep_id: number;
  kind: ValidationKind;
  folds: SweepFold[];
  stitched_dates: string[];
  stitched_nav: number[];
  stitched_return: number | null;
  stitched_sharpe: number | null;
}

export interface SweepEvent {
  kind: "snapshot" | "progress" | "trial" | "best" | "status";
  sweep: Sweep;
  trial: Trial | null;
  terminal: boolean;
}
