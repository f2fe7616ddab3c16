import { useEffect, useMemo, useState } from "preact/hooks";
import { getEquity, getTask, listTasks } from "../api/client";
import type { Task } from "../api/types";
import { compareDrawdownOption, compareEquityOption } from "../charts/options";
import { preloadCharts } from "../charts/load";
import { Chart } from "../components/Chart";
import { ErrorBox, Loading } from "../components/Feedback";
import { useAsync } from "../components/hooks";
import { bestIndex, METRICS, metricValue } from "../analytics/metrics";
import { formatMetric } from "../components/MetricCards";
import { type MessageKey, t } from "../i18n";
import { navigate, type PageProps } from "../router";

function flatConfig(task: Task): Record<string, string> {
  const out: Record<string, string> = { strategy: task.strategy_name, params: JSON.stringify(task.params) };
  for (const [k, v] of Object.entries(task.config)) out[k] = Array.isArray(v) ? v.join(",") : String(v ?? "");
  return out;
}

export default function Compare({ query }: PageProps) {
  const ids = (query.get("ids") ?? "").split(",").map(Number).filter((n) => n > 0).slice(0, 6);
  if (ids.length < 2) return <Picker initial={ids} />;
  return <Comparison ids={ids} />;
}

function Picker({ initial }: { initial: number[] }) {
  const done = useAsync(() => listTasks({ skip: 0, limit: 200, status: "completed", order_by: "created_at", order: "desc" }), []);
  const [sel, setSel] = useState<number[]>(initial);
  return (
    <section>
      <h1>{t("compare.title")}</h1>
      <p>{t("compare.pick")}</p>
      <ErrorBox error={done.error} />
      <ul class="plain" data-testid="compare-picker">
        {(done.data?.items ?? []).map((task) => (
          <li key={task.id}>
            <label><input type="checkbox" checked={sel.includes(task.id)} onChange={() => setSel((s) => (s.includes(task.id) ? s.filter((x) => x !== task.id) : [...s, task.id].slice(-6)))} />
              {" "}#{task.id} {task.strategy_name} <span class="muted">{task.start_date} – {task.end_date}</span></label>
          </li>
        ))}
      </ul>
      <button type="button" class="primary" disabled={sel.length < 2} onClick={() => navigate(`/compare?ids=${sel.join(",")}`)}>{t("nav.compare")}</button>
      {sel.length < 2 && <p class="muted">{t("compare.tooFew")}</p>}
    </section>
  );
}

function Comparison({ ids }: { ids: number[] }) {
  useEffect(() => { void preloadCharts(); }, []);
  const data = useAsync(() => Promise.all(ids.map(async (id) => {
    const [task, equity] = await Promise.all([getTask(id), getEquity(id)]);
    return { task, equity, metrics: equity.metrics };
  })), [ids.join(",")]);
  const runs = useMemo(() => (data.data ?? []).map((d) => (
    { name: `#${d.task.id} ${d.task.strategy_name}`, dates: d.equity.dates, values: d.equity.total_value })), [data.data]);
  const options = useMemo(() => ({ equity: compareEquityOption(runs), drawdown: compareDrawdownOption(runs) }), [runs]);
  if (data.error) return <ErrorBox error={data.error} onRetry={data.reload} />;
  if (!data.data) return <Loading />;
  const configs = data.data.map((d) => flatConfig(d.task));
  const keys = [...new Set(configs.flatMap((c) => Object.keys(c)))].sort();
  const differing = keys.filter((k) => new Set(configs.map((c) => c[k] ?? "")).size > 1);
  return (
    <section data-testid="compare" data-runs={runs.length}>
      <h1>{t("compare.title")}</h1>
      <figure><figcaption>{t("compare.equity")}</figcaption><Chart option={options.equity} label={t("compare.equity")} testId="chart-compare-equity" height={360} /></figure>
      <figure><figcaption>{t("compare.drawdown")}</figcaption><Chart option={options.drawdown} label={t("compare.drawdown")} testId="chart-compare-drawdown" height={240} /></figure>
      <h2>{t("compare.metrics")}</h2>
      <table data-testid="compare-metrics">
        <thead><tr><th>{t("compare.field")}</th>{runs.map((r) => <th key={r.name}>{r.name}</th>)}</tr></thead>
        <tbody>
          {METRICS.map((spec) => {
            const { key, kind } = spec;
            const values = data.data!.map((d) => metricValue(d.metrics, spec));
            const best = bestIndex(spec, values);
            return (
              <tr key={key}>
                <th scope="row">{t(`metric.${key}` as MessageKey)}</th>
                {values.map((v, i) => <td key={i} class={`num${i === best ? " best" : ""}`} data-best={i === best || undefined}>{formatMetric(kind, v)}{i === best ? " ★" : ""}</td>)}
              </tr>
            );
          })}
        </tbody>
      </table>
      <h2>{t("compare.config")}</h2>
      {differing.length === 0 ? <p class="muted">{t("compare.same")}</p> : (
        <table data-testid="compare-config">
          <thead><tr><th>{t("compare.field")}</th>{runs.map((r) => <th key={r.name}>{r.name}</th>)}</tr></thead>
          <tbody>{differing.map((k) => <tr key={k}><th scope="row">{k}</th>{configs.map((c, i) => <td key={i}>{c[k] ?? "—"}</td>)}</tr>)}</tbody>
        </table>
      )}
    </section>
  );
}
