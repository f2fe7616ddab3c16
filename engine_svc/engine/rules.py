"""The A-share rule book: every trading rule the engine applies, as named pure functions.

Boards, lots, T+1, price limits by board and date, suspension, costs and slippage are decided
here and nowhere else. The broker's per-order path uses the scalar forms; the vectorised batch
path (``batch.py``) and the market tape use the array forms, which apply the very same float
operations element by element (``tests/unit/engine/test_rules.py`` checks every pair agrees
exactly, NaN included). The market-data layer takes ``board_of`` from here too.
"""

from __future__ import annotations

import math

import numpy as np

# ChiNext moved from ±10% to ±20% price limits with the registration reform.
CHINEXT_REFORM_DATE = np.datetime64("2020-08-24", "D")

# Board names as stored with the instruments and returned by ListSymbols.
BOARD_MAIN = "main"
BOARD_CHINEXT = "chinext"
BOARD_STAR = "star"
BOARD_BSE = "bse"  # Beijing Stock Exchange

LOT = 100  # one board lot for every board except STAR
STAR_MIN_BUY = 200  # STAR: at least 200 shares per order, then any whole number

# Prices come from the data with two decimals; limits are compared with a tolerance far below a fen.
PRICE_EPS = 1e-6

LIMIT_PCT = {BOARD_MAIN: 0.10, BOARD_STAR: 0.20, BOARD_BSE: 0.30}
CHINEXT_PCT_BEFORE, CHINEXT_PCT_AFTER = 0.10, 0.20
ST_PCT = 0.05  # ST and *ST shares, on every board


# ---------------------------------------------------------------------------------------- boards
def board_of(symbol: str) -> str:
    """Board of a Tushare code (``688001.SH`` → star); decides lots and price limits.

    STAR ``688xxx``/``689xxx`` (SH), ChiNext ``300xxx``/``301xxx`` (SZ), Beijing ``.BJ`` or
    ``4xxxxx``/``8xxxxx``/``92xxxx``, everything else the main board.
    """
    code, _, suffix = symbol.strip().partition(".")
    if code.startswith(("688", "689")):
        return BOARD_STAR
    if code.startswith(("300", "301")):
        return BOARD_CHINEXT
    if suffix.upper() == "BJ" or code.startswith(("4", "8", "92")):
        return BOARD_BSE
    return BOARD_MAIN


# ------------------------------------------------------------------------------------------ lots
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


def lot_step(board: str) -> int:
    """The quantity step between two valid buys on ``board`` (above the minimum)."""
    return 1 if board == BOARD_STAR else LOT


# ------------------------------------------------------------------------------------------ T+1
def sellable(held: int | np.ndarray, bought_today: int | np.ndarray) -> int | np.ndarray:
    """Shares that may be sold today: what is held minus what was bought today (T+1)."""
    return held - bought_today


def sell_fill_quantity(requested: int, held: int, bought_today: int, board: str) -> int:
    """What a sell order for ``requested`` shares fills at the open: cut to the sellable
    quantity (T+1), then to valid lots (the whole position may include the odd lot)."""
    return round_sell_quantity(min(requested, sellable(held, bought_today)), held, board)


def sell_fill_quantities(requested: np.ndarray, held: np.ndarray, bought_today: np.ndarray,
                         is_star: np.ndarray) -> np.ndarray:
    """Vector form of ``sell_fill_quantity``."""
    x = np.minimum(requested, sellable(held, bought_today))
    lots = np.where(is_star, np.where(x >= STAR_MIN_BUY, x, 0), x // LOT * LOT)
    q = np.where(x >= held, held, lots)
    q[x <= 0] = 0
    return q


# ---------------------------------------------------------------------------------- price limits
def round_price(x: np.ndarray) -> np.ndarray:
    """Round to 0.01 half up, as the exchanges do; the tiny epsilon absorbs binary representation
    error (10.05 × 1.1 = 11.054999… must give 11.06)."""
    return np.floor(x * 100.0 + 0.5 + 1e-6) / 100.0


def board_limits(boards: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(limit fraction by board, ChiNext mask) for ``limit_pct``; computed once per run."""
    base = np.array([CHINEXT_PCT_BEFORE if b == BOARD_CHINEXT else LIMIT_PCT[b] for b in boards], dtype=np.float64)
    return base, np.array([b == BOARD_CHINEXT for b in boards], dtype=bool)


def limit_pct(base: np.ndarray, chinext: np.ndarray, dates: np.ndarray, is_st: np.ndarray) -> np.ndarray:
    """Price-limit fraction (rows × symbols) by board, date and ST status: main ±10%, ChiNext
    ±20% from 2020-08-24 (±10% before), STAR ±20%, Beijing ±30%, ST ±5% on every board.
    ``base``/``chinext`` come from ``board_limits``; ``dates`` (rows,), ``is_st`` (rows, symbols)."""
    after = np.asarray(dates, dtype="datetime64[D]") >= CHINEXT_REFORM_DATE
    pct = np.where(chinext[None, :] & after[:, None], CHINEXT_PCT_AFTER, base[None, :])
    return np.where(np.asarray(is_st, dtype=bool), ST_PCT, pct)


def price_limits(pct: np.ndarray, pre_close: np.ndarray, up_data: np.ndarray,
                 down_data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(up, down) limits: the data's values where present, else computed from the reference
    price (pre_close) and the limit fraction, rounded to 0.01 (any shape, element by element)."""
    with np.errstate(invalid="ignore"):
        up_calc = round_price(pre_close * (1.0 + pct))
        down_calc = round_price(pre_close * (1.0 - pct))
    return np.where(np.isnan(up_data), up_calc, up_data), np.where(np.isnan(down_data), down_calc, down_data)


def blocked_buy(price: float, up_limit: float) -> bool:
    """A buy cannot trade at ``price`` (before slippage) at or above the up limit."""
    return price >= up_limit - PRICE_EPS


def blocked_sell(price: float, down_limit: float) -> bool:
    """A sell cannot trade at ``price`` (before slippage) at or below the down limit."""
    return price <= down_limit + PRICE_EPS


def blocked_buys(price: np.ndarray, up_limit: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return price >= up_limit - PRICE_EPS


def blocked_sells(price: np.ndarray, down_limit: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return price <= down_limit + PRICE_EPS


# -------------------------------------------------------------------------------------- slippage
def buy_fill_price(price: float, slippage: float, up_limit: float) -> tuple[float, bool]:
    """(fill price, capped): slippage moves a buy's price up, but never past the day's up limit
    (a NaN limit caps nothing). The limit test is made on ``price`` before slippage
    (``blocked_buy``), so a capped fill is still a fill."""
    p = price * (1.0 + slippage)
    return (up_limit, True) if up_limit < p else (p, False)


def sell_fill_price(price: float, slippage: float, down_limit: float) -> tuple[float, bool]:
    """(fill price, capped): slippage moves a sell's price down, but never below the down limit."""
    p = price * (1.0 - slippage)
    return (down_limit, True) if down_limit > p else (p, False)


def buy_fill_prices(price: np.ndarray, slippage: float, up_limit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = price * (1.0 + slippage)
    with np.errstate(invalid="ignore"):
        capped = up_limit < p
    return np.where(capped, up_limit, p), capped


def sell_fill_prices(price: np.ndarray, slippage: float, down_limit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = price * (1.0 - slippage)
    with np.errstate(invalid="ignore"):
        capped = down_limit > p
    return np.where(capped, down_limit, p), capped


def capped_note(side_is_buy: bool, limit: float) -> str:
    """Order-record note when slippage was capped at the price limit."""
    return f"slippage capped at the {'up' if side_is_buy else 'down'} limit {limit:g}"


# ----------------------------------------------------------------------------------------- costs
def commission(value: float, rate: float, minimum: float) -> float:
    """Broker commission for one order's fill: proportional with a per-order minimum."""
    return max(value * rate, minimum)


def commissions(values: np.ndarray, rate: float, minimum: float) -> np.ndarray:
    return np.maximum(values * rate, minimum)


def stamp_duty(value: float | np.ndarray, rate: float) -> float | np.ndarray:
    """Stamp duty, charged on the value of sells only (callers apply it to sells)."""
    return value * rate


def buy_cost(quantity: int, price: float, rate: float, minimum: float) -> float:
    """Cash a buy of ``quantity`` at ``price`` consumes, commission included."""
    value = quantity * price
    return value + commission(value, rate, minimum)


def buy_costs(quantity: np.ndarray, price: np.ndarray, rate: float, minimum: float) -> np.ndarray:
    value = quantity * price
    return value + commissions(value, rate, minimum)


def max_affordable_buy(cash: float, price: float, rate: float, minimum: float, board: str) -> int:
    """Largest valid buy quantity whose cost including commission fits in ``cash`` (0 if none)."""
    if not (cash > 0 and price > 0):
        return 0
    q = round_buy_quantity(int(cash / (price * (1.0 + rate))), board)
    # The minimum commission can push the cost over: step down until it fits (a few steps).
    step = lot_step(board)
    while q > 0 and buy_cost(q, price, rate, minimum) > cash:
        q = round_buy_quantity(q - step, board)
    return q


# ------------------------------------------------------------------------------------ ex-rights
def scaled_shares(quantity: int, ratio: float) -> int:
    """Whole shares of ``quantity × ratio`` (an ex-rights restatement), rounded down; the
    tolerance keeps 1000 × 1.1 = 1099.9999999999998 at 1100."""
    return math.floor(quantity * ratio + 1e-6)
