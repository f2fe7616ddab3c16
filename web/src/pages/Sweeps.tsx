import { listSweeps } from "../api/client";
import type { Sweep } from "../api/types";
import { dateTime, num } from "../analytics/format";
import { progressOf } from "../analytics/sweep";
import { ProgressBar, StatusBadge } from "../components/StatusBadge";
import { type Column, PagedTable } from "../components/Table";
import { t } from "../i18n";
import { href } from "../router";

export default function Sweeps() {
  const columns: Column<Sweep>[] = [
    { key: "id", label: t("tasks.id"), sort: "id", render: (s) => <a href={href(`/sweeps/${s.id}`)} data-sweep-id={s.id}>#{s.id}</a> },
    { key: "name", label: t("tasks.name"), render: (s) => s.strategy_name },
    { key: "method", label: t("sweeps.method"), render: (s) => s.method },
    { key: "status", label: t("tasks.status"), sort: "status", render: (s) => <StatusBadge status={s.status} /> },
    { key: "progress", label: t("tasks.progress"), render: (s) => <ProgressBar value={progressOf(s)} label={t("tasks.progress")} /> },
    { key: "trials", label: t("sweeps.trials"), numeric: true, render: (s) => s.trials_evaluated },
    { key: "best", label: t("sweeps.best"), numeric: true,
      render: (s) => (s.best ? `${num(s.best.objective, 3)} (#${s.best.number})` : "—") },
    { key: "dsr", label: t("sweeps.dsr"), numeric: true, render: (s) => num(s.deflated_sharpe, 3) },
    { key: "created", label: t("tasks.created"), sort: "created_at", render: (s) => dateTime(s.created_at ?? undefined) },
  ];
  return (
    <section>
      <div class="row">
        <h1>{t("sweeps.title")}</h1>
        <span class="spacer" />
        <a class="button primary" href={href("/sweeps/new")} data-testid="new-sweep">{t("sweeps.new")}</a>
      </div>
      <PagedTable columns={columns} load={listSweeps} caption={t("sweeps.title")} rowKey={(s) => s.id}
                  initialSort={{ by: "created_at", order: "desc" }} testId="sweeps-table" />
    </section>
  );
}
