"""The order record: what the strategy gets back from ``context.order*`` and what the result's
``orders`` list is made of."""

from __future__ import annotations

from typing import Any

OPEN = "open"
FILLED = "filled"
REJECTED = "rejected"
EXPIRED = "expired"
CANCELLED = "cancelled"

BUY = "buy"
SELL = "sell"

REASON_SUSPENDED = "suspended"
REASON_LIMIT_UP = "limit up"
REASON_LIMIT_DOWN = "limit down"
REASON_CASH = "insufficient cash"
REASON_NOT_REACHED = "limit price not reached; expired at end of day"
REASON_ENDED = "backtest ended before the order could be matched"
REASON_CANCELLED = "cancelled by the strategy"


class Order:
    """One order. ``quantity`` is what the strategy asked for; ``working_quantity`` is what is
    still to be matched after lot rounding and the cash reservation at submission."""

    __slots__ = (
        "commission", "created_date", "fill_date", "fill_price", "filled_quantity", "index",
        "limit_price", "order_id", "quantity", "reason", "reserved", "side", "slippage_cost",
        "status", "symbol", "tax", "working_quantity",
    )

    def __init__(
        self, order_id: int, created_date: str, symbol: str, index: int, side: str,
        quantity: int, limit_price: float | None,
    ) -> None:
        self.order_id = order_id
        self.created_date = created_date
        self.symbol = symbol
        self.index = index  # column of the symbol in the panel
        self.side = side
        self.quantity = quantity
        self.working_quantity = quantity
        self.limit_price = limit_price
        self.status = OPEN
        self.reason = ""
        self.reserved = 0.0  # cash held back from portfolio.cash until the order resolves
        self.filled_quantity = 0
        self.fill_date: str | None = None
        self.fill_price: float | None = None
        self.commission = 0.0
        self.tax = 0.0
        self.slippage_cost = 0.0

    @property
    def is_open(self) -> bool:
        return self.status == OPEN

    @property
    def amount(self) -> int:
        """Signed requested quantity (zquant style: negative = sell)."""
        return self.quantity if self.side == BUY else -self.quantity

    def to_record(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "created_date": self.created_date,
            "symbol": self.symbol,
            "side": self.side,
            "quantity": self.quantity,
            "limit_price": self.limit_price,
            "status": self.status,
            "reason": self.reason,
            "filled_quantity": self.filled_quantity,
            "fill_date": self.fill_date,
            "fill_price": self.fill_price,
            "commission": self.commission,
            "tax": self.tax,
            "slippage_cost": self.slippage_cost,
        }

    def __repr__(self) -> str:
        return (
            f"Order(id={self.order_id}, {self.side} {self.quantity} {self.symbol}"
            f"{'' if self.limit_price is None else f' @{self.limit_price}'}, status={self.status}"
            f"{f', reason={self.reason!r}' if self.reason else ''})"
        )
