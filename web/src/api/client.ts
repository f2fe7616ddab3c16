// The typed REST client: one function per endpoint. Paths, query names and response shapes live
// here and in types.ts only, so a change of the REST convention is a change of this file.

import { request, send, session } from "./http";
import type {
  ApiKey, BacktestConfig, BarSeries, DailyPortfolio, EquitySeries, ExRights, Heatmap, ListQuery,
  NewApiKey, Order, OrderSummary, Page, RoundTrip, RunRequest, Strategy, Sweep, SweepEstimate, SweepFolds,
  SweepMethod, SweepRequest, SweepStatus, SymbolInfo, Task, TaskStatus, TokenPair, Trade, Trial, TrialPhase,
  TrialStatus, User, ValidationKind,
} from "./types";

/** A task as the console uses it: status names in lower case, whatever the server sends. */
export function normalizeTask(raw: Task): Task {
  return { ...raw, status: String(raw.status).toLowerCase() as TaskStatus, params: raw.params ?? {} };
}

/** A list response: a bare JSON array with the total in `x-total-count`, or the older
 *  `{<key>: [...], total}` envelope. */
async function page<T>(res: Response, key: string): Promise<Page<T>> {
  const body = (await res.json()) as unknown;
  if (Array.isArray(body)) {
    const header = res.headers.get("x-total-count");
    return { items: body as T[], total: header === null ? body.length : Number(header) };
  }
  const env = body as Record<string, unknown>;
  const items = (env[key] as T[] | undefined) ?? [];
  return { items, total: Number(env.total ?? items.length) };
}


// ---- auth -------------------------------------------------------------------------------------

export async function login(username: string, password: string): Promise<void> {
  session.accept(await request<TokenPair>("/auth/login", {
    method: "POST", body: { username, password }, anonymous: true,
  }));
}

export async function logout(): Promise<void> {
  const token = session.refreshToken();
  session.clear();
  if (token) {
    try {
      await request("/auth/logout", { method: "POST", body: { refresh_token: token }, anonymous: true });
    } catch { /* logged out locally either way */ }
  }
}

export const me = (): Promise<User> => request<User>("/users/me");

export async function listApiKeys(): Promise<ApiKey[]> {
  return (await page<ApiKey>(await send("/users/me/apikeys"), "api_keys")).items;
}
export const createApiKey = (name: string, expiresInDays: number): Promise<NewApiKey> =>
  request<NewApiKey>("/users/me/apikeys", { method: "POST", body: { name, expires_in_days: expiresInDays } });
export const revokeApiKey = (id: number): Promise<void> =>
  request<void>(`/users/me/apikeys/${id}`, { method: "DELETE" });

// ---- tasks ------------------------------------------------------------------------------------

export interface TaskQuery extends ListQuery {
  status?: TaskStatus | "";
  search?: string;
}

export async function listTasks(q: TaskQuery): Promise<Page<Task>> {
  const res = await send("/backtest/tasks", {
    query: {
      skip: q.skip, limit: q.limit, order_by: q.order_by, order: q.order,
      status: q.status ? q.status.toUpperCase() : undefined,
    },
  });
  const p = await page<Task>(res, "tasks");
  return { items: p.items.map(normalizeTask), total: p.total };
}

export const getTask = async (id: number): Promise<Task> =>
  normalizeTask(await request<Task>(`/backtest/tasks/${id}`));
export const runBacktest = async (req: RunRequest): Promise<Task> =>
  normalizeTask(await request<Task>("/backtest/run", { method: "POST", body: req }));
export const cancelTask = async (id: number): Promise<Task> =>
  normalizeTask(await request<Task>(`/backtest/tasks/${id}/cancel`, { method: "POST", body: {} }));
export const deleteTask = (id: number): Promise<void> =>
  request<void>(`/backtest/tasks/${id}`, { method: "DELETE" });


// ---- light result resources --------------------------------------------------------------------

export const getEquity = (id: number): Promise<EquitySeries> =>
  request<EquitySeries>(`/backtest/tasks/${id}/equity`);

export interface OrderQuery extends ListQuery {
  status?: string;
  symbol?: string;
  side?: string;
}

export async function listOrders(id: number, q: OrderQuery): Promise<Page<Order>> {
  const p = await page<Order>(await send(`/backtest/tasks/${id}/orders`, {
    query: { ...q, status: q.status ? q.status.toUpperCase() : undefined },
  }), "orders");
  return { ...p, items: p.items.map((o) => ({ ...o, status: String(o.status).toLowerCase() as Order["status"] })) };
}
export const getOrderSummary = (id: number): Promise<OrderSummary> =>
  request<OrderSummary>(`/backtest/tasks/${id}/orders/summary`);
export async function listTrades(id: number, q: OrderQuery): Promise<Page<Trade>> {
  return page<Trade>(await send(`/backtest/tasks/${id}/trades`, { query: { ...q } }), "trades");
}
export async function listRoundTrips(id: number, q: OrderQuery): Promise<Page<RoundTrip>> {
  return page<RoundTrip>(await send(`/backtest/tasks/${id}/round_trips`, { query: { ...q } }), "round_trips");
}
export const getPositions = (id: number, date: string): Promise<DailyPortfolio> =>
  request<DailyPortfolio>(`/backtest/tasks/${id}/positions`, { query: { date } });
export async function listExRights(id: number): Promise<ExRights[]> {
  return (await page<ExRights>(await send(`/backtest/tasks/${id}/ex_rights`), "ex_rights")).items;
}
export const getLogs = (id: number): Promise<{ text: string; truncated: boolean; total_bytes: number }> =>
  request(`/backtest/tasks/${id}/logs`);
export const getBars = (id: number, symbol: string): Promise<BarSeries> =>
  request<BarSeries>(`/backtest/tasks/${id}/bars`, { query: { symbol } });

/** The self-contained HTML report, as a file the browser saves. */
export async function downloadReport(id: number): Promise<Blob> {
  const res = await send(`/backtest/tasks/${id}/report`);
  return res.blob();
}

// ---- strategies and data -------------------------------------------------------------------------

export async function listStrategies(q: ListQuery & { search?: string; is_template?: boolean }): Promise<Page<Strategy>> {
  return page<Strategy>(await send("/backtest/strategies", { query: { ...q } }), "strategies");
}
export async function listTemplates(): Promise<Strategy[]> {
  return (await page<Strategy>(await send("/backtest/strategies/templates"), "strategies")).items;
}
export const getStrategy = (id: number): Promise<Strategy> => request<Strategy>(`/backtest/strategies/${id}`);
export const getFramework = (): Promise<{ code: string; description: string }> =>
  request("/backtest/strategies/framework");
export interface StrategyInput {
  name: string;
  code: string;
  description: string;
  category: string;
  params_schema: string;
}
export const createStrategy = (s: StrategyInput): Promise<Strategy> =>
  request<Strategy>("/backtest/strategies", { method: "POST", body: s });
export const updateStrategy = (id: number, s: Partial<StrategyInput>): Promise<Strategy> =>
  request<Strategy>(`/backtest/strategies/${id}`, { method: "PATCH", body: s });
export const deleteStrategy = (id: number): Promise<void> =>
  request<void>(`/backtest/strategies/${id}`, { method: "DELETE" });

export async function listSymbols(includeIndexes: boolean): Promise<SymbolInfo[]> {
  return (await page<SymbolInfo>(
    await send("/backtest/data/symbols", { query: { include_indexes: includeIndexes } }), "symbols")).items;
}

/** The engine's defaults for every optional BacktestConfig field (engine.proto comments). */
export const CONFIG_DEFAULTS: Required<Omit<BacktestConfig, "start_date" | "end_date" | "symbols">> = {
  initial_capital: 1_000_000,
  frequency: "daily",
  adjust_type: "qfq",
  commission_rate: 0.0003,
  min_commission: 5,
  tax_rate: 0.001,
  slippage_rate: 0.001,
  benchmark: "",
  use_daily_basic: false,
  annualization: 252,
  risk_free_rate: 0,
};


// ---- parameter sweeps -------------------------------------------------------------------------------

const lower = <T extends string>(x: unknown): T => String(x ?? "").toLowerCase() as T;

export function normalizeTrial(raw: Trial): Trial {
  return { ...raw, status: lower<TrialStatus>(raw.status), phase: lower<TrialPhase>(raw.phase), params: raw.params ?? {} };
}

/** A sweep as the console uses it: enum names in lower case, whatever the server sends. */
export function normalizeSweep(raw: Sweep): Sweep {
  return {
    ...raw, status: lower<SweepStatus>(raw.status), method: lower<SweepMethod>(raw.method),
    best: raw.best ? normalizeTrial(raw.best) : null,
    validation: raw.validation ? { ...raw.validation, kind: lower<ValidationKind>(raw.validation.kind) } : null,
    constraints: raw.constraints ?? [], result_constraints: raw.result_constraints ?? [], space: raw.space ?? {},
  };
}

const sweepBody = (req: SweepRequest) => ({
  ...req, method: req.method.toUpperCase(),
  validation: { ...req.validation, kind: req.validation.kind.toUpperCase() },
});

export const createSweep = async (req: SweepRequest): Promise<Sweep> =>
  normalizeSweep(await request<Sweep>("/backtest/sweeps", { method: "POST", body: sweepBody(req) }));
export const estimateSweep = (req: SweepRequest): Promise<SweepEstimate> =>
  request<SweepEstimate>("/backtest/sweeps:estimate", { method: "POST", body: sweepBody(req) });
export async function listSweeps(q: ListQuery): Promise<Page<Sweep>> {
  const p = await page<Sweep>(await send("/backtest/sweeps", { query: { ...q } }), "sweeps");
  return { items: p.items.map(normalizeSweep), total: p.total };
}
export const getSweep = async (id: number): Promise<Sweep> =>
  normalizeSweep(await request<Sweep>(`/backtest/sweeps/${id}`));
export interface TrialQuery extends ListQuery {
  status?: TrialStatus | "";
}
export async function listTrials(id: number, q: TrialQuery): Promise<Page<Trial>> {
  const p = await page<Trial>(await send(`/backtest/sweeps/${id}/trials`, {
    query: { ...q, status: q.status ? q.status.toUpperCase() : undefined },
  }), "trials");
  return { items: p.items.map(normalizeTrial), total: p.total };
}
export const getHeatmap = (id: number, x: string, y: string, metric: string, agg: "max" | "mean"): Promise<Heatmap> =>
  request<Heatmap>(`/backtest/sweeps/${id}/heatmap`, { query: { x, y, metric, agg } });
export const getFolds = async (id: number): Promise<SweepFolds> => {
  const f = await request<SweepFolds>(`/backtest/sweeps/${id}/folds`);
  return { ...f, kind: lower<ValidationKind>(f.kind), folds: f.folds ?? [], stitched_dates: f.stitched_dates ?? [],
    stitched_nav: f.stitched_nav ?? [] };
};
export const cancelSweep = async (id: number): Promise<Sweep> =>
  normalizeSweep(await request<Sweep>(`/backtest/sweeps/${id}/cancel`, { method: "POST", body: {} }));
export const deleteSweep = (id: number): Promise<void> =>
  request<void>(`/backtest/sweeps/${id}`, { method: "DELETE" });
export const promoteTrial = async (id: number, number: number): Promise<Task> =>
  normalizeTask(await request<Task>(`/backtest/sweeps/${id}/trials/${number}:promote`, { method: "POST", body: {} }));
