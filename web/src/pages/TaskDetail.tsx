import { useEffect, useMemo, useState } from "preact/hooks";
import {
  cancelTask, deleteTask, downloadReport, getBars, getLogs, getPositions, listExRights, listOrders, listRoundTrips,
  listTrades,
} from "../api/client";
import { watchTask } from "../api/stream";
import {
  type EquitySeries, type Order, ORDER_STATUSES, type OrderSummary, type RoundTrip, type Task, TERMINAL, type Trade,
} from "../api/types";
import { bytes, int, num, pct } from "../analytics/format";
import { lineOf } from "../analytics/lines";
import { candleOption } from "../charts/options";
import { runCharts } from "../charts/run";
import { preloadCharts } from "../charts/load";
import { Chart } from "../components/Chart";
import { LazyCodeEditor } from "../components/LazyCodeEditor";
import { ErrorBox, errorText, Loading } from "../components/Feedback";
import { useAsync } from "../components/hooks";
import { MetricCards } from "../components/MetricCards";
import { ProgressBar, StatusBadge } from "../components/StatusBadge";
import { type Column, PagedTable } from "../components/Table";
import { lang, type MessageKey, t } from "../i18n";
import { navigate, type PageProps } from "../router";
import { loadResults, loadTask } from "./taskData";

const L = (k: string) => t(k as MessageKey);

export default function TaskDetail({ params }: PageProps) {
  const id = Number(params.id);
  useEffect(() => { void preloadCharts(); }, []);
  const first = useAsync(() => loadTask(id), [id]);
  const [task, setTask] = useState<Task | null>(null);
  const [actionError, setActionError] = useState("");
  useEffect(() => { if (first.data) setTask(first.data); }, [first.data]);
  // Live while the task can still change: a finished task never does, so its page opens no stream.
  const live = first.data !== undefined && !TERMINAL.has(first.data.status);
  useEffect(() => {
    if (!live) return undefined;
    const h = watchTask(id, { onEvent: (ev) => setTask((cur) => ({ ...ev.task, strategy_code: cur?.strategy_code ?? ev.task.strategy_code })) });
    return () => h.close();
  }, [id, live]);

  if (first.error && !task) return <ErrorBox error={first.error} onRetry={first.reload} />;
  if (!task) return <Loading />;

  const act = async (fn: () => Promise<unknown>, after?: () => void) => {
    setActionError("");
    try { await fn(); after?.(); } catch (e) { setActionError(errorText(e)); }
  };
  const save = async () => {
    const blob = await downloadReport(id);
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = `backtest-${id}.html`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  };
  const active = task.status === "pending" || task.status === "running";
  return (
    <section data-testid="task-detail" data-status={task.status}>
      <div class="row">
        <h1>{t("detail.title", { id })} · {task.strategy_name}</h1>
        <StatusBadge status={task.status} />
        <span class="spacer" />
        {active && <button type="button" onClick={() => void act(() => cancelTask(id))}>{t("detail.cancel")}</button>}
        {task.status === "completed" && <button type="button" class="primary" onClick={() => void act(save)} data-testid="download-report">{t("detail.download")}</button>}
        <button type="button" class="danger" onClick={() => {
          if (confirm(t("common.confirmDelete", { what: `#${id}` }))) void act(() => deleteTask(id), () => navigate("/tasks"));
        }}>{t("detail.delete")}</button>
      </div>
      {actionError && <p class="error" role="alert">{actionError}</p>}
      <p class="muted">{task.start_date} – {task.end_date} · {task.config.symbols.length} {t("new.symbols")} · {task.config.benchmark || t("detail.noBenchmark")}</p>
      {active && (
        <div class="live-progress" data-testid="live-progress">
          <ProgressBar value={task.progress} label={t("tasks.progress")} />
          <span>{task.status === "pending" ? t("detail.waiting")
            : t("detail.progress", { pct: pct(task.progress, 0), date: task.current_date || "…", equity: num(task.equity, 0) })}</span>
        </div>
      )}
      {task.status === "failed" && <Failure task={task} />}
      {task.status === "cancelled" && <p class="muted">{t("detail.cancelled")} {task.error_message}</p>}
      {task.status === "completed" && <Completed task={task} />}
      {task.status !== "failed" && <CodeAndConfig task={task} errorLine={0} />}
    </section>
  );
}

function Failure({ task }: { task: Task }) {
  const line = task.failure_line || lineOf(task.error_message);
  return (
    <div class="failure" data-testid="failure">
      <h2>{t("detail.failed")}</h2>
      <pre class="error-message" role="alert">{task.error_message}</pre>
      <CodeAndConfig task={task} errorLine={line} open />
    </div>
  );
}

function CodeAndConfig({ task, errorLine, open = false }: { task: Task; errorLine: number; open?: boolean }) {
  // The editor (its own chunk) loads when the section is first opened, not with the page.
  const [shown, setShown] = useState(open);
  return (
    <details open={open} class="code-config" onToggle={(e) => e.currentTarget.open && setShown(true)}>
      <summary><h2>{t("detail.codeConfig")}</h2></summary>
      {shown && task.strategy_code !== undefined && <LazyCodeEditor value={task.strategy_code} readOnly errorLine={errorLine} label={t("new.code")} />}
      <pre data-testid="config-json">{JSON.stringify({ params: task.params, config: task.config }, null, 2)}</pre>
    </details>
  );
}

function Completed({ task }: { task: Task }) {
  const id = task.id;
  const data = useAsync(() => loadResults(id), [id]);
  const [log, setLog] = useState(false);
  // The tables, candles and logs below the charts render after the charts have been painted:
  // what a reader sees first is not kept waiting for what needs scrolling.
  const [below, setBelow] = useState(false);
  useEffect(() => {
    if (!data.data || below) return undefined;
    let timer = 0;
    const frame = requestAnimationFrame(() => { timer = window.setTimeout(() => setBelow(true), 0); });
    return () => { cancelAnimationFrame(frame); clearTimeout(timer); };
  }, [data.data]);
  const charts = useMemo(() => data.data && runCharts(data.data.equity, L, {
    log, annualization: task.config.annualization, riskFree: task.config.risk_free_rate,
  }), [data.data, log, lang()]); // series names are in the current language
  if (data.error) return <ErrorBox error={data.error} onRetry={data.reload} />;
  if (!data.data || !charts) return <Loading />;
  const { equity, summary } = data.data;
  return (
    <div data-testid="results">
      <h2>{t("detail.metrics")}</h2>
      <MetricCards metrics={equity.metrics} worst={charts.worst[0]} />
      <p class="muted small">{t("detail.engine", { version: equity.engine_version, hash: equity.data_hash.slice(0, 16) })}</p>

      <h2>{t("detail.charts")}</h2>
      <figure>
        <figcaption class="row">{t("detail.equity")}
          <label class="inline"><input type="checkbox" checked={log} onChange={(e) => setLog(e.currentTarget.checked)} data-testid="log-toggle" /> {t("detail.logScale")}</label>
        </figcaption>
        <Chart option={charts.equity} label={t("detail.equity")} testId="chart-equity" height={360} />
      </figure>
      <figure>
        <figcaption>{t("detail.underwater")}</figcaption>
        <Chart option={charts.underwater} label={t("detail.underwater")} testId="chart-underwater" height={240} />
        <WorstTable worst={charts.worst} />
      </figure>
      <div class="two">
        <figure>
          <figcaption>{t("detail.heatmap")}</figcaption>
          <Chart option={charts.heatmap} label={t("detail.heatmap")} testId="chart-heatmap" height={Math.max(220, 36 * new Set(charts.monthly.map((m) => m.period.slice(0, 4))).size + 90)} />
        </figure>
        <figure>
          <figcaption>{t("detail.yearly")}</figcaption>
          <Chart option={charts.yearly} label={t("detail.yearly")} testId="chart-yearly" height={260} />
        </figure>
      </div>
      <figure>
        <figcaption>{t("detail.rolling")}</figcaption>
        <Chart option={charts.rolling} label={t("detail.rolling")} testId="chart-rolling" height={260} />
      </figure>
      <figure>
        <figcaption>{t("detail.exposure")}</figcaption>
        <Chart option={charts.exposure} label={t("detail.exposure")} testId="chart-exposure" height={200} />
      </figure>
      {below && <Below id={id} equity={equity} summary={summary} />}
    </div>
  );
}

function Below({ id, equity, summary }: { id: number; equity: EquitySeries; summary: OrderSummary }) {
  return (
    <>
      <Candles id={id} symbols={summary.symbols} />

      <h2>{t("detail.orders")}</h2>
      <p data-testid="order-outcomes">{t("detail.outcomes", {
        total: summary.total, filled: summary.filled, rejected: summary.rejected, expired: summary.expired,
        cancelled: summary.cancelled,
      })}</p>
      <h3>{t("detail.refusals")}</h3>
      <table class="compact" data-testid="refusals">
        <thead><tr><th>{t("col.category")}</th><th class="num">{t("col.count")}</th></tr></thead>
        <tbody>
          {summary.refusals.map((r) => (
            <tr key={r.category} data-category={r.category} data-count={r.count}>
              <td>{t(`refusal.${r.category}` as MessageKey) || r.category}</td><td class="num">{r.count}</td>
            </tr>
          ))}
          {summary.refusals.length === 0 && <tr><td colSpan={2} class="muted">{t("common.none")}</td></tr>}
        </tbody>
      </table>
      <Orders id={id} symbols={summary.symbols} />
      <h2>{t("detail.trades")}</h2>
      <PagedTable<Trade> caption={t("detail.trades")} testId="trades" rowKey={(r) => `${r.order_id}-${r.date}`}
        load={(q) => listTrades(id, q)} initialSort={{ by: "date", order: "asc" }} columns={[
          { key: "date", label: t("col.date"), sort: "date", render: (r) => r.date },
          { key: "symbol", label: t("col.symbol"), sort: "symbol", render: (r) => r.symbol },
          { key: "side", label: t("col.side"), render: (r) => t(r.side === "buy" ? "series.buy" : "series.sell") },
          { key: "quantity", label: t("col.quantity"), numeric: true, sort: "quantity", render: (r) => int(r.quantity) },
          { key: "price", label: t("col.price"), numeric: true, render: (r) => num(r.price, 3) },
          { key: "value", label: t("col.value"), numeric: true, sort: "value", render: (r) => num(r.value) },
          { key: "fees", label: t("col.commission"), numeric: true, render: (r) => num(r.commission + r.tax) },
        ]} />
      <h2>{t("detail.roundTrips")}</h2>
      <PagedTable<RoundTrip> caption={t("detail.roundTrips")} testId="round-trips" rowKey={(r) => `${r.symbol}-${r.open_date}-${r.close_date}-${r.quantity}-${r.pnl}`}
        load={(q) => listRoundTrips(id, q)} initialSort={{ by: "close_date", order: "asc" }} columns={[
          { key: "symbol", label: t("col.symbol"), sort: "symbol", render: (r) => r.symbol },
          { key: "open", label: t("col.open"), sort: "open_date", render: (r) => r.open_date },
          { key: "close", label: t("col.close"), sort: "close_date", render: (r) => r.close_date },
          { key: "quantity", label: t("col.quantity"), numeric: true, render: (r) => int(r.quantity) },
          { key: "pnl", label: t("col.pnl"), numeric: true, sort: "pnl", render: (r) => <span class={r.pnl >= 0 ? "up" : "down"}>{num(r.pnl)}</span> },
          { key: "ret", label: t("col.return"), numeric: true, sort: "return_pct", render: (r) => pct(r.return_pct) },
        ]} />
      <Positions id={id} equity={equity} />
      <ExRightsTable id={id} />
      <Logs id={id} />
    </>
  );
}

function WorstTable({ worst }: { worst: ReturnType<typeof runCharts>["worst"] }) {
  return (
    <table class="compact" data-testid="worst-drawdowns">
      <caption>{t("detail.worstDrawdowns")}</caption>
      <thead><tr><th>#</th><th>{t("col.open")}</th><th>{t("col.date")}</th><th>{t("col.close")}</th><th class="num">{t("series.drawdown")}</th><th class="num">{t("col.count")}</th></tr></thead>
      <tbody>
        {worst.map((w, i) => (
          <tr key={w.peak}><td>{i + 1}</td><td>{w.peak}</td><td>{w.trough}</td><td>{w.recovery || "—"}</td><td class="num">{pct(w.depth)}</td><td class="num">{w.days}</td></tr>
        ))}
      </tbody>
    </table>
  );
}

function Candles({ id, symbols }: { id: number; symbols: string[] }) {
  const [symbol, setSymbol] = useState(symbols[0] ?? "");
  const data = useAsync(async () => {
    if (!symbol) return null;
    const [bars, fills] = await Promise.all([getBars(id, symbol), allTrades(id, symbol)]);
    return { bars, fills };
  }, [id, symbol]);
  const option = useMemo(() => data.data && candleOption(symbol, data.data.bars.bars, data.data.fills, L),
    [data.data, lang()]);
  if (!symbols.length) return null;
  return (
    <figure>
      <figcaption class="row">{t("detail.candles")}
        <label class="inline">{t("detail.symbol")}{" "}
          <select value={symbol} onChange={(e) => setSymbol(e.currentTarget.value)} data-testid="candle-symbol">
            {symbols.map((s) => <option key={s} value={s}>{s}</option>)}
          </select>
        </label>
      </figcaption>
      <ErrorBox error={data.error} onRetry={data.reload} />
      {option && <Chart option={option} label={`${t("detail.candles")} ${symbol}`} testId="chart-candles" height={340} />}
    </figure>
  );
}

async function allTrades(id: number, symbol: string): Promise<Trade[]> {
  const out: Trade[] = [];
  for (let skip = 0; ; skip += 1000) {
    const p = await listTrades(id, { skip, limit: 1000, symbol, order_by: "date", order: "asc" });
    out.push(...p.items);
    if (out.length >= p.total || p.items.length === 0) return out;
  }
}

function Orders({ id, symbols }: { id: number; symbols: string[] }) {
  const [status, setStatus] = useState("");
  const [symbol, setSymbol] = useState("");
  const columns: Column<Order>[] = [
    { key: "id", label: "#", sort: "order_id", numeric: true, render: (r) => r.order_id },
    { key: "date", label: t("col.date"), sort: "created_date", render: (r) => r.created_date },
    { key: "symbol", label: t("col.symbol"), sort: "symbol", render: (r) => r.symbol },
    { key: "side", label: t("col.side"), render: (r) => t(r.side === "buy" ? "series.buy" : "series.sell") },
    { key: "quantity", label: t("col.quantity"), numeric: true, render: (r) => int(r.quantity) },
    { key: "status", label: t("col.status"), sort: "status", render: (r) => <span class={`order-${r.status}`} data-status={r.status}>{r.status.toUpperCase()}</span> },
    { key: "reason", label: t("col.reason"), render: (r) => r.reason },
    { key: "filled", label: t("col.filled"), numeric: true, render: (r) => int(r.filled_quantity) },
    { key: "fill", label: t("col.fillDate"), render: (r) => r.fill_date || "—" },
    { key: "price", label: t("col.price"), numeric: true, render: (r) => (r.fill_price === undefined ? "—" : num(r.fill_price, 3)) },
  ];
  return (
    <>
      <div class="filters">
        <label>{t("col.status")}
          <select value={status} onChange={(e) => setStatus(e.currentTarget.value)} data-testid="order-status-filter">
            <option value="">{t("common.all")}</option>
            {ORDER_STATUSES.map((s) => <option key={s} value={s}>{s.toUpperCase()}</option>)}
          </select>
        </label>
        <label>{t("col.symbol")}
          <select value={symbol} onChange={(e) => setSymbol(e.currentTarget.value)}>
            <option value="">{t("common.all")}</option>
            {symbols.map((s) => <option key={s} value={s}>{s}</option>)}
          </select>
        </label>
      </div>
      <PagedTable<Order> caption={t("detail.orders")} testId="orders" rowKey={(r) => r.order_id} filterKey={`${status}|${symbol}`}
        load={(q) => listOrders(id, { ...q, status: status || undefined, symbol: symbol || undefined })}
        initialSort={{ by: "order_id", order: "asc" }} columns={columns} />
    </>
  );
}

function Positions({ id, equity }: { id: number; equity: EquitySeries }) {
  const [date, setDate] = useState(equity.dates[equity.dates.length - 1] ?? "");
  const day = useAsync(() => getPositions(id, date), [id, date]);
  return (
    <>
      <h2 class="row">{t("detail.positions")}{" "}
        <input type="date" value={date} min={equity.dates[0]} max={equity.dates[equity.dates.length - 1]}
               aria-label={t("detail.positions")} onChange={(e) => e.currentTarget.value && setDate(e.currentTarget.value)} data-testid="positions-date" />
      </h2>
      <ErrorBox error={day.error} />
      {day.data && (
        <table data-testid="positions" data-date={day.data.date}>
          <caption class="muted">{day.data.date} · {t("col.cash")} {num(day.data.cash)} · {t("col.marketValue")} {num(day.data.market_value)}</caption>
          <thead><tr><th>{t("col.symbol")}</th><th class="num">{t("col.quantity")}</th><th class="num">{t("col.sellable")}</th><th class="num">{t("col.avgCost")}</th><th class="num">{t("col.price")}</th><th class="num">{t("col.marketValue")}</th></tr></thead>
          <tbody>
            {day.data.positions.map((p) => (
              <tr key={p.symbol}><td>{p.symbol}</td><td class="num">{int(p.quantity)}</td><td class="num">{int(p.sellable)}</td><td class="num">{num(p.avg_cost, 3)}</td><td class="num">{num(p.close, 2)}</td><td class="num">{num(p.market_value)}</td></tr>
            ))}
            {day.data.positions.length === 0 && <tr><td colSpan={6} class="muted">{t("common.none")}</td></tr>}
          </tbody>
        </table>
      )}
    </>
  );
}

function ExRightsTable({ id }: { id: number }) {
  const rows = useAsync(() => listExRights(id), [id]);
  return (
    <>
      <h2>{t("detail.exRights")}</h2>
      <ErrorBox error={rows.error} />
      <table class="compact" data-testid="ex-rights">
        <thead><tr><th>{t("col.date")}</th><th>{t("col.symbol")}</th><th class="num">{t("col.ratio")}</th><th class="num">{t("col.exPrice")}</th><th class="num">{t("col.before")}</th><th class="num">{t("col.after")}</th><th class="num">{t("col.cash")}</th></tr></thead>
        <tbody>
          {(rows.data ?? []).map((r) => (
            <tr key={`${r.date}-${r.symbol}`}><td>{r.date}</td><td>{r.symbol}</td><td class="num">{num(r.ratio, 4)}</td><td class="num">{num(r.ex_price, 3)}</td><td class="num">{int(r.quantity_before)}</td><td class="num">{int(r.quantity_after)}</td><td class="num">{num(r.cash)}</td></tr>
          ))}
          {rows.data?.length === 0 && <tr><td colSpan={7} class="muted">{t("common.none")}</td></tr>}
        </tbody>
      </table>
    </>
  );
}

function Logs({ id }: { id: number }) {
  const logs = useAsync(() => getLogs(id), [id]);
  return (
    <>
      <h2>{t("detail.logs")}</h2>
      <ErrorBox error={logs.error} />
      {logs.data?.truncated && <p class="muted" data-testid="logs-truncated">{t("detail.logsTruncated", { size: bytes(logs.data.total_bytes) })}</p>}
      <pre class="logs" data-testid="logs">{logs.data?.text || t("common.none")}</pre>
    </>
  );
}
