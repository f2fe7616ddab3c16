"""Watch streams through the real gateway cannot take task_svc down (issue 10): task_svc serves
them on grpc.aio, one user holds at most ZQ_TASK_MAX_WATCHES_PER_USER of them, the next one is
a 429 naming the limit (before any header of the stream), the open ones keep receiving events,
another user's unary calls are unaffected, and a closed stream gives its slot back. And a query
string over the gateway's 16 KiB header bound is a 431, not the 429 it used to be."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.e2e.realstack import start_real_stack

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

ADMIN_PASSWORD = "watch limits admin password"
LIMIT = 3
CONFIG = {"start_date": "2013-01-04", "end_date": "2013-12-31", "symbols": ["600036.SH"]}
# Runs until cancelled (or the sandbox's time limit): the cancel always finds it unfinished.
IDLE = """from zquant.backtest.strategy import BaseStrategy


class Strategy(BaseStrategy):
    def on_bar(self, context, bar_data):
        while True:
            pass
"""


@dataclass
class Users:
    http: httpx.Client
    url: str
    alice: dict[str, str]
    bob: dict[str, str]


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory, module_gateway_factory) -> Iterator[Users]:  # type: ignore[no-untyped-def]
    data_dir: Path = tmp_path_factory.mktemp("e2e_watch_limits")
    with ExitStack() as cleanup:
        real = start_real_stack(cleanup, data_dir, module_gateway_factory, admin_password=ADMIN_PASSWORD,
                                extra_env={"ZQ_TASK_MAX_WATCHES_PER_USER": str(LIMIT)})
        http = cleanup.enter_context(httpx.Client(base_url=f"{real.gateway.url}/api/v1", timeout=30))

        def login(username: str, password: str) -> dict[str, str]:
            resp = http.post("/auth/login", json={"username": username, "password": password})
            assert resp.status_code == 200, resp.text
            return {"authorization": f"Bearer {resp.json()['access_token']}"}

        admin = login("admin", ADMIN_PASSWORD)
        for name in ("alice", "bob"):
            resp = http.post("/users", json={"username": name, "password": f"{name}-password-1"}, headers=admin)
            assert resp.status_code == 201, resp.text
        yield Users(http, real.gateway.url, login("alice", "alice-password-1"), login("bob", "bob-password-1"))


@dataclass(eq=False)
class Stream(threading.Thread):
    """GET /backtest/watch, line by line, on its own connection."""

    url: str
    headers: dict[str, str]
    status_code: int = 0
    body: str = ""
    events: list[dict] = field(default_factory=list)
    opened: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        super().__init__(daemon=True)

    def run(self) -> None:
        with httpx.Client(base_url=f"{self.url}/api/v1", timeout=60) as client, \
                client.stream("GET", "/backtest/watch", headers=self.headers) as response:
            self.status_code = response.status_code
            self.opened.set()
            if response.status_code != 200:
                self.body = response.read().decode()
                return
            for line in response.iter_lines():
                if line.strip():
                    self.events.append(json.loads(line))
                if self.stop.is_set():
                    return


def open_stream(users: Users, headers: dict[str, str]) -> Stream:
    stream = Stream(users.url, headers)
    stream.start()
    assert stream.opened.wait(15), "no response headers"
    return stream


def wait_until(check, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_one_more_watch_than_the_limit_is_429_and_the_others_keep_streaming(users: Users) -> None:
    streams = [open_stream(users, users.alice) for _ in range(LIMIT)]
    assert [s.status_code for s in streams] == [200] * LIMIT

    refused = open_stream(users, users.alice)
    refused.join(15)
    assert refused.status_code == 429, (refused.status_code, refused.body)
    error = json.loads(refused.body)
    assert error["code"] == 8  # RESOURCE_EXHAUSTED
    assert f"the limit is {LIMIT}" in error["message"] and "ZQ_TASK_MAX_WATCHES_PER_USER" in error["message"]

    # Another user's unary calls and streams are not affected by alice's.
    started = time.perf_counter()
    listed = users.http.get("/backtest/tasks", headers=users.bob)
    assert listed.status_code == 200 and time.perf_counter() - started < 2, listed.text
    bobs = open_stream(users, users.bob)
    assert bobs.status_code == 200

    # alice's open streams still receive her task's life: created, then cancelled (terminal).
    created = users.http.post("/backtest/run", headers=users.alice,
                              json={"strategy_code": IDLE, "config": CONFIG})
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    assert users.http.post(f"/backtest/tasks/{task_id}/cancel", headers=users.alice, json={}).status_code == 200
    for stream in streams:
        assert wait_until(lambda s=stream: any(e["terminal"] for e in s.events), 15), stream.events
        last = stream.events[-1]
        assert (last["kind"], last["task"]["id"], last["task"]["status"]) == ("status", task_id, "cancelled")
    assert bobs.events == []  # bob sees nothing of alice's

    # A stream that ends gives its slot back.
    streams[0].stop.set()
    users.http.post("/backtest/run", headers=users.alice, json={"strategy_code": IDLE, "config": CONFIG})
    streams[0].join(15)
    assert not streams[0].is_alive()

    def reopened() -> bool:
        again = open_stream(users, users.alice)
        if again.status_code == 200:
            streams[0] = again
            return True
        again.join(5)
        return False

    assert wait_until(reopened, 10)


def test_an_oversized_query_string_is_431_not_429(users: Users) -> None:
    too_long = users.http.get("/backtest/tasks", params={"search": "x" * 17_000}, headers=users.bob)
    assert too_long.status_code == 431, (too_long.status_code, too_long.text)
    # Below the gateway's bound the service itself judges it: a 400 naming the field.
    long = users.http.get("/backtest/tasks", params={"search": "x" * 12_000}, headers=users.bob)
    assert long.status_code == 400, (long.status_code, long.text)
    assert long.json()["details"][0]["field_violations"][0]["field"] == "search"
