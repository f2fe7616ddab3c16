// How one WatchTasks event changes the task list on screen.
import type { Task, TaskEvent } from "../api/types";

export interface RowsUpdate {
  rows: Task[];
  /** The page must be fetched again: a task joined, left or moved in the list's order or filter. */
  reload: boolean;
}

export function applyTaskEvent(rows: Task[], ev: TaskEvent): RowsUpdate {
  if (ev.kind === "snapshot") return { rows, reload: false };
  if (ev.kind === "deleted") return { rows, reload: true };
  const i = rows.findIndex((r) => r.id === ev.task.id);
  if (i < 0) {
    // A task not on screen: a new one, or one whose status change may bring it into this page's
    // filter. Any status counts, not only PENDING: the service may coalesce PENDING → RUNNING
    // (or even → COMPLETED) into one event, and a new task must show up all the same.
    return { rows, reload: ev.kind === "status" };
  }
  const next = rows.slice();
  next[i] = ev.task;
  return { rows: next, reload: false };
}
