"""The trust boundary, in a real sandboxed worker: the strategy can neither forge its result nor
see a bar after today.

The ledger stays in the trusted process; the strategy's process holds its strategy, the data up
to today and a mirror of its own portfolio. These strategies attack everything reachable there —
the context, the mirror broker, the engine's classes in ``sys.modules``, every object ``gc`` knows
— and the recorded orders, fills, daily NAV and metrics must equal an honest run that places the
same orders.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine_svc.engine.panel import BAR_FIELDS, Panel
from engine_svc.metrics import compute_metrics
from engine_svc.sandbox.api import run_in_sandbox

from .helpers import config_for, limits_for

N_DAYS, N_SYM = 40, 3

# Orders on a fixed schedule: nothing the strategy sees decides them, so an honest run and a
# hostile one must record the same thing.
FIXED = """\
import gc, sys
import numpy as np
from zquant.backtest.strategy import BaseStrategy

class Strategy(BaseStrategy):
    def initialize(self):
        self.k = 0

    def on_bar(self, context, bar_data):
        self.k += 1
        for j, symbol in enumerate(context.symbols):
            if (self.k + j) % 4 == 1:
                context.order(symbol, 300)
            elif (self.k + j) % 4 == 3:
                context.order_target(symbol, 100)
        if self.k == 20:
            context.order_target_percents(np.full(len(context.symbols), 0.1))
        self.attack(context)

    def attack(self, context):
        pass
"""

ATTACKS = {
    "mirror_cash_and_shares": """
        b = context._broker
        b.cash += 1e7
        b.qty[:] = 10 ** 6
        b.avg_cost[:] = 0.01
        b.trades.append({"date": "1999-01-01", "side": "sell", "price": "free"})
        b.orders.clear()
""",
    "rewrite_prices_it_holds": """
        t = context._tape
        for name in ("open", "high", "low", "close", "up_limit", "down_limit"):
            a = t.raw[name]
            a.flags.writeable = True
            a[:] = 0.01
        t.up_limit[:] = 1e9
        t.down_limit[:] = 0.0
""",
    "patch_engine_classes": """
        broker = sys.modules["engine_svc.engine.broker"]
        broker.Broker._match_buy = lambda self, o, i, date: None
        broker.Broker.total_value = lambda self, i: 1e12
        sys.modules["engine_svc.engine.rules"].commission = lambda v, r, m: 0.0
        sys.modules["engine_svc.engine.record"].daily_record = lambda b, i: {"total_value": 1e12}
""",
    "every_gc_object": """
        for obj in gc.get_objects():
            if isinstance(obj, np.ndarray) and obj.dtype == np.float64 and obj.size:
                try:
                    obj.flags.writeable = True
                    obj[...] = 1e6
                except (ValueError, TypeError):
                    pass
            elif isinstance(obj, dict) and "cash" in obj and isinstance(obj.get("cash"), float):
                obj["cash"] = 1e12
""",
}


def _panel(with_sentinels: bool = False) -> Panel:
    """A small market. With sentinels, every cell of every bar field holds a value that occurs
    nowhere else in the panel, so finding one identifies the day it belongs to."""
    dates = np.arange(np.datetime64("2024-01-02"), np.datetime64("2024-01-02") + N_DAYS)
    rng = np.random.default_rng(11)
    close = np.round(10 * np.cumprod(1 + rng.normal(0, 0.01, (N_DAYS, N_SYM)), axis=0), 2)
    opens = np.round(close * (1 + rng.normal(0, 0.004, (N_DAYS, N_SYM))), 2)
    bars = {f: np.full((N_DAYS, N_SYM), np.nan) for f in BAR_FIELDS}
    bars.update(open=opens, close=close, high=np.fmax(opens, close) + 0.05, low=np.fmin(opens, close) - 0.05,
                pre_close=np.vstack([close[:1], close[:-1]]), volume=np.full((N_DAYS, N_SYM), 1e6),
                amount=close * 1e6)
    if with_sentinels:
        cell = np.arange(N_DAYS * N_SYM, dtype=np.float64).reshape(N_DAYS, N_SYM)
        for k, f in enumerate(BAR_FIELDS):
            bars[f] = bars[f] + (k + 1) * 1e-7 + cell * 1e-9 if f in ("open", "high", "low", "close") else \
                (k + 1) * 1e7 + cell
    return Panel(dates=dates, symbols=("600000.SH", "000002.SZ", "300059.SZ"), bars=bars)


def _run(code: str, panel: Panel) -> dict:
    cfg = {**config_for(panel), "commission_rate": 0.0003, "min_commission": 5.0, "slippage_rate": 0.001}
    return run_in_sandbox(panel, code, cfg, limits=limits_for("plain", cpu_seconds=20, wall_seconds=60)).result


def _hostile(attack: str) -> str:
    body = "\n".join("    " + line if line.strip() else line for line in attack.strip("\n").splitlines())
    head = "    def attack(self, context):\n"
    return FIXED.replace(head + "        pass\n", head + body + "\n")


@pytest.fixture(scope="module")
def honest() -> dict:
    result = _run(FIXED, _panel())
    assert len(result["trades"]) > 20
    return result


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_tampering_in_the_strategy_process_changes_nothing_recorded(honest: dict, attack: str) -> None:
    hostile_code = _hostile(ATTACKS[attack])
    assert hostile_code != FIXED
    result = _run(hostile_code, _panel())
    for key in ("orders", "trades", "daily", "ex_rights"):
        assert result[key] == honest[key], key
    assert json.dumps(compute_metrics(result)) == json.dumps(compute_metrics(honest))


FUTURE_SCAN = """\
import gc, struct, sys, types
import numpy as np
from zquant.backtest.strategy import BaseStrategy

N_DAYS, N_SYM, N_FIELDS = {n_days}, {n_sym}, {n_fields}


def sentinels_after(row):
    # the volume/amount-style sentinel of every cell of every later day, any bar field
    cells = np.arange((row + 1) * N_SYM, N_DAYS * N_SYM, dtype=np.float64)
    return {{float((k + 1) * 1e7 + c) for k in range(N_FIELDS) for c in cells}}


class Strategy(BaseStrategy):
    def on_bar(self, context, bar_data):
        row = context._i
        if row not in (0, 7, 19, 38):
            return
        future = sentinels_after(row)
        wanted = np.array(sorted(future))
        packed = [struct.pack("<d", v) for v in wanted.tolist()][:2000]
        found = 0
        scanned = 0
        seen = {{id(future), id(wanted), id(packed)}}  # the scanner's own copies of what it looks for
        todo = list(gc.get_objects()) + list(sys.modules.values())
        while todo:
            obj = todo.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            scanned += 1
            if isinstance(obj, np.ndarray):
                if obj.dtype.kind == "f" and obj.size:
                    found += int(np.isin(obj.ravel(), wanted).sum())
                if obj.base is not None:
                    todo.append(obj.base)
            elif isinstance(obj, float):
                found += obj in future
            elif isinstance(obj, (bytes, bytearray, memoryview)):
                data = bytes(obj)
                found += sum(p in data for p in packed)
            elif isinstance(obj, dict):
                todo.extend(obj.values())
            elif isinstance(obj, (list, tuple, set, frozenset)):
                todo.extend(obj)
            elif isinstance(obj, types.ModuleType):
                todo.extend(vars(obj).values())
            else:
                try:
                    todo.extend(vars(obj).values())
                except Exception:  # no __dict__, or a library's odd attribute access
                    pass
        context.log("scan", row, scanned, found)
"""


def test_no_bar_after_today_is_reachable_in_the_strategy_process() -> None:
    panel = _panel(with_sentinels=True)
    code = FUTURE_SCAN.format(n_days=N_DAYS, n_sym=N_SYM, n_fields=len(BAR_FIELDS))
    result = _run(code, panel)
    scans = [line.split() for line in result["logs"] if " scan " in line]
    assert [int(s[2]) for s in scans] == [0, 7, 19, 38]
    assert all(int(s[3]) > 1000 for s in scans), scans  # it did look at every object it could reach
    assert [int(s[4]) for s in scans] == [0, 0, 0, 0], scans


def test_the_scan_finds_a_future_bar_when_one_is_there() -> None:
    """Control: the same scan does find future values in the direct (in-process) engine, where the
    whole panel is in memory — so the zeros above are a real absence, not a blind scan."""
    from engine_svc.engine.config import BacktestConfig
    from engine_svc.engine.runner import run_backtest

    panel = _panel(with_sentinels=True)
    code = FUTURE_SCAN.format(n_days=N_DAYS, n_sym=N_SYM, n_fields=len(BAR_FIELDS))
    cfg = BacktestConfig(**config_for(panel))
    result = run_backtest(panel, code, cfg)
    scans = [line.split() for line in result["logs"] if " scan " in line]
    assert int(scans[0][4]) > 0


def test_trials_in_one_worker_keep_the_trust_boundary(honest: dict) -> None:
    """A sweep's batch: several parameter sets in one worker, one of them tampering with its
    mirror and another trial's; each ledger still records exactly the honest run."""
    from engine_svc.sandbox.api import run_trials_in_sandbox

    code = _hostile("""
        if self.params.get("evil"):
            for obj in gc.get_objects():
                if type(obj).__name__ == "Broker":
                    obj.cash += 1e9
                    obj.qty[:] = 10 ** 7
""")
    panel = _panel()
    cfg = {**config_for(panel), "commission_rate": 0.0003, "min_commission": 5.0, "slippage_rate": 0.001}
    outcome = run_trials_in_sandbox(panel, code, cfg, [{}, {"evil": True}, {}],
                                    limits=limits_for("plain", cpu_seconds=20, wall_seconds=60))
    nav = [d["total_value"] for d in honest["daily"]]
    for trial in outcome.result:
        assert trial.failure is None
        assert trial.nav == nav and trial.trades == honest["trades"]
    assert outcome.result[1].mismatch_days > 0
