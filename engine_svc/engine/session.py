"""One backtest: the trusted day loop, and the strategy side it talks to.

``TrustedSession`` owns everything a result is made of — the market tape over the panel, the
broker (the ledger of record), valuation and the result — and runs the days:

    for each trading day T:
        the tape advances to T; holdings go through T's ex-rights events; yesterday's orders are
        matched at T's open                                   (Broker.open_day)
        the strategy side runs the strategy for T             (StrategySide.run_day)
        the portfolio is valued at T's close → one daily record

The strategy side is one of:

- ``DirectSide``: the strategy runs in this process against the ledger itself (the CLI and
  tests; the user's own code on the user's own machine).
- ``HostedSide`` (engine_svc, via ``engine_svc.sandbox``; ``LoopbackSide`` in-process for
  tests): the strategy runs in a ``StrategyHost`` that receives each day's raw data only after
  answering the previous day (``daywire``), keeps a mirror of its own portfolio from that data
  and its own orders (the same ``Broker`` code, so it can answer ``portfolio.cash``, order
  outcomes and ``on_order_status`` at once), and answers with the day's order intents. The
  trusted side replays the intents on the ledger (``intents.replay``). Nothing the strategy does
  to objects in its process — its mirror, its tape, the engine's classes — reaches the ledger
  except as order calls, and a bar after T does not exist there. The host's checksum (order
  count, cash) is compared with the ledger every day; a difference means the strategy tampered
  with its own view and is noted in the run's log (the ledger's result stands).

While the strategy side works on day T+1 the trusted side replays day T, values it and matches
T+1 (it sends day T+1's data as soon as day T's reply is in), so the two processes overlap.
"""

from __future__ import annotations

import gc
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import numpy as np

from engine_svc.engine import daywire
from engine_svc.engine import intents as it
from engine_svc.engine.broker import Broker
from engine_svc.engine.config import BacktestConfig
from engine_svc.engine.market import DerivedRows, MarketTape, channels, has_adj_factor
from engine_svc.engine.orders import Order
from engine_svc.engine.panel import Panel
from engine_svc.engine.record import MAX_LOG_LINES, RunLog, build_result, daily_record
from engine_svc.engine.strategy_api import Context
from engine_svc.engine.strategy_loader import StrategyError, instantiate_strategy, load_strategy_class
from engine_svc.engine.trader import Trader

ProgressFn = Callable[[float, str, float], None]

GC_YOUNG_EVERY = 32  # days between collections of the youngest generation
FEED_CHUNK = 64  # rows gathered at once for the day feeds


# ------------------------------------------------------------------------------------ helpers
def select_symbols(panel: Panel, symbols: tuple[str, ...]) -> Panel:
    if tuple(panel.symbols) == tuple(symbols):
        return panel
    missing = [s for s in symbols if s not in panel.symbols]
    if missing:
        raise ValueError(f"symbols not in the market data: {', '.join(missing)}")
    return panel.slice(symbols=list(symbols))


def day_rows(panel: Panel, start: str, end: str) -> range:
    """Row indices of the trading days to run; rows before ``start`` stay visible to history()."""
    lo = int(np.searchsorted(panel.dates, np.datetime64(start, "D"), "left"))
    hi = int(np.searchsorted(panel.dates, np.datetime64(end, "D"), "right"))
    if hi <= lo:
        raise ValueError(f"no trading days between {start} and {end} in the market data")
    return range(lo, hi)


_gc_lock = threading.Lock()
_gc_users = 0
_gc_was_enabled = False


@contextmanager
def paced_gc() -> Iterator[None]:
    """Automatic GC off while runs are active, collections paced by the day loop instead.

    The result grows all run long and CPython's automatic full collections keep rescanning it
    (measured: ~25% of a cross-sectional run on 300 symbols). The loop collects the youngest
    generation every GC_YOUNG_EVERY days, which frees short-lived cyclic garbage; survivors stay
    in the middle generation, so the first automatic collection after the run scans only what the
    run made. Counted, so concurrent runs in one service process restore the state once, last.
    """
    global _gc_users, _gc_was_enabled
    with _gc_lock:
        if _gc_users == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_users += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_users -= 1
            if _gc_users == 0 and _gc_was_enabled:
                gc.enable()


def init_message(panel: Panel, code: str, config: BacktestConfig, n_rows: int) -> dict[str, Any]:
    """Everything a strategy host needs besides the daily data (JSON-ready); ``panel`` holds the
    run's symbols only, ``n_rows`` is the end of the run's rows."""
    return {
        "code": code,
        "config": config.to_dict(),
        "symbols": list(panel.symbols),
        "n_rows": n_rows,
        "daily_basic": panel.daily_basic is not None,
    }


def run_strategy_day(strategy: Any, ctx: Context, resolved: list[Order], arrays_mode: bool, code: str) -> None:
    """Tell the strategy about resolved orders, then call on_bar. Only calls into strategy code
    are guarded: an engine bug must not pose as a strategy error. MemoryError passes through so
    the sandbox can report the limit."""
    on_status = getattr(strategy, "on_order_status", None)
    bars = ctx._bar_arrays() if arrays_mode else ctx._bar_dict()
    try:
        if on_status is not None:
            for o in resolved:
                on_status(ctx, o)
        strategy.on_bar(ctx, bars)
    except MemoryError:
        raise
    except (Exception, SystemExit) as exc:
        raise StrategyError.from_exception(exc, code) from None


def load_strategy(code: str, params: dict[str, Any]) -> tuple[Any, bool]:
    """(strategy instance, arrays mode); StrategyError when it does not load."""
    strategy = instantiate_strategy(load_strategy_class(code), params, code)
    return strategy, getattr(strategy, "bar_mode", "dict") == "arrays"


# ------------------------------------------------------------------------------------ trusted side
class StrategySide(Protocol):
    def begin(self, session: TrustedSession) -> None: ...
    def run_day(self, session: TrustedSession, k: int, i: int, resolved: list[Order]) -> None: ...
    def end(self) -> None: ...


class TrustedSession:
    def __init__(self, panel: Panel, code: str, config: BacktestConfig) -> None:
        self.panel = select_symbols(panel, config.symbols)
        self.rows = day_rows(self.panel, config.start_date, config.end_date)
        self.code = code
        self.config = config
        self.tape = MarketTape.over(self.panel, config.adjust_type)
        self.log = RunLog()
        self.broker = Broker(self.tape, config)
        self.trader = Trader(self.broker, lambda _text: None)  # replay: the strategy sent its notes
        self.mismatches = 0
        self._chunk: tuple[int, DerivedRows | None] = (0, None)

    def note_mismatch(self, i: int, why: str) -> None:
        """The strategy's view of its portfolio disagreed with the ledger (it tampered with its
        own process): noted once in the log, counted; the ledger's outcome stands."""
        self.mismatches += 1
        if self.mismatches == 1:
            self.log.add(self.tape.dates_str[i], f"engine: the strategy's view of its portfolio differs from the "
                                                 f"ledger ({why}); the ledger is what is recorded")

    def run(self, side: StrategySide, progress: ProgressFn | None = None) -> dict[str, Any]:
        rows = self.rows
        tape, broker, log = self.tape, self.broker, self.log
        for _ in range(rows.start):  # warm-up rows: visible to history(), not traded
            tape.advance()
        daily: list[dict[str, Any]] = []
        n = len(rows)
        step = max(1, -(-n // 100))  # ceil: at most ~100 progress calls
        with paced_gc():
            side.begin(self)
            try:
                for k, i in enumerate(rows):
                    tape.advance()
                    lines, resolved = broker.open_day(i)
                    for line in lines:
                        log.add(tape.dates_str[i], line)
                    side.run_day(self, k, i, resolved)
                    rec = daily_record(broker, i)
                    daily.append(rec)
                    if k % GC_YOUNG_EVERY == GC_YOUNG_EVERY - 1:
                        gc.collect(0)
                    if progress is not None and (k + 1) % step == 0 and k + 1 < n:
                        progress((k + 1) / n, rec["date"], rec["total_value"])
            finally:
                side.end()
            broker.expire_open()
            if progress is not None:
                progress(1.0, daily[-1]["date"], daily[-1]["total_value"])
            bench = self.panel.benchmark
            applied = has_adj_factor(self.panel) and self.config.adjust_type != "none"
            return build_result(
                data_hash=self.panel.data_hash(), symbols=self.panel.symbols,
                benchmark=bench.symbol if bench is not None else None,
                benchmark_close=None if bench is None else bench.close[rows.start : rows.stop],
                adjust_type=self.config.adjust_type, adjustment_applied=applied,
                initial_capital=self.config.initial_capital, daily=daily, broker=broker, log=log,
            )

    # -- what a hosted strategy side needs from the trusted side ---------------------------------
    def init_message(self) -> dict[str, Any]:
        """Everything the strategy host needs besides the daily data (JSON-ready)."""
        return init_message(self.panel, self.code, self.config, self.rows.stop)

    def feed(self, kind: int, rows: slice) -> list[bytes | memoryview]:
        if kind == daywire.WARMUP:
            return daywire.encode_feed(kind, rows.start, self.tape.rows(rows.start, rows.stop))
        # Day feeds are cut from blocks of FEED_CHUNK rows, gathered in one vectorised pass.
        i = rows.start
        lo, chunk = self._chunk
        if chunk is None or not lo <= i < lo + len(chunk.dates):
            lo, chunk = i, self.tape.rows(i, min(i + FEED_CHUNK, self.rows.stop))
            self._chunk = lo, chunk
        k = i - lo
        day = DerivedRows(
            dates=chunk.dates[k : k + 1], block=chunk.block[k : k + 1], is_st=chunk.is_st[k : k + 1],
            ex_rights=[e for e in chunk.ex_rights if e[0] == i],
            first_factor=[e for e in chunk.first_factor if e[0] == i],
            rescale=[e for e in chunk.rescale if e[0] == i],
        )
        return daywire.encode_feed(kind, i, day)

    def apply_reply(self, i: int, reply: daywire.Reply) -> None:
        """Replay day ``i``'s intents on the ledger, take the strategy's log lines, compare."""
        self.trader.i = i
        it.replay(self.trader, reply.records, reply.arrays, lambda why: self.note_mismatch(i, why))
        date = self.tape.dates_str[i]
        for line in reply.logs:
            self.log.add(date, line)
        b = self.broker
        if (reply.n_orders, reply.cash, reply.reserved) != (len(b.orders), b.cash, b.reserved):
            self.note_mismatch(i, f"orders {reply.n_orders} vs {len(b.orders)}, cash {reply.cash!r} vs {b.cash!r}")


class DirectSide:
    """The strategy in this process, against the ledger itself."""

    def begin(self, session: TrustedSession) -> None:
        self.strategy, self.arrays_mode = load_strategy(session.code, session.config.params)
        tape, log = session.tape, session.log
        self.ctx = Context(tape, session.broker, lambda text: log.add(tape.dates_str[self.ctx._i], text))
        self.ctx._strategy = self.strategy

    def run_day(self, session: TrustedSession, k: int, i: int, resolved: list[Order]) -> None:
        self.ctx._set_day(i)
        run_strategy_day(self.strategy, self.ctx, resolved, self.arrays_mode, session.code)

    def end(self) -> None:
        pass


class Channel(Protocol):
    """How a HostedSide reaches its StrategyHost: the sandbox's pipes, or a direct call."""

    def start(self, init: dict[str, Any], warmup: list[bytes | memoryview] | None,
              first_day: list[bytes | memoryview]) -> None: ...
    def send(self, parts: list[bytes | memoryview]) -> None: ...
    def receive(self) -> bytes | bytearray | memoryview: ...
    def close(self) -> None: ...


class HostedSide:
    """The trusted half of a strategy running in a StrategyHost elsewhere."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    def begin(self, session: TrustedSession) -> None:
        rows = session.rows
        warmup = session.feed(daywire.WARMUP, slice(0, rows.start)) if rows.start else None
        self.channel.start(session.init_message(), warmup, session.feed(daywire.DAY, slice(rows.start, rows.start + 1)))

    def run_day(self, session: TrustedSession, k: int, i: int, resolved: list[Order]) -> None:
        # Tomorrow's feed is built while the strategy works on today (it leaves only once today's
        # reply is in); with the reply in, tomorrow goes out first, so the strategy starts on it
        # while we decode and replay today.
        tomorrow = session.feed(daywire.DAY, slice(i + 1, i + 2)) if i + 1 < session.rows.stop else None
        body = self.channel.receive()
        if tomorrow is not None:
            self.channel.send(tomorrow)
        try:
            reply = daywire.decode_reply(body, len(session.tape.symbols))
        except daywire.WireError as exc:
            raise ProtocolViolation(f"invalid day reply from the strategy process: {exc}") from None
        try:
            session.apply_reply(i, reply)
        except it.IntentError as exc:
            raise ProtocolViolation(f"invalid order intent from the strategy process: {exc}") from None

    def end(self) -> None:
        self.channel.close()


class ProtocolViolation(Exception):
    """The strategy's process sent something the strategy API cannot produce."""


# ------------------------------------------------------------------------------------ strategy side
def take_feed(tape: MarketTape, message: bytes | bytearray | memoryview, n_channels: int) -> int | None:
    """Append a feed's rows to the strategy side's tape: the row of the day to run, or None for
    warm-up rows. Also paces the garbage collector (the worker runs with automatic GC off)."""
    feed = daywire.decode_feed(message, len(tape.symbols), n_channels)
    n = len(feed.rows.dates)
    if feed.first_row != tape.t + 1 or (feed.kind == daywire.DAY and n != 1):
        raise daywire.WireError("feed rows out of order")
    tape.append(feed.rows)
    for _ in range(n):
        tape.advance()
    if feed.kind != daywire.DAY:
        return None
    if (tape.t + 1) % GC_YOUNG_EVERY == 0:
        gc.collect(0)
    return tape.t


class StrategyHost:
    """The strategy's side of a hosted run: its own tape (data up to today only), a mirror of
    its portfolio, the Context and the strategy. Runs in the sandboxed worker."""

    def __init__(self, init: dict[str, Any]) -> None:
        config = BacktestConfig.from_dict(init["config"])
        self.code = init["code"]
        self.symbols = tuple(init["symbols"])
        self.daily_basic = bool(init["daily_basic"])
        self.n_channels = len(channels(self.daily_basic))
        self.tape = MarketTape.empty(self.symbols, int(init["n_rows"]), config.adjust_type, self.daily_basic)
        self.mirror = Broker(self.tape, config, records=False)
        self.intents = it.DayIntents()
        self.logs: list[str] = []
        self.ctx = Context(self.tape, self.mirror, self._log, self.intents)
        self.strategy, self.arrays_mode = load_strategy(self.code, config.params)
        self.ctx._strategy = self.strategy

    def _log(self, text: str) -> None:
        if len(self.logs) < MAX_LOG_LINES:
            self.logs.append(text)

    def handle(self, message: bytes | bytearray | memoryview) -> list[bytes | memoryview] | None:
        """Take a feed; for a run day, run the strategy and return the reply to send."""
        i = take_feed(self.tape, message, self.n_channels)
        if i is None:
            return None
        _, resolved = self.mirror.open_day(i)
        self.intents.clear()
        self.logs = []
        self.ctx._set_day(i)
        run_strategy_day(self.strategy, self.ctx, resolved, self.arrays_mode, self.code)
        m = self.mirror
        return daywire.encode_reply(self.intents, self.logs, len(m.orders), m.cash, m.reserved)


class Host(Protocol):
    def handle(self, message: bytes | bytearray | memoryview) -> list[bytes | memoryview] | None: ...


class LoopbackChannel:
    """A strategy host in this process, reached through the same bytes as over the sandbox's
    pipes (tests run every engine test this way to prove the hosted path gives the same result)."""

    def __init__(self, host: Callable[[dict[str, Any]], Host] | None = None) -> None:
        self.make_host: Callable[[dict[str, Any]], Host] = host or StrategyHost
        self.host: Host | None = None
        self.replies: list[bytes] = []

    def start(self, init: dict[str, Any], warmup: list[bytes | memoryview] | None,
              first_day: list[bytes | memoryview]) -> None:
        self.host = self.make_host(json.loads(json.dumps(init)))
        if warmup is not None:
            self.send(warmup)
        self.send(first_day)

    def send(self, parts: list[bytes | memoryview]) -> None:
        assert self.host is not None
        reply = self.host.handle(b"".join(bytes(p) for p in parts))
        if reply is not None:
            self.replies.append(b"".join(bytes(p) for p in reply))

    def receive(self) -> bytes:
        return self.replies.pop(0)

    def close(self) -> None:
        self.host = None
