// Hash routes: the gateway serves one index.html, and every page is addressable and reloadable.
// A page is a lazily loaded module, so adding a page is one line here (and a file in pages/).
import type { FunctionComponent } from "preact";
import { useEffect, useState } from "preact/hooks";
import type { MessageKey } from "./i18n";
import { prefetchTaskPage } from "./pages/taskData";

export interface PageProps {
  params: Record<string, string>;
  query: URLSearchParams;
}

export interface Route {
  pattern: string;
  title: MessageKey;
  load: () => Promise<{ default: FunctionComponent<PageProps> }>;
  /** Work the page will need that can start before its code has loaded (data, other chunks). */
  prefetch?: (params: Record<string, string>) => void;
  /** Shown in the top navigation. */
  nav?: boolean;
}

export const routes: Route[] = [
  { pattern: "/tasks", title: "nav.tasks", nav: true, load: () => import("./pages/Tasks") },
  { pattern: "/new", title: "nav.new", nav: true, load: () => import("./pages/NewBacktest") },
  { pattern: "/tasks/:id", title: "nav.tasks", load: () => import("./pages/TaskDetail"),
    prefetch: (p) => prefetchTaskPage(Number(p.id)) },
  { pattern: "/compare", title: "nav.compare", nav: true, load: () => import("./pages/Compare") },
  { pattern: "/sweeps", title: "nav.sweeps", nav: true, load: () => import("./pages/Sweeps") },
  { pattern: "/sweeps/new", title: "nav.sweeps", load: () => import("./pages/NewSweep") },
  { pattern: "/sweeps/:id", title: "nav.sweeps", load: () => import("./pages/SweepDetail") },
  { pattern: "/strategies", title: "nav.strategies", nav: true, load: () => import("./pages/Strategies") },
  { pattern: "/strategies/:id", title: "nav.strategies", load: () => import("./pages/StrategyEdit") },
  { pattern: "/apikeys", title: "nav.apikeys", nav: true, load: () => import("./pages/ApiKeys") },
];

export const DEFAULT_PATH = "/tasks";

export interface Location {
  path: string;
  query: URLSearchParams;
}

export function parseHash(hash: string): Location {
  const raw = hash.replace(/^#/, "") || DEFAULT_PATH;
  const [path, qs] = raw.split("?", 2) as [string, string | undefined];
  return { path: path || DEFAULT_PATH, query: new URLSearchParams(qs ?? "") };
}

export function match(path: string): { route: Route; params: Record<string, string> } | null {
  const parts = path.split("/").filter(Boolean);
  for (const route of routes) {
    const pat = route.pattern.split("/").filter(Boolean);
    if (pat.length !== parts.length) continue;
    const params: Record<string, string> = {};
    if (pat.every((p, i) => (p.startsWith(":") ? ((params[p.slice(1)] = decodeURIComponent(parts[i]!)), true) : p === parts[i]))) {
      return { route, params };
    }
  }
  return null;
}

/** The page the URL names: its code, and whatever it can fetch before that code runs. Called at
 *  boot, so a reload or a link into the app does not wait for the app's first render to start. */
export function preparePage(path: string): void {
  const found = match(path);
  if (!found) return;
  found.route.load().catch(() => undefined); // the page's own load() reports a failure
  found.route.prefetch?.(found.params);
}

export function navigate(path: string): void {
  location.hash = `#${path}`;
}

export function href(path: string): string {
  return `#${path}`;
}

export function useLocation(): Location {
  const [loc, setLoc] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const on = () => setLoc(parseHash(location.hash));
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return loc;
}
