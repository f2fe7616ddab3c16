"""Console benchmark: navigation → every chart of the task page drawn, in headless Chromium.

    .venv/bin/python bench/console_bench.py                    # 5 runs per case
    .venv/bin/python bench/console_bench.py --runs 9 --json out.json

Starts the stack as `make up` does (devstack/) in a temporary ZQ_DATA_DIR, with Envoy
serving the built console (`make web` first): a synthetic market (`generate-synthetic --symbols
300 --days 2500 --seed 1`, SQLite), then two backtests of the dual-MA template through the API:
  small  10 symbols × 5 years (1 250 trading days), benchmark 000300.SH;
  large  300 symbols × 2 500 days (~750 000 daily position records), benchmark 000300.SH.

For each case and run, a fresh browser context (empty HTTP cache, new login: the refresh token is
put in sessionStorage as the console keeps it) opens /console/#/tasks/{id}; the time is from
navigation start to the moment the six result charts (equity, underwater, heatmap, yearly,
rolling, exposure) and the metric cards are in the DOM (`cold`). The same page is then opened
again in the same context (`warm`: assets from the HTTP cache, data fetched again). Bytes are the
transfer sizes the browser reports (resource timing: headers + gzip bodies) for everything the
page loaded.

Baselines, same run, same browser (the machine is shared: compare ratios, not seconds):
  sign-in   a fresh context opening /console/ until the sign-in form shows (the app's own chunk
            only, no data, no charts): what this machine takes to load any page;
  /perf     GET …/performance of the same task fetched from the page (what a task page without
            the light resources must download before drawing: every daily position record).
`×sign-in` = cold / sign-in; `×perf` = cold / /perf.

Debian's /usr/bin/chromium with --no-sandbox --disable-gpu --disable-background-networking
(Playwright); no downloaded browser. Prints a table and one JSON document; medians of --runs.
Targets on 2 cores: small < 1.0 s, large < 2.5 s; the console's JavaScript < 600 KB gzipped.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchstack import BenchStack  # noqa: E402  (bench/ is sys.path[0] when run as a script)

from services.console_routes import CONSOLE_DIST  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
CHARTS = ("chart-equity", "chart-underwater", "chart-heatmap", "chart-yearly", "chart-rolling", "chart-exposure")
# Drawn = every chart's SVG holds its paths (ECharts paints on the animation frame after
# setOption) and the metric cards are there. A MutationObserver stamps the first moment that is
# true, so work the page does afterwards (the tables below the charts) is not counted.
DRAWN = " && ".join([f"document.querySelector('[data-testid={c}] svg path')" for c in CHARTS]
                    + ["document.querySelector('[data-testid=metric-cards]')"])
STAMP_DRAWN = f"""new MutationObserver((_, obs) => {{
    if (window.__zqDrawn === undefined && {DRAWN}) {{ window.__zqDrawn = performance.now(); obs.disconnect(); }}
}}).observe(document, {{childList: true, subtree: true}});"""
JS_BUDGET_GZ = 600 * 1024


def js_sizes() -> dict[str, int]:
    """Raw and gzip (-9, as a static server would precompress; Envoy compresses at level 6) bytes
    of every JavaScript chunk of the build, and of the ones the task page loads."""
    raw = gz = 0
    for path in (CONSOLE_DIST / "assets").glob("*.js"):
        data = path.read_bytes()
        raw += len(data)
        gz += len(gzip.compress(data, 9))
    return {"js_raw_bytes": raw, "js_gzip_bytes": gz}


def measure(browser: Any, base: str, password: str, task_id: int) -> dict[str, float]:
    with httpx.Client(base_url=base, timeout=60) as client:
        pair = client.post("/api/v1/auth/login", json={"username": "bench_admin", "password": password}).json()
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-US")
    # Once per tab, as after a sign-in; later navigations keep the token the console rotated.
    context.add_init_script(f"""try {{ if (!sessionStorage.getItem('zq.refresh'))
        sessionStorage.setItem('zq.refresh', {json.dumps(pair['refresh_token'])}); }} catch (e) {{}}""")
    context.add_init_script(STAMP_DRAWN)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    out: dict[str, float] = {}
    for label in ("cold", "warm"):
        page.goto(f"{base}/console/#/tasks/{task_id}", wait_until="commit")
        try:
            # A function, not a string: the console's CSP forbids eval, which string predicates need.
            page.wait_for_function("() => window.__zqDrawn !== undefined", timeout=120_000)
        except Exception:
            text = page.inner_text("body")[:2000]
            raise RuntimeError(f"task {task_id} page ({label}) not drawn: {problems} {text}") from None
        timing = page.evaluate("""() => {
            const nav = performance.getEntriesByType('navigation')[0];
            const res = performance.getEntriesByType('resource');
            return {ms: window.__zqDrawn - nav.startTime,
                    bytes: nav.transferSize + res.reduce((s, r) => s + r.transferSize, 0)};
        }""")
        out[f"{label}_s"] = timing["ms"] / 1000
        out[f"{label}_bytes"] = timing["bytes"]
        page.goto("about:blank")
    # Baseline: the heavy resource alone, from the same page context (same origin, same auth).
    page.goto(f"{base}/console/#/tasks", wait_until="commit")
    page.wait_for_selector("header.top")
    base_timing = page.evaluate("""async ([id, token]) => {
        const t0 = performance.now();
        const r = await fetch(`/api/v1/backtest/tasks/${id}/performance`,
                              {headers: {authorization: `Bearer ${token}`}});
        const body = await r.text();
        const ms = performance.now() - t0;
        const e = performance.getEntriesByType('resource').filter(x => x.name.endsWith('/performance')).pop();
        return {ms, bytes: e ? e.transferSize : body.length, length: body.length};
    }""", [task_id, pair["access_token"]])
    out["baseline_s"] = base_timing["ms"] / 1000
    out["baseline_bytes"] = base_timing["bytes"]
    context.close()
    signin = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-US")
    page = signin.new_page()
    page.goto(f"{base}/console/", wait_until="commit")
    page.wait_for_selector("form.login button[type=submit]")
    since_nav = "performance.now() - performance.getEntriesByType('navigation')[0].startTime"
    out["signin_s"] = page.evaluate(since_nav) / 1000
    signin.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--symbols", type=int, default=300)
    ap.add_argument("--days", type=int, default=2500)
    ap.add_argument("--json", dest="json_out")
    ap.add_argument("--keep", action="store_true", help="keep the temporary data dir")
    args = ap.parse_args()
    if not (CONSOLE_DIST / "index.html").is_file():
        print("web/dist/console has no build: run `make web`", file=sys.stderr)
        return 2

    stack = BenchStack.create("zq_console_bench_", {"ZQ_SANDBOX_MAX_SECONDS": "1200"})
    password = stack.password
    try:
        subprocess.run([sys.executable, "-m", "engine_svc.data", "--quiet", "generate-synthetic", "--symbols",
                        str(args.symbols), "--days", str(args.days), "--seed", "1"], env=stack.env, check=True,
                       cwd=ROOT)
        stack.start(console_dist=CONSOLE_DIST)
        base = stack.base_url

        with httpx.Client(base_url=base, timeout=120) as client:
            token = client.post("/api/v1/auth/login",
                                json={"username": "bench_admin", "password": password}).json()["access_token"]
            h = {"authorization": f"Bearer {token}"}
            infos = [s for s in client.get("/api/v1/backtest/data/symbols", headers=h).json()["symbols"]]
            first = min(s["first_date"] for s in infos)
            last = max(s["last_date"] for s in infos)
            stocks = sorted(s["symbol"] for s in infos if s["first_date"] == first)
            cases = {
                "small": {"symbols": stocks[:10], "days": 1250},
                "large": {"symbols": [s["symbol"] for s in infos], "days": args.days},
            }
            tasks: dict[str, dict[str, Any]] = {}
            for name, case in cases.items():
                # Trading days of the synthetic calendar are weekdays: 1 250 of them ≈ 5 years.
                end = last if case["days"] >= args.days else str(
                    np.busday_offset(np.datetime64(first), case["days"] - 1, roll="forward"))
                config = {"start_date": first, "end_date": end, "symbols": case["symbols"], "benchmark": "000300.SH"}
                t0 = time.perf_counter()
                task = client.post("/api/v1/backtest/run", headers=h, json={
                    "strategy_id": 2, "params": {"short_window": 5, "long_window": 20}, "config": config}).json()
                while True:
                    task = client.get(f"/api/v1/backtest/tasks/{task['id']}", headers=h).json()
                    if task["status"].lower() in ("completed", "failed", "cancelled"):
                        break
                    time.sleep(0.5)
                if task["status"].lower() != "completed":
                    raise RuntimeError(f"{name} backtest ended {task['status']}: {task['error_message']}")
                days = len(client.get(f"/api/v1/backtest/tasks/{task['id']}/equity", headers=h).json()["dates"])
                tasks[name] = {"id": task["id"], "symbols": len(case["symbols"]), "days": days,
                               "backtest_s": round(time.perf_counter() - t0, 1)}

        from playwright.sync_api import sync_playwright

        results: dict[str, Any] = {}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            measure(browser, base, password, tasks["small"]["id"])  # warm-up: server caches, JIT
            for name, info in tasks.items():
                runs = [measure(browser, base, password, info["id"]) for _ in range(args.runs)]
                med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                results[name] = {**info, **{k: round(v, 3) if k.endswith("_s") else int(v) for k, v in med.items()},
                                 "ratio_perf": round(med["cold_s"] / med["baseline_s"], 2),
                                 "ratio_signin": round(med["cold_s"] / med["signin_s"], 2),
                                 "runs": args.runs}
            browser.close()
    finally:
        stack.stop(keep=args.keep)

    doc = {"cases": results, **js_sizes(), "js_budget_gzip_bytes": JS_BUDGET_GZ,
           "targets_s": {"small": 1.0, "large": 2.5}, "loadavg": os.getloadavg()}
    print(f"{'case':6} {'symbols×days':>13} {'cold s':>7} {'warm s':>7} {'KB cold':>8} {'KB warm':>8} "
          f"{'sign-in s':>9} {'×sign-in':>8} {'/perf s':>8} {'/perf KB':>8} {'×perf':>6}")
    for name, r in results.items():
        print(f"{name:6} {r['symbols']:>6}×{r['days']:<6} {r['cold_s']:>7.3f} {r['warm_s']:>7.3f} "
              f"{r['cold_bytes'] / 1024:>8.0f} {r['warm_bytes'] / 1024:>8.0f} {r['signin_s']:>9.3f} "
              f"{r['ratio_signin']:>8.2f} {r['baseline_s']:>8.3f} {r['baseline_bytes'] / 1024:>8.0f} "
              f"{r['ratio_perf']:>6.2f}")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"console JavaScript: {doc['js_raw_bytes'] / 1024:.0f} KB raw, {doc['js_gzip_bytes'] / 1024:.0f} KB gzip "
          f"(budget {JS_BUDGET_GZ // 1024} KB)")
    print(json.dumps(doc, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(doc, indent=2))
    ok = (results["small"]["cold_s"] < 1.0 and results["large"]["cold_s"] < 2.5
          and doc["js_gzip_bytes"] < JS_BUDGET_GZ)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
