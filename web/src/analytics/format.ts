// Number formatting in the console's language.
import { lang } from "../i18n";

/** int64 fields may arrive as JSON strings (proto3 JSON) or numbers; both format the same. */
type Num = number | string | null | undefined;
const toNum = (x: Num): number => (typeof x === "string" ? Number(x) : x ?? NaN);

export function pct(raw: Num, digits = 2): string {
  const x = toNum(raw);
  if (!Number.isFinite(x)) return "—";
  return `${(x * 100).toFixed(digits)}%`;
}

// Intl.NumberFormat is costly to build and tables format thousands of cells: one per style.
const formatters = new Map<string, Intl.NumberFormat>();
function formatter(digits: number): Intl.NumberFormat {
  const key = `${lang()}|${digits}`;
  let f = formatters.get(key);
  if (!f) {
    f = new Intl.NumberFormat(lang(), { minimumFractionDigits: digits, maximumFractionDigits: digits });
    formatters.set(key, f);
  }
  return f;
}

/** Builds the formatters the metric cards use, ahead of them: the page's first NumberFormat loads
 *  locale data, which is better paid while the page waits for the network than when it renders. */
export function warmFormats(): void {
  for (const digits of [0, 2, 3]) formatter(digits).format(0);
}

export function num(raw: Num, digits = 2): string {
  const x = toNum(raw);
  if (!Number.isFinite(x)) return "—";
  return formatter(digits).format(x);
}

export function int(raw: Num): string {
  const x = toNum(raw);
  if (!Number.isFinite(x)) return "—";
  return formatter(0).format(Math.round(x));
}

export function dateTime(iso: string | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(lang(), { hour12: false });
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
