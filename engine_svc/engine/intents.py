"""Order intents: what the strategy asked for on one day, as data the trusted side replays.

The strategy's ``Context`` records every order call (after normalising its arguments, before
running it) as one fixed-size record; batch calls (``order_target_values`` …) carry their array.
The trusted side decodes the day's records, checks every field (a hostile process can send any
bytes) and replays them in order through the same ``Trader`` against the ledger
(``replay``), so an honest strategy gets the orders it saw placed, and nothing a strategy does to
objects in its own process reaches the ledger except through these calls.

Wire form (little-endian): ``RECORD`` per intent, then each array as n_symbols float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine_svc.engine.orders import Order
from engine_svc.engine.trader import Trader

# Intent codes (wire values: never renumber).
ORDER, ORDER_TARGET, ORDER_VALUE, ORDER_TARGET_VALUE = 1, 2, 3, 4
ORDER_PERCENT, ORDER_TARGET_PERCENT, TARGET_VALUES, TARGET_PERCENTS, CANCEL = 5, 6, 7, 8, 9
SHARE_OPS = (ORDER, ORDER_TARGET)  # ival = shares
MONEY_OPS = (ORDER_VALUE, ORDER_TARGET_VALUE, ORDER_PERCENT, ORDER_TARGET_PERCENT)  # fval
ARRAY_OPS = (TARGET_VALUES, TARGET_PERCENTS)  # ival = array index

RAISED = 1  # flags: the call raised in the strategy's process (and must raise on replay too)

RECORD = np.dtype([("op", "u1"), ("flags", "u1"), ("col", "<i4"), ("ival", "<i8"), ("fval", "<f8"),
                   ("price", "<f8")])

MAX_SHARES = 10**15  # far above any real order; keeps quantities inside int64 arithmetic
MAX_INTENTS_PER_DAY = 1_000_000


class IntentError(ValueError):
    """A malformed intent from the strategy's process (cannot come from the strategy API)."""


# ---------------------------------------------------------------------- normalising arguments
def normalise_quantity(quantity: Any) -> int:
    q = int(quantity)
    if abs(q) > MAX_SHARES:
        raise ValueError(f"quantity {quantity!r} is out of range (at most {MAX_SHARES:.0e} shares)")
    return q


def normalise_price(price: Any) -> float | None:
    if price is None:
        return None
    p = float(price)
    if not (math.isfinite(p) and p > 0):
        raise ValueError(f"limit price must be a positive number, got {price!r}")
    return p


def normalise_array(values: Any, n: int) -> np.ndarray:
    a = np.array(values, dtype=np.float64)  # a copy: the strategy may change its array later
    if a.shape != (n,):
        raise ValueError(f"expected {n} values, got shape {a.shape}")
    return a


# ---------------------------------------------------------------------- recording (strategy side)
@dataclass
class DayIntents:
    """One day's intents as recorded in the strategy's process."""

    records: list[tuple[int, int, int, int, float, float]] = field(default_factory=list)
    arrays: list[np.ndarray] = field(default_factory=list)

    def add(self, op: int, col: int = -1, ival: int = 0, fval: float = 0.0, price: float | None = None,
            array: np.ndarray | None = None) -> int:
        if array is not None:
            ival = len(self.arrays)
            self.arrays.append(array)
        self.records.append((op, 0, col, ival, fval, math.nan if price is None else price))
        return len(self.records) - 1

    def mark_raised(self, k: int) -> None:
        op, _, col, ival, fval, price = self.records[k]
        self.records[k] = (op, RAISED, col, ival, fval, price)

    def clear(self) -> None:
        self.records.clear()
        self.arrays.clear()

    def encode(self) -> tuple[int, int, list[bytes | memoryview]]:
        """(intent count, array count, buffers) for the wire."""
        recs = np.array(self.records, dtype=RECORD) if self.records else np.zeros(0, dtype=RECORD)
        return len(self.records), len(self.arrays), [recs.tobytes(), *(memoryview(a) for a in self.arrays)]


# ---------------------------------------------------------------------- decoding (trusted side)
def decode(buf: memoryview, n_intents: int, n_arrays: int, n_symbols: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Records and arrays from a reply body; IntentError for anything that does not fit."""
    if not (0 <= n_intents <= MAX_INTENTS_PER_DAY and 0 <= n_arrays <= n_intents):
        raise IntentError("intent counts out of range")
    size = n_intents * RECORD.itemsize + n_arrays * n_symbols * 8
    if len(buf) != size:
        raise IntentError("intent block has the wrong length")
    records = np.frombuffer(buf, dtype=RECORD, count=n_intents)
    arrays = [np.frombuffer(buf, dtype="<f8", count=n_symbols, offset=n_intents * RECORD.itemsize + k * n_symbols * 8)
              for k in range(n_arrays)]
    return records, arrays


def _check(op: int, flags: int, col: int, ival: int, fval: float, price: float, n_symbols: int,
           n_arrays: int) -> None:
    if flags & ~RAISED:
        raise IntentError("unknown intent flags")
    if op in SHARE_OPS or op in MONEY_OPS:
        if not 0 <= col < n_symbols:
            raise IntentError("symbol column out of range")
        if not (math.isnan(price) or (math.isfinite(price) and price > 0)):
            raise IntentError("limit price must be positive or absent")
        if op in SHARE_OPS and abs(ival) > MAX_SHARES:
            raise IntentError("quantity out of range")
    elif op in ARRAY_OPS:
        if not 0 <= ival < n_arrays:
            raise IntentError("array index out of range")
    elif op != CANCEL:
        raise IntentError(f"unknown intent {op}")


def dispatch(trader: Trader, op: int, col: int, ival: int, fval: float, price: float | None,
             arrays: Sequence[np.ndarray]) -> Order | list[Order] | None:
    """Run one normalised intent through ``trader`` (both sides call this)."""
    if op == ORDER:
        return trader.order(col, ival, price)
    if op == ORDER_TARGET:
        return trader.order_target(col, ival, price)
    if op == ORDER_VALUE:
        return trader.order_value(col, fval, price)
    if op == ORDER_TARGET_VALUE:
        return trader.order_target_value(col, fval, price)
    if op == ORDER_PERCENT:
        return trader.order_percent(col, fval, price)
    if op == ORDER_TARGET_PERCENT:
        return trader.order_target_percent(col, fval, price)
    if op == TARGET_VALUES:
        return trader.order_target_values(arrays[ival])
    if op == TARGET_PERCENTS:
        return trader.order_target_percents(arrays[ival])
    if op == CANCEL:
        return trader.cancel(ival)
    raise IntentError(f"unknown intent {op}")


def replay(trader: Trader, records: np.ndarray, arrays: list[np.ndarray], on_mismatch: Callable[[str], None]) -> None:
    """Apply a day's intents to the ledger. A call that raised in the strategy's process must
    raise here too (its partial effect, if any, is the same); a disagreement is reported to
    ``on_mismatch`` and the ledger's outcome stands."""
    n_symbols = len(trader.m.symbols)
    for op, flags, col, ival, fval, price in records.tolist():
        _check(op, flags, col, ival, fval, price, n_symbols, len(arrays))
        try:
            dispatch(trader, op, col, ival, fval, None if math.isnan(price) else price, arrays)
        except (ValueError, ArithmeticError, IndexError) as exc:
            if not flags & RAISED:
                on_mismatch(f"an order call failed on the ledger only ({type(exc).__name__}: {exc})")
        else:
            if flags & RAISED:
                on_mismatch("an order call that failed in the strategy succeeded on the ledger")
