"""The sweep bench's grid on backtesting.py and vectorbt, for the record.

    PY bench/sweep_external.py {backtesting|vectorbt} DATA.npz SPEC.json    # prints one JSON line

Run by sweep_bench.py in the interpreter given with --external-python (a venv of its own,
bench/README.md); needs numpy, pandas and the library, not engine_svc. DATA is
benchext.write_adjusted_npz of the panel the sweep runs on (qfq view, NaN on days without a bar);
SPEC: {"pairs": [[short, long], …], "trend_window", "initial_capital", "commission_rate",
"min_commission", "slippage_rate"}.

The signal is task_svc/templates/dual_ma_trend.py's. On a day t the symbol trades, with need =
max(long, trend) + 1 days of history without a gap (the template skips the symbol otherwise):
  buy   the short MA crosses above the long one (yesterday short ≤ long, today short > long) and
        the close is above the trend MA, and the symbol is not held;
  sell  the short MA crosses below the long one (yesterday ≥, today <) and the symbol is held.
An order of day t fills at the next bar's open, as in the engine.

backtesting.py is single-asset: one Backtest per stock with 1/n of the capital (the template
buys 1/n of total value), `Backtest.optimize` over the grid on each (its process pool uses every
core), wall times summed. vectorbt: all pairs × all stocks in one Portfolio.from_signals, the MAs
by `vbt.MA.run` broadcast over the pairs, one cash-sharing group per pair; numba's compilation is
done on a small slice first and reported apart (jit_warmup_s).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import numpy as np

os.environ.setdefault("TQDM_DISABLE", "1")  # optimize's progress bars: stderr noise, and time

try:  # the Strategy must be a module-level class: optimize's pool pickles it by name
    from backtesting import Strategy as _BtStrategy
except ImportError:  # the vectorbt case does not need it
    _BtStrategy = object


def window_mean(a: np.ndarray, w: int) -> np.ndarray:
    """Mean of the last w rows up to each row (NaN for the first w - 1 rows or a NaN inside)."""
    out = np.full(a.shape, np.nan)
    if len(a) >= w:
        out[w - 1:] = np.lib.stride_tricks.sliding_window_view(a, w, axis=0).mean(axis=-1)
    return out


def gap_free(close: np.ndarray, pos: np.ndarray, need: int) -> np.ndarray:
    """Rows whose last ``need`` rows are ``need`` consecutive trading days with a close.
    ``pos``: each row's index in the trading calendar (rows may skip suspended days)."""
    ok = np.zeros(close.shape, dtype=bool)
    if len(close) >= need:
        span = (pos[need - 1:] - pos[: len(pos) - need + 1]) == need - 1
        ok[need - 1:] = span[:, None] & ~np.isnan(window_mean(close, need)[need - 1:])
    return ok


def crossings(s_now: np.ndarray, l_now: np.ndarray, above_trend: np.ndarray,
              valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(buy, sell) signals of each row from the short and long MAs (rows × columns)."""
    s_prev = np.vstack([np.full((1, s_now.shape[1]), np.nan), s_now[:-1]])
    l_prev = np.vstack([np.full((1, l_now.shape[1]), np.nan), l_now[:-1]])
    with np.errstate(invalid="ignore"):
        buy = valid & (s_prev <= l_prev) & (s_now > l_now) & above_trend
        sell = valid & (s_prev >= l_prev) & (s_now < l_now)
    return buy, sell


class AShareCommission:
    """Commission of one fill: value × rate, at least the minimum (stamp duty is not modelled:
    backtesting.py does not say whether a fill is a buy or a sell)."""

    def __init__(self, rate: float, minimum: float) -> None:
        self.rate, self.minimum = rate, minimum

    def __call__(self, size: float, price: float) -> float:
        return max(abs(size) * price * self.rate, self.minimum)


class DualMaTrend(_BtStrategy):  # type: ignore[misc, valid-type]
    short_window = 5
    long_window = 20
    trend_window = 60

    def init(self) -> None:
        close = np.asarray(self.data.Close, dtype=float)[:, None]
        pos = np.asarray(self.data.Pos).astype(np.int64)
        need = max(self.long_window, self.trend_window) + 1
        buy, sell = crossings(window_mean(close, self.short_window), window_mean(close, self.long_window),
                              close > window_mean(close, self.trend_window), gap_free(close, pos, need))
        self.buy_signal = self.I(lambda: buy[:, 0].astype(float), name="buy", plot=False)
        self.sell_signal = self.I(lambda: sell[:, 0].astype(float), name="sell", plot=False)

    def next(self) -> None:
        if self.buy_signal[-1] and not self.position:
            self.buy()
        elif self.sell_signal[-1] and self.position:
            self.position.close()


def run_backtesting(data: dict[str, np.ndarray], spec: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd
    from backtesting import Backtest

    shorts = sorted({s for s, _ in spec["pairs"]})
    longs = sorted({lw for _, lw in spec["pairs"]})
    if len(shorts) * len(longs) != len(spec["pairs"]):
        raise ValueError("backtesting.py's grid is a product: the pairs must be one")
    DualMaTrend.trend_window = spec["trend_window"]
    n = len(data["symbols"])
    commission = AShareCommission(spec["commission_rate"], spec["min_commission"])
    per_stock: list[dict[str, Any]] = []
    for j, symbol in enumerate(data["symbols"].tolist()):
        rows = ~np.isnan(data["close"][:, j]) & ~np.isnan(data["open"][:, j])
        df = pd.DataFrame({k.capitalize(): data[k][rows, j] for k in ("open", "high", "low", "close", "volume")},
                          index=pd.DatetimeIndex(data["dates"][rows]))
        df["Pos"] = np.nonzero(rows)[0]
        t0 = time.perf_counter()
        bt = Backtest(df, DualMaTrend, cash=spec["initial_capital"] / n, commission=commission,
                      spread=spec["slippage_rate"], finalize_trades=True)
        stats, heatmap = bt.optimize(short_window=shorts, long_window=longs, maximize="Sharpe Ratio",
                                     return_heatmap=True)
        wall = time.perf_counter() - t0
        best = stats._strategy
        per_stock.append({"symbol": symbol, "wall_s": round(wall, 3), "runs": int(heatmap.size),
                          "best": {"short_window": int(best.short_window), "long_window": int(best.long_window)},
                          "best_sharpe": _num(stats["Sharpe Ratio"]), "trades": int(stats["# Trades"])})
    return {"timed_s": sum(s["wall_s"] for s in per_stock), "backtests": sum(s["runs"] for s in per_stock),
            "per_stock": per_stock}


def run_vectorbt(data: dict[str, np.ndarray], spec: dict[str, Any]) -> dict[str, Any]:
    import vectorbt as vbt

    vbt.settings.returns["year_freq"] = "252 days"  # trading days, as the engine's metrics
    tj = time.perf_counter()
    tiny = {k: v[:150, :3] if v.ndim == 2 else v for k, v in data.items()}
    tiny["dates"], tiny["symbols"] = data["dates"][:150], data["symbols"][:3]
    _vbt_grid(vbt, tiny, dict(spec, pairs=spec["pairs"][:2]))  # numba compiles here, not below
    warmup = time.perf_counter() - tj
    t0 = time.perf_counter()
    out = _vbt_grid(vbt, data, spec)
    return {"timed_s": time.perf_counter() - t0, "jit_warmup_s": warmup, **out}


def _vbt_grid(vbt: Any, data: dict[str, np.ndarray], spec: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd

    pairs = spec["pairs"]
    symbols = data["symbols"].tolist()
    n, m = len(symbols), len(pairs)
    dates = pd.DatetimeIndex(data["dates"])
    close = pd.DataFrame(data["close"], index=dates, columns=symbols)
    # Broadcast over the pairs: one MA column per (pair, symbol), pair-major.
    s_ma = vbt.MA.run(close, window=[s for s, _ in pairs], short_name="short").ma.to_numpy()
    l_ma = vbt.MA.run(close, window=[lw for _, lw in pairs], short_name="long").ma.to_numpy()
    trend = vbt.MA.run(close, window=spec["trend_window"]).ma.to_numpy()
    c = data["close"]
    days = np.arange(len(c))
    valid_by_need = {need: gap_free(c, days, need) for need in {max(lw, spec["trend_window"]) + 1 for _, lw in pairs}}
    valid = np.hstack([valid_by_need[max(lw, spec["trend_window"]) + 1] for _, lw in pairs])
    with np.errstate(invalid="ignore"):
        above = np.tile(c > trend, (1, m))
    buy, sell = crossings(s_ma, l_ma, above, valid)
    # The signal of day t is an order at t + 1's open (NaN open: no bar, the order is ignored).
    buy = np.vstack([np.zeros((1, n * m), dtype=bool), buy[:-1]])
    sell = np.vstack([np.zeros((1, n * m), dtype=bool), sell[:-1]])
    columns = pd.MultiIndex.from_tuples([(s, lw, sym) for s, lw in pairs for sym in symbols],
                                        names=["short_window", "long_window", "symbol"])

    def frame(a: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(a, index=dates, columns=columns)

    pf = vbt.Portfolio.from_signals(
        frame(np.tile(close.ffill().bfill().to_numpy(), (1, m))), frame(buy), frame(sell),
        price=frame(np.tile(data["open"], (1, m))), size=spec["initial_capital"] / n, size_type="value",
        fees=spec["commission_rate"], slippage=spec["slippage_rate"], init_cash=spec["initial_capital"],
        cash_sharing=True, group_by=["short_window", "long_window"], call_seq="auto", freq="1D")
    sharpe = pf.sharpe_ratio()
    total = pf.total_return()
    best = sharpe.idxmax()
    return {"backtests": m, "columns": n * m, "orders": len(pf.orders.records),
            "best": {"short_window": int(best[0]), "long_window": int(best[1])},
            "best_sharpe": _num(sharpe[best]), "best_total_return": _num(total[best])}


def _num(x: Any) -> float | None:
    x = float(x)
    return round(x, 4) if np.isfinite(x) else None


def main(argv: list[str]) -> int:
    case, npz, spec_path = argv
    with open(spec_path) as f:
        spec = json.load(f)
    with np.load(npz) as z:
        data = {k: z[k] for k in z.files}
    out = run_backtesting(data, spec) if case == "backtesting" else run_vectorbt(data, spec)
    import importlib.metadata as md

    lib = "backtesting" if case == "backtesting" else "vectorbt"
    out.update({"case": case, "version": md.version(lib), "numpy": np.__version__})
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
