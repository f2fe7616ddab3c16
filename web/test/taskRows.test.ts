import { describe, expect, it } from "vitest";
import type { Task, TaskEvent } from "../src/api/types";
import { applyTaskEvent } from "../src/pages/taskRows";

const task = (id: number, status: Task["status"], progress = 0): Task => ({ id, status, progress }) as Task;
const ev = (kind: TaskEvent["kind"], t: Task): TaskEvent => ({ kind, task: t, terminal: false });

describe("task list rows from watch events", () => {
  const rows = [task(2, "running", 0.5), task(1, "completed", 1)];

  it("updates a row on screen in place", () => {
    const { rows: next, reload } = applyTaskEvent(rows, ev("progress", task(2, "running", 0.75)));
    expect(reload).toBe(false);
    expect(next.map((r) => [r.id, r.status, r.progress])).toEqual([[2, "running", 0.75], [1, "completed", 1]]);
    expect(rows[0]?.progress).toBe(0.5); // the old list is not mutated
  });

  it("reloads for a new task whatever status its first event shows", () => {
    // PENDING → RUNNING may reach the list as one event: the task must still appear.
    for (const status of ["pending", "running", "completed"] as const) {
      expect(applyTaskEvent(rows, ev("status", task(3, status))).reload).toBe(true);
    }
  });

  it("ignores snapshots and progress of tasks not on this page, reloads on a deletion", () => {
    expect(applyTaskEvent(rows, ev("snapshot", task(9, "running"))).reload).toBe(false);
    expect(applyTaskEvent(rows, ev("progress", task(9, "running", 0.2))).reload).toBe(false);
    expect(applyTaskEvent(rows, ev("deleted", task(1, "completed"))).reload).toBe(true);
  });
});
