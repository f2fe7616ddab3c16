// Live task events: one NDJSON stream over fetch (EventSource cannot send the Authorization
// header). The stream reconnects with exponential back-off and jitter after a network error or
// an end; a fresh SNAPSHOT after each reconnect brings the page up to date.

import { normalizeSweep, normalizeTask, normalizeTrial } from "./client";
import { ApiError, send } from "./http";
import type { Sweep, SweepEvent, TaskEvent, Trial } from "./types";

export interface WatchHandle {
  close(): void;
}

export interface WatchOptions<E = TaskEvent> {
  onEvent(event: E): void;
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

/** A task event line, or null for a line that is not one (an error object ending a stream). */
function taskEvent(raw: unknown): TaskEvent | null {
  const ev = raw as TaskEvent & { error?: unknown };
  if (!ev.task) return null;
  return { kind: String(ev.kind).toLowerCase() as TaskEvent["kind"], task: normalizeTask(ev.task), terminal: Boolean(ev.terminal) };
}

/** A sweep event line (WatchSweep), or null. */
export function sweepEvent(raw: unknown): SweepEvent | null {
  const ev = raw as { kind?: unknown; sweep?: Sweep; trial?: Trial | null; terminal?: unknown };
  if (!ev.sweep) return null;
  return {
    kind: String(ev.kind).toLowerCase() as SweepEvent["kind"], sweep: normalizeSweep(ev.sweep),
    trial: ev.trial ? normalizeTrial(ev.trial) : null, terminal: Boolean(ev.terminal),
  };
}

function watch<E extends { terminal: boolean }>(path: string, parse: (raw: unknown) => E | null,
                                                opts: WatchOptions<E>): WatchHandle {
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
          const event = parse(raw);
          if (!event) continue; // an error object at the end of a stream: reconnect below
          attempt = 0;
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

export const watchTasks = (opts: WatchOptions): WatchHandle => watch("/backtest/watch", taskEvent, opts);
export const watchTask = (id: number, opts: WatchOptions): WatchHandle =>
  watch(`/backtest/tasks/${id}/watch`, taskEvent, { stopOnTerminal: true, ...opts });
export const watchSweep = (id: number, opts: WatchOptions<SweepEvent>): WatchHandle =>
  watch(`/backtest/sweeps/${id}/watch`, sweepEvent, { stopOnTerminal: true, ...opts });
