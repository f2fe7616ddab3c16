"""Parent ↔ worker wire format: length-prefixed frames of a JSON header plus optional raw bytes.

    frame = u32 header_len | u64 body_len | header (UTF-8 JSON object) | body (raw bytes)

Nothing is ever pickled: the worker is hostile, and unpickling its output would run its code in
the parent. Arrays travel as raw C-contiguous little-endian bytes described in the header and are
rebuilt with ``np.frombuffer`` from a dtype whitelist (never ``object``). Every read is capped
*before* the bytes are buffered, so a worker cannot make the parent allocate more than the caps.
"""

from __future__ import annotations

import errno
import json
import os
import re
import struct
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from engine_svc.engine.panel import Benchmark, Panel

PREFIX = struct.Struct("!IQ")
_ALLOWED_DTYPES = {"float64": np.dtype("<f8"), "bool": np.dtype("?")}
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")

Buffer = bytes | bytearray | memoryview


class ProtocolError(Exception):
    """A malformed frame (bad JSON, bad array description)."""


class FrameTooLarge(ProtocolError):
    """A frame announced more bytes than the reader's cap."""

    def __init__(self, what: str, size: int, cap: int) -> None:
        super().__init__(f"{what} of {size} bytes exceeds the {cap}-byte limit")
        self.size = size
        self.cap = cap


def encode_header(header: dict[str, Any]) -> bytes:
    # allow_nan=False: the result must be strict JSON (NaN is not); engines report undefined as null.
    return json.dumps(header, separators=(",", ":"), allow_nan=False).encode()


def decode_json(data: Buffer, what: str) -> Any:
    try:
        return json.loads(bytes(data))
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:  # RecursionError: "[[[[…" bombs
        raise ProtocolError(f"{what} is not valid JSON ({type(exc).__name__})") from None


def write_all(fd: int, data: Buffer) -> None:
    """Blocking write of everything (pipes accept partial writes)."""
    view = memoryview(data).cast("B")
    while view:
        try:
            n = os.write(fd, view[: 1 << 20])
        except InterruptedError:
            continue
        view = view[n:]


def write_frame(fd: int, header: dict[str, Any], body: Sequence[Buffer] = ()) -> None:
    """Blocking: used by the worker (its only peer is the parent, which always drains)."""
    head = encode_header(header)
    body_len = sum(memoryview(b).nbytes for b in body)
    write_all(fd, PREFIX.pack(len(head), body_len) + head)
    for part in body:
        write_all(fd, part)


def frame_bytes(header: dict[str, Any], body: Sequence[Buffer] = ()) -> list[memoryview]:
    """A frame as buffers to write without copying the (possibly large) body parts."""
    head = encode_header(header)
    body_len = sum(memoryview(b).nbytes for b in body)
    return [memoryview(PREFIX.pack(len(head), body_len) + head), *(memoryview(b).cast("B") for b in body)]


def _read_exact(fd: int, n: int) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        try:
            k = os.readv(fd, [view[got:]])
        except InterruptedError:
            continue
        if k == 0:
            raise EOFError("peer closed the pipe")
        got += k
    return buf


def read_frame(fd: int, *, max_header: int, max_body: int) -> tuple[dict[str, Any], bytearray]:
    """Blocking read of one frame (worker side; the parent uses FrameReader)."""
    header_len, body_len = PREFIX.unpack(_read_exact(fd, PREFIX.size))
    if header_len > max_header:
        raise FrameTooLarge("header", header_len, max_header)
    if body_len > max_body:
        raise FrameTooLarge("body", body_len, max_body)
    header = decode_json(_read_exact(fd, header_len), "frame header")
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise ProtocolError("frame header must be an object with a 'type'")
    return header, _read_exact(fd, body_len)


class FrameReader:
    """Incremental, capped frame parser for bytes read from a non-blocking pipe (parent side).

    ``max_body`` applies to result frames; other frame types (progress, error, ready) carry no
    body and are held to ``max_header``.
    """

    def __init__(self, *, max_header: int, max_body: int) -> None:
        self.max_header = max_header
        self.max_body = max_body
        self._buf = bytearray()
        self._need: tuple[int, int] | None = None

    def feed_from(self, fd: int) -> bool:
        """Read what is available; False on EOF."""
        try:
            chunk = os.read(fd, 1 << 20)
        except BlockingIOError:
            return True
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EINTR):
                return True
            raise
        if not chunk:
            return False
        self._buf += chunk
        return True

    def frames(self) -> Iterator[tuple[dict[str, Any], bytes]]:
        while True:
            if self._need is None:
                if len(self._buf) < PREFIX.size:
                    return
                header_len, body_len = PREFIX.unpack_from(self._buf)
                if header_len > self.max_header:
                    raise FrameTooLarge("message", header_len, self.max_header)
                if body_len > self.max_body:
                    raise FrameTooLarge("result", body_len, self.max_body)
                self._need = (header_len, body_len)
            header_len, body_len = self._need
            total = PREFIX.size + header_len + body_len
            if len(self._buf) < total:
                return
            header = decode_json(memoryview(self._buf)[PREFIX.size : PREFIX.size + header_len], "message")
            if not isinstance(header, dict) or not isinstance(header.get("type"), str):
                raise ProtocolError("message must be an object with a 'type'")
            body = bytes(self._buf[PREFIX.size + header_len : total])
            del self._buf[:total]
            self._need = None
            yield header, body


# ---- Panel <-> (meta, buffers) -------------------------------------------------------------------


def panel_to_wire(panel: Panel) -> tuple[dict[str, Any], list[memoryview]]:
    """Describe a Panel as JSON metadata plus C-contiguous array buffers laid out back to back."""
    arrays: list[dict[str, Any]] = []
    buffers: list[memoryview] = []
    offset = 0

    def add(name: str, arr: np.ndarray, dtype: str) -> None:
        nonlocal offset
        a = np.ascontiguousarray(arr, dtype=_ALLOWED_DTYPES[dtype])
        arrays.append({"name": name, "dtype": dtype, "shape": list(a.shape), "offset": offset})
        buffers.append(memoryview(a).cast("B"))
        offset += a.nbytes

    for name, arr in panel.bars.items():
        add(f"bars.{name}", arr, "float64")
    add("is_st", panel.is_st if panel.is_st is not None else np.zeros(panel.shape, bool), "bool")
    for name, arr in (panel.daily_basic or {}).items():
        add(f"daily_basic.{name}", arr, "float64")
    if panel.benchmark is not None:
        add("benchmark.close", panel.benchmark.close, "float64")
    meta = {
        "dates": panel.date_strings(),
        "symbols": list(panel.symbols),
        "names": list(panel.names),
        "has_daily_basic": panel.daily_basic is not None,
        "benchmark": None if panel.benchmark is None else panel.benchmark.symbol,
        # Hashed once per cached panel by the service, not again by every worker (60 MB of
        # arrays for 300 symbols × 2500 days); the service stamps it on the result itself.
        "data_hash": panel.data_hash(),
        "arrays": arrays,
        "nbytes": offset,
    }
    return meta, buffers


def panel_from_wire(meta: dict[str, Any], body: bytearray) -> Panel:
    """Rebuild a Panel; arrays are writable views into ``body`` (no copy)."""
    if meta.get("nbytes") != len(body):
        raise ProtocolError("panel body length does not match its description")
    dates = np.array(meta["dates"], dtype="datetime64[D]")
    symbols = tuple(meta["symbols"])
    bars: dict[str, np.ndarray] = {}
    daily_basic: dict[str, np.ndarray] = {}
    is_st: np.ndarray | None = None
    bench_close: np.ndarray | None = None
    for spec in meta["arrays"]:
        dtype = _ALLOWED_DTYPES.get(spec["dtype"])
        if dtype is None:
            raise ProtocolError(f"array dtype {spec['dtype']!r} is not allowed")
        shape = tuple(int(s) for s in spec["shape"])
        count = int(np.prod(shape)) if shape else 1
        offset = int(spec["offset"])
        if offset < 0 or offset + count * dtype.itemsize > len(body):
            raise ProtocolError(f"array {spec['name']!r} lies outside the panel body")
        arr = np.frombuffer(body, dtype=dtype, count=count, offset=offset).reshape(shape)
        group, _, name = spec["name"].partition(".")
        if group == "bars":
            bars[name] = arr
        elif group == "daily_basic":
            daily_basic[name] = arr
        elif group == "is_st":
            is_st = arr
        elif group == "benchmark":
            bench_close = arr
        else:
            raise ProtocolError(f"unknown panel array {spec['name']!r}")
    benchmark = None
    if meta.get("benchmark") is not None and bench_close is not None:
        benchmark = Benchmark(str(meta["benchmark"]), bench_close)
    data_hash = meta.get("data_hash")
    return Panel(
        dates=dates,
        symbols=symbols,
        bars=bars,
        names=tuple(meta.get("names") or ()),
        is_st=is_st,
        daily_basic=daily_basic if meta.get("has_daily_basic") else None,
        benchmark=benchmark,
        _hash=data_hash if isinstance(data_hash, str) and _SHA256_HEX.fullmatch(data_hash) else None,
    )
