import { useEffect, useState } from "preact/hooks";
import { cancelTask, deleteTask, listTasks } from "../api/client";
import { watchTasks } from "../api/stream";
import { applyTaskEvent } from "./taskRows";
import { type Task, TASK_STATUSES, type TaskStatus, TERMINAL } from "../api/types";
import { dateTime } from "../analytics/format";
import { ErrorBox, errorText } from "../components/Feedback";
import { useAsync } from "../components/hooks";
import { ProgressBar, StatusBadge } from "../components/StatusBadge";
import { Pager } from "../components/Table";
import { t } from "../i18n";
import { href, navigate, type PageProps } from "../router";

const PAGE = 20;
const SORTS = ["id", "name", "status", "created_at", "updated_at"] as const;

export default function Tasks({ query }: PageProps) {
  const [skip, setSkip] = useState(Number(query.get("skip") ?? 0) || 0);
  const [orderBy, setOrderBy] = useState(query.get("order_by") ?? "created_at");
  const [order, setOrder] = useState<"asc" | "desc">(query.get("order") === "asc" ? "asc" : "desc");
  const [status, setStatus] = useState<TaskStatus | "">((query.get("status") as TaskStatus | null) ?? "");
  const [search, setSearch] = useState(query.get("search") ?? "");
  const [rows, setRows] = useState<Task[]>([]);
  const [live, setLive] = useState(false);
  const [selected, setSelected] = useState<number[]>([]);
  const [actionError, setActionError] = useState("");
  const page = useAsync(() => listTasks({ skip, limit: PAGE, order_by: orderBy, order, status, search }),
    [skip, orderBy, order, status, search]);
  useEffect(() => { if (page.data) setRows(page.data.items); }, [page.data]);

  // Live status and progress of the rows on screen; a new or deleted task reloads the page.
  useEffect(() => {
    const h = watchTasks({
      onState: setLive,
      onEvent(ev) {
        setRows((cur) => {
          const { rows: next, reload } = applyTaskEvent(cur, ev);
          if (reload) page.reload();
          return next;
        });
      },
    });
    return () => h.close();
  }, []);

  const sortBy = (by: string) => {
    if (orderBy === by) setOrder(order === "asc" ? "desc" : "asc");
    else { setOrderBy(by); setOrder("asc"); }
  };
  const act = async (fn: () => Promise<unknown>) => {
    setActionError("");
    try { await fn(); page.reload(); } catch (e) { setActionError(errorText(e)); }
  };
  const total = page.data?.total ?? 0;
  const head = (key: (typeof SORTS)[number], label: string) => (
    <th aria-sort={orderBy === key ? (order === "asc" ? "ascending" : "descending") : undefined}>
      <button type="button" class="sort" onClick={() => sortBy(key)}>{label}{orderBy === key ? (order === "asc" ? " ▲" : " ▼") : ""}</button>
    </th>
  );
  const toggleSel = (id: number) => setSelected((s) => (s.includes(id) ? s.filter((x) => x !== id) : [...s, id].slice(-6)));

  return (
    <section>
      <div class="row">
        <h1>{t("tasks.title")}</h1>
        <span class={`live ${live ? "on" : "off"}`} data-testid="live">{live ? t("nav.live") : t("nav.offline")}</span>
        <span class="spacer" />
        <button type="button" disabled={selected.length < 2} onClick={() => navigate(`/compare?ids=${selected.join(",")}`)}>
          {t("tasks.compareSelected", { n: selected.length })}
        </button>
      </div>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>{t("tasks.filterStatus")}
          <select value={status} onChange={(e) => { setSkip(0); setStatus(e.currentTarget.value as TaskStatus | ""); }} data-testid="status-filter">
            <option value="">{t("common.all")}</option>
            {TASK_STATUSES.map((s) => <option key={s} value={s}>{t(`status.${s}`)}</option>)}
          </select>
        </label>
        <label>{t("tasks.filterName")}
          <input type="search" value={search} onChange={(e) => { setSkip(0); setSearch(e.currentTarget.value); }} />
        </label>
      </form>
      <ErrorBox error={page.error} onRetry={page.reload} />
      {actionError && <p class="error" role="alert">{actionError}</p>}
      <table data-testid="tasks-table">
        <caption class="sr-only">{t("tasks.title")}</caption>
        <thead>
          <tr>
            <th><span class="sr-only">{t("nav.compare")}</span></th>
            {head("id", t("tasks.id"))}
            {head("name", t("tasks.name"))}
            {head("status", t("tasks.status"))}
            <th>{t("tasks.progress")}</th>
            <th>{t("tasks.period")}</th>
            {head("created_at", t("tasks.created"))}
            <th>{t("tasks.actions")}</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((task) => (
            <tr key={task.id} data-task-id={task.id} data-status={task.status}>
              <td><input type="checkbox" aria-label={t("tasks.select", { id: task.id })} disabled={task.status !== "completed"}
                         checked={selected.includes(task.id)} onChange={() => toggleSel(task.id)} /></td>
              <td><a href={href(`/tasks/${task.id}`)}>{task.id}</a></td>
              <td><a href={href(`/tasks/${task.id}`)}>{task.strategy_name}</a></td>
              <td><StatusBadge status={task.status} /></td>
              <td><ProgressBar value={task.status === "completed" ? 1 : task.progress} label={`${t("tasks.progress")} ${task.id}`} /></td>
              <td class="nowrap">{task.start_date} – {task.end_date}</td>
              <td class="nowrap">{dateTime(task.created_at)}</td>
              <td class="actions">
                {!TERMINAL.has(task.status) && (
                  <button type="button" onClick={() => void act(() => cancelTask(task.id))}>{t("common.cancel")}</button>
                )}
                <button type="button" class="danger" onClick={() => {
                  if (confirm(t("common.confirmDelete", { what: `#${task.id}` }))) void act(() => deleteTask(task.id));
                }}>{t("common.delete")}</button>
              </td>
            </tr>
          ))}
          {!page.loading && rows.length === 0 && <tr><td colSpan={8} class="muted">{t("tasks.empty")}</td></tr>}
        </tbody>
      </table>
      <Pager skip={skip} limit={PAGE} total={total} onSkip={setSkip} />
    </section>
  );
}
