"""Open watch streams vs unary latency on one task_svc replica, through Envoy (issue 10).

Starts auth_svc, engine_svc, one task_svc and Envoy as `make up` does (devstack/, SQLite, a
small synthetic market) in a temporary ZQ_DATA_DIR, then in one invocation:

1. baseline: `GET /api/v1/backtest/tasks` latency with no stream open (sequential requests);
2. opens `--streams` `GET /api/v1/backtest/watch` streams (HTTP/1.1, one connection each, asyncio
   + httpx), `--per-user` per user (ZQ_TASK_MAX_WATCHES_PER_USER is set to that);
3. the same unary latency with every stream open;
4. each user submits a backtest that never ends by itself and cancels it: every stream must
   receive that task's terminal event (counted).

Prints a table and JSON (p50/p99 and the ratio to the baseline). RLIMIT_NOFILE is raised to
its hard limit (each stream is a client socket here and one in Envoy).

    .venv/bin/python bench/watch_bench.py --streams 5000 --per-user 50
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent import futures
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchstack import BenchStack  # noqa: E402
from benchstats import summary_ms  # noqa: E402  (bench/ is sys.path[0] when run as a script)

ENDLESS = """from zquant.backtest.strategy import BaseStrategy


class Strategy(BaseStrategy):
    def on_bar(self, context, bar_data):
        while True:
            pass
"""


def raise_nofile(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def unary_latency(base: str, bearer: str, n: int) -> list[float]:
    out = []
    with httpx.Client(base_url=base, timeout=30, headers={"authorization": bearer}) as client:
        client.get("/api/v1/backtest/tasks").raise_for_status()
        for _ in range(n):
            began = time.perf_counter()
            resp = client.get("/api/v1/backtest/tasks", params={"limit": 20})
            out.append(time.perf_counter() - began)
            resp.raise_for_status()
    return out


class Streams:
    """All watch streams on one asyncio loop in a thread of their own."""

    def __init__(self, base: str, bearers: list[str], per_user: int) -> None:
        self.base, self.bearers, self.per_user = base, bearers, per_user
        self.loop = asyncio.new_event_loop()
        self.opened = 0
        self.refused: list[str] = []
        self.terminal: dict[int, set[int]] = {}  # stream index -> task ids seen terminal
        self.errors: list[str] = []
        self.all_open = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._open_all(), self.loop)

    async def _open_all(self) -> None:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
        self.client = httpx.AsyncClient(base_url=self.base, limits=limits,
                                        timeout=httpx.Timeout(60.0, read=None, pool=None))
        total = len(self.bearers) * self.per_user
        self.tasks = []
        sem = asyncio.Semaphore(200)  # connection set-up in waves
        for u, bearer in enumerate(self.bearers):
            for k in range(self.per_user):
                self.tasks.append(asyncio.ensure_future(self._one(u * self.per_user + k, bearer, sem, total)))

    async def _one(self, index: int, bearer: str, sem: asyncio.Semaphore, total: int) -> None:
        try:
            await sem.acquire()
            released = False
            async with self.client.stream("GET", "/api/v1/backtest/watch",
                                          headers={"authorization": bearer}) as response:
                if response.status_code != 200:
                    self.refused.append(f"{response.status_code} {(await response.aread())[:120]!r}")
                    return
                self.opened += 1
                sem.release()
                released = True
                if self.opened + len(self.refused) >= total:
                    self.all_open.set()
                seen = self.terminal.setdefault(index, set())
                async for line in response.aiter_lines():
                    if line.strip():
                        event = json.loads(line)
                        if event.get("terminal"):
                            seen.add(int(event["task"]["id"]))
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            if not released:
                sem.release()
            if self.opened + len(self.refused) + len(self.errors) >= total:
                self.all_open.set()

    def stop(self) -> None:
        async def close() -> None:
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await self.client.aclose()
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=5000)
    ap.add_argument("--per-user", type=int, default=50, help="streams per user (= ZQ_TASK_MAX_WATCHES_PER_USER)")
    ap.add_argument("--requests", type=int, default=400, help="unary requests per measurement")
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()
    users = -(-args.streams // args.per_user)
    nofile = raise_nofile(2 * args.streams + 1000)

    stack = BenchStack.create("zq_watch_bench_", {
        "ZQ_ACCESS_TOKEN_TTL_SECONDS": "86400", "ZQ_TASK_MAX_WATCHES_PER_USER": str(args.per_user),
        "ZQ_TASK_MAX_WATCHES": str(max(10000, args.streams)), "ZQ_SANDBOX_SPARES": "0",
    })
    password = stack.password
    streams: Streams | None = None
    try:
        subprocess.run([sys.executable, "-m", "engine_svc.data", "--quiet", "generate-synthetic", "--symbols", "3",
                        "--days", "120", "--seed", "1"], cwd=ROOT, env=stack.env, check=True, capture_output=True)
        stack.start()
        base = stack.base_url
        with httpx.Client(base_url=base, timeout=30) as client:
            login = client.post("/api/v1/auth/login", json={"username": "bench_admin", "password": password})
            login.raise_for_status()
            admin = f"Bearer {login.json()['access_token']}"
            symbols = client.get("/api/v1/backtest/data/symbols", headers={"authorization": admin}).json()

        def make_user(i: int) -> str:
            with httpx.Client(base_url=base, timeout=60) as c:
                name, pw = f"watcher{i}", f"watcher-password-{i}"
                c.post("/api/v1/users", json={"username": name, "password": pw},
                       headers={"authorization": admin}).raise_for_status()
                reply = c.post("/api/v1/auth/login", json={"username": name, "password": pw})
                reply.raise_for_status()
                return f"Bearer {reply.json()['access_token']}"

        with futures.ThreadPoolExecutor(8) as pool:
            bearers = list(pool.map(make_user, range(users)))
        stocks = [s for s in symbols["symbols"] if not s["is_index"]]
        config = {"start_date": stocks[0]["first_date"], "end_date": stocks[0]["last_date"],
                  "symbols": [stocks[0]["symbol"]]}

        baseline = unary_latency(base, admin, args.requests)

        streams = Streams(base, bearers, args.per_user)
        began = time.perf_counter()
        streams.start()
        streams.all_open.wait(600)
        open_s = time.perf_counter() - began
        loaded = unary_latency(base, admin, args.requests)

        # Each user: one endless backtest, cancelled; every one of its streams must see it end.
        task_of: dict[int, int] = {}
        busy_retries: list[str] = []

        def until_not_busy(send: Callable[[], httpx.Response], what: str) -> httpx.Response:
            # SQLite: a write may meet a busy database and the service answers 503; the client
            # tries again, as a real one would. The retries are counted and reported.
            for _ in range(50):
                resp = send()
                if resp.status_code != 503:
                    break
                busy_retries.append(what)
                time.sleep(0.2)
            resp.raise_for_status()
            return resp

        def run_and_cancel(u: int) -> None:
            with httpx.Client(base_url=base, timeout=60, headers={"authorization": bearers[u]}) as c:
                created = until_not_busy(lambda: c.post("/api/v1/backtest/run",
                                                        json={"strategy_code": ENDLESS, "config": config}), "run")
                task_of[u] = created.json()["id"]
                until_not_busy(lambda: c.post(f"/api/v1/backtest/tasks/{task_of[u]}/cancel", json={}), "cancel")

        with futures.ThreadPoolExecutor(2) as pool:
            list(pool.map(run_and_cancel, range(users)))
        deadline = time.monotonic() + 120

        def delivered() -> int:
            return sum(1 for i, seen in list(streams.terminal.items()) if task_of.get(i // args.per_user) in seen)
        while delivered() < streams.opened and time.monotonic() < deadline:
            time.sleep(0.2)
        got = delivered()

        base_s, load_s = summary_ms(baseline), summary_ms(loaded)
        doc = {
            "streams_requested": args.streams, "streams_open": streams.opened, "refused": len(streams.refused),
            "stream_errors": streams.errors[:5],
            "busy_retries": {w: busy_retries.count(w) for w in ("run", "cancel")},
            "users": users, "per_user": args.per_user,
            "open_seconds": round(open_s, 1), "terminal_events_delivered": got, "rlimit_nofile": nofile,
            "unary_baseline_ms": base_s, "unary_with_streams_ms": load_s,
            "p50_ratio": round(load_s["p50_ms"] / base_s["p50_ms"], 2),
            "p99_ratio": round(load_s["p99_ms"] / base_s["p99_ms"], 2),
            "target_p99_ms": 50, "meets_target": load_s["p99_ms"] < 50 and got == streams.opened == args.streams,
        }
        print(f"{'case':<34}{'p50 ms':>9}{'p99 ms':>9}")
        print(f"{'GET /backtest/tasks, 0 streams':<34}{base_s['p50_ms']:>9.2f}{base_s['p99_ms']:>9.2f}")
        print(f"{f'GET /backtest/tasks, {streams.opened} streams':<34}{load_s['p50_ms']:>9.2f}{load_s['p99_ms']:>9.2f}")
        print(f"terminal events delivered: {got}/{streams.opened}; refused {len(streams.refused)}; "
              f"errors {len(streams.errors)}; opened in {open_s:.1f} s")
        print(json.dumps(doc, indent=2))
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(doc, indent=2))
        return 0 if doc["meets_target"] else 1
    finally:
        if streams is not None:
            with contextlib.suppress(Exception):
                streams.stop()
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
