import { useState } from "preact/hooks";
import { createApiKey, listApiKeys, revokeApiKey } from "../api/client";
import type { NewApiKey } from "../api/types";
import { dateTime } from "../analytics/format";
import { ErrorBox, errorText } from "../components/Feedback";
import { useAsync } from "../components/hooks";
import { t } from "../i18n";

export default function ApiKeys() {
  const keys = useAsync(listApiKeys, []);
  const [name, setName] = useState("");
  const [days, setDays] = useState(90);
  const [created, setCreated] = useState<NewApiKey | null>(null);
  const [error, setError] = useState("");
  const create = async (e: Event) => {
    e.preventDefault();
    setError("");
    try {
      setCreated(await createApiKey(name, days));
      setName("");
      keys.reload();
    } catch (ex) { setError(errorText(ex)); }
  };
  return (
    <section>
      <h1>{t("apikeys.title")}</h1>
      <form class="row" onSubmit={create}>
        <label>{t("apikeys.name")} <input value={name} required onInput={(e) => setName(e.currentTarget.value)} /></label>
        <label>{t("apikeys.expires")} <input type="number" min={0} value={days} onInput={(e) => setDays(Number(e.currentTarget.value))} /></label>
        <button type="submit" class="primary">{t("apikeys.create")}</button>
      </form>
      {error && <p class="error" role="alert">{error}</p>}
      {created && (
        <div class="notice" role="status" data-testid="new-secret">
          <p>{t("apikeys.secretOnce")}</p>
          <p><code>X-API-Key: {created.access_key}</code><br /><code>X-API-Secret: {created.secret_key}</code></p>
          <button type="button" onClick={() => setCreated(null)}>{t("common.close")}</button>
        </div>
      )}
      <ErrorBox error={keys.error} onRetry={keys.reload} />
      <table>
        <thead><tr><th>{t("apikeys.name")}</th><th>{t("apikeys.key")}</th><th>{t("apikeys.created")}</th><th>{t("apikeys.lastUsed")}</th><th /></tr></thead>
        <tbody>
          {(keys.data ?? []).map((k) => (
            <tr key={k.id}>
              <td>{k.name}</td><td><code>{k.access_key}</code></td><td>{dateTime(k.created_at)}</td><td>{dateTime(k.last_used_at)}</td>
              <td><button type="button" class="danger" onClick={() => void revokeApiKey(k.id).then(keys.reload, (e: unknown) => setError(errorText(e)))}>{t("apikeys.revoke")}</button></td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
