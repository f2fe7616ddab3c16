// Every HTTP request of the console goes through request() here: credentials, transparent token
// refresh with rotation, and one error type. The access token lives in memory only; the refresh
// token is kept in sessionStorage so a reload of the tab does not log the user out (it is
// rotated on every refresh and revoked by logout).

import type { FieldViolation, TokenPair } from "./types";

const REFRESH_KEY = "zq.refresh";

export class ApiError extends Error {
  /** HTTP status; 0 when the network failed before any answer. */
  readonly status: number;
  readonly fields: FieldViolation[];
  constructor(status: number, message: string, fields: FieldViolation[] = []) {
    super(message);
    this.status = status;
    this.fields = fields;
  }
  get isAuth(): boolean { return this.status === 401; }
  get isNetwork(): boolean { return this.status === 0; }
  get isBusy(): boolean { return this.status === 429; }
}

type Listener = () => void;

/** Login state. One instance per tab. */
class Session {
  private access = "";
  private refreshing: Promise<boolean> | null = null;
  private listeners = new Set<Listener>();
  /** Set when a request met 401 and refresh failed: the app shows its re-login prompt. */
  expired = false;

  get loggedIn(): boolean { return this.access !== "" || sessionStorage.getItem(REFRESH_KEY) !== null; }
  get accessToken(): string { return this.access; }

  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
  private emit(): void { for (const fn of this.listeners) fn(); }

  accept(pair: TokenPair): void {
    this.access = pair.access_token;
    sessionStorage.setItem(REFRESH_KEY, pair.refresh_token);
    this.expired = false;
    this.emit();
  }

  clear(): void {
    this.access = "";
    sessionStorage.removeItem(REFRESH_KEY);
    this.emit();
  }

  markExpired(): void {
    this.access = "";
    this.expired = true;
    this.emit();
  }

  refreshToken(): string | null { return sessionStorage.getItem(REFRESH_KEY); }

  /** Trades the refresh token for a new pair; concurrent callers share one exchange. */
  refresh(): Promise<boolean> {
    if (this.refreshing) return this.refreshing;
    const token = this.refreshToken();
    if (!token) return Promise.resolve(false);
    this.refreshing = (async () => {
      try {
        const res = await fetch("/api/v1/auth/refresh", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ refresh_token: token }),
        });
        if (!res.ok) {
          if (res.status === 401 || res.status === 400) sessionStorage.removeItem(REFRESH_KEY);
          return false;
        }
        this.accept((await res.json()) as TokenPair);
        return true;
      } catch {
        return false;
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }
}

export const session = new Session();

function errorFrom(status: number, body: unknown): ApiError {
  // Every error of the gateway is google.rpc.Status JSON: {code, message, details}.
  if (body && typeof body === "object") {
    const b = body as { message?: unknown; details?: unknown };
    const fields: FieldViolation[] = [];
    if (Array.isArray(b.details)) {
      for (const d of b.details as Array<{ field_violations?: FieldViolation[]; fieldViolations?: FieldViolation[] }>) {
        for (const v of d.field_violations ?? d.fieldViolations ?? []) fields.push(v);
      }
    }
    if (typeof b.message === "string" && b.message) return new ApiError(status, b.message, fields);
  }
  return new ApiError(status, `HTTP ${status}`);
}

export interface RequestOptions {
  method?: string;
  query?: Record<string, string | number | boolean | undefined | null>;
  body?: unknown;
  signal?: AbortSignal;
  /** No credentials (login). */
  anonymous?: boolean;
}

export function url(path: string, query?: RequestOptions["query"]): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined && v !== null && v !== "") params.set(k, String(v));
  }
  const qs = params.toString();
  return `/api/v1${path}${qs ? `?${qs}` : ""}`;
}

/** Sends the request with credentials; on 401 refreshes once and retries. */
export async function send(path: string, opts: RequestOptions = {}): Promise<Response> {
  const attempt = async (): Promise<Response> => {
    const headers: Record<string, string> = { accept: "application/json" };
    if (opts.body !== undefined) headers["content-type"] = "application/json";
    if (!opts.anonymous && session.accessToken) headers.authorization = `Bearer ${session.accessToken}`;
    try {
      return await fetch(url(path, opts.query), {
        method: opts.method ?? "GET",
        headers,
        body: opts.body === undefined ? null : JSON.stringify(opts.body),
        signal: opts.signal ?? null,
      });
    } catch (err) {
      if (err instanceof DOMException && err.name === "AbortError") throw err;
      throw new ApiError(0, "network");
    }
  };
  if (!opts.anonymous && !session.accessToken) await session.refresh();
  let res = await attempt();
  if (res.status === 401 && !opts.anonymous) {
    if (await session.refresh()) res = await attempt();
    if (res.status === 401) session.markExpired();
  }
  if (!res.ok) {
    let body: unknown = null;
    try { body = await res.json(); } catch { /* not JSON: keep the status */ }
    throw errorFrom(res.status, body);
  }
  return res;
}

export async function request<T>(path: string, opts: RequestOptions = {}): Promise<T> {
  const res = await send(path, opts);
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  return (text ? JSON.parse(text) : undefined) as T;
}
