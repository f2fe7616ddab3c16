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

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine_svc.engine.intents import RECORD, DayIntents, IntentError, decode
from engine_svc.engine.market import DerivedRows
from engine_svc.engine.panel import BAR_FIELDS, DAILY_BASIC_FIELDS

WARMUP, DAY = 1, 2
FEED_HEAD = struct.Struct("<BIIIII")  # kind, first row, rows, ex-rights events, first factors, re-scales
REPLY_HEAD = struct.Struct("<IIIQdd")  # intents, arrays, log lines, order count, cash, reserved
MAX_LOG_BYTES_PER_DAY = 8 * 1024 * 1024
_EPOCH = np.datetime64("1970-01-01", "D")


class WireError(ValueError):
    """A message that does not have the agreed layout."""


@dataclass(frozen=True)
class Feed:
    kind: int
    first_row: int
    rows: DerivedRows


def encode_feed(kind: int, first_row: int, rows: DerivedRows) -> list[bytes | memoryview]:
    """A feed of consecutive tape rows (``MarketTape.rows``) as buffers to write."""
    n = len(rows.dates)
    ex, first, rescale = rows.ex_rights, rows.first_factor, rows.rescale
    parts: list[bytes | memoryview] = [
        FEED_HEAD.pack(kind, first_row, n, len(ex), len(first), len(rescale)),
        (np.asarray(rows.dates, dtype="datetime64[D]") - _EPOCH).astype("<i8").tobytes(),
        np.ascontiguousarray(rows.bars, dtype="<f8").tobytes(),
        np.ascontiguousarray(rows.is_st, dtype=np.uint8).tobytes(),
        np.ascontiguousarray(np.stack([rows.last_close, rows.up, rows.down, rows.adj_filled], axis=1),
                             dtype="<f8").tobytes(),
    ]
    if rows.basic is not None:
        parts.append(np.ascontiguousarray(rows.basic, dtype="<f8").tobytes())
    parts.append(np.array([(r, j) for r, j, _, _ in ex], dtype="<i4").reshape(-1, 2).tobytes())
    parts.append(np.array([(q, px) for _, _, q, px in ex], dtype="<f8").reshape(-1, 2).tobytes())
    parts.append(np.array(first, dtype="<i4").reshape(-1, 2).tobytes())
    parts.append(np.array(rescale, dtype="<i4").reshape(-1, 2).tobytes())
    return parts


def decode_feed(buf: bytes | bytearray | memoryview, n_symbols: int, has_basic: bool) -> Feed:
    mv = memoryview(buf)
    if len(mv) < FEED_HEAD.size:
        raise WireError("feed too short")
    kind, first_row, n, n_ex, n_first, n_rescale = FEED_HEAD.unpack_from(mv)
    F, B, S = len(BAR_FIELDS), len(DAILY_BASIC_FIELDS), n_symbols
    sizes = [n * 8, n * F * S * 8, n * S, n * 4 * S * 8, n * B * S * 8 if has_basic else 0,
             n_ex * 8, n_ex * 16, n_first * 8, n_rescale * 8]
    if kind not in (WARMUP, DAY) or len(mv) != FEED_HEAD.size + sum(sizes):
        raise WireError("feed has the wrong layout")
    offsets = np.cumsum([FEED_HEAD.size, *sizes]).tolist()

    def arr(k: int, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
        return np.frombuffer(mv, dtype=dtype, count=int(np.prod(shape)), offset=offsets[k]).reshape(shape)

    derived = arr(3, "<f8", (n, 4, S))
    ex_at, ex_val = arr(5, "<i4", (n_ex, 2)), arr(6, "<f8", (n_ex, 2))
    first, rescale = arr(7, "<i4", (n_first, 2)), arr(8, "<i4", (n_rescale, 2))
    for pairs in (ex_at, first, rescale):
        if pairs.size and not ((pairs[:, 0] >= first_row).all() and (pairs[:, 0] < first_row + n).all()
                               and (pairs[:, 1] >= 0).all() and (pairs[:, 1] < S).all()):
            raise WireError("feed event outside its rows")
    rows = DerivedRows(
        dates=_EPOCH + arr(0, "<i8", (n,)).astype("timedelta64[D]"),
        bars=arr(1, "<f8", (n, F, S)),
        is_st=arr(2, np.uint8, (n, S)).astype(bool),
        basic=arr(4, "<f8", (n, B, S)) if has_basic else None,
        last_close=derived[:, 0], up=derived[:, 1], down=derived[:, 2], adj_filled=derived[:, 3],
        ex_rights=[(int(r), int(j), float(q), float(px))
                   for (r, j), (q, px) in zip(ex_at.tolist(), ex_val.tolist(), strict=True)],
        first_factor=[(int(r), int(j)) for r, j in first.tolist()],
        rescale=[(int(r), int(j)) for r, j in rescale.tolist()],
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
