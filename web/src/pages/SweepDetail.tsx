// One sweep: live progress (WatchSweep NDJSON), the best trial and its deflated Sharpe, the
// leaderboard (server-sorted and paged), a heatmap of a parameter pair, parallel coordinates, and
// for validated sweeps the folds, in-sample vs out-of-sample Sharpe and the stitched equity.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { cancelSweep, deleteSweep, getFolds, getHeatmap, getSweep, listTrials, promoteTrial } from "../api/client";
import { watchSweep } from "../api/stream";
import { type Sweep, SWEEP_TERMINAL, type Trial } from "../api/types";
import { num, pct } from "../analytics/format";
import { foldPoints, heatmapCells, parallelData, progressOf, stitchedReturns, sweptParams } from "../analytics/sweep";
import { foldScatterOption, heatmapOption, parallelOption, stitchedOption } from "../charts/sweep";
import { preloadCharts } from "../charts/load";
import { Chart } from "../components/Chart";
import { ErrorBox, errorText, Loading } from "../components/Feedback";
import { useAsync } from "../components/hooks";
import { ProgressBar, StatusBadge } from "../components/StatusBadge";
import { type Column, PagedTable } from "../components/Table";
import { type MessageKey, t } from "../i18n";
import { navigate, type PageProps } from "../router";

const L = (k: string) => t(k as MessageKey);
const REFRESH_MS = 2000;

export default function SweepDetail({ params }: PageProps) {
  const id = Number(params.id);
  const first = useAsync(() => { void preloadCharts(); return getSweep(id); }, [id]);
  const [sweep, setSweep] = useState<Sweep | null>(null);
  const [live, setLive] = useState(false);
  // Bumped when what the charts and tables show may have changed (at most every REFRESH_MS).
  const [version, setVersion] = useState(0);
  const last = useRef(0);
  const [actionError, setActionError] = useState("");
  useEffect(() => { if (first.data) setSweep(first.data); }, [first.data]);

  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | null = null;
    const bump = (now: boolean) => {
      if (now || Date.now() - last.current >= REFRESH_MS) {
        last.current = Date.now();
        setVersion((v) => v + 1);
      } else if (!timer) {
        timer = setTimeout(() => { timer = null; last.current = Date.now(); setVersion((v) => v + 1); }, REFRESH_MS);
      }
    };
    const h = watchSweep(id, {
      onState: setLive,
      onEvent(ev) {
        setSweep((cur) => ({ ...ev.sweep, config: ev.sweep.config ?? cur?.config }));
        if (ev.kind === "trial" || ev.kind === "best" || ev.terminal) bump(ev.terminal || ev.kind === "best");
      },
    });
    return () => { h.close(); if (timer) clearTimeout(timer); };
  }, [id]);

  if (first.error) return <ErrorBox error={first.error} onRetry={first.reload} />;
  if (!sweep) return <Loading />;
  const names = Object.keys(sweep.space).sort();
  const metric = sweep.objective?.metric || "sharpe_ratio";
  const finished = sweep.done + sweep.failed + sweep.cached + sweep.skipped;
  const terminal = SWEEP_TERMINAL.has(sweep.status);
  const act = async (fn: () => Promise<unknown>) => {
    setActionError("");
    try { await fn(); } catch (e) { setActionError(errorText(e)); }
  };

  return (
    <section class="sweep-detail" data-testid="sweep-detail" data-status={sweep.status}>
      <div class="row">
        <h1>{t("sweep.title", { id })} — {sweep.strategy_name}</h1>
        <StatusBadge status={sweep.status} />
        <span class={`live ${live ? "on" : "off"}`} data-testid="live">{live ? t("nav.live") : t("nav.offline")}</span>
        <span class="spacer" />
        {!terminal && <button type="button" onClick={() => void act(async () => setSweep(await cancelSweep(id)))}>{t("sweep.cancel")}</button>}
        <button type="button" onClick={() => {
          if (confirm(t("common.confirmDelete", { what: t("sweep.title", { id }) }))) void act(async () => { await deleteSweep(id); navigate("/sweeps"); });
        }}>{t("sweep.delete")}</button>
      </div>
      {actionError && <p class="error" role="alert">{actionError}</p>}
      {sweep.error_message && <p class="error" role="alert">{sweep.error_message}</p>}
      <div class="card">
        <ProgressBar value={progressOf(sweep)} label={t("tasks.progress")} />
        <p data-testid="sweep-progress" data-finished={finished} data-total={sweep.trials_total}>
          {t("sweep.progress", { finished, total: Math.max(sweep.trials_total, finished) })} · {t("sweep.counts", {
            queued: sweep.queued, running: sweep.running, done: sweep.done, cached: sweep.cached, failed: sweep.failed, skipped: sweep.skipped })}
          {" · "}{t("sweep.elapsed", { s: sweep.elapsed_seconds.toFixed(1) })}
          {sweep.eta_seconds !== null && sweep.eta_seconds !== undefined && !terminal && <> · {t("sweep.eta", { s: sweep.eta_seconds.toFixed(0) })}</>}
        </p>
        {sweep.best ? (
          <p data-testid="sweep-best" data-trial={sweep.best.number} data-objective={String(sweep.best.objective)}>
            <strong>{t("sweep.bestTrial", { n: sweep.best.number, params: sweptParams(sweep.best, names) })}</strong>
            {" — "}{L(`metric.${metric}`)} {num(sweep.best.objective, 4)}
          </p>
        ) : <p class="muted">{t("sweep.noBest")}</p>}
        {sweep.deflated_sharpe !== null && sweep.deflated_sharpe !== undefined && (
          <p data-testid="sweep-dsr" data-dsr={String(sweep.deflated_sharpe)}>
            {t("sweep.dsrText", { dsr: num(sweep.deflated_sharpe, 3), n: sweep.trials_evaluated })}
          </p>
        )}
      </div>
      <Leaderboard id={id} names={names} metric={metric} version={version} validated={Boolean(sweep.validation && sweep.validation.kind !== "none")} />
      {names.length >= 2 && <HeatmapPanel id={id} names={names} metric={metric} version={version} />}
      <ParallelPanel id={id} names={names} metric={metric} version={version} />
      {sweep.validation && sweep.validation.kind !== "none" && <FoldsPanel id={id} version={version} initial={sweep.config?.initial_capital ?? 1_000_000} />}
    </section>
  );
}

function Leaderboard({ id, names, metric, version, validated }: { id: number; names: string[]; metric: string; version: number; validated: boolean }) {
  const [promoteError, setPromoteError] = useState("");
  // With validation, ranks are per fold and phase: the fold and the phase are shown beside them.
  const foldColumns: Column<Trial>[] = validated ? [
    { key: "fold", label: t("sweep.fold"), numeric: true, render: (r) => r.fold },
    { key: "phase", label: t("sweep.phase"), render: (r) => <span data-phase={r.phase}>{L(`sweep.phase.${r.phase}`)}</span> },
  ] : [];
  const columns: Column<Trial>[] = [
    { key: "rank", label: t("sweep.rank"), numeric: true, render: (r) => (r.ranked ? r.rank : "—") },
    { key: "number", label: t("sweep.trial"), sort: "number", numeric: true, render: (r) => <span data-trial={r.number}>#{r.number}</span> },
    ...foldColumns,
    { key: "params", label: t("sweep.params"), render: (r) => sweptParams(r, names) },
    { key: "objective", label: `${L(`metric.${metric}`)}`, sort: "objective", numeric: true, render: (r) => num(r.objective, 4) },
    { key: "total_return", label: t("metric.total_return"), sort: "total_return", numeric: true, render: (r) => pct(r.metrics?.total_return) },
    { key: "max_drawdown", label: t("metric.max_drawdown"), sort: "max_drawdown", numeric: true, render: (r) => pct(r.metrics?.max_drawdown) },
    { key: "trades", label: t("metric.total_trades"), numeric: true, render: (r) => r.trades },
    { key: "status", label: t("tasks.status"), sort: "status", render: (r) => <span class={`badge trial-${r.status}`} data-status={r.status}>{L(`trial.${r.status}`)}</span> },
    { key: "promote", label: "", render: (r) => (r.status === "done" || r.status === "cached") && (
      <button type="button" class="link" onClick={() => void promoteTrial(id, r.number).then((task) => navigate(`/tasks/${task.id}`), (e: unknown) => setPromoteError(errorText(e)))}>
        {t("sweep.promote")}
      </button>
    ) },
  ];
  return (
    <>
      <h2>{t("sweep.leaderboard")}</h2>
      {promoteError && <p class="error" role="alert">{promoteError}</p>}
      <PagedTable columns={columns} load={(q) => listTrials(id, q)} caption={t("sweep.leaderboard")} rowKey={(r) => r.number}
                  filterKey={String(version)} testId="leaderboard" />
    </>
  );
}

function HeatmapPanel({ id, names, metric, version }: { id: number; names: string[]; metric: string; version: number }) {
  const [x, setX] = useState(names[0]!);
  const [y, setY] = useState(names[1]!);
  const [agg, setAgg] = useState<"max" | "mean">("max");
  const data = useAsync(() => (x === y ? Promise.resolve(null) : getHeatmap(id, x, y, metric, agg)), [id, x, y, agg, version]);
  const option = useMemo(() => {
    if (!data.data) return null;
    const h = data.data;
    const { cells, min, max } = heatmapCells(h);
    return heatmapOption({ name: h.x, values: h.x_values.map(String) }, { name: h.y, values: h.y_values.map(String) }, cells, { min, max }, h.metric);
  }, [data.data]);
  return (
    <>
      <h2>{t("sweep.heatmap")}</h2>
      <div class="row">
        {([["hm-x", "sweep.x", x, setX], ["hm-y", "sweep.y", y, setY]] as const).map(([hid, label, v, set]) => (
          <label key={hid}>{t(label)} <select id={hid} value={v} onChange={(e) => set(e.currentTarget.value)}>
            {names.map((n) => <option key={n} value={n}>{n}</option>)}
          </select></label>
        ))}
        <label>{t("sweep.agg")} <select id="hm-agg" value={agg} onChange={(e) => setAgg(e.currentTarget.value as "max" | "mean")}>
          <option value="max">max</option><option value="mean">mean</option>
        </select></label>
      </div>
      <ErrorBox error={data.error} />
      {option && <Chart option={option} label={t("sweep.heatmap")} testId="chart-heatmap" height={360} />}
    </>
  );
}

function ParallelPanel({ id, names, metric, version }: { id: number; names: string[]; metric: string; version: number }) {
  const data = useAsync(() => listTrials(id, { skip: 0, limit: 1000, order_by: "number", order: "asc" }), [id, version]);
  const option = useMemo(() => (data.data ? parallelOption(parallelData(data.data.items, names, metric)) : null), [data.data]);
  return (
    <>
      <h2>{t("sweep.parallel")}</h2>
      <ErrorBox error={data.error} />
      {option && <Chart option={option} label={t("sweep.parallel")} testId="chart-parallel" height={320} />}
    </>
  );
}

function FoldsPanel({ id, version, initial }: { id: number; version: number; initial: number }) {
  const data = useAsync(() => getFolds(id), [id, version]);
  const f = data.data;
  const scatter = useMemo(() => (f ? foldScatterOption(foldPoints(f.folds), L) : null), [f]);
  const stitched = useMemo(() => (f && f.stitched_dates.length ? stitchedOption(f.stitched_dates, stitchedReturns(f.stitched_nav, initial), L) : null), [f]);
  return (
    <>
      <h2>{t("sweep.folds")}</h2>
      <ErrorBox error={data.error} />
      {f && (
        <table data-testid="folds">
          <thead><tr><th>{t("sweep.fold")}</th><th>{t("sweep.train")}</th><th>{t("sweep.test")}</th><th>{t("sweep.params")}</th>
            <th class="num">{t("sweep.inSample")}</th><th class="num">{t("sweep.outOfSample")}</th></tr></thead>
          <tbody>
            {f.folds.map((fold) => (
              <tr key={fold.index} data-fold={fold.index}>
                <td>{fold.index}</td><td>{fold.train_start} – {fold.train_end}</td><td>{fold.test_start} – {fold.test_end}</td>
                <td>{fold.best_params ? Object.entries(fold.best_params).map(([k, v]) => `${k}=${String(v)}`).join(", ") : "—"}</td>
                <td class="num">{num(fold.in_sample_sharpe, 3)}</td><td class="num">{num(fold.out_of_sample_sharpe, 3)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {scatter && <><h3>{t("sweep.isVsOos")}</h3><Chart option={scatter} label={t("sweep.isVsOos")} testId="chart-folds" height={300} /></>}
      {stitched && f && (
        <>
          <h3>{t("sweep.stitched")}</h3>
          <p class="muted" data-testid="stitched-summary">{t("sweep.stitchedSummary", { ret: pct(f.stitched_return), sharpe: num(f.stitched_sharpe, 3) })}</p>
          <Chart option={stitched} label={t("sweep.stitched")} testId="chart-stitched" height={300} />
        </>
      )}
    </>
  );
}
