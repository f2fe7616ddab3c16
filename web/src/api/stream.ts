// Live task events: one NDJSON stream over fetch (EventSource cannot send the Authorization
// header). The stream reconnects with exponential back-off and jitter after a network error or
// an end; a fresh SNAPSHOT after each reconnect brings the page up to date.

import { normalizeTask } from "./client";
import { ApiError, send } from "./http";
import type { TaskEvent } from "./types";

export interface WatchHandle {
  close(): void;
}

export interface WatchOptions {
  onEvent(event: TaskEvent): void;
  /** Connection state for a small indicator: true while a stream is open. */
  onState?(connected: boolean): void;
  /** Stop after a terminal event (WatchTask) instead of reconnecting. */
  stopOnTerminal?: boolean;
}

const BASE_DELAY_MS = 500;
const MAX_DELAY_MS = 15_000;

export function backoffDelay(attempt: number, random: () => number = Math.random): number {
  const cap = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** attempt);
  return cap / 2 + random() * (cap / 2);
}

/** Splits a byte stream into JSON lines. */
async function* ndjson(body: ReadableStream<Uint8Array>): AsyncGenerator<unknown> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl).trim();
        buffer = buffer.slice(nl + 1);
        if (line) yield JSON.parse(line);
      }
    }
    const rest = buffer.trim();
    if (rest) yield JSON.parse(rest);
  } finally {
    reader.releaseLock();
  }
}

function watch(path: string, opts: WatchOptions): WatchHandle {
  const abort = new AbortController();
  let closed = false;
  (async () => {
    let attempt = 0;
    while (!closed) {
      try {
        const res = await send(path, { signal: abort.signal });
        if (!res.body) throw new ApiError(0, "network");
        opts.onState?.(true);
        for await (const raw of ndjson(res.body)) {
          const ev = raw as TaskEvent & { error?: unknown };
          if (!ev.task) continue; // an error object at the end of a stream: reconnect below
          attempt = 0;
          const event: TaskEvent = {
            kind: String(ev.kind).toLowerCase() as TaskEvent["kind"], task: normalizeTask(ev.task), terminal: Boolean(ev.terminal),
          };
          opts.onEvent(event);
          if (event.terminal && opts.stopOnTerminal) {
            closed = true;
            abort.abort();
            return;
          }
        }
      } catch (err) {
        if (closed) return;
        // A missing task or lost session will not heal by retrying.
        if (err instanceof ApiError && (err.status === 404 || err.status === 401 || err.status === 403)) {
          opts.onState?.(false);
          return;
        }
      }
      opts.onState?.(false);
      if (closed) return;
      await new Promise((r) => setTimeout(r, backoffDelay(attempt++)));
    }
  })();
  return {
    close() {
      closed = true;
      abort.abort();
    },
  };
}

export const watchTasks = (opts: WatchOptions): WatchHandle => watch("/backtest/watch", opts);
export const watchTask = (id: number, opts: WatchOptions): WatchHandle =>
  watch(`/backtest/tasks/${id}/watch`, { stopOnTerminal: true, ...opts });
