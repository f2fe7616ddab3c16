// Answers a page will ask for, requested before its code has loaded. The boot knows the route from
// the URL, so a task page's data and its chunks download side by side instead of one after the
// other. A page takes a prefetched answer at most once; one that failed, or was left untaken for
// a while, is not reused (the page asks again).

const FRESH_MS = 10_000;

interface Entry {
  promise: Promise<unknown>;
  at: number;
  failed: boolean;
}

const entries = new Map<string, Entry>();

/** Starts `load` now and keeps its answer under `key` for the page. */
export function prefetch<T>(key: string, load: () => Promise<T>): Promise<T> {
  const promise = load();
  const entry: Entry = { promise, at: performance.now(), failed: false };
  // Also marks the rejection handled: a prefetch nobody takes must not log an error.
  promise.catch(() => { entry.failed = true; });
  entries.set(key, entry);
  return promise;
}

/** The prefetched answer for `key` if there is a usable one, else `load()`. */
export function take<T>(key: string, load: () => Promise<T>): Promise<T> {
  const entry = entries.get(key);
  entries.delete(key);
  if (entry && !entry.failed && performance.now() - entry.at < FRESH_MS) return entry.promise as Promise<T>;
  return load();
}
