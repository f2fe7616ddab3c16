// A parameter form generated from a template's params_schema (a JSON Schema object with
// typed properties): integers and numbers with their bounds, booleans, strings, nullable values.
import { t } from "../i18n";

export interface PropSchema {
  type?: string | string[];
  default?: unknown;
  minimum?: number;
  maximum?: number;
  description?: string;
  enum?: unknown[];
}

export function parseSchema(text: string): Record<string, PropSchema> {
  if (!text) return {};
  try {
    const s = JSON.parse(text) as { properties?: Record<string, PropSchema> };
    return s.properties ?? {};
  } catch {
    return {};
  }
}

export function schemaDefaults(props: Record<string, PropSchema>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(props).map(([k, p]) => [k, p.default ?? null]));
}

function types(p: PropSchema): string[] {
  return Array.isArray(p.type) ? p.type : p.type ? [p.type] : ["string"];
}

interface Props {
  schema: Record<string, PropSchema>;
  value: Record<string, unknown>;
  onChange: (v: Record<string, unknown>) => void;
  errors: Record<string, string>;
}

export function SchemaForm({ schema, value, onChange, errors }: Props) {
  const set = (k: string, v: unknown) => onChange({ ...value, [k]: v });
  return (
    <div class="grid2" data-testid="params-form">
      {Object.entries(schema).map(([name, p]) => {
        const ty = types(p);
        const nullable = ty.includes("null");
        const id = `param-${name}`;
        const err = errors[`params.${name}`] ?? errors[name];
        const v = value[name];
        let input;
        if (p.enum) {
          input = (
            <select id={id} value={String(v ?? "")} onChange={(e) => set(name, p.enum!.find((x) => String(x) === e.currentTarget.value))}>
              {p.enum.map((x) => <option key={String(x)} value={String(x)}>{String(x)}</option>)}
            </select>
          );
        } else if (ty.includes("boolean")) {
          input = <input id={id} type="checkbox" checked={Boolean(v)} onChange={(e) => set(name, e.currentTarget.checked)} />;
        } else if (ty.includes("integer") || ty.includes("number")) {
          input = (
            <input id={id} type="number" step={ty.includes("integer") ? 1 : "any"} min={p.minimum} max={p.maximum}
                   value={v === null || v === undefined ? "" : String(v)} placeholder={nullable ? t("common.none") : ""}
                   onInput={(e) => {
                     const raw = e.currentTarget.value;
                     set(name, raw === "" ? (nullable ? null : undefined) : Number(raw));
                   }} />
          );
        } else {
          input = <input id={id} value={String(v ?? "")} onInput={(e) => set(name, e.currentTarget.value)} />;
        }
        return (
          <div class={`field${err ? " invalid" : ""}`} key={name}>
            <label for={id}>{name}</label>
            {input}
            {p.description && <small class="muted">{p.description}{p.minimum !== undefined ? ` [${p.minimum}, ${p.maximum ?? "∞"}]` : ""}</small>}
            {err && <small class="error" role="alert">{err}</small>}
          </div>
        );
      })}
    </div>
  );
}
