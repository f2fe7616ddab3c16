"""The wire format on its own (no worker): panels round-trip bit-exactly, every cap holds, nothing
but the whitelisted dtypes is ever reconstructed."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest

from engine_svc.engine.panel import Benchmark, Panel
from engine_svc.sandbox import protocol
from engine_svc.sandbox.errors import KILLED_MESSAGE, NO_RESULT_MESSAGE, SandboxError, classify_exit
from engine_svc.sandbox.limits import SandboxLimits

from .helpers import make_panel


def _send(panel: Panel) -> Panel:
    meta, buffers = protocol.panel_to_wire(panel)
    body = bytearray(b"".join(bytes(b) for b in buffers))
    return protocol.panel_from_wire(json.loads(json.dumps(meta)), body)


def test_panel_round_trip_is_exact() -> None:
    p = make_panel(7, 3)
    p.bars["close"][2, 1] = np.nan  # a suspension
    p.is_st[3, 0] = True
    p = Panel(dates=p.dates, symbols=p.symbols, bars=p.bars, names=("A", "B", "C"), is_st=p.is_st,
              daily_basic={"pe": np.arange(21.0).reshape(7, 3)}, benchmark=Benchmark("000300.SH", np.arange(7.0)))
    q = _send(p)
    assert q.data_hash() == p.data_hash()
    assert q.names == ("A", "B", "C") and q.benchmark is not None and q.benchmark.symbol == "000300.SH"
    assert q.is_st.dtype == bool and bool(q.is_st[3, 0])
    assert q.bars["close"].flags.writeable  # the engine may use them like any array


def test_panel_hash_travels_with_the_panel_and_a_malformed_one_is_recomputed() -> None:
    p = make_panel(5, 2)
    meta, buffers = protocol.panel_to_wire(p)
    assert meta["data_hash"] == p.data_hash()
    body = bytearray(b"".join(bytes(b) for b in buffers))
    assert protocol.panel_from_wire(meta, body)._hash == p.data_hash()  # not hashed again in the worker
    for bad in ("not-a-hash", 42, None, "A" * 64):
        q = protocol.panel_from_wire({**meta, "data_hash": bad}, bytearray(body))
        assert q._hash is None and q.data_hash() == p.data_hash()


def test_only_whitelisted_dtypes_are_rebuilt() -> None:
    meta, buffers = protocol.panel_to_wire(make_panel())
    meta["arrays"][0]["dtype"] = "object"
    with pytest.raises(protocol.ProtocolError, match="not allowed"):
        protocol.panel_from_wire(meta, bytearray(b"".join(bytes(b) for b in buffers)))


def test_array_outside_the_body_is_rejected() -> None:
    meta, buffers = protocol.panel_to_wire(make_panel())
    meta["arrays"][-1]["offset"] = meta["nbytes"] - 8
    with pytest.raises(protocol.ProtocolError, match="outside"):
        protocol.panel_from_wire(meta, bytearray(b"".join(bytes(b) for b in buffers)))


def _pipe_with(data: bytes) -> int:
    r, w = os.pipe()
    os.write(w, data)
    os.close(w)
    os.set_blocking(r, False)
    return r


def _read_all(reader: protocol.FrameReader, fd: int) -> list[tuple[dict, bytes]]:
    frames = []
    try:
        while reader.feed_from(fd):
            frames += list(reader.frames())
        frames += list(reader.frames())
    finally:
        os.close(fd)
    return frames


def test_frames_round_trip_and_split_reads() -> None:
    r, w = os.pipe()
    protocol.write_frame(w, {"type": "progress", "fraction": 0.5})
    protocol.write_frame(w, {"type": "result"}, [b'{"a":', memoryview(b"1}")])
    os.close(w)
    os.set_blocking(r, False)
    frames = _read_all(protocol.FrameReader(max_header=1024, max_body=1024), r)
    assert frames == [({"type": "progress", "fraction": 0.5}, b""), ({"type": "result"}, b'{"a":1}')]


@pytest.mark.parametrize(
    ("prefix", "error"),
    [
        (protocol.PREFIX.pack(2**31, 0), protocol.FrameTooLarge),  # huge header
        (protocol.PREFIX.pack(2, 2**40), protocol.FrameTooLarge),  # 1 TB result announced
    ],
)
def test_caps_are_checked_before_buffering(prefix: bytes, error: type) -> None:
    reader = protocol.FrameReader(max_header=1024, max_body=1 << 20)
    with pytest.raises(error):
        _read_all(reader, _pipe_with(prefix + b"{}"))


@pytest.mark.parametrize("header", [b"[" * 20_000 + b"]" * 20_000, b"\xff\xfe", b'"just a string"', b"{}"])
def test_bad_headers_are_protocol_errors(header: bytes) -> None:
    reader = protocol.FrameReader(max_header=1 << 20, max_body=0)
    with pytest.raises(protocol.ProtocolError):
        _read_all(reader, _pipe_with(protocol.PREFIX.pack(len(header), 0) + header))


def test_nan_is_not_sent_as_json() -> None:
    with pytest.raises(ValueError):
        protocol.encode_header({"type": "result", "x": float("nan")})


# ---- limits and exit mapping -----------------------------------------------------------------------


def test_limits_from_env_and_scaling() -> None:
    lim = SandboxLimits.from_env({
        "ZQ_SANDBOX_MEMORY_MB": "2048", "ZQ_SANDBOX_MAX_SECONDS": "120", "ZQ_SANDBOX_BWRAP": "off",
        "ZQ_SANDBOX_SECCOMP": "1", "ZQ_SANDBOX_REQUIRE": "seccomp,landlock", "DATABASE_URL": "x",
    })
    assert (lim.memory_mb, lim.max_seconds, lim.bwrap, lim.require) == (2048, 120.0, "off", ("seccomp", "landlock"))
    assert lim.cpu_limit(0) == 10
    assert lim.cpu_limit(250 * 300) == 25  # 10 s + 0.2 ms per symbol-day
    assert lim.cpu_limit(10**9) == 120  # capped by max_seconds
    assert lim.wall_limit(0) == 10 * 1.5 + 5
    assert lim.wall_limit(10**9) == 120
    with pytest.raises(ValueError, match="ZQ_SANDBOX_MEMORY_MB"):
        SandboxLimits.from_env({"ZQ_SANDBOX_MEMORY_MB": "lots"})


@pytest.mark.parametrize(
    ("returncode", "cpu_used", "log_tail", "kind", "message"),
    [
        (-signal.SIGXCPU, 3.0, "", "cpu_time", "CPU time limit exceeded (2 s)"),
        (-signal.SIGKILL, 3.0, "", "cpu_time", "CPU time limit exceeded (2 s)"),  # hard limit
        (-signal.SIGKILL, 0.4, "", "killed", KILLED_MESSAGE),
        (-signal.SIGSEGV, 0.4, "", "crashed", "strategy process crashed (SIGSEGV)"),
        (-signal.SIGABRT, 0.4, "", "crashed", "strategy process crashed (SIGABRT)"),
        (1, 0.4, "Traceback ...\nMemoryError\n", "memory", "memory limit exceeded (512 MB)"),
        (0, 0.4, "", "no_result", NO_RESULT_MESSAGE),
        (3, 0.4, "", "no_result", NO_RESULT_MESSAGE + " (exit status 3)"),
    ],
)
def test_exit_mapping(returncode: int, cpu_used: float, log_tail: str, kind: str, message: str) -> None:
    err = classify_exit(returncode, cpu_used=cpu_used, cpu_limit=2, memory_mb=512, log_tail=log_tail)
    assert (err.kind, err.message) == (kind, message)


def test_unknown_error_kind_is_refused() -> None:
    with pytest.raises(ValueError):
        SandboxError("oops", "x")
