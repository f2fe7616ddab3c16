"""The research console in real headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright; no browser is downloaded), against the real services behind real Envoy serving the
built console at /console/ — the flows a researcher uses, each checked against the API's values.

The detail page's screenshot is saved to $ZQ_SCREENSHOT_DIR (default build/screenshots/).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

import devstack
from backtest_report.views import refusal_category
from services.console_routes import CONSOLE_DIST
from tests.e2e.realstack import start_real_stack

pytestmark = [pytest.mark.envoy, pytest.mark.slow, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ADMIN_PASSWORD = "admin-password-console"
SCREENSHOTS = Path(os.environ.get("ZQ_SCREENSHOT_DIR") or devstack.ROOT / "build" / "screenshots")
CONFIG = {"start_date": "2012-01-04", "end_date": "2016-12-30",
          "symbols": ["600036.SH", "000002.SZ", "300059.SZ"], "benchmark": "000001.SH"}

# Places orders the broker refuses for several reasons (below one lot, nothing to sell, T+1,
# more than the cash covers) and prints a line a day.
REFUSING_CODE = '''from zquant.backtest.strategy import BaseStrategy


class Strategy(BaseStrategy):
    def on_bar(self, context, bar_data):
        print("day", context.current_date_str)
        for symbol in bar_data:
            context.order(symbol, 50)
            context.order(symbol, -100)
            context.order(symbol, 100000000)
'''

RAISING_CODE = '''from zquant.backtest.strategy import BaseStrategy


class Strategy(BaseStrategy):
    def on_bar(self, context, bar_data):
        prices = {}
        if context.current_date_str >= "2013-03-01":
            return prices["600036.SH"]
'''
RAISING_LINE = 8

# A syntax error on line 6.
BROKEN_CODE = '''from zquant.backtest.strategy import BaseStrategy


class Strategy(BaseStrategy):
    def on_bar(self, context, bar_data):
        if True
            pass
'''
BROKEN_LINE = 6

# Burns a few milliseconds per bar so RUNNING lasts long enough to be seen.
SLOW_CODE = '''from zquant.backtest.strategy import BaseStrategy


class Strategy(BaseStrategy):
    def on_bar(self, context, bar_data):
        import time
        end = time.perf_counter() + 0.004
        while time.perf_counter() < end:
            pass
        for symbol in bar_data:
            context.order_target_percent(symbol, 0.3)
'''


# Waits are locator assertions or Python polls, never page.wait_for_function: that evaluates its
# predicate with eval() in the page, which the console's CSP (script-src 'self') refuses.
def wait_log_scale_drawn(page: Any, timeout: float = 10.0) -> None:
    """The equity chart in log mode plots growth of 1 (≈ 1 + return) instead of the return."""
    deadline = time.monotonic() + timeout
    while True:
        raw = page.get_attribute("[data-testid=chart-equity]", "data-series")
        if raw and json.loads(raw)[0]["last"] > 0.9:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"equity chart not redrawn in log scale: {raw}")
        time.sleep(0.05)


@dataclass
class Stack:
    url: str
    http: httpx.Client
    headers: dict[str, str]
    engine_url: str

    def get(self, path: str, **params: object) -> httpx.Response:
        return self.http.get(path, headers=self.headers, params=params)

    def run(self, **body: object) -> dict:
        resp = self.http.post("/api/v1/backtest/run", headers=self.headers, json=body)
        assert resp.status_code in (200, 201), resp.text
        return resp.json()

    def wait(self, task_id: int, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task = self.get(f"/api/v1/backtest/tasks/{task_id}").json()
            if task["status"].lower() in ("completed", "failed", "cancelled"):
                return task
            time.sleep(0.2)
        raise AssertionError(f"task {task_id} not terminal after {timeout}s")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, module_gateway_factory) -> Iterator[Stack]:
    if not (CONSOLE_DIST / "index.html").is_file():
        pytest.fail(f"{CONSOLE_DIST} has no build: run `make web`")
    with ExitStack() as cleanup:
        real = start_real_stack(
            cleanup, tmp_path_factory.mktemp("console"),
            lambda **addrs: module_gateway_factory(**addrs, console_dist=CONSOLE_DIST),
            admin_password=ADMIN_PASSWORD, extra_env={"ZQ_SANDBOX_MAX_SECONDS": "120"})
        url = real.gateway.url  # type: ignore[attr-defined]
        http = cleanup.enter_context(httpx.Client(base_url=url, timeout=60))
        resp = http.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert resp.status_code == 200, resp.text
        yield Stack(url, http, {"authorization": f"Bearer {resp.json()['access_token']}"}, real.engine_url)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


class Console:
    """One browser context (own storage) on the console, collecting console errors."""

    def __init__(self, browser: object, url: str, locale: str = "en-US") -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 900}, locale=locale)  # type: ignore[attr-defined]
        self.page = self.context.new_page()
        self.url = url
        self.errors: list[str] = []
        self.expected: tuple[str, ...] = ()  # console errors a test provokes on purpose (a 401 it fakes)
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

    def open(self, hash_path: str = "/tasks") -> None:
        self.page.goto(f"{self.url}/console/#{hash_path}")

    def login(self, username: str = "admin", password: str = ADMIN_PASSWORD) -> None:
        self.open()
        self.page.fill("input[name=username]", username)
        self.page.fill("input[name=password]", password)
        self.page.click("form.login button[type=submit]")
        self.page.wait_for_selector("header.top")

    def series(self, test_id: str) -> list[dict]:
        return json.loads(self.page.get_attribute(f"[data-testid={test_id}]", "data-series") or "[]")

    def close(self) -> None:
        unexpected = [e for e in self.errors if not any(x in e for x in self.expected)]
        self.context.close()
        assert unexpected == [], f"browser console errors: {unexpected}"


@pytest.fixture
def console(browser: object, stack: Stack) -> Iterator[Console]:
    c = Console(browser, stack.url)
    yield c
    c.close()


@pytest.fixture(scope="module")
def completed(stack: Stack) -> dict:
    """A completed template run (dual MA, 3 stocks, 5 years, Shanghai composite benchmark)."""
    task = stack.run(strategy_id=2, params={"short_window": 5, "long_window": 20}, config=CONFIG)
    done = stack.wait(task["id"])
    assert done["status"].lower() == "completed", done
    return done


@pytest.fixture(scope="module")
def refusing(stack: Stack) -> dict:
    task = stack.run(strategy_code=REFUSING_CODE, strategy_name="refusals",
                     config={**CONFIG, "start_date": "2015-06-01", "end_date": "2015-09-30"})
    done = stack.wait(task["id"])
    assert done["status"].lower() == "completed", done
    return done


def _month_count(dates: list[str]) -> int:
    return len({d[:7] for d in dates})


def test_login_run_a_template_and_watch_it_live(console: Console, stack: Stack) -> None:
    """The New backtest form runs a template; the task list shows PENDING → RUNNING → COMPLETED
    from the watch stream, without a reload."""
    console.login()
    page = console.page
    # Record every status a task row shows, from the first render on.
    page.evaluate("""() => {
        window.__seen = {};
        new MutationObserver(() => {
            for (const row of document.querySelectorAll('tr[data-task-id]')) {
                const id = row.dataset.taskId, s = row.dataset.status;
                const seen = (window.__seen[id] = window.__seen[id] || []);
                if (seen[seen.length - 1] !== s) seen.push(s);
            }
        }).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['data-status']});
    }""")
    page.wait_for_selector("[data-testid=live].on")
    # Submit through the API while the list is open: the row must appear and move by itself.
    task = stack.run(strategy_code=SLOW_CODE, strategy_name="live", config=CONFIG)
    task_id = task["id"]
    row = f"tr[data-task-id='{task_id}']"
    try:
        page.wait_for_selector(f"{row}:is([data-status=completed], [data-status=failed], [data-status=cancelled])",
                               timeout=90_000)
    except PlaywrightTimeout:
        seen = page.evaluate(f"window.__seen['{task_id}']")
        api = stack.get(f"/api/v1/backtest/tasks/{task_id}").json()
        raise AssertionError(f"the row never showed an end: it went through {seen}, the API says {api}") from None
    done = stack.get(f"/api/v1/backtest/tasks/{task_id}").json()
    assert page.get_attribute(row, "data-status") == "completed", done
    seen = page.evaluate(f"window.__seen['{task['id']}']")
    assert seen[-1] == "completed"
    assert "running" in seen, seen
    assert seen.index("running") < seen.index("completed")
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1  # no reload

    # And the form: a template with its generated parameter form.
    console.open("/new")
    page.wait_for_selector("[data-testid=params-form]")
    page.select_option("#strategy", "2")  # the dual MA template
    page.fill("#param-short_window", "5")
    page.fill("#param-long_window", "20")
    page.fill("#cfg-start_date", "2013-01-04")
    page.fill("#cfg-end_date", "2013-12-31")
    page.select_option("#cfg-benchmark", "000001.SH")
    for symbol in ("600036.SH", "000002.SZ"):
        page.check(f"input[data-symbol='{symbol}']")
    page.click("[data-testid=submit]")
    page.wait_for_url(re.compile(r"#/tasks/\d+$"))
    new_id = int(page.url.rsplit("/", 1)[1])
    page.wait_for_selector("[data-testid=task-detail][data-status=completed]", timeout=90_000)
    api = stack.get(f"/api/v1/backtest/tasks/{new_id}").json()
    assert api["params"] == {"short_window": 5, "long_window": 20, "trend_window": 60, "position_pct": None}
    assert api["config"]["symbols"] == ["600036.SH", "000002.SZ"]


def test_detail_charts_match_the_api(console: Console, stack: Stack, completed: dict) -> None:
    console.login()
    page = console.page
    tid = completed["id"]
    console.open(f"/tasks/{tid}")
    page.wait_for_selector("[data-testid=chart-equity][data-series] svg path", state="attached", timeout=30_000)
    equity = stack.get(f"/api/v1/backtest/tasks/{tid}/equity").json()
    perf = stack.get(f"/api/v1/backtest/tasks/{tid}/performance").json()
    daily = perf["daily_portfolio"]
    assert equity["dates"] == [d["date"] for d in daily]

    strategy, benchmark, excess = console.series("chart-equity")
    assert strategy["points"] == len(daily)  # one point per trading day
    final = daily[-1]["total_value"] / equity["initial_capital"] - 1
    assert strategy["last"] == pytest.approx(final, abs=1e-6)  # the chart ends at the API's final value
    assert benchmark["points"] == excess["points"] == len(daily)
    # The SVG line really has one vertex per day.
    d = page.eval_on_selector("[data-testid=chart-equity] svg path[fill=none][stroke='#2f6fdb']",
                              "p => p.getAttribute('d')")
    assert len(re.findall(r"[ML]", d)) == len(daily)

    (heat,) = console.series("chart-heatmap")
    assert heat["points"] == _month_count(equity["dates"])  # one cell per month of the run
    (dd,) = console.series("chart-underwater")
    assert dd["points"] == len(daily)
    assert min(equity["drawdown"]) == pytest.approx(-perf["metrics"]["max_drawdown"], abs=1e-9)
    card = page.get_attribute("[data-metric=max_drawdown]", "data-value")
    assert float(card) == pytest.approx(perf["metrics"]["max_drawdown"], abs=1e-12)
    assert page.locator("[data-testid=worst-drawdowns] tbody tr").count() == 5
    (exposure,) = console.series("chart-exposure")
    assert exposure["points"] == len(daily)

    # Log scale: growth of 1, same last point.
    page.check("[data-testid=log-toggle]")
    wait_log_scale_drawn(page)
    assert console.series("chart-equity")[0]["last"] == pytest.approx(1 + final, abs=1e-6)

    # Candles of a traded symbol with its fills marked.
    page.wait_for_selector("[data-testid=chart-candles][data-series]", state="attached")
    symbol = page.input_value("[data-testid=candle-symbol]")
    candles, buys, sells = console.series("chart-candles")
    fills = [t for t in perf["trades"] if t["symbol"] == symbol]
    assert buys["points"] + sells["points"] == len(fills) > 0
    bars = stack.get(f"/api/v1/backtest/tasks/{tid}/bars", symbol=symbol).json()["bars"]
    assert candles["points"] == len(bars) > 0

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(300)
    page.screenshot(path=str(SCREENSHOTS / "console-task-detail.png"), full_page=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOTS / "console-task-detail-top.png"))  # the README's picture


def test_refusal_counts_equal_the_api_orders(console: Console, stack: Stack, refusing: dict) -> None:
    tid = refusing["id"]
    orders = stack.get(f"/api/v1/backtest/tasks/{tid}/performance").json()["orders"]
    expected: dict[str, int] = {}
    for o in orders:
        if o["status"].lower() in ("rejected", "expired"):
            cat = refusal_category(o["reason"])
            expected[cat] = expected.get(cat, 0) + 1
    assert sum(expected.values()) > 0 and len(expected) >= 2, expected

    console.login()
    console.open(f"/tasks/{tid}")
    page = console.page
    page.wait_for_selector("[data-testid=refusals] tr[data-category]", timeout=30_000)
    shown = {el.get_attribute("data-category"): int(el.get_attribute("data-count"))
             for el in page.query_selector_all("[data-testid=refusals] tr[data-category]")}
    assert shown == expected
    counts = {s: sum(1 for o in orders if o["status"].lower() == s) for s in ("filled", "rejected", "expired")}
    outcomes = page.inner_text("[data-testid=order-outcomes]")
    assert outcomes.startswith(f"{len(orders)} orders: {counts['filled']} filled, {counts['rejected']} rejected, "
                               f"{counts['expired']} expired")

    # The orders table pages and filters like the API.
    page.select_option("[data-testid=order-status-filter]", "rejected")
    rejected = sum(1 for o in orders if o["status"].lower() == "rejected")
    page.wait_for_selector(f"[data-testid=orders][data-total='{rejected}']")
    assert page.locator("[data-testid=orders] tbody tr").count() == min(20, rejected)
    # Logs are shown (the strategy prints a line a day).
    assert "day 2015-06-01" in page.inner_text("[data-testid=logs]")


def test_failed_task_highlights_the_failing_line(console: Console, stack: Stack) -> None:
    task = stack.run(strategy_code=RAISING_CODE, strategy_name="raises", config=CONFIG)
    failed = stack.wait(task["id"])
    assert failed["status"].lower() == "failed"
    console.login()
    console.open(f"/tasks/{task['id']}")
    page = console.page
    page.wait_for_selector("[data-testid=failure] .cm-error-line")
    assert page.get_attribute("[data-testid=failure] .cm-error-line", "data-error-line") == str(RAISING_LINE)
    assert 'prices["600036.SH"]' in page.inner_text("[data-testid=failure] .cm-error-line")
    assert "KeyError" in page.inner_text("[data-testid=failure] .error-message")


def test_compile_error_highlights_its_line_and_keeps_the_code(console: Console) -> None:
    console.expected = ("400",)  # the 400 answer itself is logged by the browser
    console.login()
    console.open("/new?mode=code")
    page = console.page
    page.wait_for_selector("[data-testid=code-editor] .cm-content")
    page.click("[data-testid=code-editor] .cm-content")
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(BROKEN_CODE)  # as a paste: no auto-indent
    page.check("input[data-symbol='600036.SH']")
    page.click("[data-testid=submit]")
    page.wait_for_selector("[data-testid=code-error]")
    assert page.get_attribute("[data-testid=code-editor] .cm-error-line", "data-error-line") == str(BROKEN_LINE)
    assert f"line {BROKEN_LINE}" in page.inner_text("[data-testid=code-error]")
    assert "if True" in page.inner_text("[data-testid=code-editor] .cm-error-line")
    assert "class Strategy" in page.inner_text("[data-testid=code-editor]")  # the code is kept


def test_compare_two_tasks(console: Console, stack: Stack, completed: dict, refusing: dict) -> None:
    console.login()
    ids = f"{completed['id']},{refusing['id']}"
    console.open(f"/compare?ids={ids}")
    page = console.page
    page.wait_for_selector("[data-testid=chart-compare-equity][data-series]", state="attached", timeout=30_000)
    assert page.get_attribute("[data-testid=compare]", "data-runs") == "2"
    runs = console.series("chart-compare-equity")
    assert [r["name"].split()[0] for r in runs] == [f"#{completed['id']}", f"#{refusing['id']}"]
    assert page.locator("[data-testid=compare-metrics] thead th").count() == 3
    best = page.locator("[data-testid=compare-metrics] tr:has(th:text-is('Total return')) td[data-best]")
    assert best.count() == 1
    config_diff = page.inner_text("[data-testid=compare-config]")
    assert "start_date" in config_diff and "strategy" in config_diff


def test_report_is_one_offline_file_with_the_metrics(browser: object, stack: Stack, completed: dict,
                                                     tmp_path: Path) -> None:
    tid = completed["id"]
    resp = stack.get(f"/api/v1/backtest/tasks/{tid}/report")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert resp.headers["content-disposition"] == f'attachment; filename="backtest-{tid}.html"'
    assert resp.headers["content-security-policy"].startswith("sandbox ")  # never runs as the API's origin
    text = resp.text

    class Collect(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.refs: list[str] = []
            self.cells: list[str] = []
            self.tags: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.tags.append(tag)
            self.refs += [v or "" for k, v in attrs if k in ("src", "href", "action", "srcset", "poster")]

        def handle_data(self, data: str) -> None:
            self.cells.append(data.strip())

    parsed = Collect()
    parsed.feed(text)
    parsed.close()
    assert parsed.refs == []  # nothing loaded from anywhere: scripts and styles are inline
    assert not re.search(r"@import|url\(\s*['\"]?(https?:)?//", text)
    metrics = stack.get(f"/api/v1/backtest/tasks/{tid}/performance").json()["metrics"]
    assert f"{metrics['total_return'] * 100:.2f}%" in parsed.cells
    assert f"{metrics['sharpe_ratio']:.3f}" in parsed.cells
    assert f"{metrics['max_drawdown'] * 100:.2f}%" in parsed.cells

    # Opened from disk with every network request refused, the charts still draw.
    path = tmp_path / "report.html"
    path.write_bytes(resp.content)
    context = browser.new_context()  # type: ignore[attr-defined]
    requested: list[str] = []

    def refuse(route: object) -> None:
        requested.append(route.request.url)  # type: ignore[attr-defined]
        route.abort()  # type: ignore[attr-defined]

    context.route(re.compile(r"^(?!file:).*"), refuse)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    page.wait_for_selector("html[data-charts-ready='1']", state="attached")
    assert page.locator("[data-chart=equity] svg path").count() > 0
    assert page.locator("[data-table=worst] tbody tr").count() == 5
    page.emulate_media(media="print")
    pdf = page.pdf() if hasattr(page, "pdf") else b"%PDF"
    assert pdf.startswith(b"%PDF")
    context.close()
    assert requested == [] and errors == []


def test_report_cli_writes_the_same_report(stack: Stack, completed: dict, tmp_path: Path) -> None:
    """`python -m engine_svc run … --html` renders with the same renderer (same sections)."""
    strategy = tmp_path / "ma.py"
    strategy.write_text(REFUSING_CODE)
    out = tmp_path / "local.html"
    proc = subprocess.run(
        [sys.executable, "-m", "engine_svc", "run", str(strategy), "--start", "2015-06-01", "--end", "2015-09-30",
         "--symbols", ",".join(CONFIG["symbols"]), "--benchmark", "000001.SH", "--quiet", "--html", str(out),
         "--database-url", stack.engine_url],
        capture_output=True, text=True, timeout=300, cwd=devstack.ROOT)
    assert proc.returncode == 0, proc.stderr
    local = out.read_text(encoding="utf-8")
    served = stack.get(f"/api/v1/backtest/tasks/{completed['id']}/report").text
    sections = re.compile(r'data-(?:chart|table)="([\w-]+)"')
    assert [s for s in sections.findall(local) if not s.startswith("candles-")] == \
        [s for s in sections.findall(served) if not s.startswith("candles-")]
    assert 'id="report-data"' in local and "<script>" in local


def test_language_defaults_to_the_browser_and_toggles(browser: object, stack: Stack) -> None:
    zh = Console(browser, stack.url, locale="zh-CN")
    zh.open()
    zh.page.wait_for_selector("form.login")
    assert zh.page.inner_text("#login-title") == "登录"
    zh.login()
    assert "回测任务" in zh.page.inner_text("header.top nav")
    zh.page.click("[data-testid=lang-toggle]")
    expect(zh.page.locator("header.top nav")).to_contain_text("Tasks")
    assert zh.page.evaluate("document.documentElement.lang") == "en"
    zh.page.reload()  # the choice is remembered
    zh.page.wait_for_selector("header.top")
    assert "Tasks" in zh.page.inner_text("header.top nav")
    zh.close()


def test_main_flows_work_by_keyboard(console: Console, completed: dict) -> None:
    page = console.page
    console.open()
    page.wait_for_selector("input[name=username]:focus")  # autofocus
    page.keyboard.type("admin")
    page.keyboard.press("Tab")
    page.keyboard.type(ADMIN_PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-testid=tasks-table]")

    def tab_to(selector: str, limit: int = 80) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate("(s) => document.activeElement && document.activeElement.matches(s)", selector):
                return
        raise AssertionError(f"{selector} not reachable by Tab")

    tab_to(f"a[href='#/tasks/{completed['id']}']")
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-testid=chart-equity][data-series]", state="attached", timeout=30_000)
    tab_to("[data-testid=log-toggle]")
    page.keyboard.press("Space")
    wait_log_scale_drawn(page)
    tab_to("a[href='#/new']")
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-testid=submit]")
    tab_to("[data-testid=lang-toggle]")
    page.keyboard.press("Enter")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")


def test_expired_session_prompts_relogin_and_keeps_the_form(console: Console) -> None:
    console.expected = ("401",)
    console.login()
    console.open("/new")
    page = console.page
    page.wait_for_selector("#name")
    page.fill("#name", "kept across the re-login")
    # The session is gone server-side: every credentialed call and the refresh answer 401.
    page.evaluate("sessionStorage.clear()")
    page.route("**/api/v1/**", lambda route: route.fulfill(
        status=401, content_type="application/json", body='{"code": 16, "message": "token expired"}'))
    page.click("[data-testid=submit]")
    page.wait_for_selector("[role=dialog] form.login")
    page.unroute("**/api/v1/**")
    page.fill("[role=dialog] input[name=username]", "admin")
    page.fill("[role=dialog] input[name=password]", ADMIN_PASSWORD)
    page.click("[role=dialog] button[type=submit]")
    page.wait_for_selector("[role=dialog]", state="detached")
    assert page.input_value("#name") == "kept across the re-login"


def test_full_queue_and_network_errors_are_sentences(console: Console) -> None:
    console.expected = ("429", "net::ERR_FAILED")
    console.login()
    console.open("/new")
    page = console.page
    page.wait_for_selector("[data-testid=submit]")
    page.check("input[data-symbol='600036.SH']")
    page.route("**/api/v1/backtest/run", lambda route: route.fulfill(
        status=429, content_type="application/json", body='{"code": 8, "message": "queue full"}'))
    page.click("[data-testid=submit]")
    page.wait_for_selector("[data-testid=form-error]")
    assert "queue is full" in page.inner_text("[data-testid=form-error]")
    page.unroute("**/api/v1/backtest/run")
    page.route("**/api/v1/backtest/run", lambda route: route.abort())
    page.click("[data-testid=submit]")
    expect(page.locator("[data-testid=form-error]")).to_contain_text("cannot be reached")
    assert "Traceback" not in page.content()

