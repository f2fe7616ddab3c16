import { ApiError } from "../api/http";
import { t } from "../i18n";

/** A user-facing sentence for any failure: never a stack trace. */
export function errorText(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.isNetwork) return t("common.network");
    if (err.isBusy) return t("common.busy");
    return t("common.error", { message: err.message });
  }
  return t("common.error", { message: err instanceof Error && err.message ? err.message.split("\n")[0]! : String(err) });
}

export function ErrorBox({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  if (!error) return null;
  // A lost session is handled by the app's re-login prompt.
  if (error instanceof ApiError && error.isAuth) return null;
  return (
    <div class="error" role="alert">
      {errorText(error)}
      {onRetry && <button type="button" class="link" onClick={onRetry}>{t("common.retry")}</button>}
    </div>
  );
}

export function Loading() {
  return <p class="muted" aria-busy="true">{t("common.loading")}</p>;
}
