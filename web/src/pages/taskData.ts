// The first answers the task page needs — the task, then for a completed one its equity arrays
// and order summary — as calls the boot can start before the page's code has arrived
// (router.ts) and the page then takes (TaskDetail.tsx). Kept out of the page's chunk on purpose.
import { warmFormats } from "../analytics/format";
import { getEquity, getOrderSummary, getTask } from "../api/client";
import { prefetch, take } from "../api/prefetch";
import type { EquitySeries, OrderSummary, Task } from "../api/types";
import { preloadCharts } from "../charts/load";

const taskKey = (id: number) => `task:${id}`;
const equityKey = (id: number) => `equity:${id}`;
const summaryKey = (id: number) => `summary:${id}`;

/** Starts the task page's code-independent work: the chart library, the task, and as soon as the
 *  task is known to be completed, its results. */
export function prefetchTaskPage(id: number): void {
  if (!Number.isSafeInteger(id)) return;
  void preloadCharts().catch(() => undefined); // a failure shows where the page draws its charts
  prefetch(taskKey(id), () => getTask(id)).then((task) => {
    if (task.status !== "completed") return;
    prefetch(equityKey(id), () => getEquity(id));
    prefetch(summaryKey(id), () => getOrderSummary(id));
  }, () => undefined);
  // While the network works: the number formats the metric cards will use.
  setTimeout(warmFormats, 0);
}

export const loadTask = (id: number): Promise<Task> => take(taskKey(id), () => getTask(id));

export async function loadResults(id: number): Promise<{ equity: EquitySeries; summary: OrderSummary }> {
  const [equity, summary] = await Promise.all([
    take(equityKey(id), () => getEquity(id)), take(summaryKey(id), () => getOrderSummary(id)),
  ]);
  return { equity, summary };
}
