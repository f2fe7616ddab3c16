"""A-share trading rules that depend only on the symbol, the date and a price: boards, lots,
price limits and trading costs (engine.md "Execution model").

Everything here is a pure function so the broker and the tests share one definition.
"""

from __future__ import annotations

import math

import numpy as np

# ChiNext moved from ±10% to ±20% price limits with the registration reform.
CHINEXT_REFORM_DATE = np.datetime64("2020-08-24", "D")

BOARD_MAIN = "main"
BOARD_CHINEXT = "chinext"
BOARD_STAR = "star"
BOARD_BEIJING = "beijing"

LOT = 100  # one board lot for every board except STAR
STAR_MIN_BUY = 200  # STAR: at least 200 shares per order, then any whole number


def board_of(symbol: str) -> str:
    """Board of a Tushare code such as ``688001.SH``; decides lots and price limits."""
    code, _, suffix = symbol.partition(".")
    if code.startswith("688"):
        return BOARD_STAR
    if code.startswith(("300", "301")):
        return BOARD_CHINEXT
    if suffix.upper() == "BJ" or code.startswith(("8", "4")):
        return BOARD_BEIJING
    return BOARD_MAIN


def round_buy_quantity(quantity: int, board: str) -> int:
    """Largest valid buy quantity ≤ ``quantity``: whole lots of 100, STAR ≥ 200 in steps of 1."""
    if quantity <= 0:
        return 0
    if board == BOARD_STAR:
        return quantity if quantity >= STAR_MIN_BUY else 0
    return quantity // LOT * LOT


def round_sell_quantity(quantity: int, held: int, board: str) -> int:
    """Valid sell quantity ≤ ``quantity`` for a position of ``held`` shares.

    Selling the whole position may include the odd-lot remainder; any partial sale must be whole
    lots (STAR: at least 200 shares, then steps of 1).
    """
    if quantity <= 0 or held <= 0:
        return 0
    if quantity >= held:
        return held
    if board == BOARD_STAR:
        return quantity if quantity >= STAR_MIN_BUY else 0
    return quantity // LOT * LOT


def round_quantities(delta: np.ndarray, available: np.ndarray, is_star: np.ndarray) -> np.ndarray:
    """Vector form of round_buy_quantity (delta > 0) / round_sell_quantity (delta < 0, against
    ``available`` shares): the absolute quantity each signed delta would trade (0 = nothing)."""
    q = np.abs(delta)
    lots = np.where(is_star, np.where(q >= STAR_MIN_BUY, q, 0), q // LOT * LOT)
    sell_all = (delta < 0) & (q >= available)
    out = np.where(sell_all, np.maximum(available, 0), lots)
    out[(delta < 0) & (available <= 0)] = 0
    return out


def round_price(x: np.ndarray) -> np.ndarray:
    """Round to 0.01 half up, as the exchanges do; the tiny epsilon absorbs binary representation
    error (10.05 × 1.1 = 11.054999… must give 11.06)."""
    return np.floor(x * 100.0 + 0.5 + 1e-6) / 100.0


def limit_pct(symbols: tuple[str, ...], dates: np.ndarray, is_st: np.ndarray) -> np.ndarray:
    """Price-limit fraction (dates × symbols) by board, date and ST status.

    main ±10%, ChiNext ±20% from 2020-08-24 (±10% before), STAR ±20%, Beijing ±30%, ST ±5%
    (engine.md applies the ST limit on every board).
    """
    n_dates, n_sym = len(dates), len(symbols)
    pct = np.full((n_dates, n_sym), 0.10)
    after_reform = np.asarray(dates, dtype="datetime64[D]") >= CHINEXT_REFORM_DATE
    for j, sym in enumerate(symbols):
        board = board_of(sym)
        if board == BOARD_STAR:
            pct[:, j] = 0.20
        elif board == BOARD_BEIJING:
            pct[:, j] = 0.30
        elif board == BOARD_CHINEXT:
            pct[after_reform, j] = 0.20
    pct[np.asarray(is_st, dtype=bool)] = 0.05
    return pct


def price_limits(
    symbols: tuple[str, ...],
    dates: np.ndarray,
    is_st: np.ndarray,
    pre_close: np.ndarray,
    up_data: np.ndarray,
    down_data: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(up, down) limit arrays: the data's values where present, else computed from pre_close."""
    pct = limit_pct(symbols, dates, is_st)
    with np.errstate(invalid="ignore"):
        up_calc = round_price(pre_close * (1.0 + pct))
        down_calc = round_price(pre_close * (1.0 - pct))
    up = np.where(np.isnan(up_data), up_calc, up_data)
    down = np.where(np.isnan(down_data), down_calc, down_data)
    return up, down


def scaled_shares(quantity: int, ratio: float) -> int:
    """Whole shares of ``quantity × ratio`` (an ex-rights restatement), rounded down; the
    tolerance keeps 1000 × 1.1 = 1099.9999999999998 at 1100."""
    return math.floor(quantity * ratio + 1e-6)


def commission(value: float, rate: float, minimum: float) -> float:
    """Broker commission for one order's fill: proportional with a per-order minimum."""
    return max(value * rate, minimum)


def stamp_duty(value: float, rate: float, side: str) -> float:
    """Stamp duty is charged on sells only."""
    return value * rate if side == "sell" else 0.0


def buy_cost(quantity: int, price: float, rate: float, minimum: float) -> float:
    """Cash a buy of ``quantity`` at ``price`` consumes, commission included."""
    value = quantity * price
    return value + commission(value, rate, minimum)


def max_affordable_buy(cash: float, price: float, rate: float, minimum: float, board: str) -> int:
    """Largest valid buy quantity whose cost including commission fits in ``cash`` (0 if none)."""
    if not (cash > 0 and price > 0):
        return 0
    q = round_buy_quantity(int(cash / (price * (1.0 + rate))), board)
    # The minimum commission can push the cost over: step down until it fits (a few steps).
    step = 1 if board == BOARD_STAR else LOT
    while q > 0 and buy_cost(q, price, rate, minimum) > cash:
        q = round_buy_quantity(q - step, board)
    return q
