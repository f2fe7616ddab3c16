import { deleteStrategy, listStrategies, listTemplates } from "../api/client";
import type { Strategy } from "../api/types";
import { dateTime } from "../analytics/format";
import { ErrorBox, errorText } from "../components/Feedback";
import { useAsync } from "../components/hooks";
import { t } from "../i18n";
import { href } from "../router";

export default function Strategies() {
  const templates = useAsync(listTemplates, []);
  const mine = useAsync(() => listStrategies({ skip: 0, limit: 1000, is_template: false, order_by: "created_at", order: "desc" }), []);
  const remove = async (s: Strategy) => {
    if (!confirm(t("common.confirmDelete", { what: s.name }))) return;
    try { await deleteStrategy(s.id); mine.reload(); } catch (e) { alert(errorText(e)); }
  };
  const table = (rows: Strategy[], own: boolean) => (
    <table data-testid={own ? "my-strategies" : "templates"}>
      <thead><tr><th>{t("strategies.name")}</th><th>{t("strategies.category")}</th><th>{t("strategies.description")}</th><th>{t("tasks.created")}</th><th>{t("tasks.actions")}</th></tr></thead>
      <tbody>
        {rows.map((s) => (
          <tr key={s.id}>
            <td><a href={href(`/strategies/${s.id}`)}>{s.name}</a></td><td>{s.category}</td><td>{s.description}</td><td class="nowrap">{dateTime(s.created_at)}</td>
            <td class="actions">
              <a class="button" href={href(`/new?strategy=${s.id}`)}>{t("strategies.run")}</a>
              <a class="button" href={href(`/strategies/${s.id}`)}>{own ? t("strategies.edit") : t("strategies.view")}</a>
              {own && s.can_delete !== false && <button type="button" class="danger" onClick={() => void remove(s)}>{t("common.delete")}</button>}
            </td>
          </tr>
        ))}
        {rows.length === 0 && <tr><td colSpan={5} class="muted">{t("common.none")}</td></tr>}
      </tbody>
    </table>
  );
  return (
    <section>
      <div class="row"><h1>{t("strategies.title")}</h1><span class="spacer" /><a class="button primary" href={href("/strategies/new")}>{t("strategies.new")}</a></div>
      <ErrorBox error={templates.error ?? mine.error} />
      <h2>{t("strategies.mine")}</h2>
      {table((mine.data?.items ?? []).filter((s) => !s.is_template), true)}
      <h2>{t("strategies.templates")}</h2>
      {table(templates.data ?? [], false)}
    </section>
  );
}
