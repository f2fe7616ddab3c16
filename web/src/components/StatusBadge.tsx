import type { TaskStatus } from "../api/types";
import { t } from "../i18n";

export function StatusBadge({ status }: { status: TaskStatus }) {
  return <span class={`badge status-${status}`} data-status={status}>{t(`status.${status}`)}</span>;
}

export function ProgressBar({ value, label }: { value: number; label: string }) {
  const pct = Math.round(Math.max(0, Math.min(1, value)) * 100);
  return (
    <span class="progress" role="progressbar" aria-label={label} aria-valuemin={0} aria-valuemax={100} aria-valuenow={pct}>
      <span class="bar" style={{ width: `${pct}%` }} />
      <span class="pct">{pct}%</span>
    </span>
  );
}
