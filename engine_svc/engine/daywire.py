"""The per-day messages between the trusted side and the strategy's process, as bytes.

Trusted → strategy, a ``Feed``: the raw data of one or more new rows (never a row after the
day being run): dates, every bar field, ST flags and, when loaded, daily_basic indicators.
Warm-up rows (before the start date, for ``history``) come as one feed before the first day.

Strategy → trusted, a ``Reply`` for each run day: that day's order intents (``intents.py``),
its log lines, and a checksum of the portfolio the strategy saw after its last order (order
count, cash, reserved cash), which the trusted side compares with the ledger.

Everything is fixed-layout little-endian: no pickle, no JSON on the hot path, and every length
is checked against what the trusted side expects before anything is used.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine_svc.engine.intents import RECORD, DayIntents, IntentError, decode
from engine_svc.engine.panel import BAR_FIELDS, DAILY_BASIC_FIELDS

WARMUP, DAY = 1, 2
FEED_HEAD = struct.Struct("<BII")  # kind, first row, row count
REPLY_HEAD = struct.Struct("<IIIQdd")  # intents, arrays, log lines, order count, cash, reserved
MAX_LOG_BYTES_PER_DAY = 8 * 1024 * 1024
_EPOCH = np.datetime64("1970-01-01", "D")


class WireError(ValueError):
    """A message that does not have the agreed layout."""


@dataclass(frozen=True)
class Feed:
    kind: int
    first_row: int
    dates: np.ndarray  # datetime64[D] (n,)
    bars: np.ndarray  # (n, len(BAR_FIELDS), n_symbols)
    is_st: np.ndarray  # bool (n, n_symbols)
    basic: np.ndarray | None  # (n, len(DAILY_BASIC_FIELDS), n_symbols)


def encode_feed(kind: int, first_row: int, dates: np.ndarray, bars: dict[str, np.ndarray], is_st: np.ndarray,
                basic: dict[str, np.ndarray] | None, rows: slice) -> list[bytes | memoryview]:
    """A feed of panel ``rows`` (the trusted side's arrays) as buffers to write."""
    d = (np.asarray(dates[rows], dtype="datetime64[D]") - _EPOCH).astype("<i8")
    n = len(d)
    parts: list[bytes | memoryview] = [FEED_HEAD.pack(kind, first_row, n), d.tobytes()]
    block = np.stack([bars[f][rows] for f in BAR_FIELDS], axis=1)  # (n, F, S) C-contiguous
    parts.append(memoryview(np.ascontiguousarray(block, dtype="<f8")))
    parts.append(np.ascontiguousarray(is_st[rows], dtype=np.uint8).tobytes())
    if basic is not None:  # a data set may carry only some indicators: the others are unknown
        missing = np.full((len(d), is_st.shape[1]), np.nan)
        block = np.stack([basic[f][rows] if f in basic else missing for f in DAILY_BASIC_FIELDS], axis=1)
        parts.append(memoryview(np.ascontiguousarray(block, dtype="<f8")))
    return parts


def decode_feed(buf: bytes | bytearray | memoryview, n_symbols: int, has_basic: bool) -> Feed:
    mv = memoryview(buf)
    if len(mv) < FEED_HEAD.size:
        raise WireError("feed too short")
    kind, first, n = FEED_HEAD.unpack_from(mv)
    F, B, S = len(BAR_FIELDS), len(DAILY_BASIC_FIELDS), n_symbols
    sizes = [n * 8, n * F * S * 8, n * S, n * B * S * 8 if has_basic else 0]
    if kind not in (WARMUP, DAY) or len(mv) != FEED_HEAD.size + sum(sizes):
        raise WireError("feed has the wrong layout")
    off = FEED_HEAD.size
    dates = _EPOCH + np.frombuffer(mv, dtype="<i8", count=n, offset=off).astype("timedelta64[D]")
    off += sizes[0]
    bars = np.frombuffer(mv, dtype="<f8", count=n * F * S, offset=off).reshape(n, F, S)
    off += sizes[1]
    is_st = np.frombuffer(mv, dtype=np.uint8, count=n * S, offset=off).reshape(n, S).astype(bool)
    off += sizes[2]
    basic = np.frombuffer(mv, dtype="<f8", count=n * B * S, offset=off).reshape(n, B, S) if has_basic else None
    return Feed(kind, first, dates, bars, is_st, basic)


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
