import { useEffect, useState } from "preact/hooks";
import { createStrategy, getFramework, getStrategy, updateStrategy } from "../api/client";
import { ApiError } from "../api/http";
import { lineOf } from "../analytics/lines";
import { CodeEditor } from "../components/CodeEditor";
import { ErrorBox, errorText } from "../components/Feedback";
import { useAsync } from "../components/hooks";
import { t } from "../i18n";
import { href, navigate, type PageProps } from "../router";

export default function StrategyEdit({ params }: PageProps) {
  const isNew = params.id === "new";
  const id = isNew ? 0 : Number(params.id);
  const loaded = useAsync(async () => (isNew ? null : getStrategy(id)), [id]);
  const framework = useAsync(async () => (isNew ? getFramework() : null), [isNew]);
  const [form, setForm] = useState({ name: "", category: "", description: "", code: "", params_schema: "" });
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [message, setMessage] = useState("");
  useEffect(() => {
    const s = loaded.data;
    if (s) setForm({ name: s.name, category: s.category, description: s.description, code: s.code, params_schema: s.params_schema });
  }, [loaded.data]);
  useEffect(() => { if (framework.data) setForm((f) => ({ ...f, code: f.code || framework.data!.code })); }, [framework.data]);
  const readOnly = loaded.data ? !(loaded.data.can_edit ?? !loaded.data.is_template) : false;
  const set = (k: keyof typeof form, v: string) => setForm((f) => ({ ...f, [k]: v }));
  const save = async (e: Event) => {
    e.preventDefault();
    setErrors({});
    setMessage("");
    try {
      const s = isNew ? await createStrategy(form) : await updateStrategy(id, form);
      setMessage(t("strategies.saved"));
      if (isNew) navigate(`/strategies/${s.id}`);
    } catch (ex) {
      if (ex instanceof ApiError && ex.fields.length) setErrors(Object.fromEntries(ex.fields.map((f) => [f.field, f.description])));
      setMessage(errorText(ex));
    }
  };
  const field = (k: "name" | "category" | "description", multiline = false) => (
    <div class={`field${errors[k] ? " invalid" : ""}`}>
      <label for={`s-${k}`}>{t(`strategies.${k}`)}</label>
      {multiline
        ? <textarea id={`s-${k}`} value={form[k]} readOnly={readOnly} onInput={(e) => set(k, e.currentTarget.value)} />
        : <input id={`s-${k}`} value={form[k]} readOnly={readOnly} onInput={(e) => set(k, e.currentTarget.value)} required />}
      {errors[k] && <small class="error" role="alert">{errors[k]}</small>}
    </div>
  );
  return (
    <section>
      <h1>{isNew ? t("strategies.new") : form.name}</h1>
      <ErrorBox error={loaded.error} />
      <form onSubmit={save}>
        {field("name")}{field("category")}{field("description", true)}
        <div class={`field${errors.code ? " invalid" : ""}`}>
          <label>{t("new.code")}</label>
          <CodeEditor value={form.code} readOnly={readOnly} onChange={(c) => set("code", c)} errorLine={lineOf(errors.code ?? "")} label={t("new.code")} />
          {errors.code && <small class="error" role="alert">{errors.code}</small>}
        </div>
        <div class={`field${errors.params_schema ? " invalid" : ""}`}>
          <label for="s-schema">{t("strategies.schema")}</label>
          <textarea id="s-schema" class="mono" value={form.params_schema} readOnly={readOnly} onInput={(e) => set("params_schema", e.currentTarget.value)} />
          {errors.params_schema && <small class="error" role="alert">{errors.params_schema}</small>}
        </div>
        {message && <p role="status">{message}</p>}
        <div class="row">
          {!readOnly && <button type="submit" class="primary">{t("common.save")}</button>}
          {!isNew && <a class="button" href={href(`/new?strategy=${id}`)}>{t("strategies.run")}</a>}
        </div>
      </form>
    </section>
  );
}
