import { useMemo, useState } from "preact/hooks";
import type { SymbolInfo } from "../api/types";
import { t } from "../i18n";

interface Props {
  symbols: SymbolInfo[];
  value: string[];
  onChange: (v: string[]) => void;
  error?: string;
}

/** Searchable list of the market data's stocks, each with its first and last bar date. */
export function SymbolPicker({ symbols, value, onChange, error }: Props) {
  const [q, setQ] = useState("");
  const shown = useMemo(() => {
    const low = q.trim().toLowerCase();
    return symbols.filter((s) => !low || s.symbol.toLowerCase().includes(low) || s.name.toLowerCase().includes(low)).slice(0, 300);
  }, [symbols, q]);
  const toggle = (sym: string) => onChange(value.includes(sym) ? value.filter((x) => x !== sym) : [...value, sym]);
  return (
    <fieldset class={`symbols${error ? " invalid" : ""}`} data-testid="symbol-picker">
      <legend>{t("new.symbols")} <span class="muted">{t("new.selected", { n: value.length })}</span></legend>
      <input type="search" aria-label={t("new.symbolSearch")} placeholder={t("new.symbolSearch")} value={q} onInput={(e) => setQ(e.currentTarget.value)} />
      <ul>
        {shown.map((s) => (
          <li key={s.symbol}>
            <label>
              <input type="checkbox" checked={value.includes(s.symbol)} onChange={() => toggle(s.symbol)} data-symbol={s.symbol} />
              <code>{s.symbol}</code> {s.name} <span class="muted">{t("new.symbolRange", { first: s.first_date, last: s.last_date })}</span>
            </label>
          </li>
        ))}
      </ul>
      {error && <small class="error" role="alert">{error}</small>}
    </fieldset>
  );
}
