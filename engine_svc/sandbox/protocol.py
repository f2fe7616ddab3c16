"""Parent ↔ worker wire format: length-prefixed frames of a JSON header plus optional raw bytes.

    frame = u32 header_len | u64 body_len | header (UTF-8 JSON object) | body (raw bytes)

A frame with header_len 0 is a binary frame (``{"type": "bin"}``): the per-day messages of a
backtest (``engine_svc.engine.daywire``), which must not pay for JSON on every trading day.

Nothing is ever pickled: the worker is hostile, and unpickling its output would run its code in
the parent. Arrays travel as raw little-endian bytes in fixed layouts (``engine_svc.engine.
daywire``) and are rebuilt with ``np.frombuffer`` as float64 / int / bool only. Every read is
capped *before* the bytes are buffered, so a worker cannot make the parent allocate more than
the caps.
"""

from __future__ import annotations

import errno
import json
import os
import struct
from collections.abc import Iterator, Sequence
from typing import Any

PREFIX = struct.Struct("!IQ")

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


BINARY = {"type": "bin"}


def binary_frame(parts: Sequence[Buffer]) -> list[memoryview]:
    """A binary frame (no JSON header) as buffers to write without copying."""
    views = [memoryview(p).cast("B") for p in parts]
    return [memoryview(PREFIX.pack(0, sum(v.nbytes for v in views))), *views]


def write_binary(fd: int, parts: Sequence[Buffer]) -> None:
    """Blocking write of a binary frame (worker side)."""
    views = binary_frame(parts)
    if sum(v.nbytes for v in views) <= 1 << 16:
        write_all(fd, b"".join(views))  # one write: the reader wakes up once
    else:
        for v in views:
            write_all(fd, v)


def _header(data: Buffer, what: str) -> dict[str, Any]:
    if len(data) == 0:
        return dict(BINARY)
    header = decode_json(data, what)
    if not isinstance(header, dict) or not isinstance(header.get("type"), str) or header["type"] == "bin":
        raise ProtocolError(f"{what} must be an object with a 'type'")
    return header


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
    header = _header(_read_exact(fd, header_len), "frame header")
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
            # 64 KiB: a larger read buffer is mmap'ed and unmapped by malloc on every call
            chunk = os.read(fd, 1 << 16)
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
            header = _header(memoryview(self._buf)[PREFIX.size : PREFIX.size + header_len], "message")
            body = bytes(self._buf[PREFIX.size + header_len : total])
            del self._buf[:total]
            self._need = None
            yield header, body
