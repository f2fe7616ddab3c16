"""The zquant strategy API, data views (adjustment, history, daily_basic), errors, determinism
and the cross-sectional arrays mode."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from engine_svc.engine import ENGINE_VERSION
from engine_svc.engine.config import BacktestConfig
from engine_svc.engine.errors import StrategyError
from engine_svc.engine.runner import RESULT_KEYS, run_backtest

D4 = ["2020-01-02", "2020-01-03", "2020-01-06", "2020-01-07"]
HEADER = "from zquant.backtest.context import Context\nfrom zquant.backtest.strategy import BaseStrategy\n"


def code(src: str) -> str:
    return HEADER + textwrap.dedent(src)


def test_result_shape_and_metadata(make_panel, run):
    p = make_panel(["600000.SH"], D4, open=[[10.0]] * 4, benchmark=("000300.SH", [3000.0, math.nan, 3010.0, 3020.0]))
    res = run(p, code("class Strategy(BaseStrategy):\n    pass\n"))
    assert tuple(res) == RESULT_KEYS
    assert res["engine_version"] == ENGINE_VERSION and res["data_hash"] == p.data_hash()
    assert (res["start_date"], res["end_date"], res["symbols"]) == ("2020-01-02", "2020-01-07", ["600000.SH"])
    assert res["benchmark"] == "000300.SH"
    assert res["benchmark_close"] == [3000.0, None, 3010.0, 3020.0]
    assert [d["date"] for d in res["daily"]] == D4
    assert all(d["total_value"] == 100_000.0 for d in res["daily"])
    json.dumps(res, allow_nan=False)  # strictly JSON


def test_runs_only_the_configured_date_range_but_history_sees_earlier_rows(make_panel):
    p = make_panel(["600000.SH"], D4, open=[[10.0], [11.0], [12.0], [13.0]])
    src = code('''
    class Strategy(BaseStrategy):
        def on_bar(self, context, bar_data):
            context.log(context.history("600000.SH", "close", 3).tolist())
    ''')
    cfg = BacktestConfig(start_date="2020-01-03", end_date="2020-01-06", symbols=("600000.SH",))
    res = run_backtest(p, src, cfg)
    assert [d["date"] for d in res["daily"]] == ["2020-01-03", "2020-01-06"]
    assert res["logs"] == ["2020-01-03 [10.0, 11.0]", "2020-01-06 [10.0, 11.0, 12.0]"]


def test_zquant_imports_and_types(make_panel, run):
    p = make_panel(["600000.SH"], D4, open=[[10.0]] * 4)
    src = code('''
    import datetime
    from zquant.backtest.context import Context as C2
    class Strategy(BaseStrategy):
        def on_bar(self, context, bar_data):
            assert isinstance(context, Context) and C2 is Context
            assert isinstance(context.current_date, datetime.date)
            context.log(type(bar_data).__name__, context.current_date.isoformat() == context.current_date_str)
    ''')
    res = run(p, src)
    assert res["logs"][0] == "2020-01-02 dict True"


def test_zquant_alias_keeps_the_real_stub_package_importable():
    # Fresh interpreter: install the aliases first, then import a generated stub module.
    prog = (
        "from engine_svc.engine.strategy_loader import install_zquant_aliases\n"
        "install_zquant_aliases()\n"
        "from zquant.backtest.strategy import BaseStrategy\n"
        "import importlib.util\n"
        "if importlib.util.find_spec('zquant.backtest.v1') is not None:\n"
        "    import zquant.backtest.v1\n"
        "print('ok', BaseStrategy.__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok BaseStrategy"


def test_initialize_runs_exactly_once_with_params(make_panel, run):
    p = make_panel(["600000.SH"], D4, open=[[10.0]] * 4)
    src = code('''
    CALLS = []
    class Strategy(BaseStrategy):
        def initialize(self):
            CALLS.append(1)
            self.window = self.params.get("window", 20)
        def on_bar(self, context, bar_data):
            context.log(len(CALLS), self.window)
    ''')
    res = run(p, src, params={"window": 5})
    assert res["logs"] == [f"{d} 1 5" for d in D4]


def test_get_position_of_unheld_symbol_and_order_target_value_on_day_one(make_panel, run):
    p = make_panel(["600000.SH", "000002.SZ"], D4, open=[[10.0, 20.0]] * 4, close=[[10.0, 25.0]] * 4)
    src = code('''
    class Strategy(BaseStrategy):
        def on_bar(self, context, bar_data):
            if context.current_date_str == "2020-01-02":
                pos = context.portfolio.get_position("000002.SZ")
                held = "000002.SZ" in context.portfolio.positions
                context.log(pos.quantity, pos.current_price, pos.market_value, held)
                context.order_target_value("000002.SZ", 50_000)
                context.order_target_value("000002.SZ", 50_000)  # open order counted: no second order
            if context.current_date_str == "2020-01-03":
                pos = context.portfolio.get_position("000002.SZ")
                context.log(pos.quantity, pos.avg_cost, pos.current_price, pos.profit)
    ''')
    res = run(p, src)
    # day one: zero position priced at today's close (25.0), so 50 000 / 25 = 2000 shares
    assert res["logs"][0] == "2020-01-02 0 25.0 0.0 False"
    assert len(res["orders"]) == 1
    o = res["orders"][0]
    assert (o["quantity"], o["filled_quantity"], o["fill_price"]) == (2000, 2000, 20.0)
    assert res["logs"][1] == "2020-01-03 2000 20.0 25.0 10000.0"


def test_order_target_percent_and_percent(make_panel, run):
    p = make_panel(["600000.SH"], D4, open=[[10.0]] * 4)
    src = code('''
    class Strategy(BaseStrategy):
        def on_bar(self, context, bar_data):
            d = context.current_date_str
            if d == "2020-01-02":
                context.order_percent("600000.SH", 0.25)       # 25 000 / 10 → 2500
            if d == "2020-01-03":
                context.order_target_percent("600000.SH", 0.1) # target 1000 → sell 1500
            if d == "2020-01-06":
                context.order_target("600000.SH", 0)           # sell the rest
    ''')
    res = run(p, src)
    assert [(o["side"], o["filled_quantity"]) for o in res["orders"]] == [("buy", 2500), ("sell", 1500), ("sell", 1000)]
    assert res["daily"][-1]["positions"] == [] and res["daily"][-1]["cash"] == 100_000.0


def test_history_never_sees_tomorrow_and_lists_give_2d(make_panel, run):
    p = make_panel(["600000.SH", "000002.SZ"], D4, open=[[1.0, 5.0], [2.0, 6.0], [3.0, 7.0], [4.0, 8.0]])
    src = code('''
    class Strategy(BaseStrategy):
        def on_bar(self, context, bar_data):
            h = context.history("600000.SH", "close", 2)
            m = context.history(["000002.SZ", "600000.SH"], "open", 3)
            context.log(h.tolist(), m.shape, m[-1].tolist())
    ''')
    res = run(p, src)
    assert res["logs"] == [
        "2020-01-02 [1.0] (1, 2) [5.0, 1.0]",
        "2020-01-03 [1.0, 2.0] (2, 2) [6.0, 2.0]",
        "2020-01-06 [2.0, 3.0] (3, 2) [7.0, 3.0]",
        "2020-01-07 [3.0, 4.0] (3, 2) [8.0, 4.0]",
    ]


ADJ_SRC = code('''
class Strategy(BaseStrategy):
    def on_bar(self, context, bar_data):
        b = bar_data["600000.SH"]
        context.log(b["open"], b["close"], context.history("600000.SH", "close", 4).tolist())
        if context.current_date_str == "2020-01-02":
            context.order("600000.SH", 100)
        if context.current_date_str == "2020-01-06":
            context.order("600000.SH", 100)
''')


@pytest.mark.parametrize(
    ("adjust_type", "applied", "first", "closes"),
    [
        # raw 20, 20, 10, 10 with adj_factor 1, 1, 2, 2 (a 1:1 bonus issue on 01-06)
        ("none", False, 20.0, [20.0, 20.0, 10.0, 10.0]),
        # point in time: on 01-02 the bonus issue has not happened, so 20 is 20; on 01-07 the
        # history is price · adj_d / adj_T (2)
        ("qfq", True, 20.0, [10.0, 10.0, 10.0, 10.0]),
        ("hfq", True, 20.0, [20.0, 20.0, 20.0, 20.0]),  # price · adj_d
    ],
)
def test_adjusted_views_change_what_the_strategy_sees_not_the_fills(make_panel, run, adjust_type, applied, first,
                                                                   closes):
    p = make_panel(["600000.SH"], D4, open=[[20.0], [20.0], [10.0], [10.0]], adj_factor=[[1.0], [1.0], [2.0], [2.0]],
                   pre_close=[[20.0], [20.0], [10.0], [10.0]])
    res = run(p, ADJ_SRC, adjust_type=adjust_type)
    assert res["adjustment_applied"] is applied
    assert res["price_view"] == {"none": "raw", "qfq": "qfq-point-in-time", "hfq": "hfq"}[adjust_type]
    assert res["logs"][-1] == f"2020-01-07 {closes[-1]} {closes[-1]} {closes}"
    assert res["logs"][0] == f"2020-01-02 {first} {first} {[first]}"
    # fills and valuation are on unadjusted prices whatever the view
    assert [t["price"] for t in res["trades"]] == [20.0, 10.0]
    assert res["daily"][1]["positions"][0]["close"] == 20.0


def test_without_adj_factor_all_views_are_identical(make_panel, run):
    p = make_panel(["600000.SH"], D4, open=[[20.0], [20.0], [10.0], [10.0]])
    results = [run(p, ADJ_SRC, adjust_type=a) for a in ("none", "qfq", "hfq")]
    assert all(r["adjustment_applied"] is False for r in results)
    assert results[0]["logs"] == results[1]["logs"] == results[2]["logs"]


def test_get_daily_basic(make_panel, run):
    nan = math.nan
    p = make_panel(["600000.SH"], D4, open=[[10.0]] * 4,
                   daily_basic={"pe": [[10.0], [11.0], [nan], [13.0]], "pb": [[1.0], [1.1], [1.2], [1.3]]})
    src = code('''
    class Strategy(BaseStrategy):
        def on_bar(self, context, bar_data):
            if context.current_date_str == "2020-01-06":
                today = context.get_daily_basic("600000.SH")
                before = context.get_daily_basic("600000.SH", "20200102")
                context.log(today["pe"], today["pb"], today["circ_mv"], before["pe"], len(today))
                context.log(context.get_daily_basic("600000.SH", "2020-01-04"))  # not a trading day
                context.get_daily_basic("600000.SH", "2020-01-07")  # tomorrow: refused
    ''')
    with pytest.raises(StrategyError) as ei:
        run(p, src)
    assert "after the current date" in ei.value.message
    # the logs up to the failure are not part of the error; re-run without the look-ahead call
    res = run(p, src.replace('context.get_daily_basic("600000.SH", "2020-01-07")', "pass"))
    assert res["logs"] == ["2020-01-06 None 1.2 None 10.0 15", "2020-01-06 None"]


def test_get_daily_basic_without_data_is_none(make_panel, run):
    p = make_panel(["600000.SH"], D4, open=[[10.0]] * 4)
    src = code('''
    class Strategy(BaseStrategy):
        def on_bar(self, context, bar_data):
            context.log(context.get_daily_basic("600000.SH"))
    ''')
    assert run(p, src)["logs"][0] == "2020-01-02 None"


def test_strategy_exception_carries_strategy_lines_only(make_panel, run):
    p = make_panel(["600000.SH"], D4, open=[[10.0]] * 4)
    src = code('''
    class Strategy(BaseStrategy):
        def helper(self, bar_data):
            return bar_data["MISSING"]
        def on_bar(self, context, bar_data):
            if context.current_date_str == "2020-01-03":
                self.helper(bar_data)
    ''')
    with pytest.raises(StrategyError) as ei:
        run(p, src)
    err = ei.value
    lines = src.splitlines()
    assert err.exc_type == "KeyError" and err.message == "'MISSING'"
    assert lines[err.lineno - 1].strip() == 'return bar_data["MISSING"]'
    text = "\n".join(err.traceback_lines)
    assert "self.helper(bar_data)" in text and 'return bar_data["MISSING"]' in text
    assert "engine_svc" not in text and "runner.py" not in text
    assert err.text.startswith("KeyError: 'MISSING'\n") and err.kind == "strategy_error"


def test_error_inside_a_context_call_points_at_the_strategy_line(make_panel, run):
    p = make_panel(["600000.SH"], D4, open=[[10.0]] * 4)
    src = code('''
    class Strategy(BaseStrategy):
        def on_bar(self, context, bar_data):
            context.order("999999.SH", 100)
    ''')
    with pytest.raises(StrategyError) as ei:
        run(p, src)
    assert ei.value.exc_type == "ValueError" and "999999.SH" in ei.value.message
    assert src.splitlines()[ei.value.lineno - 1].strip() == 'context.order("999999.SH", 100)'


@pytest.mark.parametrize(
    ("src", "exc_type", "lineno"),
    [
        ("x = 1\ndef broken(:\n", "SyntaxError", 2),
        ("x = 1\n", "StrategyDefinitionError", None),
        ("import math\nclass Strategy:\n    def __init__(self, params=None):\n        raise RuntimeError('boom')\n",
         "RuntimeError", 4),
        ("raise ImportError('no module')\n", "ImportError", 1),
    ],
)
def test_load_failures_are_strategy_errors(make_panel, run, src, exc_type, lineno):
    p = make_panel(["600000.SH"], D4, open=[[10.0]] * 4)
    with pytest.raises(StrategyError) as ei:
        run(p, src)
    assert ei.value.exc_type == exc_type
    assert ei.value.lineno == lineno


def _random_panel(make_panel, n_sym: int = 6, n_days: int = 60, seed: int = 7):
    rng = np.random.default_rng(seed)
    rets = rng.normal(0.0, 0.03, size=(n_days, n_sym))
    close = np.round(10 * np.exp(np.cumsum(rets, axis=0)), 2)
    open_ = np.round(close * (1 + rng.normal(0, 0.03, size=close.shape)), 2)  # gaps: limit days too
    open_[20:23, 1] = np.nan  # a suspension
    dates = [str(d) for d in np.busday_offset("2019-01-02", np.arange(n_days), roll="forward")]
    syms = ["600000.SH", "000002.SZ", "300059.SZ", "688001.SH", "601318.SH", "000651.SZ"]
    syms += [f"{600100 + k}.SH" if k % 3 else f"{688100 + k}.SH" for k in range(n_sym - len(syms))]
    return make_panel(syms[:n_sym], dates, open=open_.tolist(), close=close.tolist())


DICT_MA = code('''
class Strategy(BaseStrategy):
    def initialize(self):
        self.n = self.params.get("n", 5)
        self.gross = self.params.get("gross", 1.0)
    def on_bar(self, context, bar_data):
        syms = context.symbols
        hist = context.history(list(syms), "close", self.n)
        if hist.shape[0] < self.n:
            return
        last = hist[-1]
        ma = hist.mean(axis=0)
        picks = [s for k, s in enumerate(syms) if s in bar_data and last[k] > ma[k]]
        w = {s: (self.gross / len(picks) if s in picks else 0.0) for s in syms if s in bar_data}
        total = context.portfolio.total_value
        sells, buys = [], []
        for s in syms:
            if s not in w:
                continue
            pos = context.portfolio.get_position(s)
            target = int(total * w[s] / pos.current_price)
            (sells if target < pos.quantity else buys).append(s)
        for s in sells + buys:
            context.order_target_percent(s, w[s])
''')

ARRAYS_MA = code('''
import numpy as np
class Strategy(BaseStrategy):
    bar_mode = "arrays"
    def initialize(self):
        self.n = self.params.get("n", 5)
        self.gross = self.params.get("gross", 1.0)
    def on_bar(self, context, bars):
        hist = context.history_matrix("close", self.n)
        if hist.shape[0] < self.n:
            return
        up = bars.has_bar & (bars.close > hist.mean(axis=0))
        k = int(up.sum())
        w = np.where(up, self.gross / max(k, 1), 0.0)
        w[~bars.has_bar] = np.nan          # leave symbols without a bar alone
        context.order_target_percents(w)
''')


def test_arrays_mode_gives_the_same_fills_as_dict_mode(make_panel, run):
    p = _random_panel(make_panel)
    kw = {"commission_rate": 0.0003, "min_commission": 5.0, "tax_rate": 0.001, "slippage_rate": 0.001}
    a = run(p, DICT_MA, **kw)
    b = run(p, ARRAYS_MA, **kw)
    assert len(a["trades"]) > 20  # the comparison means something
    assert a["orders"] == b["orders"]
    assert a["trades"] == b["trades"]
    assert a["daily"] == b["daily"]


@pytest.mark.parametrize(("capital", "gross"), [(100_000.0, 1.0), (3_000_000.0, 1.0), (30_000_000.0, 0.5)])
def test_arrays_mode_batches_give_the_same_result_as_per_order(make_panel, run, monkeypatch, capital, gross):
    # 40 symbols: the vectorised batch paths (engine_svc.engine.batch) are taken when no cash
    # cut is possible and the per-order fallback otherwise; either way the result must be
    # byte-identical to the dict strategy's per-order path.
    from engine_svc.engine import batch

    used: dict[str, int] = {}

    def counting(name):
        real = getattr(batch, name)

        def wrapper(*a, **k):
            out = real(*a, **k)
            key = f"{name}:{'fast' if out not in (None, False) else 'fallback'}"
            used[key] = used.get(key, 0) + 1
            return out
        return wrapper

    for name in ("submit_buys", "match_sells", "match_buys"):
        monkeypatch.setattr(batch, name, counting(name))
    p = _random_panel(make_panel, n_sym=40, n_days=80, seed=3)
    kw = {"commission_rate": 0.0003, "min_commission": 5.0, "tax_rate": 0.001, "slippage_rate": 0.001,
          "initial_capital": capital, "params": {"gross": gross}}
    monkeypatch.setattr(batch, "BATCH_MIN", 10**9)  # reference: every order one by one
    reference = json.dumps(run(p, DICT_MA, **kw))
    monkeypatch.setattr(batch, "BATCH_MIN", 8)
    assert json.dumps(run(p, DICT_MA, **kw)) == reference  # batch matching only
    used.clear()
    assert json.dumps(run(p, ARRAYS_MA, **kw)) == reference  # batch submission and matching
    assert used.get("match_sells:fast", 0) > 0 and used.get("match_buys:fast", 0) > 0
    if gross < 1:  # half the capital stays free: every buy batch is covered at submission
        assert used.get("submit_buys:fast", 0) > 0
    if capital == 100_000.0:  # small capital: lots and cash cuts force the per-order path
        assert used.get("submit_buys:fallback", 0) > 0


def test_arrays_mode_bar_object(make_panel, run):
    p = make_panel(["600000.SH", "000002.SZ"], D4, open=[[10.0, math.nan], [11.0, 5.0], [12.0, 6.0], [13.0, 7.0]])
    src = code('''
    class Strategy(BaseStrategy):
        bar_mode = "arrays"
        def on_bar(self, context, bars):
            context.log(bars.symbols, bars.has_bar.tolist(), bars.close.tolist(), bars.date_str,
                        bars.open.flags.writeable)
    ''')
    res = run(p, src)
    assert res["logs"][0] == "2020-01-02 ('600000.SH', '000002.SZ') [True, False] [10.0, nan] 2020-01-02 False"


def test_deterministic_json(make_panel, run):
    p = _random_panel(make_panel, seed=11)
    kw = {"commission_rate": 0.0003, "min_commission": 5.0, "tax_rate": 0.001, "slippage_rate": 0.001}
    first = json.dumps(run(p, ARRAYS_MA, **kw))
    second = json.dumps(run(p, ARRAYS_MA, **kw))
    assert first == second
    assert json.dumps(run(p, DICT_MA, **kw)) == json.dumps(run(p, DICT_MA, **kw))


def test_progress_callback(make_panel, run):
    p = _random_panel(make_panel, n_days=250)
    calls: list[tuple[float, str, float]] = []
    cfg = BacktestConfig(start_date="2019-01-01", end_date="2020-12-31", symbols=p.symbols)
    res = run_backtest(p, ARRAYS_MA, cfg, progress=lambda f, d, e: calls.append((f, d, e)))
    assert 2 <= len(calls) <= 102
    assert calls[-1] == (1.0, res["end_date"], res["daily"][-1]["total_value"])
    fractions = [c[0] for c in calls]
    assert fractions == sorted(fractions) and all(0 < f <= 1 for f in fractions)


def test_logs_are_capped(make_panel, run):
    p = make_panel(["600000.SH"], D4, open=[[10.0]] * 4)
    src = code('''
    class Strategy(BaseStrategy):
        def on_bar(self, context, bar_data):
            for k in range(4000):
                context.log(k)
    ''')
    logs = run(p, src)["logs"]
    assert len(logs) == 10_001 and logs[-1] == "... 6000 more log lines dropped"


def test_gc_state_is_restored_after_success_and_failure(make_panel, run):
    import gc

    p = make_panel(["600000.SH"], D4, open=[[10.0]] * 4)
    assert gc.isenabled()
    run(p, code("class Strategy(BaseStrategy):\n    pass\n"))
    assert gc.isenabled()
    with pytest.raises(StrategyError):
        run(p, code("class Strategy(BaseStrategy):\n    def on_bar(self, c, b):\n        raise KeyError('x')\n"))
    assert gc.isenabled()
    gc.disable()
    try:
        run(p, code("class Strategy(BaseStrategy):\n    pass\n"))
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()


def test_recursion_error_traceback_is_capped(make_panel, run):
    p = make_panel(["600000.SH"], D4, open=[[10.0]] * 4)
    src = code('''
    class Strategy(BaseStrategy):
        def deep(self, n):
            return self.deep(n + 1)
        def on_bar(self, context, bar_data):
            self.deep(0)
    ''')
    with pytest.raises(StrategyError) as ei:
        run(p, src)
    err = ei.value
    assert err.exc_type == "RecursionError"
    assert src.splitlines()[err.lineno - 1].strip() == "return self.deep(n + 1)"
    # one run of identical frames, not a thousand lines
    frame = [f'  File "<strategy>", line {err.lineno}, in deep', "    return self.deep(n + 1)"]
    assert err.traceback_lines[2:4] == frame
    assert err.traceback_lines[4].startswith("  [previous line repeated ") and len(err.traceback_lines) == 5


def test_small_sell_batches_match_the_per_order_submission(make_panel, run, monkeypatch):
    # Sells are submitted as a batch from batch.SELL_BATCH_MIN on (no cash check needed):
    # the result must be byte-identical to submitting every sell one by one.
    from engine_svc.engine import batch

    p = _random_panel(make_panel, n_sym=12, n_days=80, seed=5)
    kw = {"commission_rate": 0.0003, "min_commission": 5.0, "tax_rate": 0.001, "slippage_rate": 0.001}
    calls: list[int] = []
    real = batch.submit_sells
    monkeypatch.setattr(batch, "submit_sells", lambda b, i, cols, *a: calls.append(len(cols)) or real(b, i, cols, *a))
    fast = json.dumps(run(p, ARRAYS_MA, **kw))
    assert calls and min(calls) < batch.BATCH_MIN  # small batches were taken
    monkeypatch.setattr(batch, "SELL_BATCH_MIN", 10**9)
    assert json.dumps(run(p, ARRAYS_MA, **kw)) == fast
    assert json.dumps(run(p, DICT_MA, **kw)) == fast
