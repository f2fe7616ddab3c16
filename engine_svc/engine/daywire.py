"""The per-day messages between the trusted side and the strategy's process, as bytes.

Trusted → strategy, a ``Feed``: one or more new rows of the tape (never a row after the day
being run): dates, every bar field, ST flags, daily_basic indicators when loaded, and the values
the trusted side derived for those rows (last close, price limits, the price view's factors,
ex-rights events). Warm-up rows (before the start date, for ``history``) come as one feed before
the first day.

Strategy → trusted, a ``Reply`` for each run day: that day's order intents (``intents.py``),
its log lines, and a checksum of the portfolio the strategy saw after its last order (order
count, cash, reserved cash), which the trusted side compares with the ledger.

Everything is fixed-layout little-endian: no pickle, no JSON on the hot path, and every length
is checked against what the trusted side expects before anything is used.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine_svc.engine.intents import RECORD, DayIntents, IntentError, decode
from engine_svc.engine.market import DerivedRows

WARMUP, DAY = 1, 2
FEED_HEAD = struct.Struct("<BIIIIII")  # kind, first row, rows, channels, ex-rights, first factors, re-scales
REPLY_HEAD = struct.Struct("<IIIQdd")  # intents, arrays, log lines, order count, cash, reserved
MAX_LOG_BYTES_PER_DAY = 8 * 1024 * 1024


class WireError(ValueError):
    """A message that does not have the agreed layout."""


@dataclass(frozen=True)
class Feed:
    kind: int
    first_row: int
    rows: DerivedRows


def encode_feed(kind: int, first_row: int, rows: DerivedRows) -> list[bytes | memoryview]:
    """A feed of consecutive tape rows (``MarketTape.rows``) as buffers to write."""
    n, c, _ = rows.block.shape
    ex, first, rescale = rows.ex_rights, rows.first_factor, rows.rescale
    parts: list[bytes | memoryview] = [
        FEED_HEAD.pack(kind, first_row, n, c, len(ex), len(first), len(rescale)),
        rows.dates.astype("<M8[D]").tobytes(),  # int64 days since the epoch
        memoryview(np.ascontiguousarray(rows.block, dtype="<f8")).cast("B"),
        rows.is_st.astype(np.uint8).tobytes(),
    ]
    if ex or first or rescale:
        parts += [np.array([(r, j) for r, j, _, _ in ex], dtype="<i4").tobytes(),
                  np.array([(q, px) for _, _, q, px in ex], dtype="<f8").tobytes(),
                  np.array(first, dtype="<i4").tobytes(), np.array(rescale, dtype="<i4").tobytes()]
    return parts


def decode_feed(buf: bytes | bytearray | memoryview, n_symbols: int, n_channels: int) -> Feed:
    mv = memoryview(buf)
    if len(mv) < FEED_HEAD.size:
        raise WireError("feed too short")
    kind, first_row, n, c, n_ex, n_first, n_rescale = FEED_HEAD.unpack_from(mv)
    S = n_symbols
    at_block = FEED_HEAD.size + n * 8
    at_st = at_block + n * c * S * 8
    at_events = at_st + n * S
    if (kind not in (WARMUP, DAY) or c != n_channels
            or len(mv) != at_events + n_ex * 24 + n_first * 8 + n_rescale * 8):
        raise WireError("feed has the wrong layout")
    ex_rights: list[tuple[int, int, float, float]] = []
    first: list[tuple[int, int]] = []
    rescale: list[tuple[int, int]] = []
    if n_ex or n_first or n_rescale:  # most days have none
        sizes = (n_ex * 8, n_ex * 16, n_first * 8, n_rescale * 8)
        offsets = list(itertools.accumulate(sizes, initial=at_events))

        def pairs(k: int, count: int, dtype: str) -> list[list[Any]]:
            return np.frombuffer(mv, dtype=dtype, count=2 * count, offset=offsets[k]).reshape(count, 2).tolist()

        ex_at, ex_val = pairs(0, n_ex, "<i4"), pairs(1, n_ex, "<f8")
        first_at, rescale_at = pairs(2, n_first, "<i4"), pairs(3, n_rescale, "<i4")
        for r, j in itertools.chain(ex_at, first_at, rescale_at):
            if not (first_row <= r < first_row + n and 0 <= j < S):
                raise WireError("feed event outside its rows")
        ex_rights = [(r, j, q, px) for (r, j), (q, px) in zip(ex_at, ex_val, strict=True)]
        first = [(r, j) for r, j in first_at]
        rescale = [(r, j) for r, j in rescale_at]
    rows = DerivedRows(  # views into the message: MarketTape.append copies them
        dates=np.frombuffer(mv, dtype="<M8[D]", count=n, offset=FEED_HEAD.size),  # days since the epoch
        block=np.frombuffer(mv, dtype="<f8", count=n * c * S, offset=at_block).reshape(n, c, S),
        is_st=np.frombuffer(mv, dtype=np.uint8, count=n * S, offset=at_st).reshape(n, S).view(bool),
        ex_rights=ex_rights, first_factor=first, rescale=rescale,
    )
    return Feed(kind, first_row, rows)


@dataclass(frozen=True)
class Reply:
    records: np.ndarray  # intents.RECORD
    arrays: list[np.ndarray]
    logs: list[str]
    n_orders: int
    cash: float
    reserved: float


def encode_reply(day: DayIntents, logs: Sequence[str], n_orders: int, cash: float,
                 reserved: float) -> list[bytes | memoryview]:
    n_int, n_arr, blocks = day.encode()
    texts = [s.encode("utf-8", "replace") for s in logs]
    lengths = np.array([len(t) for t in texts], dtype="<u4")
    return [REPLY_HEAD.pack(n_int, n_arr, len(texts), n_orders, cash, reserved), *blocks, lengths.tobytes(),
            b"".join(texts)]


def decode_reply(buf: bytes | bytearray | memoryview, n_symbols: int) -> Reply:
    """A strategy reply, every length checked (a hostile process may send anything)."""
    mv = memoryview(buf)
    if len(mv) < REPLY_HEAD.size:
        raise WireError("reply too short")
    n_int, n_arr, n_logs, n_orders, cash, reserved = REPLY_HEAD.unpack_from(mv)
    off = REPLY_HEAD.size
    intent_bytes = n_int * RECORD.itemsize + n_arr * n_symbols * 8
    if off + intent_bytes + 4 * n_logs > len(mv):
        raise WireError("reply shorter than its counts")
    try:
        records, arrays = decode(mv[off : off + intent_bytes], n_int, n_arr, n_symbols)
    except IntentError as exc:
        raise WireError(str(exc)) from None
    off += intent_bytes
    lengths = np.frombuffer(mv, dtype="<u4", count=n_logs, offset=off).tolist()
    off += 4 * n_logs
    if off + sum(lengths) != len(mv) or sum(lengths) > MAX_LOG_BYTES_PER_DAY:
        raise WireError("reply log block has the wrong length")
    logs = []
    for n in lengths:
        logs.append(bytes(mv[off : off + n]).decode("utf-8", "replace"))
        off += n
    return Reply(records, arrays, logs, n_orders, cash, reserved)
