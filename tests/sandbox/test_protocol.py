"""The wire format on its own (no worker): frames round-trip, every cap holds, nothing is ever
unpickled."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from engine_svc.sandbox import protocol
from engine_svc.sandbox.errors import KILLED_MESSAGE, NO_RESULT_MESSAGE, SandboxError, classify_exit
from engine_svc.sandbox.limits import SandboxLimits


def test_binary_frames_round_trip_and_a_bin_header_cannot_be_forged() -> None:
    r, w = os.pipe()
    try:
        protocol.write_binary(w, [b"abc", memoryview(np.arange(3.0))])
        header, body = protocol.read_frame(r, max_header=1024, max_body=1024)
        assert header == {"type": "bin"} and bytes(body[:3]) == b"abc" and len(body) == 3 + 24
        # a JSON header claiming to be binary is not a binary frame
        os.write(w, protocol.PREFIX.pack(14, 0) + b'{"type":"bin"}')
        with pytest.raises(protocol.ProtocolError):
            protocol.read_frame(r, max_header=1024, max_body=1024)
    finally:
        os.close(r)
        os.close(w)


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
