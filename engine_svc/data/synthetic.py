"""A deterministic synthetic A-share market for tests and load benchmarks.

Per symbol: a geometric random walk (own drift and volatility, mild mean reversion so prices
stay in a realistic range), prices rounded to 0.01 and clipped to the board's daily limit
(main ±10%, ChiNext ±20% from 2020-08-24 else ±10%, STAR ±20%, ST ±5%), so injected jumps
produce real limit-up / limit-down days (close == up_limit). Some symbols list late, some have
multi-day suspensions (no bar), a few have ST periods, and a few have ex-dividend / split
days: there ``pre_close`` is the exchange's ex-rights reference price (not yesterday's close)
and Tushare's cumulative ``adj_factor`` steps up by ``prev_close / pre_close``. The benchmark
``000300.SH`` is the equal-weight index of the symbols' daily returns.

Vectorised across symbols; the only Python loop is over days (each day's limits depend on
the previous rounded close). Separate random streams for bars, daily_basic and the index keep
``generate_panel(..., with_daily_basic=True)`` bar-for-bar identical to the default.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from engine_svc.data.codes import board_of
from engine_svc.engine.panel import BAR_FIELDS, DAILY_BASIC_FIELDS, Benchmark, Panel

BENCHMARK_SYMBOL = "000300.SH"
CHINEXT_20PCT_FROM = np.datetime64("2020-08-24", "D")
INDEX_FIELDS = ("open", "high", "low", "close", "pre_close", "volume", "amount")


@dataclass
class SyntheticMarket:
    panel: Panel  # bars, is_st, benchmark close; daily_basic when requested
    index_bars: dict[str, np.ndarray]  # INDEX_FIELDS -> (n_days,) for BENCHMARK_SYMBOL
    list_dates: np.ndarray  # datetime64[D] per symbol (first bar)
    st_periods: list[tuple[str, date, date]]  # (symbol, first ST day, last ST day)


def _symbols(n: int) -> list[str]:
    n_star, n_chinext = n // 10, n // 5
    n_main = n - n_star - n_chinext
    n_sh = (n_main + 1) // 2
    codes = (
        [f"{600000 + i:06d}.SH" for i in range(n_sh)]
        + [f"{1 + i:06d}.SZ" for i in range(n_main - n_sh)]
        + [f"{300001 + i:06d}.SZ" for i in range(n_chinext)]
        + [f"{688001 + i:06d}.SH" for i in range(n_star)]
    )
    return sorted(codes)


def _trading_days(start: str, n_days: int) -> np.ndarray:
    first = np.busday_offset(np.datetime64(start, "D"), 0, roll="forward")
    return np.busday_offset(first, np.arange(n_days), roll="forward").astype("datetime64[D]")


def _episodes(rng: np.random.Generator, n_sym: int, n_days: int, prob: float, lo: int, hi: int) -> np.ndarray:
    """bool (n_days, n_symbols): 0-2 random windows of lo..hi days for a ``prob`` share of symbols.

    At least one symbol always gets a window (when the panel is big enough), so every
    generated market exercises the feature.
    """
    mask = np.zeros((n_days, n_sym), dtype=bool)
    if n_days < hi + 2 or n_sym == 0:
        return mask
    chosen = rng.random(n_sym) < prob
    chosen[rng.integers(n_sym)] = True
    for j in np.flatnonzero(chosen):
        for _ in range(int(rng.integers(1, 3))):
            length = int(rng.integers(lo, hi + 1))
            begin = int(rng.integers(1, n_days - length))
            mask[begin : begin + length, j] = True
    return mask


def _round2(x: np.ndarray) -> np.ndarray:
    return np.round(x, 2)


def generate_market(
    n_symbols: int, n_days: int, seed: int = 0, start: str = "2015-01-05", with_daily_basic: bool = False
) -> SyntheticMarket:
    if n_symbols < 1 or n_days < 1:
        raise ValueError("n_symbols and n_days must be positive")
    bar_ss, basic_ss, index_ss = np.random.SeedSequence(seed).spawn(3)
    rng = np.random.default_rng(bar_ss)
    symbols = _symbols(n_symbols)
    dates = _trading_days(start, n_days)
    boards = np.array([board_of(s) for s in symbols])
    D, N = n_days, n_symbols

    # Per-symbol parameters.
    p0 = np.round(np.exp(rng.uniform(np.log(3.0), np.log(60.0), N)), 2)
    sigma = rng.uniform(0.20, 0.60, N) / np.sqrt(252)
    drift = rng.uniform(-0.10, 0.20, N) / 252
    base_volume = np.exp(rng.uniform(np.log(1e6), np.log(5e7), N))
    list_idx = np.where(rng.random(N) < 0.1, rng.integers(0, max(D // 2, 1), N), 0)

    # Per-(day, symbol) draws, made up front so the day loop is pure arithmetic.
    eps = rng.standard_normal((D, N))
    gap = rng.standard_normal((D, N)) * 0.3
    wick_hi = np.abs(rng.standard_normal((D, N))) * 0.4
    wick_lo = np.abs(rng.standard_normal((D, N))) * 0.4
    vol_noise = rng.standard_normal((D, N)) * 0.4
    jump = rng.random((D, N))
    suspended = _episodes(rng, N, D, prob=0.3, lo=2, hi=40)
    is_st = _episodes(rng, N, D, prob=0.03, lo=60, hi=250)
    ex_day = _episodes(rng, N, D, prob=0.3, lo=1, hi=1)  # one-day windows = ex-rights dates
    ex_is_split = rng.random((D, N)) < 0.15
    ex_ratio = np.where(ex_is_split, 0.5, 1.0 - rng.uniform(0.01, 0.03, (D, N)))

    listed = np.arange(D)[:, None] >= list_idx[None, :]
    trading = listed & ~suspended
    trading[list_idx, np.arange(N)] = True  # a listing day is always a trading day

    limit = np.where(boards == "star", 0.20, 0.10)[None, :].repeat(D, axis=0)
    chinext = boards == "chinext"
    limit[np.ix_(dates >= CHINEXT_20PCT_FROM, chinext)] = 0.20
    is_st &= listed  # an ST period can't start before the listing
    limit[is_st] = 0.05

    # Everything that does not depend on yesterday's rounded close is computed for the whole
    # matrix at once; the day loop below only does the path-dependent rounding and clipping.
    base_ret = drift[None, :] + sigma[None, :] * eps
    jump_up, jump_dn = jump < 0.004, jump > 0.997
    open_mult = np.exp(sigma[None, :] * gap)
    hi_mult = 1 + sigma[None, :] * wick_hi
    lo_mult = 1 - sigma[None, :] * wick_lo

    path = {f: np.empty((D, N)) for f in ("open", "high", "low", "close", "pre_close", "up_limit", "down_limit")}
    adj = np.empty((D, N))
    share_mult = np.empty((D, N))
    last_close = p0.copy()
    factor = np.ones(N)
    mult = np.ones(N)
    log_p0 = np.log(p0)
    for t in range(D):
        active = trading[t]
        pre = last_close.copy()
        ex = ex_day[t] & active & (t > list_idx)
        if ex.any():
            pre[ex] = np.maximum(_round2(last_close[ex] * ex_ratio[t, ex]), 0.01)
            factor[ex] *= last_close[ex] / pre[ex]
            mult[ex & ex_is_split[t]] *= 2.0
        lim = limit[t]
        up, dn = _round2(pre * (1 + lim)), _round2(pre * (1 - lim))
        r = base_ret[t] - 0.002 * (np.log(pre * factor) - log_p0)  # mild pull to the start level
        r[jump_up[t]] = lim[jump_up[t]] + 0.05
        r[jump_dn[t]] = -(lim[jump_dn[t]] + 0.05)
        close = np.clip(_round2(pre * np.exp(r)), dn, up)
        opn = np.clip(_round2(pre * open_mult[t]), dn, up)
        path["high"][t] = np.minimum(_round2(np.maximum(opn, close) * hi_mult[t]), up)
        path["low"][t] = np.maximum(_round2(np.minimum(opn, close) * lo_mult[t]), dn)
        path["open"][t], path["close"][t], path["pre_close"][t] = opn, close, pre
        path["up_limit"][t], path["down_limit"][t] = up, dn
        adj[t], share_mult[t] = factor, mult
        last_close[active] = close[active]

    ret = path["close"] / path["pre_close"] - 1
    volume = np.round(base_volume[None, :] * np.exp(vol_noise) * (1 + 10 * np.abs(ret)) / share_mult, -2)
    volume *= share_mult
    raw = {**path, "volume": volume, "adj_factor": adj}
    raw["amount"] = volume * (path["open"] + path["high"] + path["low"] + path["close"]) / 4
    out = {f: np.where(trading, raw[f], np.nan) for f in BAR_FIELDS}

    ret = out["close"] / out["pre_close"] - 1
    index_bars = _index(np.random.default_rng(index_ss), ret, out)
    panel = Panel(
        dates=dates,
        symbols=tuple(symbols),
        bars=out,
        names=tuple(f"Synthetic {s[:6]}" for s in symbols),
        is_st=is_st,
        daily_basic=_daily_basic(np.random.default_rng(basic_ss), out, share_mult) if with_daily_basic else None,
        benchmark=Benchmark(BENCHMARK_SYMBOL, index_bars["close"].copy()),
    )
    st_periods = []
    edges = np.diff(np.vstack([np.zeros((1, N), bool), is_st, np.zeros((1, N), bool)]).astype(np.int8), axis=0)
    for j in np.flatnonzero(is_st.any(axis=0)):  # each contiguous run of ST days is one period
        starts, stops = np.flatnonzero(edges[:, j] == 1), np.flatnonzero(edges[:, j] == -1)
        st_periods += [
            (symbols[j], _to_date(dates[a]), _to_date(dates[b - 1])) for a, b in zip(starts, stops, strict=True)
        ]
    return SyntheticMarket(panel, index_bars, dates[list_idx], st_periods)


def _to_date(d: np.datetime64) -> date:
    return date.fromisoformat(str(d))


def _index(rng: np.random.Generator, ret: np.ndarray, bars: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Equal-weight index of the symbols' daily returns, level 1000 on the day before day 0."""
    traded = np.isfinite(ret)
    mean_ret = np.where(traded.any(axis=1), np.nansum(ret, axis=1) / np.maximum(traded.sum(axis=1), 1), 0.0)
    close = np.round(1000.0 * np.cumprod(1 + mean_ret), 2)
    pre = np.concatenate([[1000.0], close[:-1]])
    opn = np.round(pre * (1 + rng.standard_normal(len(close)) * 0.002), 2)
    high = np.round(np.maximum(opn, close) * (1 + np.abs(rng.standard_normal(len(close))) * 0.003), 2)
    low = np.round(np.minimum(opn, close) * (1 - np.abs(rng.standard_normal(len(close))) * 0.003), 2)
    return {
        "open": opn,
        "high": high,
        "low": low,
        "close": close,
        "pre_close": pre,
        "volume": np.nansum(bars["volume"], axis=1),
        "amount": np.nansum(bars["amount"], axis=1),
    }


def _daily_basic(
    rng: np.random.Generator, bars: dict[str, np.ndarray], share_mult: np.ndarray
) -> dict[str, np.ndarray]:
    """Tushare-unit indicators (shares in 10k shares, market values in 10k CNY, rates in %)."""
    D, N = bars["close"].shape
    close, volume = bars["close"], bars["volume"]
    has = np.isfinite(close)
    total = rng.uniform(5e4, 5e6, N)[None, :] * share_mult
    float_share = total * rng.uniform(0.3, 1.0, N)[None, :]
    free_share = float_share * rng.uniform(0.5, 1.0, N)[None, :]
    eps = rng.normal(0.5, 0.6, N)[None, :] / share_mult
    eps_ttm = eps * rng.uniform(0.8, 1.2, N)[None, :]
    bps = rng.uniform(2.0, 15.0, N)[None, :] / share_mult
    sps = rng.uniform(1.0, 20.0, N)[None, :] / share_mult
    dv = rng.uniform(0.0, 4.0, N)[None, :]
    nan = np.nan
    out = {
        "pe": np.where(eps > 0, close / np.where(eps > 0, eps, 1.0), nan),
        "pe_ttm": np.where(eps_ttm > 0, close / np.where(eps_ttm > 0, eps_ttm, 1.0), nan),
        "pb": close / bps,
        "ps": close / sps,
        "ps_ttm": close / (sps * rng.uniform(0.9, 1.1, N)[None, :]),
        "turnover_rate": volume / (float_share * 1e4) * 100,
        "turnover_rate_f": volume / (free_share * 1e4) * 100,
        "volume_ratio": np.exp(rng.standard_normal((D, N)) * 0.3),
        "dv_ratio": dv * np.ones((D, N)),
        "dv_ttm": dv * 1.05 * np.ones((D, N)),
        "total_share": total * np.ones((D, N)),
        "float_share": float_share * np.ones((D, N)),
        "free_share": free_share * np.ones((D, N)),
        "total_mv": close * total,
        "circ_mv": close * float_share,
    }
    return {k: np.where(has, out[k], nan) for k in DAILY_BASIC_FIELDS}  # no bar -> NaN everywhere


def generate_panel(
    n_symbols: int, n_days: int, seed: int = 0, start: str = "2015-01-05", with_daily_basic: bool = False
) -> Panel:
    """The synthetic market as an in-memory Panel (no database involved)."""
    return generate_market(n_symbols, n_days, seed, start, with_daily_basic).panel
