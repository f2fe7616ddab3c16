// A sweep form: the strategy's params_schema gives one row per parameter (fixed, a range or a
// list of values); search method, constraints, objective, validation; the config as for a
// single backtest. A 400's field violations show at their inputs.
import { useEffect, useMemo, useState } from "preact/hooks";
import { CONFIG_DEFAULTS, createSweep, estimateSweep, listStrategies, listSymbols, listTemplates } from "../api/client";
import { ApiError } from "../api/http";
import type { BacktestConfig, SweepEstimate, SweepMethod, SweepRequest, ValidationKind } from "../api/types";
import { METRICS } from "../analytics/metrics";
import { buildSpace, gridSize, lines, type ParamRow, type RowKind, rowsFromSchema } from "../analytics/sweep";
import { ErrorBox, errorText } from "../components/Feedback";
import { useAsync } from "../components/hooks";
import { parseSchema } from "../components/SchemaForm";
import { SymbolPicker } from "../components/SymbolPicker";
import { type MessageKey, t } from "../i18n";
import { navigate, type PageProps } from "../router";

const OBJECTIVES = METRICS.filter((m) => !m.difference && m.key !== "benchmark_total_return").map((m) => m.key);

export default function NewSweep({ query }: PageProps) {
  const strategies = useAsync(async () => {
    const [templates, own] = await Promise.all([listTemplates(), listStrategies({ skip: 0, limit: 1000, is_template: false })]);
    return [...templates, ...own.items.filter((s) => !s.is_template)];
  }, []);
  const symbols = useAsync(() => listSymbols(true), []);
  const [strategyId, setStrategyId] = useState(Number(query.get("strategy") ?? 0));
  const [rows, setRows] = useState<ParamRow[]>([]);
  const [method, setMethod] = useState<SweepMethod>("grid");
  const [maxTrials, setMaxTrials] = useState("");
  const [seed, setSeed] = useState("0");
  const [maxParallel, setMaxParallel] = useState("0");
  const [target, setTarget] = useState("");
  const [constraints, setConstraints] = useState("");
  const [resultConstraints, setResultConstraints] = useState("");
  const [metric, setMetric] = useState("sharpe_ratio");
  const [direction, setDirection] = useState<"maximize" | "minimize">("maximize");
  const [vkind, setVkind] = useState<ValidationKind>("none");
  const [inSampleEnd, setInSampleEnd] = useState("2015-06-30");
  const [trainDays, setTrainDays] = useState("250");
  const [testDays, setTestDays] = useState("60");
  const [stepDays, setStepDays] = useState("");
  const [anchored, setAnchored] = useState(false);
  const [cfg, setCfg] = useState<BacktestConfig>({ start_date: "2012-01-04", end_date: "2016-12-30", symbols: [], ...CONFIG_DEFAULTS });
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState("");
  const [estimate, setEstimate] = useState<SweepEstimate | null>(null);
  const [busy, setBusy] = useState(false);

  const list = strategies.data ?? [];
  const chosen = list.find((s) => s.id === strategyId);
  const schema = useMemo(() => parseSchema(chosen?.params_schema ?? ""), [chosen?.id]);
  useEffect(() => { if (!strategyId && list.length) setStrategyId(list.find((s) => s.id === 2)?.id ?? list[0]!.id); }, [list.length]);
  useEffect(() => { setRows(rowsFromSchema(schema)); }, [schema]);

  const built = useMemo(() => buildSpace(rows, method), [rows, method]);
  const points = gridSize(built.space);
  const setRow = (i: number, patch: Partial<ParamRow>) => setRows((rs) => rs.map((r, k) => (k === i ? { ...r, ...patch } : r)));
  const setField = <K extends keyof BacktestConfig>(k: K, v: BacktestConfig[K]) => setCfg((c) => ({ ...c, [k]: v }));
  const err = (field: string) => errors[field] ?? errors[`config.${field}`];

  const request = (): SweepRequest | null => {
    if (Object.keys(built.errors).length) {
      setErrors(Object.fromEntries(Object.entries(built.errors).map(([k, v]) => [k, t(v as MessageKey)])));
      setFormError(t("new.fixErrors"));
      return null;
    }
    const n = (s: string) => (s.trim() === "" ? undefined : Number(s));
    return {
      strategy_id: strategyId, config: cfg, params: built.fixed, space: built.space, method,
      max_trials: n(maxTrials), seed: n(seed), max_parallel: n(maxParallel), target: n(target) ?? null,
      constraints: lines(constraints), result_constraints: lines(resultConstraints),
      objective: { metric, direction },
      validation: vkind === "none" ? { kind: "none" }
        : vkind === "holdout" ? { kind: "holdout", in_sample_end: inSampleEnd }
        : { kind: "walk_forward", train_days: n(trainDays), test_days: n(testDays), step_days: n(stepDays), anchored },
    };
  };
  const run = async (fn: (r: SweepRequest) => Promise<void>) => {
    setErrors({});
    setFormError("");
    const req = request();
    if (!req) return;
    setBusy(true);
    try {
      await fn(req);
    } catch (ex) {
      if (ex instanceof ApiError && ex.fields.length) {
        setErrors(Object.fromEntries(ex.fields.map((f) => [f.field, f.description])));
        setFormError(t("new.fixErrors"));
      } else {
        setFormError(errorText(ex));
      }
    } finally {
      setBusy(false);
    }
  };
  const submit = (e: Event) => {
    e.preventDefault();
    void run(async (req) => { navigate(`/sweeps/${(await createSweep(req)).id}`); });
  };

  const fieldError = (key: string) => err(key) && <small class="error" role="alert" data-field={key}>{err(key)}</small>;
  const stocks = (symbols.data ?? []).filter((s) => !s.is_index);
  const indexes = (symbols.data ?? []).filter((s) => s.is_index);

  return (
    <section>
      <h1>{t("sweep.newTitle")}</h1>
      <ErrorBox error={strategies.error ?? symbols.error} />
      <form onSubmit={submit} class="new-sweep" noValidate>
        <fieldset>
          <legend>{t("new.source")}</legend>
          <div class="field">
            <label for="strategy">{t("new.fromTemplate")}</label>
            <select id="strategy" value={String(strategyId)} onChange={(e) => setStrategyId(Number(e.currentTarget.value))}>
              {list.map((s) => <option key={s.id} value={String(s.id)}>{s.is_template ? "★ " : ""}{s.name}</option>)}
            </select>
            {fieldError("strategy_id")}
          </div>
          <h3>{t("sweep.space")}</h3>
          {fieldError("space")}
          <table class="sweep-space" data-testid="sweep-space">
            <tbody>
              {rows.map((r, i) => (
                <tr key={r.name} data-param={r.name}>
                  <th scope="row"><label for={`kind-${r.name}`}>{r.name}</label></th>
                  <td>
                    <select id={`kind-${r.name}`} value={r.kind} onChange={(e) => setRow(i, { kind: e.currentTarget.value as RowKind })}>
                      {(["fixed", "range", "values"] as const).map((k) => <option key={k} value={k}>{t(`sweep.kind.${k}`)}</option>)}
                    </select>
                  </td>
                  {r.kind === "fixed" && (
                    <td colSpan={4}><input id={`fixed-${r.name}`} aria-label={r.name} value={r.fixed} onInput={(e) => setRow(i, { fixed: e.currentTarget.value })} /></td>
                  )}
                  {r.kind === "range" && (["min", "max", "step"] as const).map((k) => (
                    <td key={k} class={err(`space.${r.name}.${k}`) ? "invalid" : ""}>
                      <input id={`${k}-${r.name}`} type="number" step="any" aria-label={`${r.name} ${t(`sweep.${k}`)}`} placeholder={t(`sweep.${k}`)}
                             value={r[k]} disabled={k === "step" && r.log && method !== "grid"}
                             onInput={(e) => setRow(i, { [k]: e.currentTarget.value })} />
                      {fieldError(`space.${r.name}.${k}`)}
                    </td>
                  ))}
                  {r.kind === "range" && (
                    <td><label><input type="checkbox" checked={r.log} disabled={method === "grid"} onChange={(e) => setRow(i, { log: e.currentTarget.checked })} /> {t("sweep.log")}</label></td>
                  )}
                  {r.kind === "values" && (
                    <td colSpan={4} class={err(`space.${r.name}.values`) ? "invalid" : ""}>
                      <input id={`values-${r.name}`} aria-label={`${r.name} ${t("sweep.valuesHint")}`} placeholder={t("sweep.valuesHint")} value={r.values}
                             onInput={(e) => setRow(i, { values: e.currentTarget.value })} />
                      {fieldError(`space.${r.name}.values`)}
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
          {points !== null && <p class="muted" data-testid="grid-size">{t("sweep.gridSize", { n: points })}</p>}
          <div class={`field${err("constraints") ? " invalid" : ""}`}>
            <label for="constraints">{t("sweep.constraints")}</label>
            <textarea id="constraints" rows={2} value={constraints} placeholder="short_window < long_window" onInput={(e) => setConstraints(e.currentTarget.value)} />
            {Object.keys(errors).filter((k) => k.startsWith("constraints")).map((k) => <small key={k} class="error" role="alert" data-field={k}>{k}: {errors[k]}</small>)}
          </div>
        </fieldset>

        <fieldset>
          <legend>{t("sweep.search")}</legend>
          <div class="grid3">
            <div class="field">
              <label for="method">{t("sweeps.method")}</label>
              <select id="method" value={method} onChange={(e) => setMethod(e.currentTarget.value as SweepMethod)}>
                {(["grid", "random", "tpe"] as const).map((m) => <option key={m} value={m}>{m.toUpperCase()}</option>)}
              </select>
            </div>
            <div class={`field${err("max_trials") ? " invalid" : ""}`}>
              <label for="max-trials">{t("sweep.maxTrials")}</label>
              <input id="max-trials" type="number" min={1} value={maxTrials} placeholder={points !== null && method === "grid" ? String(points) : "50"}
                     onInput={(e) => setMaxTrials(e.currentTarget.value)} />
              {fieldError("max_trials")}
            </div>
            <div class="field">
              <label for="seed">{t("sweep.seed")}</label>
              <input id="seed" type="number" min={0} value={seed} onInput={(e) => setSeed(e.currentTarget.value)} />
            </div>
            <div class={`field${err("objective.metric") ? " invalid" : ""}`}>
              <label for="objective">{t("sweep.objective")}</label>
              <select id="objective" value={metric} onChange={(e) => {
                const m = e.currentTarget.value;
                setMetric(m);
                setDirection(METRICS.find((x) => x.key === m)?.lowerIsBetter ? "minimize" : "maximize");
              }}>
                {OBJECTIVES.map((m) => <option key={m} value={m}>{t(`metric.${m}` as MessageKey)} ({m})</option>)}
              </select>
              {fieldError("objective.metric")}
            </div>
            <div class="field">
              <label for="direction">{t("sweep.direction")}</label>
              <select id="direction" value={direction} onChange={(e) => setDirection(e.currentTarget.value as "maximize" | "minimize")}>
                <option value="maximize">{t("sweep.maximize")}</option>
                <option value="minimize">{t("sweep.minimize")}</option>
              </select>
            </div>
            <div class={`field${err("target") ? " invalid" : ""}`}>
              <label for="target">{t("sweep.target")}</label>
              <input id="target" type="number" step="any" value={target} onInput={(e) => setTarget(e.currentTarget.value)} />
              {fieldError("target")}
            </div>
            <div class={`field${err("max_parallel") ? " invalid" : ""}`}>
              <label for="max-parallel">{t("sweep.maxParallel")}</label>
              <input id="max-parallel" type="number" min={0} value={maxParallel} onInput={(e) => setMaxParallel(e.currentTarget.value)} />
              {fieldError("max_parallel")}
            </div>
          </div>
          <div class="field">
            <label for="result-constraints">{t("sweep.resultConstraints")}</label>
            <textarea id="result-constraints" rows={2} value={resultConstraints} placeholder="max_drawdown < 0.25" onInput={(e) => setResultConstraints(e.currentTarget.value)} />
            {Object.keys(errors).filter((k) => k.startsWith("result_constraints")).map((k) => <small key={k} class="error" role="alert" data-field={k}>{k}: {errors[k]}</small>)}
          </div>
        </fieldset>

        <fieldset>
          <legend>{t("sweep.validation")}</legend>
          <div class="grid3">
            <div class="field">
              <label for="validation">{t("sweep.validation")}</label>
              <select id="validation" value={vkind} onChange={(e) => setVkind(e.currentTarget.value as ValidationKind)}>
                {(["none", "holdout", "walk_forward"] as const).map((k) => <option key={k} value={k}>{t(`sweep.validation.${k}`)}</option>)}
              </select>
            </div>
            {vkind === "holdout" && (
              <div class={`field${err("validation.in_sample_end") ? " invalid" : ""}`}>
                <label for="in-sample-end">{t("sweep.inSampleEnd")}</label>
                <input id="in-sample-end" type="date" value={inSampleEnd} onInput={(e) => setInSampleEnd(e.currentTarget.value)} />
                {fieldError("validation.in_sample_end")}
              </div>
            )}
            {vkind === "walk_forward" && ([["train-days", "sweep.trainDays", trainDays, setTrainDays, "validation.train_days"],
                                           ["test-days", "sweep.testDays", testDays, setTestDays, "validation.test_days"],
                                           ["step-days", "sweep.stepDays", stepDays, setStepDays, "validation.step_days"]] as const).map(([id, label, v, set, field]) => (
              <div class={`field${err(field) ? " invalid" : ""}`} key={id}>
                <label for={id}>{t(label)}</label>
                <input id={id} type="number" min={1} value={v} onInput={(e) => set(e.currentTarget.value)} />
                {fieldError(field)}
              </div>
            ))}
            {vkind === "walk_forward" && (
              <div class="field"><label><input type="checkbox" checked={anchored} onChange={(e) => setAnchored(e.currentTarget.checked)} /> {t("sweep.anchored")}</label></div>
            )}
          </div>
        </fieldset>

        <fieldset>
          <legend>{t("new.config")}</legend>
          <div class="grid3">
            {(["start_date", "end_date"] as const).map((f) => (
              <div class={`field${err(f) ? " invalid" : ""}`} key={f}>
                <label for={`cfg-${f}`}>{t(`cfg.${f}` as MessageKey)}</label>
                <input id={`cfg-${f}`} type="date" value={cfg[f]} onInput={(e) => setField(f, e.currentTarget.value)} />
                {fieldError(`config.${f}`)}
              </div>
            ))}
            <div class="field">
              <label for="cfg-benchmark">{t("cfg.benchmark")}</label>
              <select id="cfg-benchmark" value={cfg.benchmark} onChange={(e) => setField("benchmark", e.currentTarget.value)}>
                <option value="">{t("cfg.noBenchmark")}</option>
                {indexes.map((s) => <option key={s.symbol} value={s.symbol}>{s.symbol} {s.name}</option>)}
              </select>
            </div>
            <div class="field">
              <label for="cfg-initial_capital">{t("cfg.initial_capital")}</label>
              <input id="cfg-initial_capital" type="number" step="1000" value={String(cfg.initial_capital ?? "")}
                     onInput={(e) => setField("initial_capital", e.currentTarget.value === "" ? undefined : Number(e.currentTarget.value))} />
            </div>
          </div>
          <SymbolPicker symbols={stocks} value={cfg.symbols} onChange={(v) => setField("symbols", v)} error={err("config.symbols") ?? err("symbols")} />
        </fieldset>
        {estimate && (
          <p class="muted" data-testid="estimate">{t("sweep.estimated", { trials: estimate.trials, cached: estimate.cached, seconds: estimate.seconds.toFixed(1), basis: estimate.basis })}</p>
        )}
        {formError && <p class="error" role="alert" data-testid="form-error">{formError}</p>}
        <div class="row">
          <button type="button" disabled={busy} data-testid="estimate-button" onClick={() => void run(async (req) => { setEstimate(await estimateSweep(req)); })}>{t("sweep.estimate")}</button>
          <button type="submit" class="primary" disabled={busy} data-testid="submit">{busy ? t("new.submitting") : t("sweep.submit")}</button>
        </div>
      </form>
    </section>
  );
}
