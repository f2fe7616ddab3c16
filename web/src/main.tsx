import { render } from "preact";
import { session } from "./api/http";
import { App } from "./app";
import { lang } from "./i18n";
import { parseHash, preparePage } from "./router";
import "./styles.css";

document.documentElement.lang = lang();
// A reload keeps only the refresh token: trade it now, while the page's code is still loading,
// instead of after the first API call fails.
if (session.refreshToken() !== null && !session.accessToken) void session.refresh();
// The page in the URL starts loading its code and data now, side by side, not one after the other.
if (session.loggedIn) preparePage(parseHash(location.hash).path);
render(<App />, document.getElementById("app")!);
