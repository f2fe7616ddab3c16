import type { FunctionComponent } from "preact";
import { useEffect, useState } from "preact/hooks";
import { logout } from "./api/client";
import { session } from "./api/http";
import { ErrorBox, Loading } from "./components/Feedback";
import { useLang } from "./components/hooks";
import { lang, setLang, t } from "./i18n";
import { LoginForm } from "./pages/Login";
import { href, match, type PageProps, routes, useLocation } from "./router";

function useSession(): typeof session {
  const [, bump] = useState(0);
  useEffect(() => session.subscribe(() => bump((n) => n + 1)), []);
  return session;
}

function Page({ path, query }: { path: string; query: URLSearchParams }) {
  const found = match(path);
  const [loaded, setLoaded] = useState<{ pattern: string; Comp: FunctionComponent<PageProps> } | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    if (!found) return;
    let live = true;
    setError(null);
    found.route.load().then((m) => live && setLoaded({ pattern: found.route.pattern, Comp: m.default }), (e: unknown) => live && setError(e));
    return () => { live = false; };
  }, [found?.route.pattern]);
  useEffect(() => {
    if (found) document.title = `${t(found.route.title)} · ${t("app.title")}`;
  });
  if (!found) return <p>{t("notFound")}</p>;
  if (error) return <ErrorBox error={error} />;
  if (!loaded || loaded.pattern !== found.route.pattern) return <Loading />;
  const { Comp } = loaded;
  return <Comp key={path} params={found.params} query={query} />;
}

export function App() {
  useLang();
  const s = useSession();
  const loc = useLocation();
  if (!s.loggedIn && !s.expired) {
    return (
      <main class="login-page">
        <LangToggle />
        <LoginForm />
      </main>
    );
  }
  return (
    <>
      <a class="skip" href="#main">{t("app.title")}</a>
      <header class="top">
        <strong class="brand">{t("app.title")}</strong>
        <nav aria-label="main">
          {routes.filter((r) => r.nav).map((r) => (
            <a key={r.pattern} href={href(r.pattern)} aria-current={loc.path === r.pattern ? "page" : undefined}>{t(r.title)}</a>
          ))}
        </nav>
        <span class="spacer" />
        <LangToggle />
        <button type="button" onClick={() => void logout()}>{t("nav.logout")}</button>
      </header>
      <main id="main" tabIndex={-1}>
        <Page path={loc.path} query={loc.query} />
      </main>
      {s.expired && (
        <div class="modal-backdrop">
          <div class="modal" role="dialog" aria-modal="true" aria-labelledby="relogin-title">
            <h2 id="relogin-title">{t("login.title")}</h2>
            <p>{t("login.expired")}</p>
            <LoginForm />
          </div>
        </div>
      )}
    </>
  );
}

function LangToggle() {
  return (
    <button type="button" class="lang" aria-label={t("nav.languageLabel")} data-testid="lang-toggle"
            onClick={() => setLang(lang() === "en" ? "zh-CN" : "en")}>
      {t("nav.language")}
    </button>
  );
}
