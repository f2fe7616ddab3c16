"""Point-in-time prices: on day T the strategy sees qfq prices as of T, never as of a later day.

Hand-made panels with splits and dividends (adj_factor steps). For every day T of the run:
today's qfq close in bar_data is today's traded close; ``history`` is raw × adj_d / adj_T; and an
ex-date after T changes nothing the strategy sees up to T (the same strategy on the panel cut at
T and on the full panel places the same orders up to T). Every test runs with the strategy
in-process and hosted (the ``run`` fixture).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine_svc.engine.panel import Panel

DAYS = [str(d) for d in np.arange(np.datetime64("2021-03-01"), np.datetime64("2021-03-01") + 12)]
SYMS = ["600000.SH", "000002.SZ"]
RAW_CLOSE = [
    [20.0, 8.00], [20.4, 8.10], [20.2, 8.05],
    [10.2, 8.20],  # 600000.SH 1:1 bonus issue (adj ×2)
    [10.3, 8.30], [10.1, 7.40],  # 000002.SZ cash dividend (adj ×8.30/7.40-ish)
    [10.0, 7.50], [10.4, 7.60], [np.nan, 7.55],  # 600000.SH suspended
    [3.50, 7.70],  # 600000.SH 10-for-20 split again after the suspension (adj ×3)
    [3.60, 7.80], [3.55, 7.75],
]
ADJ = [
    [1.0, 1.0], [1.0, 1.0], [1.0, 1.0],
    [2.0, 1.0],
    [2.0, 1.0], [2.0, 1.12],
    [2.0, 1.12], [2.0, 1.12], [2.0, 1.12],
    [6.0, 1.12],
    [6.0, 1.12], [6.0, 1.12],
]

SEES = """
import json
import numpy as np
from zquant.backtest.strategy import BaseStrategy

class Strategy(BaseStrategy):
    def on_bar(self, context, bar_data):
        seen = {s: [bar_data[s]["close"], context.history(s, "close", 30).tolist(),
                    context.history(s, "open", 3).tolist()] for s in sorted(bar_data)}
        context.log(json.dumps(seen))
        for s, (close, hist, _) in seen.items():
            finite = [h for h in hist if h == h]
            if close < 0.98 * max(finite):  # an absolute price level decides
                context.order(s, 100)
"""

ARRAYS = """
import json
import numpy as np
from zquant.backtest.strategy import BaseStrategy

class Strategy(BaseStrategy):
    bar_mode = "arrays"
    def on_bar(self, context, bars):
        m = context.history_matrix("close", 30)
        context.log(json.dumps([bars.close.tolist(), m.tolist()]))
"""


def _panel(make_panel, days: int = len(DAYS)) -> Panel:
    opens = [[c * 0.99 if c == c else np.nan for c in row] for row in RAW_CLOSE[:days]]
    return make_panel(SYMS, DAYS[:days], open=opens, close=RAW_CLOSE[:days], adj_factor=ADJ[:days])


def _seen(result: dict) -> list:
    """What the strategy logged each day (the engine's own ex-rights lines left out)."""
    texts = [line.split(" ", 1)[1] for line in result["logs"]]
    return [json.loads(t) for t in texts if t[:1] in "{["]


def test_today_is_the_traded_price_and_history_is_scaled_by_todays_factor(make_panel, run):
    result = run(_panel(make_panel), SEES, adjust_type="qfq")
    raw, adj = np.array(RAW_CLOSE), np.array(ADJ)
    seen = _seen(result)
    assert len(seen) == len(DAYS)
    for t, day in enumerate(seen):
        for j, s in enumerate(SYMS):
            if np.isnan(raw[t, j]):
                assert s not in day
                continue
            close, hist, _ = day[s]
            assert close == raw[t, j]  # exactly the traded close, whatever happens later
            want = raw[: t + 1, j] * (adj[: t + 1, j] / adj[t, j])
            assert np.array_equal(np.array(hist, dtype=float), want, equal_nan=True), (t, s)
            np.testing.assert_allclose(np.array(hist, dtype=float), raw[: t + 1, j] * adj[: t + 1, j] / adj[t, j],
                                       rtol=1e-15)
    assert result["price_view"] == "qfq-point-in-time"


def test_an_ex_date_after_t_changes_nothing_seen_up_to_t(make_panel, run):
    full = run(_panel(make_panel), SEES, adjust_type="qfq")
    for cut in (3, 5, 9):  # just before each ex-date
        part = run(_panel(make_panel, cut), SEES, adjust_type="qfq")
        assert _seen(part) == _seen(full)[:cut]
        orders_up_to_t = [o for o in full["orders"] if o["created_date"] < DAYS[cut]]
        assert [(o["created_date"], o["symbol"], o["quantity"]) for o in part["orders"]] == \
            [(o["created_date"], o["symbol"], o["quantity"]) for o in orders_up_to_t]


def test_arrays_mode_is_point_in_time_too(make_panel, run):
    raw, adj = np.array(RAW_CLOSE), np.array(ADJ)
    seen = _seen(run(_panel(make_panel), ARRAYS, adjust_type="qfq"))
    for t, (today, matrix) in enumerate(seen):
        assert np.array_equal(np.array(today, dtype=float), raw[t], equal_nan=True)
        want = raw[: t + 1] * (adj[: t + 1] / adj[t])
        assert np.array_equal(np.array(matrix, dtype=float), want, equal_nan=True), t


def test_hfq_and_none(make_panel, run):
    raw, adj = np.array(RAW_CLOSE), np.array(ADJ)
    hfq = _seen(run(_panel(make_panel), SEES, adjust_type="hfq"))
    none = _seen(run(_panel(make_panel), SEES, adjust_type="none"))
    t = len(DAYS) - 1
    for j, s in enumerate(SYMS):
        assert np.array_equal(np.array(hfq[t][s][1], dtype=float), raw[:, j] * adj[:, j], equal_nan=True)
        assert np.array_equal(np.array(none[t][s][1], dtype=float), raw[:, j], equal_nan=True)


@pytest.mark.parametrize("adjust_type", ["qfq", "hfq"])
def test_a_factor_that_becomes_known_later_is_not_used_before(make_panel, run, adjust_type):
    """Leading days without adj_factor: until a factor is known prices are shown raw; once one
    is known it applies to the earlier days too (known now, not looked up ahead)."""
    adj = [[np.nan, 1.0]] * 4 + [[5.0, 1.0]] * 8
    p = make_panel(SYMS, DAYS, open=[[10.0, 8.0]] * 12, close=[[10.0, 8.0]] * 12, adj_factor=adj)
    seen = _seen(run(p, SEES, adjust_type=adjust_type))
    assert seen[3]["600000.SH"][1] == [10.0] * 4  # day 4: nothing known yet → raw
    want = 10.0 if adjust_type == "qfq" else 50.0
    assert seen[4]["600000.SH"][1] == [want] * 5
