// The language of the console: zh-CN or English, defaulting to the browser's language and
// remembered once the user toggles it. Formatting of numbers and dates follows it too.

import { en, type MessageKey } from "./en";
import { zhCN } from "./zh-CN";

export type Lang = "en" | "zh-CN";
const STORE_KEY = "zq.lang";
const tables: Record<Lang, Record<MessageKey, string>> = { en, "zh-CN": zhCN };

export function detectLang(languages: readonly string[] = navigator.languages ?? [navigator.language]): Lang {
  for (const l of languages) {
    const low = l.toLowerCase();
    if (low.startsWith("zh")) return "zh-CN";
    if (low.startsWith("en")) return "en";
  }
  return "en";
}

function initial(): Lang {
  try {
    const saved = localStorage.getItem(STORE_KEY);
    if (saved === "en" || saved === "zh-CN") return saved;
  } catch { /* storage disabled */ }
  return typeof navigator === "undefined" ? "en" : detectLang();
}

let current: Lang = initial();
const listeners = new Set<() => void>();

export function lang(): Lang { return current; }

export function setLang(next: Lang): void {
  current = next;
  try { localStorage.setItem(STORE_KEY, next); } catch { /* storage disabled */ }
  document.documentElement.lang = next;
  for (const fn of listeners) fn();
}

export function onLangChange(fn: () => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function t(key: MessageKey, vars?: Record<string, string | number>): string {
  const text = tables[current][key];
  if (!vars) return text;
  return text.replace(/\{(\w+)\}/g, (m, name: string) => (name in vars ? String(vars[name]) : m));
}

export type { MessageKey };
