import { useEffect, useMemo, useState } from "preact/hooks";
import { CONFIG_DEFAULTS, getFramework, listStrategies, listSymbols, listTemplates, runBacktest } from "../api/client";
import { ApiError } from "../api/http";
import { lineOf } from "../analytics/lines";
import type { BacktestConfig, Strategy } from "../api/types";
import { CodeEditor } from "../components/CodeEditor";
import { ErrorBox, errorText } from "../components/Feedback";
import { useAsync } from "../components/hooks";
import { parseSchema, SchemaForm, schemaDefaults } from "../components/SchemaForm";
import { SymbolPicker } from "../components/SymbolPicker";
import { type MessageKey, t } from "../i18n";
import { navigate, type PageProps } from "../router";

type NumField = "initial_capital" | "commission_rate" | "min_commission" | "tax_rate" | "slippage_rate" | "annualization" | "risk_free_rate";
const NUM_FIELDS: Array<{ name: NumField; step: string }> = [
  { name: "initial_capital", step: "1000" },
  { name: "commission_rate", step: "0.0001" },
  { name: "min_commission", step: "0.5" },
  { name: "tax_rate", step: "0.0001" },
  { name: "slippage_rate", step: "0.0001" },
  { name: "annualization", step: "1" },
  { name: "risk_free_rate", step: "0.001" },
];

export default function NewBacktest({ query }: PageProps) {
  const strategies = useAsync(async () => {
    const [templates, own] = await Promise.all([listTemplates(), listStrategies({ skip: 0, limit: 1000, is_template: false })]);
    return [...templates, ...own.items.filter((s) => !s.is_template)];
  }, []);
  const symbols = useAsync(() => listSymbols(true), []);
  const framework = useAsync(getFramework, []);

  const [mode, setMode] = useState<"library" | "code">(query.get("mode") === "code" ? "code" : "library");
  const [strategyId, setStrategyId] = useState(Number(query.get("strategy") ?? 0));
  const [params, setParams] = useState<Record<string, unknown>>({});
  const [code, setCode] = useState("");
  const [name, setName] = useState("");
  const [cfg, setCfg] = useState<BacktestConfig>({
    start_date: "2012-01-04", end_date: "2016-12-30", symbols: [], ...CONFIG_DEFAULTS,
  });
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState("");
  const [busy, setBusy] = useState(false);

  const list = strategies.data ?? [];
  const chosen: Strategy | undefined = list.find((s) => s.id === strategyId);
  const schema = useMemo(() => parseSchema(chosen?.params_schema ?? ""), [chosen?.id]);
  useEffect(() => {
    if (!strategyId && list.length) setStrategyId(list[0]!.id);
  }, [list.length]);
  useEffect(() => { setParams(schemaDefaults(schema)); }, [schema]);
  useEffect(() => { if (!code && framework.data) setCode(framework.data.code); }, [framework.data]);

  const stocks = (symbols.data ?? []).filter((s) => !s.is_index);
  const indexes = (symbols.data ?? []).filter((s) => s.is_index);
  const setField = <K extends keyof BacktestConfig>(k: K, v: BacktestConfig[K]) => setCfg((c) => ({ ...c, [k]: v }));
  const err = (field: string) => errors[`config.${field}`] ?? errors[field];

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setErrors({});
    setFormError("");
    try {
      const body = mode === "library"
        ? { strategy_id: strategyId, params, config: cfg, strategy_name: name || undefined }
        : { strategy_code: code, params: {}, config: cfg, strategy_name: name || undefined };
      const task = await runBacktest(body);
      navigate(`/tasks/${task.id}`);
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
  const codeError = errors.strategy_code ?? "";

  return (
    <section>
      <h1>{t("new.title")}</h1>
      <ErrorBox error={strategies.error ?? symbols.error} />
      <form onSubmit={submit} class="new-backtest" noValidate>
        <fieldset>
          <legend>{t("new.source")}</legend>
          <div role="radiogroup" class="row">
            <label><input type="radio" name="mode" checked={mode === "library"} onChange={() => setMode("library")} /> {t("new.fromTemplate")}</label>
            <label><input type="radio" name="mode" checked={mode === "code"} onChange={() => setMode("code")} data-testid="mode-code" /> {t("new.ownCode")}</label>
          </div>
          {mode === "library" ? (
            <>
              <div class="field">
                <label for="strategy">{t("new.fromTemplate")}</label>
                <select id="strategy" value={String(strategyId)} onChange={(e) => setStrategyId(Number(e.currentTarget.value))}>
                  {list.map((s) => <option key={s.id} value={String(s.id)}>{s.is_template ? "★ " : ""}{s.name}</option>)}
                </select>
                {chosen?.description && <small class="muted">{chosen.description}</small>}
                {err("strategy_id") && <small class="error" role="alert">{err("strategy_id")}</small>}
              </div>
              {Object.keys(schema).length > 0 && (
                <>
                  <h3>{t("new.params")}</h3>
                  <SchemaForm schema={schema} value={params} onChange={setParams} errors={errors} />
                </>
              )}
            </>
          ) : (
            <div class={`field${codeError ? " invalid" : ""}`}>
              <label>{t("new.code")}</label>
              <CodeEditor value={code} onChange={setCode} errorLine={lineOf(codeError)} label={t("new.code")} />
              {codeError && <small class="error" role="alert" data-testid="code-error">{codeError}</small>}
            </div>
          )}
          <div class="field">
            <label for="name">{t("new.name")}</label>
            <input id="name" value={name} onInput={(e) => setName(e.currentTarget.value)} placeholder={chosen?.name ?? "custom"} />
          </div>
        </fieldset>

        <fieldset>
          <legend>{t("new.config")}</legend>
          <div class="grid3">
            {(["start_date", "end_date"] as const).map((f) => (
              <div class={`field${err(f) ? " invalid" : ""}`} key={f}>
                <label for={`cfg-${f}`}>{t(`cfg.${f}` as MessageKey)}</label>
                <input id={`cfg-${f}`} type="date" value={cfg[f]} onInput={(e) => setField(f, e.currentTarget.value)} />
                {err(f) && <small class="error" role="alert">{err(f)}</small>}
              </div>
            ))}
            <div class={`field${err("benchmark") ? " invalid" : ""}`}>
              <label for="cfg-benchmark">{t("cfg.benchmark")}</label>
              <select id="cfg-benchmark" value={cfg.benchmark} onChange={(e) => setField("benchmark", e.currentTarget.value)}>
                <option value="">{t("cfg.noBenchmark")}</option>
                {indexes.map((s) => <option key={s.symbol} value={s.symbol}>{s.symbol} {s.name}</option>)}
              </select>
              {err("benchmark") && <small class="error" role="alert">{err("benchmark")}</small>}
            </div>
            <div class={`field${err("adjust_type") ? " invalid" : ""}`}>
              <label for="cfg-adjust">{t("cfg.adjust_type")}</label>
              <select id="cfg-adjust" value={cfg.adjust_type} onChange={(e) => setField("adjust_type", e.currentTarget.value)}>
                {["qfq", "hfq", "none"].map((a) => <option key={a} value={a}>{a}</option>)}
              </select>
            </div>
            <div class="field">
              <label for="cfg-frequency">{t("cfg.frequency")}</label>
              <select id="cfg-frequency" value={cfg.frequency} onChange={(e) => setField("frequency", e.currentTarget.value)}>
                <option value="daily">daily</option>
              </select>
            </div>
            {NUM_FIELDS.map(({ name: f, step }) => (
              <div class={`field${err(f) ? " invalid" : ""}`} key={f}>
                <label for={`cfg-${f}`}>{t(`cfg.${f}` as MessageKey)}</label>
                <input id={`cfg-${f}`} type="number" step={step} value={String(cfg[f] ?? "")}
                       onInput={(e) => setField(f, e.currentTarget.value === "" ? undefined : Number(e.currentTarget.value))} />
                <small class="muted">{t("new.default", { value: String(CONFIG_DEFAULTS[f]) })}</small>
                {err(f) && <small class="error" role="alert">{err(f)}</small>}
              </div>
            ))}
            <div class="field">
              <label><input type="checkbox" checked={cfg.use_daily_basic} onChange={(e) => setField("use_daily_basic", e.currentTarget.checked)} /> {t("cfg.use_daily_basic")}</label>
            </div>
          </div>
          <SymbolPicker symbols={stocks} value={cfg.symbols} onChange={(v) => setField("symbols", v)} error={err("symbols")} />
        </fieldset>
        {formError && <p class="error" role="alert" data-testid="form-error">{formError}</p>}
        <button type="submit" class="primary" disabled={busy} data-testid="submit">{busy ? t("new.submitting") : t("new.submit")}</button>
      </form>
    </section>
  );
}
