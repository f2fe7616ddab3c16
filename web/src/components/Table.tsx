import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import type { ListQuery, Page } from "../api/types";
import { t } from "../i18n";
import { ErrorBox } from "./Feedback";
import { useAsync } from "./hooks";

export interface Column<T> {
  key: string;
  label: string;
  render: (row: T) => ComponentChildren;
  /** Server sort key; absent → not sortable. */
  sort?: string;
  numeric?: boolean;
}

interface Props<T> {
  columns: Column<T>[];
  load: (q: ListQuery) => Promise<Page<T>>;
  /** Anything that should reload from the first page (filters). */
  filterKey?: string;
  pageSize?: number;
  initialSort?: { by: string; order: "asc" | "desc" };
  caption: string;
  rowKey: (row: T) => string | number;
  testId?: string;
}

/** A server-paged, sortable table: sorting and paging are the API's, so it scales to any size. */
export function PagedTable<T>({ columns, load, filterKey = "", pageSize = 20, initialSort, caption, rowKey, testId }: Props<T>) {
  const [skip, setSkip] = useState(0);
  const [sort, setSort] = useState(initialSort);
  const [lastFilter, setLastFilter] = useState(filterKey);
  if (lastFilter !== filterKey) {
    setLastFilter(filterKey);
    setSkip(0);
  }
  const page = useAsync(() => load({ skip, limit: pageSize, order_by: sort?.by, order: sort?.order }),
    [skip, sort?.by, sort?.order, filterKey]);
  const total = page.data?.total ?? 0;
  const rows = page.data?.items ?? [];
  const toggle = (by: string) =>
    setSort((s) => (s?.by === by ? { by, order: s.order === "asc" ? "desc" : "asc" } : { by, order: "asc" }));
  return (
    <div class="table-wrap" data-testid={testId} data-total={total}>
      <ErrorBox error={page.error} onRetry={page.reload} />
      <table>
        <caption class="sr-only">{caption}</caption>
        <thead>
          <tr>
            {columns.map((c) => (
              <th key={c.key} class={c.numeric ? "num" : ""}
                  aria-sort={sort && c.sort && sort.by === c.sort ? (sort.order === "asc" ? "ascending" : "descending") : undefined}>
                {c.sort ? (
                  <button type="button" class="sort" onClick={() => toggle(c.sort!)}>
                    {c.label}{sort?.by === c.sort ? (sort.order === "asc" ? " ▲" : " ▼") : ""}
                  </button>
                ) : c.label}
              </th>
            ))}
          </tr>
        </thead>
        <tbody aria-busy={page.loading}>
          {rows.map((r) => (
            <tr key={rowKey(r)}>
              {columns.map((c) => <td key={c.key} class={c.numeric ? "num" : ""}>{c.render(r)}</td>)}
            </tr>
          ))}
          {!page.loading && rows.length === 0 && (
            <tr><td colSpan={columns.length} class="muted">{t("common.none")}</td></tr>
          )}
        </tbody>
      </table>
      <Pager skip={skip} limit={pageSize} total={total} onSkip={setSkip} />
    </div>
  );
}

export function Pager({ skip, limit, total, onSkip }: { skip: number; limit: number; total: number; onSkip: (n: number) => void }) {
  if (total <= limit) return null;
  return (
    <nav class="pager" aria-label="pagination">
      <button type="button" disabled={skip === 0} onClick={() => onSkip(Math.max(0, skip - limit))}>{t("common.prev")}</button>
      <span>{t("common.pageOf", { from: total ? skip + 1 : 0, to: Math.min(skip + limit, total), total })}</span>
      <button type="button" disabled={skip + limit >= total} onClick={() => onSkip(skip + limit)}>{t("common.next")}</button>
    </nav>
  );
}
