"""Many parameter sets of one strategy in one run: a sweep's trials, kept apart from each other's
futures and each with its own ledger.

One strategy process hosts every trial (one spawn, one data load, one compile: the module runs
once, ``Strategy(params)`` once per trial); one trusted side keeps a ledger per trial. The trials
advance in lockstep, one day at a time, over the same data: the strategy process receives day T
once, runs every trial's day T, and answers with every trial's intents; so no trial can see a day
that another trial has not reached — a trial never holds anything a single run at the same day
would not hold. The trust boundary is the single run's (``session.py``): intents replayed on
trusted ledgers, mirrors in the strategy's process, nothing after T there.

A trial whose strategy raises fails alone (its failure is reported with its kind, message and
line; the others go on). Results are lean — daily NAV, fills, ex-rights, order count, logs — which
is what metrics need; a sweep re-runs a trial as a full backtest when someone wants its orders and
daily positions.

Reply from the strategy process, per day: for each trial in order, one status byte
(``OK``: a ``daywire`` reply follows, length-prefixed; ``FAILED``: the failure as JSON,
length-prefixed; ``DONE``: nothing, the trial failed earlier).
"""

from __future__ import annotations

import gc
import json
import struct
from dataclasses import dataclass, field
from typing import Any

from engine_svc.engine import daywire
from engine_svc.engine import intents as it
from engine_svc.engine.broker import Broker
from engine_svc.engine.config import BacktestConfig
from engine_svc.engine.errors import StrategyError
from engine_svc.engine.market import MarketTape, channels
from engine_svc.engine.panel import Panel
from engine_svc.engine.record import MAX_LOG_LINES, RunLog
from engine_svc.engine.session import (
    GC_YOUNG_EVERY,
    Channel,
    ProgressFn,
    ProtocolViolation,
    TrustedSession,
    paced_gc,
    run_strategy_day,
    take_feed,
)
from engine_svc.engine.strategy_api import Context
from engine_svc.engine.strategy_loader import instantiate_strategy, load_strategy_class
from engine_svc.engine.trader import Trader

OK, FAILED, DONE = 0, 1, 2
_LEN = struct.Struct("<I")
MAX_TRIALS = 1000


@dataclass
class TrialOutcome:
    """One trial's lean result, or its failure."""

    params: dict[str, Any]
    failure: dict[str, Any] | None = None  # {kind, message, line}
    dates: list[str] = field(default_factory=list)
    nav: list[float] = field(default_factory=list)  # total value at each day's close
    trades: list[dict[str, Any]] = field(default_factory=list)
    ex_rights: list[dict[str, Any]] = field(default_factory=list)
    orders: int = 0
    logs: list[str] = field(default_factory=list)
    mismatch_days: int = 0  # days the strategy's view differed from the ledger (it tampered)

    def as_result(self, initial_capital: float, benchmark_close: list[float | None] | None) -> dict[str, Any]:
        """The shape ``engine_svc.metrics.compute_metrics`` reads."""
        return {
            "initial_capital": initial_capital,
            "daily": [{"date": d, "total_value": v} for d, v in zip(self.dates, self.nav, strict=True)],
            "benchmark_close": benchmark_close, "trades": self.trades, "ex_rights": self.ex_rights,
        }


# ------------------------------------------------------------------------------------ trusted side
class _Ledger:
    def __init__(self, tape: MarketTape, config: BacktestConfig, params: dict[str, Any]) -> None:
        self.broker = Broker(tape, config)
        self.trader = Trader(self.broker, lambda _text: None)
        self.log = RunLog()
        self.outcome = TrialOutcome(params=params)

    @property
    def failed(self) -> bool:
        return self.outcome.failure is not None


class TrialsSession:
    """The trusted side of a batch of trials: one tape, one ledger per parameter set."""

    def __init__(self, panel: Panel, code: str, config: BacktestConfig, params: list[dict[str, Any]]) -> None:
        if not 1 <= len(params) <= MAX_TRIALS:
            raise ValueError(f"a batch runs 1 to {MAX_TRIALS} parameter sets, got {len(params)}")
        # The day loop, the tape and the feeds are a single run's; only the ledgers multiply.
        self.base = TrustedSession(panel, code, config)
        self.params = [dict(p) for p in params]
        self.ledgers = [_Ledger(self.base.tape, config.with_params(p), p) for p in self.params]

    def run(self, channel: Channel, progress: ProgressFn | None = None) -> list[TrialOutcome]:
        base, rows, tape = self.base, self.base.rows, self.base.tape
        for _ in range(rows.start):
            tape.advance()
        n = len(rows)
        step = max(1, -(-n // 100))
        init = {**base.init_message(), "trials": self.params}
        with paced_gc():
            warmup = base.feed(daywire.WARMUP, slice(0, rows.start)) if rows.start else None
            channel.start(init, warmup, base.feed(daywire.DAY, slice(rows.start, rows.start + 1)))
            try:
                for k, i in enumerate(rows):
                    tape.advance()
                    date = tape.dates_str[i]
                    for led in self.ledgers:
                        if not led.failed:
                            lines, _ = led.broker.open_day(i)
                            for line in lines:
                                led.log.add(date, line)
                    replies = self._receive(channel)
                    if i + 1 < rows.stop:
                        channel.send(base.feed(daywire.DAY, slice(i + 1, i + 2)))
                    for led, reply in zip(self.ledgers, replies, strict=True):
                        self._apply(led, i, reply)
                    if k % GC_YOUNG_EVERY == GC_YOUNG_EVERY - 1:
                        gc.collect(0)
                    if progress is not None and (k + 1) % step == 0 and k + 1 < n:
                        progress((k + 1) / n, date, float("nan"))
            finally:
                channel.close()
        for led in self.ledgers:
            if not led.failed:
                led.broker.expire_open()
            out = led.outcome
            out.trades, out.ex_rights, out.orders = led.broker.trades, led.broker.ex_rights, len(led.broker.orders)
            out.logs = led.log.result()
        if progress is not None:
            progress(1.0, tape.dates_str[rows.stop - 1], float("nan"))
        return [led.outcome for led in self.ledgers]

    def _receive(self, channel: Channel) -> list[daywire.Reply | dict[str, Any] | None]:
        try:
            return decode_replies(channel.receive(), len(self.ledgers), len(self.base.tape.symbols))
        except daywire.WireError as exc:
            raise ProtocolViolation(f"invalid day reply from the strategy process: {exc}") from None

    def _apply(self, led: _Ledger, i: int, reply: daywire.Reply | dict[str, Any] | None) -> None:
        if led.failed:
            return
        if isinstance(reply, dict):  # the trial's strategy failed today: its ledger stops here
            led.outcome.failure = reply
            return
        if reply is None:
            raise ProtocolViolation("a running trial sent no reply")
        b, tape = led.broker, self.base.tape
        date = tape.dates_str[i]
        led.trader.i = i
        mismatch: list[str] = []
        try:
            it.replay(led.trader, reply.records, reply.arrays, mismatch.append)
        except it.IntentError as exc:
            raise ProtocolViolation(f"invalid order intent from the strategy process: {exc}") from None
        for line in reply.logs:
            led.log.add(date, line)
        if mismatch or (reply.n_orders, reply.cash, reply.reserved) != (len(b.orders), b.cash, b.reserved):
            led.outcome.mismatch_days += 1
        led.outcome.dates.append(date)
        led.outcome.nav.append(b.total_value(i))


def decode_replies(buf: bytes | bytearray | memoryview, n_trials: int,
                   n_symbols: int) -> list[daywire.Reply | dict[str, Any] | None]:
    """Per trial: its Reply, its failure ({kind, message, line}) or None (failed before)."""
    mv = memoryview(buf)
    out: list[daywire.Reply | dict[str, Any] | None] = []
    off = 0
    for _ in range(n_trials):
        if off >= len(mv):
            raise daywire.WireError("batch reply too short")
        status = mv[off]
        off += 1
        if status == DONE:
            out.append(None)
            continue
        if status not in (OK, FAILED) or off + _LEN.size > len(mv):
            raise daywire.WireError("bad trial status")
        (size,) = _LEN.unpack_from(mv, off)
        off += _LEN.size
        body = mv[off : off + size]
        if len(body) != size:
            raise daywire.WireError("batch reply shorter than its lengths")
        off += size
        out.append(daywire.decode_reply(body, n_symbols) if status == OK else _failure(body))
    if off != len(mv):
        raise daywire.WireError("batch reply longer than its trials")
    return out


def _failure(body: memoryview) -> dict[str, Any]:
    try:
        raw = json.loads(bytes(body))
        kind, message, line = str(raw["kind"]), str(raw["message"])[:8000], int(raw.get("line") or 0)
    except (ValueError, KeyError, TypeError):
        raise daywire.WireError("bad trial failure") from None
    if kind not in ("strategy_error", "syntax_error"):
        raise daywire.WireError("bad trial failure kind")
    return {"kind": kind, "message": message, "line": line if 0 < line < 10**7 else 0}


# ------------------------------------------------------------------------------------ strategy side
class _Trial:
    def __init__(self, tape: MarketTape, config: BacktestConfig, cls: type, code: str, params: dict[str, Any]) -> None:
        self.mirror = Broker(tape, config, records=False)
        self.intents = it.DayIntents()
        self.logs: list[str] = []
        self.ctx = Context(tape, self.mirror, self._log, self.intents)
        self.failure: StrategyError | None = None
        self.done = False
        try:
            self.strategy = instantiate_strategy(cls, params, code)
        except StrategyError as exc:
            self.strategy, self.failure = None, exc
        self.ctx._strategy = self.strategy
        self.arrays_mode = getattr(self.strategy, "bar_mode", "dict") == "arrays"

    def _log(self, text: str) -> None:
        if len(self.logs) < MAX_LOG_LINES:
            self.logs.append(text)


class TrialsHost:
    """Every trial's strategy in the strategy's process (see the module docstring)."""

    def __init__(self, init: dict[str, Any]) -> None:
        config = BacktestConfig.from_dict(init["config"])
        self.code = init["code"]
        self.symbols = tuple(init["symbols"])
        daily_basic = bool(init["daily_basic"])
        self.n_channels = len(channels(daily_basic))
        self.tape = MarketTape.empty(self.symbols, int(init["n_rows"]), config.adjust_type, daily_basic)
        cls = load_strategy_class(self.code)  # one compile, one module body for every trial
        self.trials = [_Trial(self.tape, config.with_params(p), cls, self.code, p) for p in init["trials"]]

    def handle(self, message: bytes | bytearray | memoryview) -> list[bytes | memoryview] | None:
        i = take_feed(self.tape, message, self.n_channels)
        if i is None:
            return None
        parts: list[bytes | memoryview] = []
        for trial in self.trials:
            if trial.done:
                parts.append(bytes([DONE]))
                continue
            if trial.failure is None:
                _, resolved = trial.mirror.open_day(i)
                trial.intents.clear()
                trial.logs = []
                trial.ctx._set_day(i)
                try:
                    run_strategy_day(trial.strategy, trial.ctx, resolved, trial.arrays_mode, self.code)
                except StrategyError as exc:
                    if exc.exc_type in ("MemoryError", "SystemExit"):
                        raise
                    trial.failure = exc
            if trial.failure is not None:
                err = trial.failure
                text = json.dumps({"kind": err.kind, "message": err.text, "line": err.lineno or 0}).encode()
                parts += [bytes([FAILED]), _LEN.pack(len(text)), text]
                trial.done = True
                continue
            m = trial.mirror
            reply = daywire.encode_reply(trial.intents, trial.logs, len(m.orders), m.cash, m.reserved)
            parts += [bytes([OK]), _LEN.pack(sum(memoryview(p).nbytes for p in reply)), *reply]
        return parts
