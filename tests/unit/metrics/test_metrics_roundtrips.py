"""The FIFO round-trip ledger: quantity is consumed, costs are allocated exactly."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from engine_svc.metrics import open_lots, round_trips


def fill(oid: str, date: str, side: str, qty: int, price: float, comm: float, tax: float = 0.0,
         symbol: str = "600000.SH") -> dict[str, Any]:  # fmt: skip
    return {
        "order_id": oid, "date": date, "symbol": symbol, "side": side, "quantity": qty, "price": price,
        "value": qty * price, "commission": comm, "tax": tax, "slippage_cost": 0.0,
    }  # fmt: skip


# Two buy lots, then three sells that split them:
#   lot A: 1000 @ 10.00, commission 5.00 → 0.005 per share
#   lot B: 1000 @ 11.00, commission 5.50 → 0.0055 per share
LEDGER = [
    fill("b1", "2024-01-02", "buy", 1000, 10.00, 5.00),
    fill("b2", "2024-01-03", "buy", 1000, 11.00, 5.50),
    # 600 from A: 600·(12 − 10) − 600·0.005 − (5 + 7.20) = 1200 − 3.00 − 12.20 = 1184.80
    fill("s1", "2024-01-04", "sell", 600, 12.00, 5.00, 7.20),
    # 400 rest of A + 400 of B: 400·(9.5 − 10) + 400·(9.5 − 11) = −200 − 600 = −800
    #   − 400·0.005 − 400·0.0055 = −2.00 − 2.20;  − (5 + 7.60)  → −800 − 4.20 − 12.60 = −816.80
    fill("s2", "2024-01-05", "sell", 800, 9.50, 5.00, 7.60),
    # 400 of B: 400·(11.5 − 11) − 400·0.0055 − (5 + 4.60) = 200 − 2.20 − 9.60 = 188.20; 200 of B stay open
    fill("s3", "2024-01-08", "sell", 400, 11.50, 5.00, 4.60),
]


def test_partial_sells_across_two_lots_exact_pnl() -> None:
    trips = round_trips(LEDGER)
    assert [t["close_order_id"] for t in trips] == ["s1", "s2", "s3"]
    expected = [1184.80, -816.80, 188.20]
    for t, pnl in zip(trips, expected, strict=True):
        assert math.isclose(t["pnl"], pnl, rel_tol=0, abs_tol=1e-9), (t["close_order_id"], t["pnl"])
    assert [t["quantity"] for t in trips] == [600, 800, 400]
    assert [(t["open_date"], t["close_date"]) for t in trips] == [
        ("2024-01-02", "2024-01-04"),
        ("2024-01-02", "2024-01-05"),  # opened at the earliest lot it consumes
        ("2024-01-03", "2024-01-08"),
    ]
    assert [[(lot["order_id"], lot["quantity"]) for lot in t["lots"]] for t in trips] == [
        [("b1", 600)],
        [("b1", 400), ("b2", 400)],
        [("b2", 400)],
    ]
    s2 = trips[1]
    assert math.isclose(s2["open_value"], 400 * 10 + 400 * 11, abs_tol=1e-9)
    assert math.isclose(s2["close_value"], 800 * 9.5, abs_tol=1e-9)
    assert math.isclose(s2["costs"], 2.00 + 2.20 + 5.00 + 7.60, abs_tol=1e-9)
    # return on the cost basis incl. allocated buy commission: −816.80 / (8400 + 4.20)
    assert math.isclose(s2["return"], -816.80 / 8404.20, rel_tol=1e-12)
    json.dumps(trips, allow_nan=False)


def test_open_remainder() -> None:
    assert open_lots(LEDGER) == [
        {"symbol": "600000.SH", "open_date": "2024-01-03", "order_id": "b2", "quantity": 200, "price": 11.0}
    ]


def test_symbols_have_separate_books_and_input_order_is_sorted_by_date() -> None:
    x = "000001.SZ"
    trades = [
        fill("sx", "2024-02-06", "sell", 100, 9.0, 5.0, 0.9, symbol=x),  # listed first, happens last
        fill("bx", "2024-02-01", "buy", 100, 10.0, 5.0, symbol=x),
        fill("b", "2024-02-01", "buy", 100, 20.0, 5.0),
        fill("s", "2024-02-02", "sell", 100, 21.0, 5.0, 2.1),
    ]
    trips = round_trips(trades)
    assert [(t["symbol"], t["close_order_id"]) for t in trips] == [("600000.SH", "s"), (x, "sx")]
    # 100·(21 − 20) − 5 − 5 − 2.10 = 87.90 ; 100·(9 − 10) − 5 − 5 − 0.90 = −110.90
    assert math.isclose(trips[0]["pnl"], 87.90, abs_tol=1e-9)
    assert math.isclose(trips[1]["pnl"], -110.90, abs_tol=1e-9)


def test_same_day_fills_keep_engine_order() -> None:
    # sell on day 2 closes day-1 shares; a day-2 buy listed after it opens a new lot (T+1)
    trades = [
        fill("b1", "2024-03-01", "buy", 100, 10.0, 0.0),
        fill("s1", "2024-03-04", "sell", 100, 11.0, 0.0),
        fill("b2", "2024-03-04", "buy", 100, 12.0, 0.0),
    ]
    assert [t["pnl"] for t in round_trips(trades)] == [100.0]
    assert open_lots(trades)[0]["order_id"] == "b2"


def test_buys_only_no_round_trips() -> None:
    assert round_trips([fill("b", "2024-01-02", "buy", 100, 10.0, 5.0)]) == []
    assert round_trips([]) == []


def test_selling_more_than_held_raises() -> None:
    with pytest.raises(ValueError, match="only 100 are held"):
        round_trips(
            [fill("b", "2024-01-02", "buy", 100, 10.0, 5.0), fill("s", "2024-01-03", "sell", 200, 10.0, 5.0)]
        )


def test_bad_side_raises() -> None:
    t = fill("b", "2024-01-02", "buy", 100, 10.0, 5.0)
    t["side"] = "short"
    with pytest.raises(ValueError, match="side"):
        round_trips([t])


def ex(date: str, before: int, after: int, ratio: float, symbol: str = "600000.SH") -> dict[str, Any]:
    return {"date": date, "symbol": symbol, "ratio": ratio, "ex_price": 1.0, "quantity_before": before,
            "quantity_after": after, "cash": 0.0}


def test_split_restates_open_lots_before_the_same_days_fills() -> None:
    ledger = [
        fill("b1", "2024-01-02", "buy", 1000, 10.00, 5.00),
        fill("b2", "2024-01-03", "buy", 500, 12.00, 6.00),
        # 2-for-1 on 01-04: lots become 2000 @ 5.00 (0.0025/share) and 1000 @ 6.00 (0.006/share)
        # 2500 sold that very day: all of lot 1 and 500 of lot 2
        #   2000·(7 − 5) + 500·(7 − 6) − 2000·0.0025 − 500·0.006 − (5 + 17.5) = 4500 − 8 − 22.5
        fill("s1", "2024-01-04", "sell", 2500, 7.00, 5.00, 17.50),
    ]
    (trip,) = round_trips(ledger, [ex("2024-01-04", 1500, 3000, 2.0)])
    assert trip["quantity"] == 2500 and trip["open_value"] == 2000 * 5.0 + 500 * 6.0
    assert trip["pnl"] == pytest.approx(4500 - 8 - 22.5, abs=1e-9)
    assert [(lot["order_id"], lot["quantity"], lot["price"]) for lot in trip["lots"]] == [("b1", 2000, 5.0),
                                                                                      ("b2", 500, 6.0)]
    assert open_lots(ledger, [ex("2024-01-04", 1500, 3000, 2.0)]) == [
        {"symbol": "600000.SH", "open_date": "2024-01-03", "order_id": "b2", "quantity": 500, "price": 6.0}
    ]
    with pytest.raises(ValueError, match="only 1500 are held"):
        round_trips(ledger)  # without the restatement the fills are inconsistent


def test_fractional_restatement_hands_leftover_shares_to_the_largest_fractions() -> None:
    ledger = [fill("b1", "2024-01-02", "buy", 300, 20.0, 5.0), fill("b2", "2024-01-03", "buy", 100, 20.0, 5.0)]
    # ×1.0345: 310.35 and 103.45 → floors 310 + 103 = 413; the engine kept floor(413.8) = 413 shares
    lots = open_lots(ledger, [ex("2024-01-04", 400, 413, 1.0345)])
    assert [(lot["quantity"], lot["price"]) for lot in lots] == [(310, pytest.approx(20.0 * 300 / 310)),
                                                                 (103, pytest.approx(20.0 * 100 / 103))]
    # ×1.5 on 3 + 3 shares (odd lots, a made-up case): 4.5 + 4.5 → 4 + 4, one share left → the older lot
    odd = [fill("b1", "2024-01-02", "buy", 3, 10.0, 0.0), fill("b2", "2024-01-03", "buy", 3, 10.0, 0.0)]
    assert [lot["quantity"] for lot in open_lots(odd, [ex("2024-01-04", 6, 9, 1.5)])] == [5, 4]
    with pytest.raises(ValueError, match="5 shares before"):
        open_lots(odd, [ex("2024-01-04", 5, 9, 1.5)])
